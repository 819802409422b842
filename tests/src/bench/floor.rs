//! The floor: the least any event-sourced pipeline of this shape can do per
//! event on this machine, with none of Sextant in it. Events are appended a
//! thousand at a time into one table, read back in position order and
//! published one message each to a JetStream stream (file storage, message
//! ids, one ack awaited per batch), then pulled from a consumer and
//! projected one row each. No HTTP, no validation, no idempotency, no
//! aggregate state, no personal-data tables, one projection: two row writes
//! and one message per event, where batch ingest writes about six rows and
//! its stream delivers each send event to two consumers.
//!
//! It is what the batch-ingest figure is judged against to say what is
//! Sextant's cost and what is the machine's.

use std::time::Instant;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use serde_json::Value;

use super::ingest::{outcome_item, send_item, BATCH};
use crate::TestEnv;

/// Events/s through append, publish and one projected row.
pub async fn floor(events: usize) -> anyhow::Result<f64> {
    let env = TestEnv::new().await;
    for ddl in [
        "CREATE TABLE floor_events (position bigserial PRIMARY KEY, aggregate_id text NOT NULL, \
         event_type text NOT NULL, payload jsonb NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now())",
        "CREATE TABLE floor_view (position bigint PRIMARY KEY, aggregate_id text NOT NULL, event_type text NOT NULL)",
    ] {
        sqlx::query(ddl).execute(&env.pool).await?;
    }
    let js = env.jetstream().await;
    let config = sextant_adapters::stream::stream_config(&env.stream);
    js.create_stream(config).await?;
    let subject = format!("{}.floor", env.stream.subject_prefix);

    let started = Instant::now();
    let writer = tokio::spawn(append(env.pool.clone(), events));
    let relay = tokio::spawn(publish(env.pool.clone(), js.clone(), subject, events));
    project(&env, &js, events).await?;
    writer.await??;
    relay.await??;
    let elapsed = started.elapsed();
    // A floor that lost or doubled events would flatter itself.
    let projected: i64 = sqlx::query_scalar("SELECT count(DISTINCT position) FROM floor_view")
        .fetch_one(&env.pool)
        .await?;
    anyhow::ensure!(
        projected as usize == events,
        "the floor projected {projected} of {events} events"
    );
    Ok(events as f64 / elapsed.as_secs_f64())
}

/// Appends `events` send and outcome payloads, a batch per transaction.
async fn append(pool: sqlx::PgPool, events: usize) -> anyhow::Result<()> {
    let mut i = 0;
    while i < events {
        let n = BATCH.min(events - i);
        let payloads: Vec<Value> = (i..i + n)
            .map(|k| {
                if k % 2 == 0 {
                    send_item(k)
                } else {
                    outcome_item(k)
                }
            })
            .collect();
        let ids: Vec<String> = (i..i + n).map(|k| format!("send-{}", k / 2)).collect();
        let types: Vec<&str> = (i..i + n)
            .map(|k| {
                if k % 2 == 0 {
                    "send_recorded"
                } else {
                    "outcome_recorded"
                }
            })
            .collect();
        sqlx::query(
            "INSERT INTO floor_events (aggregate_id, event_type, payload) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::jsonb[])",
        )
        .bind(&ids)
        .bind(&types)
        .bind(&payloads)
        .execute(&pool)
        .await?;
        i += n;
    }
    Ok(())
}

/// Reads the log in position order and publishes each event as a message.
async fn publish(
    pool: sqlx::PgPool,
    js: jetstream::Context,
    subject: String,
    events: usize,
) -> anyhow::Result<()> {
    let mut after = 0i64;
    while (after as usize) < events {
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT position, aggregate_id, event_type, payload::text FROM floor_events \
             WHERE position > $1 ORDER BY position LIMIT 1000",
        )
        .bind(after)
        .fetch_all(&pool)
        .await?;
        let mut last = None;
        for (position, aggregate_id, event_type, payload) in rows {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", position.to_string().as_str());
            headers.insert("aggregate-id", aggregate_id.as_str());
            headers.insert("event-type", event_type.as_str());
            last = Some(
                js.publish_with_headers(subject.clone(), headers, payload.into())
                    .await?,
            );
            after = position;
        }
        match last {
            Some(ack) => {
                ack.await?;
            }
            None => tokio::time::sleep(std::time::Duration::from_millis(2)).await,
        }
    }
    Ok(())
}

/// Pulls every message and projects one row per event, a batch per
/// transaction, one ack per batch.
async fn project(env: &TestEnv, js: &jetstream::Context, events: usize) -> anyhow::Result<()> {
    let stream = js.get_stream(&env.stream.name).await?;
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("floor".into()),
            ack_policy: consumer::AckPolicy::All,
            max_ack_pending: 20_000,
            ..Default::default()
        })
        .await?;
    // Pulled and batched as the projectors pull and batch.
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(sextant_projections::runtime::BATCH)
        .messages()
        .await?;
    let mut projected = 0;
    while projected < events {
        let Some(first) = messages.next().await else {
            anyhow::bail!("the consumer stopped");
        };
        let batch = sextant_projections::runtime::next_batch(&mut messages, first).await?;
        let mut positions = Vec::with_capacity(batch.len());
        let mut ids = Vec::with_capacity(batch.len());
        let mut types = Vec::with_capacity(batch.len());
        for m in &batch {
            let headers = m.headers.as_ref();
            let header = |name: &str| {
                headers
                    .and_then(|h| h.get(name))
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default()
            };
            let payload: Value = serde_json::from_slice(&m.payload)?;
            anyhow::ensure!(payload.is_object(), "a payload that is not an object");
            positions.push(header("Nats-Msg-Id").parse::<i64>()?);
            ids.push(header("aggregate-id"));
            types.push(header("event-type"));
        }
        sqlx::query(
            "INSERT INTO floor_view (position, aggregate_id, event_type) \
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[])",
        )
        .bind(&positions)
        .bind(&ids)
        .bind(&types)
        .execute(&env.pool)
        .await?;
        if let Some(last) = batch.last() {
            last.ack().await.map_err(|e| anyhow::anyhow!("ack: {e}"))?;
        }
        projected += batch.len();
    }
    let _ = stream::Stream::delete_consumer(&stream, "floor").await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_floor_projects_every_event_it_appends_once() {
        let rate = super::floor(2_500).await.expect("the floor ran");
        assert!(rate > 0.0);
    }
}
