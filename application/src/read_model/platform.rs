//! Cross-client patterns: the pattern counts of clients that consented to
//! data sharing, pooled, under k-anonymity: no figure of a platform table
//! is drawn from fewer than [`MIN_CLIENTS`] consenting clients with at least
//! [`MIN_SENDS_PER_CLIENT`] sends each. The baseline and the number of
//! contributing clients are shown only when that many clients qualify (else
//! the table is [`withheld`](PlatformTable::withheld), every figure `None`);
//! a row is shown only when that many qualifying clients have at least
//! [`MIN_SENDS_PER_CLIENT`] sends of its key, and counts only theirs. A
//! table carries no client identifier: only keys, how many clients
//! contributed, and pooled numbers.

use serde::Serialize;
use sqlx::PgPool;

use sextant_domain::learning::{pattern_rows, Family, Metric, PatternRow, BASELINE};

pub const MIN_CLIENTS: i64 = 5;
pub const MIN_SENDS_PER_CLIENT: i64 = 50;

/// Why a withheld table shows nothing.
pub const WITHHELD: &str =
    "fewer than 5 consenting clients with at least 50 sends each: nothing is shown";

#[derive(Debug, Clone, Serialize)]
pub struct PlatformTable {
    pub family: &'static str,
    pub metric: &'static str,
    pub industry: Option<String>,
    /// Why every figure is `None` and `rows` empty; `None` when the table
    /// is shown.
    pub withheld: Option<&'static str>,
    pub contributing_clients: Option<i64>,
    pub baseline_sends: Option<u64>,
    pub baseline_events: Option<u64>,
    pub rows: Vec<PlatformRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlatformRow {
    pub clients: i64,
    #[serde(flatten)]
    pub stats: PatternRow,
}

/// The pattern counts column that counts `metric`'s events.
pub(super) fn column(metric: Metric) -> &'static str {
    match metric {
        Metric::Reply => "replies",
        Metric::PositiveReply => "positive_replies",
        Metric::Meeting => "meetings",
    }
}

/// The platform's table for `family`, optionally within one industry (the
/// clients' own industry).
pub async fn platform_table(
    pool: &PgPool,
    family: Family,
    metric: Metric,
    industry: Option<&str>,
) -> Result<PlatformTable, sqlx::Error> {
    // `column` is one of three constants, never input.
    let sql = format!(
        "WITH sharing AS ( \
            SELECT client_id FROM clients_view \
            WHERE data_sharing_consent AND ($3::text IS NULL OR lower(industry) = lower($3)) \
         ), counted AS ( \
            SELECT p.family, p.key, p.client_id, p.sends, p.{events} AS events \
            FROM pattern_counts p JOIN sharing s ON s.client_id = p.client_id \
            WHERE p.scope = 'client' AND (p.family = $1 OR (p.family = $4 AND p.key = $5)) \
              AND p.sends >= $2 \
         ) \
         SELECT family, key, count(*) AS clients, sum(sends)::bigint, sum(events)::bigint \
         FROM counted GROUP BY family, key",
        events = column(metric)
    );
    let rows: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(&sql)
        .bind(family.as_str())
        .bind(MIN_SENDS_PER_CLIENT)
        .bind(industry)
        .bind(BASELINE.0)
        .bind(BASELINE.1)
        .fetch_all(pool)
        .await?;
    let baseline = rows
        .iter()
        .find(|(f, k, ..)| f == BASELINE.0 && k == BASELINE.1)
        .map(|(_, _, c, n, x)| (*c, *n as u64, *x as u64))
        .filter(|(clients, ..)| *clients >= MIN_CLIENTS);
    let Some((contributing, baseline_sends, baseline_events)) = baseline else {
        return Ok(PlatformTable {
            family: family.as_str(),
            metric: metric.as_str(),
            industry: industry.map(str::to_owned),
            withheld: Some(WITHHELD),
            contributing_clients: None,
            baseline_sends: None,
            baseline_events: None,
            rows: Vec::new(),
        });
    };
    let published: Vec<(String, String, i64, i64, i64)> = rows
        .into_iter()
        .filter(|(f, _, clients, ..)| f == family.as_str() && *clients >= MIN_CLIENTS)
        .collect();
    let stats = pattern_rows(
        &published
            .iter()
            .map(|(_, k, _, n, x)| (k.clone(), *n as u64, *x as u64))
            .collect::<Vec<_>>(),
        (baseline_sends, baseline_events),
    );
    let rows = stats
        .into_iter()
        .filter_map(|stats| {
            let clients = published.iter().find(|(_, k, ..)| *k == stats.key)?.2;
            Some(PlatformRow { clients, stats })
        })
        .collect();
    Ok(PlatformTable {
        family: family.as_str(),
        metric: metric.as_str(),
        industry: industry.map(str::to_owned),
        withheld: None,
        contributing_clients: Some(contributing),
        baseline_sends: Some(baseline_sends),
        baseline_events: Some(baseline_events),
        rows,
    })
}
