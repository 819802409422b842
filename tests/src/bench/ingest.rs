//! Batch ingest: sends and outcomes posted a thousand at a time, end to end
//! (committed, relayed, projected) and through the write path alone,
//! against what Postgres alone takes (raw inserts) and against cqrs-es used
//! the documented way (one `execute` per event).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uuid::Uuid;

use super::load::{closed_loop, send_json};
use super::{Figure, Scale, Target};
use sextant_projections::runtime::Projection;

use crate::{Parts, Running, TestEnv, OPERATOR_KEY};

/// Items in one posted batch.
pub const BATCH: usize = 1000;

/// Send number `i`: a realistic body, varied enough that the pattern
/// projections have keys to count.
pub fn send_item(i: usize) -> Value {
    json!({
        "provider": "bench", "provider_message_id": format!("m-{i}"),
        "lead": {"email": format!("lead{}@example.com", i % 50_000), "industry": (["fintech", "saas", "health"][i % 3]),
                 "company_size": "11-50", "seniority": (["vp", "director", "c_level"][i % 3]), "region": "AU",
                 "tier": "warm", "score": (i % 100) as u8},
        "channel": "email", "campaign_id": "bench", "step": 1 + (i % 3) as u32,
        "content": {"subject": format!("Quick question {i}?"), "body_words": 60 + (i % 80) as u32,
                    "personalized": i.is_multiple_of(2), "cta": "meeting", "angle": (["compliance", "speed"][i % 2])},
        "context_version": 1, "agent": "email_strategist", "prompt_version": "1",
        "resource": "sam@acme-mail.com", "sent_at": "2026-11-18T09:12:00Z"
    })
}

/// An outcome of send number `i`.
pub fn outcome_item(i: usize) -> Value {
    json!({"provider": "bench", "provider_message_id": format!("m-{i}"), "kind": (["delivered", "opened", "replied"][i % 3]),
           "occurred_at": "2026-11-18T15:40:00Z"})
}

/// `{"sends": [...]}` for sends `from..from+n`.
pub fn sends_body(from: usize, n: usize) -> Vec<u8> {
    let sends: Vec<Value> = (from..from + n).map(send_item).collect();
    serde_json::to_vec(&json!({ "sends": sends })).expect("a JSON body")
}

/// `{"outcomes": [...]}` for the sends `from..from+n`.
pub fn outcomes_body(from: usize, n: usize) -> Vec<u8> {
    let outcomes: Vec<Value> = (from..from + n).map(outcome_item).collect();
    serde_json::to_vec(&json!({ "outcomes": outcomes })).expect("a JSON body")
}

/// Batch `n` of `BATCH` items: sends `n*BATCH/2..` and the outcomes of the
/// sends of batch `n - 1` (none for the first batch).
fn batch_body(n: usize) -> (Vec<u8>, Option<Vec<u8>>) {
    let half = BATCH / 2;
    let outcomes = (n > 0).then(|| outcomes_body((n - 1) * half, half));
    (sends_body(n * half, half), outcomes)
}

/// POSTs a batch body to `/v1/clients/{client}/{path}`; answers the items
/// recorded.
pub async fn post_batch(
    app: &Running,
    client: Uuid,
    path: &str,
    body: Vec<u8>,
) -> anyhow::Result<u64> {
    let url = format!("{}/v1/clients/{client}/{path}", app.command_url);
    let answer = send_json(&app.http, reqwest::Method::POST, url, OPERATOR_KEY, body).await?;
    Ok(answer["recorded"].as_u64().unwrap_or(0))
}

/// Batch ingest end to end, absolute (issue 4: at least 25,000 events/s).
pub const END_TO_END_TARGET: f64 = 25_000.0;

