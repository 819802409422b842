//! The live projection runtime.
//!
//! Each projection has one active projector (a session advisory lock elects
//! it; other processes stand by), which it may share with others (see
//! [`groups`]), and each projector one durable JetStream pull consumer,
//! which the projector recreates every time it (re)starts so that delivery
//! resumes right after the last message it applied (the checkpoint keeps the
//! stream sequence too): a batch that failed after delivery is delivered
//! again, never skipped. Messages arrive in position order; whatever is
//! ready (up to [`BATCH`]) is applied in one Postgres transaction together
//! with the checkpoint, and only after that commits are the messages acked.
//! A redelivered message (the process died between commit and ack) is at or
//! below the checkpoint and is skipped: the effect is exactly once.
//!
//! An event a projection cannot apply (malformed, or a statement that fails
//! for a reason other than the database being down) is parked in
//! `projection_parked` with the reason, `sextant_projection_parked_total`
//! rises, and the rest of the stream goes on.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use sextant_adapters::config::StreamSettings;
use sextant_adapters::retry::Backoff;
use sextant_adapters::stream::{self, CloudEvent, RecordedEvent};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

/// Most events applied in one transaction.
pub const BATCH: usize = 1000;

/// How often a projector that reads one aggregate type (and so is sent only
/// that type's events) moves its checkpoint past the events it was not sent.
pub const IDLE_ADVANCE: Duration = Duration::from_millis(25);

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("malformed event: {0}")]
    Malformed(String),
}

impl From<serde_json::Error> for ProjectionError {
    fn from(err: serde_json::Error) -> Self {
        Self::Malformed(err.to_string())
    }
}

/// The projections this build knows. Their names key the checkpoints
/// (`projection_checkpoints.projection`), the projector locks and metrics,
/// and are what `sextant-query replay` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[cfg_attr(feature = "clap", value(rename_all = "snake_case"))]
pub enum ProjectionName {
    Clients,
    Audit,
    Context,
    Sends,
    Patterns,
    Experiments,
    Reports,
    Alerts,
    ReportDeliveries,
}

impl ProjectionName {
    /// Every projection, in the order the projectors start them.
    pub const ALL: [ProjectionName; 9] = [
        Self::Clients,
        Self::Audit,
        Self::Context,
        Self::Sends,
        Self::Patterns,
        Self::Experiments,
        Self::Reports,
        Self::Alerts,
        Self::ReportDeliveries,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Clients => "clients",
            Self::Audit => "audit",
            Self::Context => "context",
            Self::Sends => "sends",
            Self::Patterns => "patterns",
            Self::Experiments => "experiments",
            Self::Reports => "reports",
            Self::Alerts => "alerts",
            Self::ReportDeliveries => "report_deliveries",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.as_str() == text)
    }
}

impl std::fmt::Display for ProjectionName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A read-model builder.
///
/// `apply` must be deterministic and write nothing but the projection's own
/// [`tables`](Projection::tables) through the connection it is given: replay
/// runs the very same code against shadow copies of those tables (by
/// `search_path`), so table names in its SQL must be unqualified. It must be
/// replay-safe: it sees every event of the log, in position order, once.
#[async_trait::async_trait]
pub trait Projection: Send + Sync {
    /// The key of its checkpoint and lock: for the projections of this
    /// build, their [`ProjectionName`].
    fn name(&self) -> &'static str;
    fn tables(&self) -> &'static [&'static str];
    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError>;

    /// The aggregate types whose events it reads (`None`: every event).
    /// `apply` and `apply_many` are handed those and no others: the live
    /// runtime passes over the rest (see [`reads`]) and replay does not
    /// fetch them.
    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        None
    }

    /// Applies several events in order. Projections that see volume
    /// override it with set-based SQL; the result must equal applying the
    /// events one by one.
    async fn apply_many(
        &self,
        conn: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError> {
        for event in events {
            self.apply(conn, event).await?;
        }
        Ok(())
    }
}

/// Takes the projection's lock for the rest of the transaction: live batches
/// and the replay swap exclude each other.
pub async fn lock_projection(conn: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('sextant.projection.' || $1))")
        .bind(name)
        .execute(conn)
        .await?;
    Ok(())
}

