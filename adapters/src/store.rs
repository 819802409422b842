//! cqrs-es on postgres-es, used the documented way, plus what the crate does
//! not know about: the metadata every event carries (client, actor,
//! correlation, the command that caused it) and the global position a
//! command's events were given.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, AggregateError, EventStore};
use postgres_es::{PostgresCqrs, PostgresEventRepository};
use sextant_domain::metadata::{self, Actor};
use sqlx::PgPool;
use uuid::Uuid;

/// Who is acting, on whose behalf, as part of what.
#[derive(Debug, Clone)]
pub struct CommandMeta {
    pub client_id: Uuid,
    pub actor: Actor,
    pub correlation_id: String,
    pub causation_id: Option<String>,
    pub command_id: Uuid,
}

impl CommandMeta {
    pub fn new(client_id: Uuid, actor: Actor, correlation_id: impl Into<String>) -> Self {
        Self {
            client_id,
            actor,
            correlation_id: correlation_id.into(),
            causation_id: None,
            command_id: Uuid::now_v7(),
        }
    }

    fn to_map(&self) -> HashMap<String, String> {
        let mut map = HashMap::from([
            (metadata::CLIENT_ID.to_owned(), self.client_id.to_string()),
            (metadata::ACTOR.to_owned(), self.actor.to_string()),
            (
                metadata::CORRELATION_ID.to_owned(),
                self.correlation_id.clone(),
            ),
            (metadata::COMMAND_ID.to_owned(), self.command_id.to_string()),
        ]);
        if let Some(causation) = &self.causation_id {
            map.insert(metadata::CAUSATION_ID.to_owned(), causation.clone());
        }
        map
    }
}

/// Where a command's events landed, and what they were.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed<E> {
    /// The global position of its last event, or the head if it had none.
    pub position: i64,
    /// When its last event was recorded; `None` if it had none.
    pub recorded_at: Option<DateTime<Utc>>,
    /// The events the command produced, in order.
    pub events: Vec<E>,
}

/// An aggregate's command side: cqrs-es over postgres-es, and the pool to
/// find positions with.
pub struct CommandStore<A: Aggregate> {
    cqrs: PostgresCqrs<A>,
    /// The same store cqrs-es writes through, for reading an aggregate's
    /// current state where a command needs another aggregate's facts.
    reader: PersistedEventStore<PostgresEventRepository, A>,
    pool: PgPool,
}

/// What a command failed with: the aggregate's own refusal, or the store's.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    #[error(transparent)]
    Rejected(E),
    #[error("concurrent modification, retry")]
    Conflict,
    #[error("the database is unavailable")]
    Unavailable,
    #[error("event store failure: {0}")]
    Store(String),
}

/// Optimistic-concurrency conflicts are retried this often: the command is
/// decided again against the state that won, so a retry is always safe.
/// Eight reviewers and agents working one client at once needed more than
/// three (the fault suite's contention test saw 409s for plain proposals).
const CONFLICT_RETRIES: u32 = 10;