/// The batch-ingest figures, with their baselines measured here: raw
/// inserts (the target is 0.3 ×), naive cqrs-es (20 ×) and the pipeline
/// floor (what the machine allows a pipeline of this shape at all; see
/// [`super::floor`]), where the absolute target is shown.
pub async fn figures(scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let raw = raw_insert(scale.ingest_events.min(200_000)).await?;
    let floor = super::floor::floor(scale.ingest_events.min(200_000)).await?;
    // The documented way: one execute per event, one after the other.
    let naive = naive_cqrs_es(scale.naive_events, 1).await?;
    let (e2e, committed) = ingest_end_to_end(scale).await?;
    let alone = ingest_commit_only(scale).await?;
    let rate =
        |workload: &str, metric: &str, value: f64| Figure::new(workload, metric, value, "events/s");
    let end_to_end = || rate("batch_ingest", "events_per_second_end_to_end", e2e);
    Ok(vec![
        end_to_end()
            .against("raw_insert", raw)
            .target(Target::RatioAtLeast(0.3)),
        end_to_end()
            .against("naive_cqrs_es", naive)
            .target(Target::RatioAtLeast(20.0)),
        end_to_end()
            .against("pipeline_floor", floor)
            .target(Target::AtLeast(END_TO_END_TARGET)),
        rate("pipeline_floor", "events_per_second_end_to_end", floor)
            .against("naive_cqrs_es", naive),
        rate("batch_ingest", "events_per_second_committed", committed)
            .against("naive_cqrs_es", naive),
        rate(
            "batch_ingest_write_path_alone",
            "events_per_second_committed",
            alone,
        )
        .against("raw_insert", raw),
    ])
}

/// Batch ingest end to end: posted over HTTP, committed, relayed to
/// JetStream, applied by every projection. Answers events/s end to end and
/// committed.
pub async fn ingest_end_to_end(scale: Scale) -> anyhow::Result<(f64, f64)> {
    ingest(scale, Parts::all()).await
}

/// The write path alone: no relay, no projectors competing for the CPU.
/// Answers committed events/s.
pub async fn ingest_commit_only(scale: Scale) -> anyhow::Result<f64> {
    Ok(ingest(scale, Parts::apis_only()).await?.1)
}

async fn ingest(scale: Scale, parts: Parts) -> anyhow::Result<(f64, f64)> {
    ingest_projecting(scale, parts, sextant_projections::all()).await
}

/// Batch ingest end to end with only `projections` running: the reports
/// row compares ingest with and without the `reports` projection. Answers
/// events/s end to end and committed.
pub async fn ingest_projecting(
    scale: Scale,
    parts: Parts,
    projections: Vec<Arc<dyn Projection>>,
) -> anyhow::Result<(f64, f64)> {
    let env = TestEnv::new().await;
    let names: Vec<&'static str> = projections.iter().map(|p| p.name()).collect();
    let app = Arc::new(
        env.start_projecting(&env.settings(), parts, projections)
            .await,
    );
    let (client, _) = app.register_client("Bench").await;
    let batches = scale.ingest_events / BATCH;
    // Bodies are made before the clock starts: the load generator shares
    // the machine, and its JSON-making is not what is measured.
    let bodies: Arc<Vec<_>> = Arc::new((0..batches).map(batch_body).collect());
    let started = Instant::now();
    let posting = app.clone();
    let load = closed_loop(scale.posters, batches, move |_, n| {
        let (app, bodies) = (posting.clone(), bodies.clone());
        async move {
            let (sends, outcomes) = bodies[n].clone();
            let mut events = post_batch(&app, client, "sends", sends).await?;
            if let Some(outcomes) = outcomes {
                events += post_batch(&app, client, "outcomes", outcomes).await?;
            }
            Ok(events)
        }
    })
    .await?;
    let (events, committed) = (load.done as f64, load.elapsed);
    if parts.relay {
        caught_up_for(&env, &names, started, Duration::from_secs(1800)).await?;
    }
    let projected = started.elapsed();
    tracing::info!(events, ?committed, ?projected, "ingest");
    if let Ok(app) = Arc::try_unwrap(app) {
        app.stop().await;
    }
    let e2e = if parts.relay {
        events / projected.as_secs_f64()
    } else {
        0.0
    };
    Ok((e2e, events / committed.as_secs_f64()))
}

