//! A client's pattern tables: rows of the WHAT / WHEN / HOW / WHO / versions
//! detectors with sends, events, rate, 95% Wilson interval, lift over the
//! rest of the scope's sends, p and Benjamini–Hochberg q within the family,
//! all on matured cohorts (sends older than the metric's window); the
//! maturing sends and the events they have had so far are shown beside
//! them, never mixed in.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use sextant_domain::learning::{pattern_rows, Family, Metric, PatternRow, BASELINE};

use super::platform::column;
use crate::Result;

/// The scope's matured sends and their events, the rows' reference.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    pub sends: u64,
    pub events: u64,
    /// `events / sends`; 0 without sends.
    pub rate: f64,
    pub maturing_sends: u64,
    pub maturing_events: u64,
}

/// A row on matured cohorts, with what is still maturing beside it.
#[derive(Debug, Clone, Serialize)]
pub struct ClientPatternRow {
    #[serde(flatten)]
    pub row: PatternRow,
    /// Sends of this key younger than the window, not yet judged.
    pub maturing_sends: u64,
    /// The events those have had so far.
    pub maturing_events: u64,
}

/// One family's rows for one client, metric and scope.
#[derive(Debug, Clone, Serialize)]
pub struct PatternTable {
    pub family: &'static str,
    pub metric: &'static str,
    pub scope: String,
    /// Sends at or before this instant have matured (the metric's window
    /// ago): the statistics are theirs.
    pub matured_before: DateTime<Utc>,
    pub window_days: u32,
    pub baseline: Baseline,
    pub rows: Vec<ClientPatternRow>,
}

/// The client's table for `family` by `metric`, within `scope` (`client` or
/// `industry:<name>`, as the pattern counts key it).
pub async fn client_table(
    pool: &PgPool,
    client_id: Uuid,
    family: Family,
    metric: Metric,
    scope: String,
) -> Result<PatternTable> {
    let windows = super::clients::client_settings(pool, client_id)
        .await?
        .map(|(_, windows)| windows)
        .unwrap_or_default();
    let matured_before = windows.matured_by(metric, Utc::now());
    // `column` and `followed` are constants chosen by `metric`, never input.
    let counts: Vec<(String, String, i64, i64)> = sqlx::query_as(&format!(
        "SELECT family, key, sends, {} FROM pattern_counts \
         WHERE client_id = $1 AND scope = $2 AND (family = $3 OR (family = $4 AND key = $5))",
        column(metric)
    ))
    .bind(client_id)
    .bind(&scope)
    .bind(family.as_str())
    .bind(BASELINE.0)
    .bind(BASELINE.1)
    .fetch_all(pool)
    .await?;
    // The maturing sends are the recent ones: an index range, however old
    // the client.
    let maturing: Vec<(String, i64, i64)> = sqlx::query_as(&format!(
        "SELECT k, count(*), count({}) FROM pattern_sends, unnest(keys) AS k \
         WHERE client_id = $1 AND sent_at > $2 AND $3 = ANY(scopes) \
           AND (k LIKE $4 || '|%' OR k = $5) GROUP BY k",
        followed(metric)
    ))
    .bind(client_id)
    .bind(matured_before)
    .bind(&scope)
    .bind(family.as_str())
    .bind(format!("{}|{}", BASELINE.0, BASELINE.1))
    .fetch_all(pool)
    .await?;
    let young = |family: &str, key: &str| {
        let full = format!("{family}|{key}");
        maturing
            .iter()
            .find(|(k, ..)| *k == full)
            .map(|(_, n, x)| (*n as u64, *x as u64))
            .unwrap_or((0, 0))
    };
    let (all_sends, all_events) = counts
        .iter()
        .find(|(f, k, ..)| f == BASELINE.0 && k == BASELINE.1)
        .map(|(_, _, n, x)| (*n as u64, *x as u64))
        .unwrap_or((0, 0));
    let (young_sends, young_events) = young(BASELINE.0, BASELINE.1);
    let (sends, events) = (
        all_sends.saturating_sub(young_sends),
        all_events.saturating_sub(young_events),
    );
    let matured: Vec<(String, u64, u64)> = counts
        .iter()
        .filter(|(f, ..)| f == family.as_str())
        .map(|(_, key, n, x)| {
            let (yn, yx) = young(family.as_str(), key);
            (
                key.clone(),
                (*n as u64).saturating_sub(yn),
                (*x as u64).saturating_sub(yx),
            )
        })
        .collect();
    let rows = pattern_rows(&matured, (sends, events))
        .into_iter()
        .map(|row| {
            let (maturing_sends, maturing_events) = young(family.as_str(), &row.key);
            ClientPatternRow {
                row,
                maturing_sends,
                maturing_events,
            }
        })
        .collect();
    Ok(PatternTable {
        family: family.as_str(),
        metric: metric.as_str(),
        scope,
        matured_before,
        window_days: windows.days(metric),
        baseline: Baseline {
            sends,
            events,
            rate: if sends > 0 {
                events as f64 / sends as f64
            } else {
                0.0
            },
            maturing_sends: young_sends,
            maturing_events: young_events,
        },
        rows,
    })
}

/// The `pattern_sends` column of when `metric` first followed a send.
pub(crate) fn followed(metric: Metric) -> &'static str {
    match metric {
        Metric::Reply => "replied_at",
        Metric::PositiveReply => "positive_at",
        Metric::Meeting => "meeting_at",
    }
}