impl<A> CommandStore<A>
where
    A: Aggregate,
    A::Command: Clone,
{
    pub fn new(pool: PgPool, services: A::Services) -> Arc<Self> {
        Arc::new(Self {
            cqrs: postgres_es::postgres_cqrs(pool.clone(), vec![], services),
            reader: PersistedEventStore::new_event_store(PostgresEventRepository::new(
                pool.clone(),
            )),
            pool,
        })
    }

    /// Snapshots every `every` events, so loading stays flat however long
    /// the history grows.
    pub fn with_snapshots(pool: PgPool, services: A::Services, every: usize) -> Arc<Self> {
        Arc::new(Self {
            cqrs: postgres_es::postgres_snapshot_cqrs(pool.clone(), vec![], every, services),
            reader: PersistedEventStore::new_snapshot_store(
                PostgresEventRepository::new(pool.clone()),
                every,
            ),
            pool,
        })
    }

    /// The aggregate's current state (the default state if it has no events).
    pub async fn load(&self, aggregate_id: &str) -> Result<A, CommandError<A::Error>> {
        let context = self
            .reader
            .load_aggregate(aggregate_id)
            .await
            .map_err(classify)?;
        Ok(context.aggregate)
    }

    /// Executes `command` and answers where its events landed: the global
    /// position of the last one (or the current head, when the command
    /// changed nothing), for read-your-writes.
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        meta: &CommandMeta,
    ) -> Result<Committed<A::Event>, CommandError<A::Error>> {
        let mut attempt = 0;
        // A random pause before each retry, so writers that collided do not
        // collide again in lockstep.
        let mut backoff = crate::retry::Backoff::conflict();
        loop {
            let outcome = self
                .cqrs
                .execute_with_metadata(aggregate_id, command.clone(), meta.to_map())
                .await
                .map_err(classify);
            match outcome {
                Err(CommandError::Conflict) if attempt < CONFLICT_RETRIES => {
                    tokio::time::sleep(backoff.next_delay()).await;
                    attempt += 1;
                }
                other => break other?,
            }
        }
        let rows: Vec<(i64, DateTime<Utc>, serde_json::Value)> = sqlx::query_as(
            "SELECT global_position, recorded_at, payload FROM events WHERE command_id = $1 \
             ORDER BY global_position",
        )
        .bind(meta.command_id)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        let Some((position, recorded_at, _)) = rows.last().cloned() else {
            return Ok(Committed {
                position: crate::db::head_position(&self.pool)
                    .await
                    .map_err(store_error)?,
                recorded_at: None,
                events: Vec::new(),
            });
        };
        let events = rows
            .into_iter()
            .map(|(_, _, payload)| serde_json::from_value(payload))
            .collect::<Result<Vec<A::Event>, _>>()
            .map_err(|e| CommandError::Store(format!("reading back committed events: {e}")))?;
        Ok(Committed {
            position,
            recorded_at: Some(recorded_at),
            events,
        })
    }
}

fn store_error<E: std::error::Error>(err: sqlx::Error) -> CommandError<E> {
    if crate::db::is_unavailable(&err) {
        CommandError::Unavailable
    } else {
        CommandError::Store(err.to_string())
    }
}

fn classify<E: std::error::Error>(err: AggregateError<E>) -> CommandError<E> {
    match err {
        AggregateError::UserError(e) => CommandError::Rejected(e),
        AggregateError::AggregateConflict => CommandError::Conflict,
        AggregateError::DatabaseConnectionError(_) => CommandError::Unavailable,
        AggregateError::DeserializationError(e) => CommandError::Store(e.to_string()),
        AggregateError::UnexpectedError(e) => {
            if crate::db::is_unavailable_dyn(e.as_ref()) {
                CommandError::Unavailable
            } else {
                CommandError::Store(e.to_string())
            }
        }
    }
}

/// Who writes, as part of what: the metadata of events appended outside
/// cqrs-es. No command id: such appends know their positions from
/// `RETURNING`, and leaving it out spares the command-id index.
#[derive(Debug, Clone)]
pub struct Writer {
    pub client_id: Uuid,
    pub actor: Actor,
    pub correlation_id: String,
}

impl Writer {
    fn metadata(&self) -> serde_json::Value {
        serde_json::json!({
            metadata::CLIENT_ID: self.client_id.to_string(),
            metadata::ACTOR: self.actor.to_string(),
            metadata::CORRELATION_ID: self.correlation_id,
        })
    }
}

/// Where an appended event goes in its aggregate's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sequence {
    /// At this sequence, which the caller decided against state it read in
    /// the same transaction; a concurrent writer that took it first makes
    /// the append fail on the `events` primary key (a unique violation).
    At(i64),
    /// After the aggregate's last event, whatever that is when the append
    /// runs: for aggregates whose events never depend on their history.
    Next,
}