/// The projection's checkpoint, created at 0 the first time.
pub async fn checkpoint(conn: &mut PgConnection, name: &str) -> Result<i64, sqlx::Error> {
    let known: Option<i64> =
        sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE projection = $1")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some(position) = known {
        return Ok(position);
    }
    sqlx::query(
        "INSERT INTO projection_checkpoints (projection) VALUES ($1) ON CONFLICT DO NOTHING",
    )
    .bind(name)
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE projection = $1")
        .bind(name)
        .fetch_one(conn)
        .await
}

pub async fn set_checkpoint(
    conn: &mut PgConnection,
    name: &str,
    position: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE projection_checkpoints SET position = $2, updated_at = now() WHERE projection = $1",
    )
    .bind(name)
    .bind(position)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves the checkpoint and the stream sequence to resume after, in one
/// statement.
async fn set_checkpoint_and_sequence(
    conn: &mut PgConnection,
    name: &str,
    position: i64,
    sequence: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE projection_checkpoints SET position = $2, updated_at = now(), \
         stream_sequence = GREATEST(stream_sequence, $3) WHERE projection = $1",
    )
    .bind(name)
    .bind(position)
    .bind(sequence as i64)
    .execute(conn)
    .await?;
    Ok(())
}

/// The position a projection has reached (0 if it has not started).
pub async fn position_of(pool: &PgPool, name: &str) -> Result<i64, sqlx::Error> {
    let position: Option<i64> =
        sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE projection = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?;
    Ok(position.unwrap_or(0))
}

/// Applies a batch past the projection's checkpoint and moves the
/// checkpoint, in the caller's transaction (the caller commits, then acks).
pub async fn apply_batch(
    conn: &mut PgConnection,
    projection: &dyn Projection,
    events: &[Incoming],
    last_stream_sequence: u64,
) -> Result<i64, sqlx::Error> {
    let name = projection.name();
    lock_projection(conn, name).await?;
    let from = checkpoint(conn, name).await?;
    let position = apply_events(conn, projection, events, from).await?;
    set_checkpoint_and_sequence(conn, name, position, last_stream_sequence).await?;
    Ok(position)
}

/// Applies the events after `position`; answers the last position seen.
/// The whole batch is tried at once first; if any event of it fails, the
/// batch is rolled back and applied event by event, each in a savepoint, so
/// that the one that fails is parked rather than failing the rest. A
/// database outage fails the whole call (nothing is parked for it).
pub async fn apply_events(
    conn: &mut PgConnection,
    projection: &dyn Projection,
    events: &[Incoming],
    position: i64,
) -> Result<i64, sqlx::Error> {
    // Only events past the checkpoint, each once: a message redelivered
    // while its first delivery is still in hand (NATS restarted, a pull
    // request expired) can land in the same batch as that first delivery,
    // and a projection that adds (counts) would apply it twice. Messages
    // come in position order, so a position not above the last one kept is
    // such a repeat. (The fault suite found this: after a NATS restart the
    // live pattern counts differed from a replay.)
    let mut kept = position;
    let mut repeats = 0u64;
    let fresh: Vec<&RecordedEvent> = events
        .iter()
        .filter_map(|e| match e {
            Incoming::Event(event) if event.global_position <= kept => {
                repeats += 1;
                None
            }
            Incoming::Event(event) => {
                kept = event.global_position;
                // A projection riding a consumer with others is handed
                // their events too; it only passes them.
                reads(projection, event).then_some(event)
            }
            _ => None,
        })
        .collect();
    let newest = events
        .iter()
        .map(Incoming::position)
        .max()
        .unwrap_or(position)
        .max(position);
    let readable = events
        .iter()
        .all(|e| !matches!(e, Incoming::Unreadable { .. }));
    if readable && fresh.is_empty() {
        return Ok(newest);
    }
    if readable {
        sqlx::query("SAVEPOINT apply_batch")
            .execute(&mut *conn)
            .await?;
        match projection.apply_many(conn, &fresh).await {
            Ok(()) => {
                sqlx::query("RELEASE SAVEPOINT apply_batch")
                    .execute(&mut *conn)
                    .await?;
                if repeats > 0 {
                    metrics::counter!("sextant_projection_redelivered_total", "projection" => projection.name())
                        .increment(repeats);
                }
                return Ok(newest);
            }
            Err(ProjectionError::Database(err)) if sextant_adapters::db::is_unavailable(&err) => {
                return Err(err);
            }
            Err(err) => {
                tracing::warn!(projection = projection.name(), error = %err, "batch failed; applying event by event");
                sqlx::query("ROLLBACK TO SAVEPOINT apply_batch")
                    .execute(&mut *conn)
                    .await?;
            }
        }
    }
    apply_one_by_one(conn, projection, events, position).await
}

