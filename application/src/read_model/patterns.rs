//! A client's pattern tables: rows of the WHAT / WHEN / HOW / WHO / versions
//! detectors with sends, events, rate, 95% Wilson interval, lift over the
//! client's baseline, p and Benjamini–Hochberg q within the family.

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use sextant_domain::learning::{pattern_rows, Family, Metric, PatternRow, BASELINE};

use super::platform::column;
use crate::Result;

/// The client's sends and events over all its sends, the rows' reference.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    pub sends: u64,
    pub events: u64,
    /// `events / sends`; 0 without sends.
    pub rate: f64,
}

/// One family's rows for one client, metric and scope.
#[derive(Debug, Clone, Serialize)]
pub struct PatternTable {
    pub family: &'static str,
    pub metric: &'static str,
    pub scope: String,
    pub baseline: Baseline,
    pub rows: Vec<PatternRow>,
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
    // `column` is one of three constants, never input.
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
    let (sends, events) = counts
        .iter()
        .find(|(f, k, ..)| f == BASELINE.0 && k == BASELINE.1)
        .map(|(_, _, n, x)| (*n as u64, *x as u64))
        .unwrap_or((0, 0));
    let rows: Vec<(String, u64, u64)> = counts
        .into_iter()
        .filter(|(f, ..)| f == family.as_str())
        .map(|(_, key, n, x)| (key, n as u64, x as u64))
        .collect();
    Ok(PatternTable {
        family: family.as_str(),
        metric: metric.as_str(),
        scope,
        baseline: Baseline {
            sends,
            events,
            rate: if sends > 0 {
                events as f64 / sends as f64
            } else {
                0.0
            },
        },
        rows: pattern_rows(&rows, (sends, events)),
    })
}