/// One event to append to aggregate `aggregate_id`.
#[derive(Debug, Clone)]
pub struct Appended<'a, E> {
    pub aggregate_id: String,
    pub sequence: Sequence,
    pub event: &'a E,
}

/// The last sequence of every aggregate some item appends to at
/// [`Sequence::Next`], read under the append lock: taken before this read,
/// so the read already sees every append that committed before it, and no
/// other append can commit until this transaction does. Nothing to read (and
/// no lock taken early) when every sequence is known.
async fn last_sequences<A: Aggregate>(
    conn: &mut sqlx::PgConnection,
    items: &[Appended<'_, A::Event>],
) -> Result<HashMap<String, i64>, sqlx::Error> {
    let next: Vec<&str> = items
        .iter()
        .filter(|item| item.sequence == Sequence::Next)
        .map(|item| item.aggregate_id.as_str())
        .collect();
    if next.is_empty() {
        return Ok(HashMap::new());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(APPEND_LOCK)
        .execute(&mut *conn)
        .await?;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT aggregate_id, max(sequence) FROM events \
         WHERE aggregate_type = $1 AND aggregate_id = ANY($2) GROUP BY aggregate_id",
    )
    .bind(A::TYPE)
    .bind(&next)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// The advisory lock `events_serialize_appends` takes before every insert
/// into `events` (migration `20261121000001_event_store.sql`).
const APPEND_LOCK: i64 = 8_675_309_001;

/// Appends `items` to the event log in one statement, for the write paths
/// that do not run through cqrs-es (batched ingest, authorisations,
/// erasures): aggregate type, event type and version come from `A` and its
/// events, as cqrs-es would write them. Answers the position of the last
/// event (0 for none).
///
/// A [`Sequence::Next`] is drawn under the append lock (see
/// [`last_sequences`]): two concurrent appends to one aggregate each get
/// their own next sequence instead of colliding. Several items at `Next` of
/// one aggregate follow each other.
pub async fn append<A: Aggregate>(
    conn: &mut sqlx::PgConnection,
    writer: &Writer,
    items: &[Appended<'_, A::Event>],
) -> Result<i64, sqlx::Error> {
    use cqrs_es::DomainEvent;
    if items.is_empty() {
        return Ok(0);
    }
    let last = last_sequences::<A>(conn, items).await?;
    let mut ids = Vec::with_capacity(items.len());
    let mut sequences = Vec::with_capacity(items.len());
    let mut types = Vec::with_capacity(items.len());
    let mut versions = Vec::with_capacity(items.len());
    let mut payloads = Vec::with_capacity(items.len());
    let mut drawn: HashMap<&str, i64> = HashMap::new();
    for item in items {
        ids.push(item.aggregate_id.as_str());
        sequences.push(match item.sequence {
            Sequence::At(sequence) => sequence,
            Sequence::Next => {
                let next = drawn
                    .entry(item.aggregate_id.as_str())
                    .or_insert_with(|| last.get(&item.aggregate_id).copied().unwrap_or(0));
                *next += 1;
                *next
            }
        });
        types.push(item.event.event_type());
        versions.push(item.event.event_version());
        payloads
            .push(serde_json::to_value(item.event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?);
    }
    let positions: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT $1, u.id, u.seq, u.ty, u.version, u.payload, $7 \
         FROM UNNEST($2::text[], $3::bigint[], $4::text[], $5::text[], $6::jsonb[]) \
              AS u(id, seq, ty, version, payload) \
         RETURNING global_position",
    )
    .bind(A::TYPE)
    .bind(&ids)
    .bind(&sequences)
    .bind(&types)
    .bind(&versions)
    .bind(&payloads)
    .bind(writer.metadata())
    .fetch_all(conn)
    .await?;
    Ok(positions.into_iter().max().unwrap_or(0))
}