async fn apply_one_by_one(
    conn: &mut PgConnection,
    projection: &dyn Projection,
    events: &[Incoming],
    mut position: i64,
) -> Result<i64, sqlx::Error> {
    let name = projection.name();
    for incoming in events {
        let (event_position, outcome) = match incoming {
            Incoming::Irrelevant { position: p } => {
                position = position.max(*p);
                continue;
            }
            Incoming::Event(event) if !reads(projection, event) => {
                position = position.max(event.global_position);
                continue;
            }
            Incoming::Event(event) => {
                if event.global_position <= position {
                    metrics::counter!("sextant_projection_redelivered_total", "projection" => name)
                        .increment(1);
                    continue;
                }
                sqlx::query("SAVEPOINT apply_event")
                    .execute(&mut *conn)
                    .await?;
                let outcome = projection.apply(conn, event).await;
                (
                    event.global_position,
                    outcome
                        .map(|()| event.event_id)
                        .map_err(|e| (event.event_id, e)),
                )
            }
            Incoming::Unreadable {
                position: p,
                reason,
            } => {
                if *p <= position {
                    continue;
                }
                sqlx::query("SAVEPOINT apply_event")
                    .execute(&mut *conn)
                    .await?;
                (
                    *p,
                    Err((
                        uuid::Uuid::nil(),
                        ProjectionError::Malformed(reason.clone()),
                    )),
                )
            }
        };
        match outcome {
            Ok(_) => {
                sqlx::query("RELEASE SAVEPOINT apply_event")
                    .execute(&mut *conn)
                    .await?;
            }
            Err((_, ProjectionError::Database(err)))
                if sextant_adapters::db::is_unavailable(&err) =>
            {
                return Err(err);
            }
            Err((event_id, err)) => {
                sqlx::query("ROLLBACK TO SAVEPOINT apply_event")
                    .execute(&mut *conn)
                    .await?;
                park(conn, name, event_position, event_id, &err.to_string()).await?;
            }
        }
        position = event_position;
    }
    Ok(position)
}

