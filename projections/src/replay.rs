//! Replay: rebuild a projection from the `events` table.
//!
//! The rebuild writes into shadow copies of the projection's tables (schema
//! `sextant_shadow_<name>`, reached through `search_path`, so the projection
//! runs unchanged), page by page, while the live tables keep serving. Then,
//! holding the projection's lock (which the live projector also takes), it
//! catches up to the head, swaps the shadow tables in, and sets the
//! checkpoint to where the rebuild got: the live projector resumes from there
//! and skips what the rebuild already applied. Its progress shows as
//! [`Progress`] says: a bar on a terminal, JSON lines on a pipe, or nothing.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Rebuilds `projection` from the event log and swaps it in, showing its
/// progress as `progress` says (`false`: not at all).
pub async fn rebuild(
    pool: &PgPool,
    projection: Arc<dyn Projection>,
    progress: impl Into<Progress>,
) -> Result<RebuildReport, anyhow::Error> {
    let name = projection.name();
    let schema = shadow_schema(name);
    let head = sextant_adapters::db::head_position(pool).await?;
    let progress: Progress = progress.into();
    let mut progress = progress.start(name, head)?;

    // The page query's plan depends on the log's statistics: without them
    // a page took seconds instead of milliseconds.
    analyze_if_stale(pool, "public", "events").await?;
    prepare_shadow(pool, &schema, projection.tables()).await?;
    let mut position = 0i64;
    let mut events = 0u64;
    let mut pages = 0u64;
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
        // The projection reads the tables it is filling: their statistics
        // follow them as they double, a few samples in all.
        pages += 1;
        if pages.is_power_of_two() {
            for table in projection.tables() {
                analyze_if_stale(pool, &schema, table).await?;
            }
        }
        progress.advance(events, position);
    }

    // Swapped in with statistics, so the first queries on them are planned
    // for their size, not for empty tables.
    for table in projection.tables() {
        analyze(pool, &schema, table).await?;
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
    progress.finish(events, position);
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

/// Analyses `schema.table` when its planner statistics are missing (never
/// analysed: a freshly loaded or restored database, or one whose
/// statistics a crash reset) or stale (changed by more than a fifth of its
/// rows since, and by at least 1,000), so a replay's speed does not depend
/// on autovacuum having come by.
async fn analyze_if_stale(pool: &PgPool, schema: &str, table: &str) -> Result<(), sqlx::Error> {
    let stale: Option<bool> = sqlx::query_scalar(
        "SELECT COALESCE((last_analyze IS NULL AND last_autoanalyze IS NULL) \
                OR n_mod_since_analyze > 1000 + n_live_tup / 5, true) \
         FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = $2",
    )
    .bind(schema)
    .bind(table)
    .fetch_optional(pool)
    .await?;
    if stale.unwrap_or(true) {
        analyze(pool, schema, table).await?;
    }
    Ok(())
}

/// `ANALYZE`: samples the table (a few hundred milliseconds for millions of
/// rows) without blocking its readers or writers.
async fn analyze(pool: &PgPool, schema: &str, table: &str) -> Result<(), sqlx::Error> {
    let started = Instant::now();
    sqlx::query(&format!("ANALYZE {schema}.{table}"))
        .execute(pool)
        .await?;
    tracing::debug!(
        schema,
        table,
        ms = started.elapsed().as_millis() as u64,
        "statistics gathered"
    );
    Ok(())
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

/// How a rebuild shows its progress, on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Not at all.
    Hidden,
    /// A bar with the rate and the time left, for a person at a terminal.
    Bar,
    /// One JSON object per line, at most one a second and one at the end,
    /// for a pipe or a log collector: `projection`, `events_applied`,
    /// `position` (how far through the log), `total` (the log's head),
    /// `rate` (positions a second), `eta_seconds`, `done`.
    JsonLines,
}

impl Progress {
    /// A bar when stderr is a terminal, JSON lines when it is not.
    pub fn for_stderr() -> Self {
        if std::io::stderr().is_terminal() {
            Self::Bar
        } else {
            Self::JsonLines
        }
    }

    fn start(self, projection: &str, head: i64) -> Result<Reporter, anyhow::Error> {
        let total = head.max(0) as u64;
        let bar = match self {
            Self::Bar => {
                let bar = ProgressBar::new(total);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix} [{bar:40}] {pos}/{len} positions ({per_sec}, eta {eta})",
                    )?
                    .progress_chars("=> "),
                );
                bar.set_prefix(projection.to_owned());
                Some(bar)
            }
            Self::Hidden | Self::JsonLines => None,
        };
        Ok(Reporter {
            kind: self,
            projection: projection.to_owned(),
            total,
            started: Instant::now(),
            last_line: None,
            bar,
        })
    }
}

