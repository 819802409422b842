//! The relay: publishes the event log to JetStream, in position order, from
//! a cursor (`relay_cursor`: the last position on the stream).
//!
//! - **Gap-safe**: appends commit in position order (see the event-store
//!   migration), so "committed events after the cursor" never skips a slow
//!   transaction's event. What is still to publish is listed by the
//!   `event_outbox` view.
//! - **One active relay**: a session-level advisory lock elects the leader;
//!   the others stand by and take over when its connection goes.
//! - **Exactly once in effect**: every message carries `Nats-Msg-Id` =
//!   event id (JetStream drops a repeat within the duplicate window), and a
//!   new leader first moves the cursor past everything the stream already
//!   holds (the stream's last event tells how far it got), so a crash
//!   between publishing and marking republishes nothing, however long the
//!   relay was down.
//! - **Pipelined**: a batch is published without waiting for anything, and
//!   only its last message is acknowledged (the chain below makes that
//!   enough).
//! - **Chained**: every message says which sequence must be the stream's
//!   last when it lands (`Nats-Expected-Last-Sequence`: that of the event
//!   before it; the stream's last sequence is durable, unlike the last
//!   message id, which a restarted server forgets once it is older than
//!   the duplicate window). The fault suite found why: with NATS killed mid-batch, the tail of a
//!   pipelined batch can reach the restarted server while its head died
//!   with the old one; the relay then saw that tail as the stream's last
//!   message and moved past the head, which never got there. Chained, a
//!   message that does not follow is refused, and so is everything after
//!   it. And when the stream holds less than the cursor says (it lost what
//!   it had acknowledged), the cursor goes back to what the stream holds
//!   and the rest is published again.
//! - **Survives outages**: NATS or Postgres errors back off exponentially up
//!   to [`MAX_BACKOFF`] and retry the same batch.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::message::PublishMessage;
use sqlx::postgres::{PgListener, PgPool};
use sqlx::{Connection, PgConnection, Row};
use tokio_util::sync::CancellationToken;

use crate::config::StreamSettings;
use crate::retry::Backoff;
use crate::stream::{self, RecordedEvent, EVENT_COLUMNS};

/// The relay's longest wait between retries; the stream's duplicate window is
/// many times this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The advisory lock key the leading relay holds.
pub const LEADER_LOCK: i64 = 8_675_309_002;
const BATCH: i64 = 1000;
/// Headers every message carries beside its CloudEvent body, so consumers
/// can skip what they do not read without parsing it.
pub const POSITION_HEADER: &str = "Sextant-Position";
pub const AGGREGATE_HEADER: &str = "Sextant-Aggregate";

pub struct Relay {
    pool: PgPool,
    database_url: String,
    js: jetstream::Context,
    settings: StreamSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stream: {0}")]
    Stream(String),
    #[error("lost leadership")]
    LostLeadership,
}

impl Relay {
    pub fn new(
        pool: PgPool,
        database_url: impl Into<String>,
        js: jetstream::Context,
        settings: StreamSettings,
    ) -> Self {
        Self {
            pool,
            database_url: database_url.into(),
            js,
            settings,
        }
    }