async fn park(
    conn: &mut PgConnection,
    name: &str,
    position: i64,
    event_id: uuid::Uuid,
    reason: &str,
) -> Result<(), sqlx::Error> {
    tracing::error!(projection = name, position, %event_id, reason, "event parked");
    metrics::counter!("sextant_projection_parked_total", "projection" => name.to_owned())
        .increment(1);
    sqlx::query(
        "INSERT INTO projection_parked (projection, global_position, event_id, reason) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(name)
    .bind(position)
    .bind(event_id)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// A message from the stream, read or not.
#[derive(Debug, Clone)]
pub enum Incoming {
    Event(RecordedEvent),
    /// Not a CloudEvent we can read; parked under the position it claims
    /// (or, failing that, minus its stream sequence, so it still sorts).
    Unreadable {
        position: i64,
        reason: String,
    },
    /// An event of an aggregate type the projection does not read, known
    /// by the relay's headers alone: it only moves the checkpoint.
    Irrelevant {
        position: i64,
    },
}

impl Incoming {
    pub fn position(&self) -> i64 {
        match self {
            Self::Event(event) => event.global_position,
            Self::Unreadable { position, .. } | Self::Irrelevant { position } => *position,
        }
    }

    /// Reads a stream message, skipping the parse of events of aggregate
    /// types not `wanted` (`None`: every type is), told by the
    /// `Sextant-Aggregate` and `Sextant-Position` headers the relay sets.
    pub fn from_message(
        wanted: Option<&[&str]>,
        headers: Option<&async_nats::HeaderMap>,
        payload: &[u8],
        stream_sequence: impl FnOnce() -> u64,
    ) -> Self {
        if let (Some(wanted), Some(headers)) = (wanted, headers) {
            let aggregate = headers
                .get(sextant_adapters::relay::AGGREGATE_HEADER)
                .map(|v| v.as_str());
            let position = headers
                .get(sextant_adapters::relay::POSITION_HEADER)
                .and_then(|v| v.as_str().parse::<i64>().ok());
            if let (Some(aggregate), Some(position)) = (aggregate, position) {
                if !wanted.contains(&aggregate) {
                    return Self::Irrelevant { position };
                }
            }
        }
        Self::from_payload(payload, stream_sequence)
    }

    pub fn from_payload(payload: &[u8], stream_sequence: impl FnOnce() -> u64) -> Self {
        match serde_json::from_slice::<CloudEvent>(payload) {
            Ok(event) => Self::Event(event.into_recorded()),
            Err(err) => {
                let position = serde_json::from_slice::<serde_json::Value>(payload)
                    .ok()
                    .and_then(|v| v.get("sextantposition").and_then(serde_json::Value::as_i64))
                    .unwrap_or_else(|| -(stream_sequence() as i64));
                Self::Unreadable {
                    position,
                    reason: format!("unreadable CloudEvent: {err}"),
                }
            }
        }
    }
}

/// The aggregate type that is the bulk of the stream: sends and their
/// outcomes, tens of thousands a second under a batch ingest.
const BULK: &str = sextant_domain::aggregate_types::SEND;

/// Projections grouped to share a consumer, so that each event is delivered
/// and parsed as few times as the read models allow:
///
/// - those that read every event (the audit trail) and those that read the
///   bulk type, alone or with others (the reports read clients too), ride
///   one consumer: every send and outcome is delivered and parsed once, not
///   once for the audit trail and again for the send projections (measured:
///   7-10 % more batch-ingest throughput);
/// - the other projections of one aggregate type share a consumer filtered
///   to that type, so a burst of sends never stands between a context
///   update and its read model;
/// - one that reads several types runs alone.
pub fn groups(projections: Vec<Arc<dyn Projection>>) -> Vec<Vec<Arc<dyn Projection>>> {
    let rides_with_everything = |p: &Arc<dyn Projection>| match p.aggregate_types() {
        None => true,
        Some(types) => types.contains(&BULK),
    };
    let everything = projections.iter().any(|p| p.aggregate_types().is_none());
    let mut groups: Vec<Vec<Arc<dyn Projection>>> = Vec::new();
    for projection in projections {
        let shared = if everything && rides_with_everything(&projection) {
            groups.iter_mut().find(|g| rides_with_everything(&g[0]))
        } else {
            match projection.aggregate_types() {
                Some([one]) => groups
                    .iter_mut()
                    .find(|g| matches!(g[0].aggregate_types(), Some([other]) if other == one)),
                _ => None,
            }
        };
        match shared {
            Some(group) => group.push(projection),
            None => groups.push(vec![projection]),
        }
    }
    groups
}

/// The aggregate types a group reads together (`None`: every event).
fn read_by(projections: &[Arc<dyn Projection>]) -> Option<Vec<&'static str>> {
    let mut types: Vec<&'static str> = Vec::new();
    for projection in projections {
        for t in projection.aggregate_types()? {
            if !types.contains(t) {
                types.push(t);
            }
        }
    }
    Some(types)
}

/// Whether `projection` reads `event`'s aggregate type.
fn reads(projection: &dyn Projection, event: &RecordedEvent) -> bool {
    projection
        .aggregate_types()
        .is_none_or(|types| types.contains(&event.aggregate_type.as_str()))
}

/// A batch with more than this many messages ready at once means the
/// projector is behind: it then waits up to [`LINGER`] to fill the batch.
const LINGER_FROM: usize = 64;
/// The longest a projector behind the stream waits to fill a batch.
const LINGER: Duration = Duration::from_millis(10);

/// The messages ready after `first`, up to [`BATCH`]. The client hands
/// messages over a socket read at a time (some 128 of ours), so a projector
/// behind the stream applied batches of that size, each costing the same
/// handful of statements and a commit as one of a thousand. Under a backlog
/// it now waits a moment for more; a projector that keeps up never waits
/// (its batches are small).
pub async fn next_batch(
    stream: &mut consumer::pull::Stream,
    first: Result<jetstream::Message, consumer::pull::MessagesError>,
) -> Result<Vec<jetstream::Message>, anyhow::Error> {
    use futures::FutureExt;
    let mut batch = vec![first.map_err(|e| anyhow::anyhow!("stream: {e}"))?];
    while batch.len() < BATCH {
        match stream.next().now_or_never() {
            Some(Some(message)) => batch.push(message.map_err(|e| anyhow::anyhow!("stream: {e}"))?),
            _ => break,
        }
    }
    if batch.len() >= LINGER_FROM {
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(message)) => {
                    batch.push(message.map_err(|e| anyhow::anyhow!("stream: {e}"))?)
                }
                _ => break,
            }
        }
    }
    Ok(batch)
}