/// Waits until the outbox is empty and every projection has reached the
/// head of the log, or `within` has passed since `started`.
pub async fn caught_up(env: &TestEnv, started: Instant, within: Duration) -> anyhow::Result<()> {
    let names: Vec<&'static str> = sextant_projections::all()
        .iter()
        .map(|p| p.name())
        .collect();
    caught_up_for(env, &names, started, within).await
}

/// As [`caught_up`], for the projections named.
async fn caught_up_for(
    env: &TestEnv,
    projections: &[&'static str],
    started: Instant,
    within: Duration,
) -> anyhow::Result<()> {
    let head = sextant_adapters::db::head_position(&env.pool).await?;
    loop {
        // The relay's backlog by its cursor: counting the events due, every
        // 20 ms, cost a Postgres backend a second a time with half a
        // million of them.
        let mut done = sextant_adapters::relay::backlog(&env.pool).await?.0 == 0;
        for projection in projections {
            done &= env.checkpoint(projection).await >= head;
        }
        if done {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < within,
            "the projections never caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The same rows, multi-row INSERTed into a bare table: what Postgres
/// alone can take on this machine.
pub async fn raw_insert(events: usize) -> anyhow::Result<f64> {
    let env = TestEnv::new().await;
    sqlx::query("CREATE TABLE bench_raw (id bigserial PRIMARY KEY, aggregate_id text NOT NULL, payload jsonb NOT NULL)")
        .execute(&env.pool)
        .await?;
    let started = Instant::now();
    let mut i = 0;
    while i < events {
        let ids: Vec<String> = (i..i + BATCH)
            .map(|n| Uuid::from_u128(n as u128).to_string())
            .collect();
        let payloads: Vec<Value> = (i..i + BATCH).map(send_item).collect();
        sqlx::query("INSERT INTO bench_raw (aggregate_id, payload) SELECT * FROM UNNEST($1::text[], $2::jsonb[])")
            .bind(&ids)
            .bind(&payloads)
            .execute(&env.pool)
            .await?;
        i += BATCH;
    }
    Ok(events as f64 / started.elapsed().as_secs_f64())
}

/// cqrs-es with postgres-es used the documented way: the documented
/// schema, one `execute` per event, through the same Send aggregate, from
/// `tasks` concurrent tasks. Answers events/s.
pub async fn naive_cqrs_es(events: usize, tasks: usize) -> anyhow::Result<f64> {
    use sextant_domain::send::{input::SendInput, Send, SendCommand};
    let env = TestEnv::new().await;
    for statement in [
        "CREATE TABLE naive_events (aggregate_type text NOT NULL, aggregate_id text NOT NULL, \
         sequence bigint CHECK (sequence >= 0) NOT NULL, event_type text NOT NULL, event_version text NOT NULL, \
         payload json NOT NULL, metadata json NOT NULL, PRIMARY KEY (aggregate_type, aggregate_id, sequence))",
        "CREATE TABLE naive_snapshots (aggregate_type text NOT NULL, aggregate_id text NOT NULL, \
         last_sequence bigint NOT NULL, current_snapshot bigint NOT NULL, payload json NOT NULL, \
         PRIMARY KEY (aggregate_type, aggregate_id, last_sequence))",
    ] {
        sqlx::query(statement).execute(&env.pool).await?;
    }
    let repo = postgres_es::PostgresEventRepository::new(env.pool.clone())
        .with_tables("naive_events", "naive_snapshots");
    let store = cqrs_es::persist::PersistedEventStore::new_event_store(repo);
    let cqrs = Arc::new(cqrs_es::CqrsFramework::<Send, _>::new(store, vec![], ()));
    let now = chrono::Utc::now();
    let load = closed_loop(tasks, events, move |_, i| {
        let cqrs = cqrs.clone();
        async move {
            let input: SendInput = serde_json::from_value(send_item(i))?;
            let (facts, _) = input
                .into_facts(now, |email| format!("lr_{email}"))
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            cqrs.execute(
                &format!("send-{i}"),
                SendCommand::RecordSend(Box::new(facts)),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(1)
        }
    })
    .await?;
    Ok(load.per_second())
}
