//! Replay: rebuild a projection from the `events` table.
//!
//! The rebuild writes into shadow copies of the projection's tables (schema
//! `sextant_shadow_<name>`, reached through `search_path`, so the projection
//! runs unchanged), page by page, while the live tables keep serving. Then,
//! holding the projection's lock (which the live projector also takes), it
//! catches up to the head, swaps the shadow tables in, and sets the
//! checkpoint to where the rebuild got: the live projector resumes from there
//! and skips what the rebuild already applied.

use std::sync::Arc;

use futures::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use sextant_adapters::stream::{RecordedEvent, EVENT_COLUMNS};
use sqlx::{PgConnection, PgPool};

use crate::runtime::{self, Projection};

const PAGE: i64 = 5000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    pub projection: String,
    pub events: u64,
    pub position: i64,
}

fn shadow_schema(name: &str) -> String {
    format!("sextant_shadow_{name}")
}

/// Rebuilds `projection` from the event log and swaps it in.
pub async fn rebuild(
    pool: &PgPool,
    projection: Arc<dyn Projection>,
    show_progress: bool,
) -> Result<RebuildReport, anyhow::Error> {
    let name = projection.name();
    let schema = shadow_schema(name);
    let head = sextant_adapters::db::head_position(pool).await?;
    let bar = if show_progress {
        let bar = ProgressBar::new(head.max(0) as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:40}] {pos}/{len} positions ({per_sec}, eta {eta})",
            )?
            .progress_chars("=> "),
        );
        bar.set_prefix(name);
        bar
    } else {
        ProgressBar::hidden()
    };

    prepare_shadow(pool, &schema, projection.tables()).await?;
    let mut position = 0i64;
    let mut events = 0u64;
    loop {
        let mut tx = pool.begin().await?;
        use_schema(&mut tx, &schema).await?;
        let applied = apply_range(&mut tx, projection.as_ref(), position, None, Some(PAGE)).await?;
        tx.commit().await?;
        let Some(last) = applied.last_position else {
            break;
        };
        position = last;
        events += applied.count;
        bar.set_position(position.max(0) as u64);
    }

    // Catch up and swap under the projection's lock.
    let mut tx = pool.begin().await?;
    runtime::lock_projection(&mut tx, name).await?;
    let live = runtime::checkpoint(&mut tx, name).await?;
    use_schema(&mut tx, &schema).await?;
    // The head first, then every event up to it (appends commit in position
    // order, so none below it can still appear): the rebuild has then got
    // to the head, also past the events of types the projection skips. Read
    // after the catch-up, an event committed in between would sit below
    // the checkpoint unapplied.
    let head = sextant_adapters::db::head_position_in(&mut tx).await?;
    let applied = apply_range(&mut tx, projection.as_ref(), position, Some(head), None).await?;
    events += applied.count;
    position = head.max(applied.last_position.unwrap_or(position));
    sqlx::query("SET LOCAL search_path TO public")
        .execute(&mut *tx)
        .await?;
    for table in projection.tables() {
        sqlx::query(&format!("DROP TABLE public.{table}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!("ALTER TABLE {schema}.{table} SET SCHEMA public"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(&format!("DROP SCHEMA {schema}"))
        .execute(&mut *tx)
        .await?;
    let position = position.max(live);
    runtime::set_checkpoint(&mut tx, name, position).await?;
    tx.commit().await?;
    bar.finish_and_clear();
    tracing::info!(projection = name, events, position, "projection rebuilt");
    Ok(RebuildReport {
        projection: name.to_owned(),
        events,
        position,
    })
}

async fn prepare_shadow(pool: &PgPool, schema: &str, tables: &[&str]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut *tx)
        .await?;
    for table in tables {
        sqlx::query(&format!(
            "CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL)"
        ))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

async fn use_schema(conn: &mut PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("SET LOCAL search_path TO {schema}, public"))
        .execute(conn)
        .await?;
    Ok(())
}

struct Applied {
    count: u64,
    last_position: Option<i64>,
}

/// Applies events after `after` (up to `until`, at most `limit`) in
/// position order: only those of the aggregate types the projection reads,
/// so a projection of clients does not fetch and parse millions of sends
/// to skip them.
async fn apply_range(
    conn: &mut PgConnection,
    projection: &dyn Projection,
    after: i64,
    until: Option<i64>,
    limit: Option<i64>,
) -> Result<Applied, anyhow::Error> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events e WHERE e.global_position > $1 AND e.global_position <= $4 \
         AND ($3::text[] IS NULL OR e.aggregate_type = ANY($3)) \
         ORDER BY e.global_position LIMIT $2"
    );
    let types: Option<Vec<&str>> = projection.aggregate_types().map(<[&str]>::to_vec);
    let rows: Vec<RecordedEvent> = sqlx::query(&sql)
        .bind(after)
        .bind(limit.unwrap_or(i64::MAX))
        .bind(types)
        .bind(until.unwrap_or(i64::MAX))
        .fetch(&mut *conn)
        .map_err(anyhow::Error::from)
        .and_then(|row| async move { RecordedEvent::from_row(&row).map_err(anyhow::Error::from) })
        .try_collect()
        .await?;
    let incoming: Vec<runtime::Incoming> = rows.into_iter().map(runtime::Incoming::Event).collect();
    let count = incoming.len() as u64;
    let last_position = match incoming.last() {
        Some(runtime::Incoming::Event(e)) => Some(e.global_position),
        _ => None,
    };
    runtime::apply_events(conn, projection, &incoming, after).await?;
    Ok(Applied {
        count,
        last_position,
    })
}

/// A checksum of a projection's read model: md5 over every row of every
/// table, in a canonical order. Equal checksums mean equal read models.
pub async fn checksum(pool: &PgPool, projection: &dyn Projection) -> Result<String, sqlx::Error> {
    let mut parts = Vec::new();
    for table in projection.tables() {
        let sum: Option<String> = sqlx::query_scalar(&format!(
            "SELECT md5(string_agg(t::text, E'\\n' ORDER BY t::text)) FROM public.{table} t"
        ))
        .fetch_one(pool)
        .await?;
        parts.push(format!("{table}:{}", sum.unwrap_or_default()));
    }
    Ok(parts.join(","))
}