    /// Runs until `shutdown`: stands by while another relay leads, leads
    /// otherwise. Replay-safe: publishing an event twice has no effect.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::relay();
        while !shutdown.is_cancelled() {
            match self.lead(&shutdown).await {
                Ok(()) => backoff.reset(),
                Err(err) => {
                    metrics::gauge!("sextant_relay_leader").set(0.0);
                    tracing::warn!(error = %err, "relay interrupted; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            }
        }
        metrics::gauge!("sextant_relay_leader").set(0.0);
    }

    /// Becomes leader (or waits to), then relays until shutdown or failure.
    async fn lead(&self, shutdown: &CancellationToken) -> Result<(), RelayError> {
        let mut lock_conn = PgConnection::connect(&self.database_url).await?;
        loop {
            let acquired: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(LEADER_LOCK)
                .fetch_one(&mut lock_conn)
                .await?;
            if acquired {
                break;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        metrics::gauge!("sextant_relay_leader").set(1.0);
        tracing::info!("relay is the leader");

        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen("sextant_outbox").await?;
        let mut stream_last = self.skip_already_published().await?;

        let mut last_check = Instant::now();
        loop {
            if last_check.elapsed() > Duration::from_secs(1) {
                // The lock lives as long as its connection: if that is gone,
                // another relay may lead now.
                sqlx::query("SELECT 1")
                    .execute(&mut lock_conn)
                    .await
                    .map_err(|_| RelayError::LostLeadership)?;
                self.record_depth().await?;
                last_check = Instant::now();
            }
            let published = self.relay_batch(&mut stream_last).await?;
            if published > 0 {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                        .bind(LEADER_LOCK)
                        .execute(&mut lock_conn)
                        .await;
                    return Ok(());
                }
                notified = listener.recv() => { notified?; }
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// Puts the cursor where the stream is: past every event it already
    /// holds, or back to its last one if it holds less than the cursor says.
    /// Answers the stream's last sequence, which the next publication
    /// chains to.
    async fn skip_already_published(&self) -> Result<u64, RelayError> {
        let store_id = crate::db::store_id(&self.pool).await?;
        let mut stream = stream::ensure_stream(&self.js, &self.settings, store_id)
            .await
            .map_err(|e| RelayError::Stream(e.to_string()))?;
        let (sequence, last) = stream::stream_end(&mut stream)
            .await
            .map_err(|e| RelayError::Stream(e.to_string()))?;
        let before: i64 = sqlx::query_scalar("SELECT position FROM relay_cursor")
            .fetch_one(&self.pool)
            .await?;
        sqlx::query("UPDATE relay_cursor SET position = $1")
            .bind(last)
            .execute(&self.pool)
            .await?;
        if last > before {
            tracing::info!(before, last, "events already on the stream were skipped");
        } else if last < before {
            tracing::warn!(
                before,
                last,
                "the stream holds less than it acknowledged; publishing again from its last event"
            );
        }
        Ok(sequence)
    }

    /// Publishes one batch chained to `stream_last` (the stream's last
    /// sequence, moved on to the batch's last) and marks it; answers how
    /// many it published.
    pub async fn relay_batch(&self, stream_last: &mut u64) -> Result<usize, RelayError> {
        let batch = self.next_batch().await?;
        let Some(last) = batch.last().map(|e| e.global_position) else {
            return Ok(0);
        };
        *stream_last = self.publish(*stream_last, &batch).await?;
        self.mark_published(last).await?;
        metrics::counter!("sextant_relay_published_total").increment(batch.len() as u64);
        Ok(batch.len())
    }

    /// The oldest unpublished events, in position order.
    pub async fn next_batch(&self) -> Result<Vec<RecordedEvent>, RelayError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events e \
             WHERE e.global_position > (SELECT position FROM relay_cursor) \
             ORDER BY e.global_position LIMIT $1"
        ))
        .bind(BATCH)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(RecordedEvent::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Publishes a batch, pipelined, each message chained to the one before
    /// it (the first to `after`, the stream's last sequence now), and
    /// returns once JetStream has acknowledged the last: answers the
    /// stream's last sequence then.
    ///
    /// Only the last message asks for an acknowledgement; the others are
    /// plain publishes on the same connection, in order. The chain makes one
    /// acknowledgement enough: a message lands only if the one before it
    /// landed right before it, so the last landing at `after + n` proves
    /// that all `n` landed, in order, once each. If any did not (a refused
    /// link, a lost connection, a repeat), neither did the last, and the
    /// batch fails and is published again from where the stream is. An
    /// acknowledgement per message cost NATS a reply and the relay a reply
    /// to parse for every event.
    pub async fn publish(&self, after: u64, batch: &[RecordedEvent]) -> Result<u64, RelayError> {
        let stream_error = |e: &dyn std::fmt::Display| RelayError::Stream(e.to_string());
        let client = self.js.client();
        let Some((last, head)) = batch.split_last() else {
            return Ok(after);
        };
        for (expected, event) in (after..).zip(head) {
            let (subject, headers, body) = self.message(expected, event)?;
            client
                .publish_with_headers(subject, headers, body.into())
                .await
                .map_err(|e| stream_error(&e))?;
        }
        let expected = after + head.len() as u64;
        let (subject, headers, body) = self.message(expected, last)?;
        let ack = self
            .js
            .send_publish(
                subject,
                PublishMessage::build()
                    .payload(body.into())
                    .headers(headers),
            )
            .await
            .map_err(|e| stream_error(&e))?
            .await
            .map_err(|e| stream_error(&e))?;
        if ack.duplicate || ack.sequence != expected + 1 {
            return Err(RelayError::Stream(format!(
                "the batch did not land whole: its last event is at {} (a repeat: {}), not {}",
                ack.sequence,
                ack.duplicate,
                expected + 1
            )));
        }
        Ok(ack.sequence)
    }

    /// One event's message: subject, headers (dedupe id, chain link and the
    /// skip headers) and CloudEvent body.
    fn message(
        &self,
        expected_last: u64,
        event: &RecordedEvent,
    ) -> Result<(String, async_nats::HeaderMap, Vec<u8>), RelayError> {
        use async_nats::header;
        let body = serde_json::to_vec(&event.to_cloud_event())
            .map_err(|e| RelayError::Stream(e.to_string()))?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(header::NATS_MESSAGE_ID, event.event_id.to_string().as_str());
        headers.insert(
            header::NATS_EXPECTED_LAST_SEQUENCE,
            expected_last.to_string().as_str(),
        );
        headers.insert(POSITION_HEADER, event.global_position.to_string().as_str());
        headers.insert(AGGREGATE_HEADER, event.aggregate_type.as_str());
        Ok((event.subject(&self.settings.subject_prefix), headers, body))
    }

    /// Everything up to `last` is on the stream: no committed event below
    /// it can still appear (appends commit in position order).
    pub async fn mark_published(&self, last: i64) -> Result<(), RelayError> {
        sqlx::query("UPDATE relay_cursor SET position = GREATEST(position, $1)")
            .bind(last)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn record_depth(&self) -> Result<(), RelayError> {
        let (depth, age) = backlog(&self.pool).await?;
        metrics::gauge!("sextant_outbox_depth").set(depth as f64);
        metrics::gauge!("sextant_outbox_oldest_age_seconds").set(age);
        Ok(())
    }
}

/// How far the relay is behind the log: the positions between its cursor
/// and the head, and how many seconds ago the oldest event due was
/// recorded. The first is an upper bound of the events due (an append that
/// rolled back leaves a gap in the positions) and both are index lookups:
/// counting the events due took over a second with half a million of them,
/// and the relay did it once a second in its own loop, so the further it
/// fell behind the less it published.
pub async fn backlog(pool: &PgPool) -> Result<(i64, f64), sqlx::Error> {
    let row = sqlx::query(
        "SELECT GREATEST(COALESCE((SELECT max(global_position) FROM events), 0) - c.position, 0) AS depth, \
         COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - (SELECT e.recorded_at FROM events e \
             WHERE e.global_position > c.position ORDER BY e.global_position LIMIT 1)), 0)::float8 AS age \
         FROM relay_cursor c",
    )
    .fetch_one(pool)
    .await?;
    Ok((row.try_get("depth")?, row.try_get("age")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_under_the_ceiling_and_the_duplicate_window() {
        let mut b = Backoff::relay();
        assert_eq!(b.ceiling(), MAX_BACKOFF);
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert_eq!(delays[0], Duration::from_millis(100));
        assert_eq!(delays[1], Duration::from_millis(200));
        assert!(delays.iter().all(|d| *d <= MAX_BACKOFF));
        assert_eq!(delays[9], MAX_BACKOFF);
        assert!(StreamSettings::default().duplicate_window >= MAX_BACKOFF * 10);
    }
}