/// Runs projections from one consumer: each batch is delivered and parsed
/// once and applied by each of them (to the events of the types it reads),
/// in one transaction, each against its own checkpoint. Two projections of
/// the send stream on two consumers cost NATS two deliveries of every send
/// and outcome, and the projectors two parses and two commits.
pub struct Projector {
    pool: PgPool,
    js: jetstream::Context,
    settings: StreamSettings,
    projections: Vec<Arc<dyn Projection>>,
    name: String,
}

impl Projector {
    /// One projector for `projections` (grouped by [`groups`]); its
    /// consumer is filtered to their aggregate type when they all read the
    /// same one.
    pub fn group(
        pool: PgPool,
        js: jetstream::Context,
        settings: StreamSettings,
        projections: Vec<Arc<dyn Projection>>,
    ) -> Self {
        let name = projections
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join("_");
        Self {
            pool,
            js,
            settings,
            projections,
            name,
        }
    }

    /// A projector per group of [`groups`].
    pub fn for_all(
        pool: &PgPool,
        js: &jetstream::Context,
        settings: &StreamSettings,
        projections: Vec<Arc<dyn Projection>>,
    ) -> Vec<Self> {
        groups(projections)
            .into_iter()
            .map(|group| Self::group(pool.clone(), js.clone(), settings.clone(), group))
            .collect()
    }

    pub fn consumer_name(projection: &str) -> String {
        format!("sextant_projection_{projection}")
    }

    /// The subjects of the one aggregate type the projection reads, if it
    /// reads just one (subjects are `<prefix>.<client>.<aggregate>.<event>`).
    fn filter_subject(&self) -> Option<String> {
        match read_by(&self.projections).as_deref() {
            Some([one]) => Some(format!("{}.*.{one}.>", self.settings.subject_prefix)),
            _ => None,
        }
    }