impl From<bool> for Progress {
    /// `true`: [`Progress::for_stderr`]; `false`: [`Progress::Hidden`].
    fn from(show: bool) -> Self {
        if show {
            Self::for_stderr()
        } else {
            Self::Hidden
        }
    }
}

/// One rebuild's progress, shown as its [`Progress`] says.
struct Reporter {
    kind: Progress,
    projection: String,
    total: u64,
    started: Instant,
    last_line: Option<Instant>,
    bar: Option<ProgressBar>,
}

/// How often a JSON progress line is written at most.
const LINE_EVERY: Duration = Duration::from_secs(1);

impl Reporter {
    fn advance(&mut self, events: u64, position: i64) {
        let position = position.max(0) as u64;
        // The head moves while the rebuild runs.
        self.total = self.total.max(position);
        if let Some(bar) = &self.bar {
            bar.set_length(self.total);
            bar.set_position(position);
        }
        let due = self.last_line.is_none_or(|at| at.elapsed() >= LINE_EVERY);
        if self.kind == Progress::JsonLines && due {
            self.line(events, position, false);
        }
    }

    fn finish(&mut self, events: u64, position: i64) {
        let position = position.max(0) as u64;
        self.total = self.total.max(position);
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.kind == Progress::JsonLines {
            self.line(events, position, true);
        }
    }

    fn line(&mut self, events: u64, position: u64, done: bool) {
        self.last_line = Some(Instant::now());
        let line = progress_line(
            &self.projection,
            events,
            position,
            self.total,
            self.started.elapsed(),
            done,
        );
        // Progress is best effort: a closed stderr does not stop a rebuild.
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

/// One JSON progress line: the rate so far, and the time left at that rate.
fn progress_line(
    projection: &str,
    events: u64,
    position: u64,
    total: u64,
    elapsed: Duration,
    done: bool,
) -> serde_json::Value {
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        position as f64 / seconds
    } else {
        0.0
    };
    let left = total.saturating_sub(position);
    let eta_seconds = if done || left == 0 {
        Some(0)
    } else if rate > 0.0 {
        Some((left as f64 / rate).ceil() as u64)
    } else {
        None
    };
    serde_json::json!({
        "projection": projection,
        "events_applied": events,
        "position": position,
        "total": total,
        "rate": (rate * 10.0).round() / 10.0,
        "eta_seconds": eta_seconds,
        "done": done,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_line_says_how_far_how_fast_and_how_long_is_left() {
        let line = progress_line("clients", 1200, 5000, 20_000, Duration::from_secs(2), false);
        assert_eq!(
            line,
            serde_json::json!({ "projection": "clients", "events_applied": 1200, "position": 5000,
                "total": 20_000, "rate": 2500.0, "eta_seconds": 6, "done": false })
        );
        let last = progress_line(
            "clients",
            4000,
            20_000,
            20_000,
            Duration::from_secs(8),
            true,
        );
        assert_eq!(last["eta_seconds"], 0);
        assert_eq!(last["done"], true);
        let first = progress_line("clients", 0, 0, 20_000, Duration::ZERO, false);
        assert_eq!(
            first["eta_seconds"],
            serde_json::Value::Null,
            "no rate yet, no ETA"
        );
    }

    #[test]
    fn showing_progress_or_not_is_still_a_flag() {
        assert_eq!(Progress::from(false), Progress::Hidden);
        assert_ne!(Progress::from(true), Progress::Hidden);
    }
}