    /// A projector sent only its own aggregate type's events would never
    /// see the positions of the others, and its checkpoint, which readers
    /// wait on (consistency tokens, replay, lag), would stall at its last
    /// own event. When it has applied everything the server sent it, it
    /// moves the checkpoint to the relay's cursor instead: the cursor is
    /// read first, and every event up to it was on the stream then, so if
    /// the consumer has nothing left to deliver and nothing delivered but
    /// unacknowledged (a batch is acknowledged only once it is committed),
    /// every event of its type up to the cursor is applied. (The consumer's
    /// delivered sequence cannot tell: the server moves it past the events
    /// the filter skips.) Answers the position the checkpoint is known to
    /// have reached.
    async fn advance_past_unsent(
        &self,
        consumer: &mut consumer::PullConsumer,
        reached: i64,
    ) -> Result<i64, anyhow::Error> {
        let published: i64 = sqlx::query_scalar("SELECT position FROM relay_cursor")
            .fetch_one(&self.pool)
            .await?;
        if published <= reached {
            return Ok(reached);
        }
        let info = consumer.info().await?;
        if info.num_pending > 0 || info.num_ack_pending > 0 {
            return Ok(reached);
        }
        let mut tx = self.pool.begin().await?;
        let mut least = published;
        for projection in &self.projections {
            let name = projection.name();
            lock_projection(&mut tx, name).await?;
            let from = checkpoint(&mut tx, name).await?;
            if published > from {
                set_checkpoint(&mut tx, name, published).await?;
            }
            least = least.min(published.max(from));
        }
        tx.commit().await?;
        Ok(least)
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::projector();
        while !shutdown.is_cancelled() {
            match self.consume(&shutdown).await {
                Ok(()) => break,
                Err(err) => {
                    tracing::warn!(projector = %self.name, error = %err, "projector interrupted; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            }
        }
    }

    async fn consume(&self, shutdown: &CancellationToken) -> Result<(), anyhow::Error> {
        let name = self.name.as_str();
        let names: Vec<&str> = self.projections.iter().map(|p| p.name()).collect();
        // The locks live as long as this connection; while they are held no
        // other process projects these projections.
        let mut lock_conn = self.pool.acquire().await?.detach();
        loop {
            let leading: bool = sqlx::query_scalar(
                "SELECT bool_and(pg_try_advisory_lock(hashtext('sextant.projector.' || n))) \
                 FROM UNNEST($1::text[]) AS n",
            )
            .bind(&names)
            .fetch_one(&mut lock_conn)
            .await?;
            if leading {
                break;
            }
            // Some were taken elsewhere: give back the ones this got.
            sqlx::query("SELECT pg_advisory_unlock_all()")
                .execute(&mut lock_conn)
                .await?;
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        tracing::debug!(projector = name, "projector leads");
        let store_id = sextant_adapters::db::store_id(&self.pool).await?;
        let mut stream = stream::ensure_stream(&self.js, &self.settings, store_id).await?;
        // The one furthest behind says where to resume; the others skip
        // what they have applied.
        let resume_after: i64 = sqlx::query_scalar(
            "SELECT COALESCE(min(COALESCE(c.stream_sequence, 0)), 0) FROM UNNEST($1::text[]) AS n \
             LEFT JOIN projection_checkpoints c ON c.projection = n",
        )
        .bind(&names)
        .fetch_one(&self.pool)
        .await?;
        let last_on_stream = stream.info().await?.state.last_sequence;
        // A stream emptier than the checkpoint was recreated: read it all
        // again (positions at or below the checkpoint are skipped anyway).
        let deliver_policy = if resume_after <= 0 || resume_after as u64 > last_on_stream {
            consumer::DeliverPolicy::All
        } else {
            consumer::DeliverPolicy::ByStartSequence {
                start_sequence: resume_after as u64 + 1,
            }
        };
        let durable = Self::consumer_name(name);
        let _ = stream.delete_consumer(&durable).await;
        let filter = self.filter_subject();
        let wanted = read_by(&self.projections);
        let mut consumer: consumer::PullConsumer = stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(durable),
                // The server sends only what the projection reads: every
                // event sent to every projector cost NATS a delivery and the
                // projector a message to look at, for nothing.
                filter_subject: filter.clone().unwrap_or_default(),
                // One ack per batch (for its last message) acknowledges the
                // whole batch: a per-message ack cost NATS a publish per
                // event per projection.
                ack_policy: consumer::AckPolicy::All,
                deliver_policy,
                ack_wait: Duration::from_secs(30),
                max_ack_pending: 20_000,
                ..Default::default()
            })
            .await?;
        let mut stream = consumer
            .stream()
            .max_messages_per_batch(BATCH)
            .heartbeat(Duration::from_secs(2))
            .expires(Duration::from_secs(10))
            .messages()
            .await?;
        let mut reached = 0;
        let mut idle = tokio::time::interval(IDLE_ADVANCE);
        idle.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = idle.tick(), if filter.is_some() => {
                    reached = self.advance_past_unsent(&mut consumer, reached).await?;
                    continue;
                }
                first = stream.next() => first,
            };
            let Some(first) = first else {
                anyhow::bail!("the consumer's message stream ended");
            };
            let messages = next_batch(&mut stream, first).await?;
            // Messages come in stream order: the last one's sequence is the
            // batch's (an ack subject is parsed only where it is needed).
            let sequence_of =
                |m: &jetstream::Message| m.info().map(|i| i.stream_sequence).unwrap_or(0);
            let last_sequence = messages.last().map(sequence_of).unwrap_or(0);
            // A filtered consumer is sent only what its projections read:
            // no header needs looking at to skip the rest.
            let skip_by_header = filter.is_none() && wanted.is_some();
            let incoming: Vec<Incoming> = messages
                .iter()
                .map(|m| {
                    let headers = m.headers.as_ref().filter(|_| skip_by_header);
                    Incoming::from_message(wanted.as_deref(), headers, &m.payload, || {
                        sequence_of(m)
                    })
                })
                .collect();
            tracing::debug!(
                projector = name,
                events = incoming.len(),
                "applying a batch"
            );
            let mut tx = self.pool.begin().await?;
            let mut positions = Vec::with_capacity(self.projections.len());
            for projection in &self.projections {
                let position =
                    apply_batch(&mut tx, projection.as_ref(), &incoming, last_sequence).await?;
                positions.push((projection.name(), position));
            }
            tx.commit().await?;
            reached = positions.iter().map(|(_, p)| *p).min().unwrap_or(reached);
            for (projection, position) in positions {
                metrics::gauge!("sextant_projection_position", "projection" => projection)
                    .set(position as f64);
            }
            // An ack lost here only means a redelivery, which the
            // checkpoint skips.
            if let Some(last) = messages.last() {
                if let Err(err) = last.ack().await {
                    tracing::debug!(error = %err, "ack failed; the batch will be redelivered and skipped");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(groups: &[Vec<Arc<dyn Projection>>]) -> Vec<Vec<&'static str>> {
        groups
            .iter()
            .map(|g| g.iter().map(|p| p.name()).collect())
            .collect()
    }

    #[test]
    fn every_projection_answers_its_name_and_is_found_by_it() {
        let names: Vec<&str> = crate::all().iter().map(|p| p.name()).collect();
        assert_eq!(
            names,
            [
                "clients",
                "audit",
                "context",
                "sends",
                "patterns",
                "experiments",
                "reports",
                "alerts",
                "report_deliveries"
            ]
        );
        for name in ProjectionName::ALL {
            assert_eq!(ProjectionName::parse(name.as_str()), Some(name));
            let found = crate::by_name(name.as_str()).expect("a projection of every name");
            assert_eq!(found.name(), name.as_str());
        }
        assert!(crate::by_name("nothing").is_none());
    }

    #[test]
    fn the_send_projections_ride_the_audit_trails_consumer_and_the_rest_get_one_each() {
        let groups = groups(crate::all());
        assert_eq!(
            names(&groups),
            vec![
                vec!["clients"],
                vec!["audit", "sends", "patterns", "reports"],
                vec!["context"],
                vec!["experiments"],
                vec!["alerts"],
                vec!["report_deliveries"],
            ]
        );
        // The shared consumer reads every event; the others only their type.
        assert_eq!(read_by(&groups[1]), None);
        assert_eq!(
            read_by(&groups[2]).as_deref(),
            Some(&["client_context"][..])
        );
    }

    #[test]
    fn without_a_projection_of_every_event_the_send_projections_share_a_consumer_of_sends() {
        let without_audit: Vec<_> = crate::all()
            .into_iter()
            .filter(|p| p.name() != "audit")
            .collect();
        let groups = groups(without_audit);
        assert_eq!(
            names(&groups),
            vec![
                vec!["clients"],
                vec!["context"],
                vec!["sends", "patterns"],
                vec!["experiments"],
                vec!["reports"],
                vec!["alerts"],
                vec!["report_deliveries"],
            ]
        );
        assert_eq!(read_by(&groups[2]).as_deref(), Some(&["send"][..]));
    }
}
