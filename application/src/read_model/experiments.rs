//! A client's experiments, newest first, and an experiment with what its
//! numbers say now: the experiments read model and each variant's counts
//! per UTC day from the sends read model, judged by the domain's decision
//! rule over the daily looks. Both services answer
//! from it: the query API shows it, the command API concludes on it.

use chrono::NaiveDate;
use uuid::Uuid;

use sextant_adapters::http::Problem;
use sextant_domain::experiment::{decide_over_looks, looks_from_daily, Decision, Variant};
use sextant_domain::learning::Metric;

use super::paging::split;

/// Each variant's new sends and new events (by the experiment's metric) per
/// UTC day, from the sends read model, in one query: a send counts on the
/// day it was sent, its event on the day of its first outcome with the
/// metric (never before the send), so that the counts up to the end of a
/// day are what could be known then. Positive replies are the intents
/// `ReplyIntent::is_positive` names.
pub async fn variant_daily_counts(
    pool: &sqlx::PgPool,
    client_id: Uuid,
    experiment_id: Uuid,
    metric: Metric,
) -> Result<Vec<(String, NaiveDate, i64, i64)>, sqlx::Error> {
    let event = match metric {
        Metric::Reply => "o.kind = 'replied'",
        Metric::PositiveReply => {
            "o.kind = 'replied' AND o.intent IN ('interested', 'meeting_request', 'question')"
        }
        Metric::Meeting => "o.kind = 'meeting_booked'",
    };
    // `event` is one of three constants above, never input.
    sqlx::query_as(&format!(
        "WITH unit AS ( \
           SELECT s.variant, s.sent_at, min(o.occurred_at) FILTER (WHERE {event}) AS event_at \
           FROM sends_view s LEFT JOIN send_outcomes o ON o.send_id = s.send_id \
           WHERE s.client_id = $1 AND s.experiment_id = $2 AND s.variant IS NOT NULL \
           GROUP BY s.send_id) \
         SELECT variant, t.day, sum(t.sends)::bigint, sum(t.events)::bigint \
         FROM unit CROSS JOIN LATERAL (VALUES \
           ((sent_at AT TIME ZONE 'UTC')::date, 1, 0), \
           ((greatest(sent_at, event_at) AT TIME ZONE 'UTC')::date, 0, CASE WHEN event_at IS NULL THEN 0 ELSE 1 END) \
         ) AS t(day, sends, events) \
         GROUP BY variant, t.day HAVING sum(t.sends) > 0 OR sum(t.events) > 0"
    ))
    .bind(client_id)
    .bind(experiment_id)
    .fetch_all(pool)
    .await
}

/// An experiment as the read model holds it.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct ExperimentRow {
    pub experiment_id: Uuid,
    pub name: String,
    pub variants: serde_json::Value,
    pub metric: String,
    pub status: String,
    pub winner: Option<String>,
    pub decision: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub concluded_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The columns of an [`ExperimentRow`], from `experiments_view`.
const EXPERIMENT_COLUMNS: &str =
    "experiment_id, name, variants, metric, status, winner, decision, created_at, concluded_at";

/// Which experiments a list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilter {
    Running,
    Concluded,
    #[default]
    All,
}

impl StatusFilter {
    fn status(self) -> Option<&'static str> {
        match self {
            Self::Running => Some("running"),
            Self::Concluded => Some("concluded"),
            Self::All => None,
        }
    }
}

/// A page of a client's experiments, newest first.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExperimentPage {
    pub items: Vec<ExperimentRow>,
    /// The cursor of the next page (`before`: the last experiment id of
    /// this one); `None` on the last.
    pub next_before: Option<Uuid>,
}

/// Up to `limit` of the client's experiments in `status`, newest first,
/// created before the experiment `before` (from the newest if `None`). A
/// `before` that names no experiment of the client is refused naming
/// `before`.
pub async fn list(
    pool: &sqlx::PgPool,
    client_id: Uuid,
    status: StatusFilter,
    before: Option<Uuid>,
    limit: i64,
) -> crate::Result<ExperimentPage> {
    let cursor: Option<(chrono::DateTime<chrono::Utc>, Uuid)> = match before {
        None => None,
        Some(before) => Some(
            sqlx::query_as(
                "SELECT created_at, experiment_id FROM experiments_view \
                 WHERE experiment_id = $1 AND client_id = $2",
            )
            .bind(before)
            .bind(client_id)
            .fetch_optional(pool)
            .await?
            .ok_or_else(|| {
                Problem::invalid_field(
                    "before",
                    "names no experiment of this client: pass the next_before of a previous page",
                )
            })?,
        ),
    };
    let (before_at, before_id) = cursor.unzip();
    // Without a cursor the bound is (infinity, max), above every row, so
    // that one statement (and one index range) serves every page.
    let rows: Vec<ExperimentRow> = sqlx::query_as(&format!(
        "SELECT {EXPERIMENT_COLUMNS} FROM experiments_view \
         WHERE client_id = $1 AND ($2::text IS NULL OR status = $2) \
           AND (created_at, experiment_id) < (COALESCE($3::timestamptz, 'infinity'::timestamptz), \
                COALESCE($4::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid)) \
         ORDER BY created_at DESC, experiment_id DESC LIMIT $5"
    ))
    .bind(client_id)
    .bind(status.status())
    .bind(before_at)
    .bind(before_id)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let (items, next_before) = split(rows, limit, |row| row.experiment_id);
    Ok(ExperimentPage { items, next_before })
}

/// An experiment of `client_id` with what its numbers say now, decided over
/// a look at the end of each UTC day with data and one today
/// (`decide_over_looks`); `None` if the client has no such experiment.
pub async fn results(
    pool: &sqlx::PgPool,
    client_id: Uuid,
    experiment_id: Uuid,
) -> Result<Option<(ExperimentRow, Decision)>, anyhow::Error> {
    let row: Option<ExperimentRow> = sqlx::query_as(&format!(
        "SELECT {EXPERIMENT_COLUMNS} FROM experiments_view WHERE experiment_id = $1 AND client_id = $2"
    ))
    .bind(experiment_id)
    .bind(client_id)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let variants: Vec<Variant> = serde_json::from_value(row.variants.clone())?;
    // The projection writes only metrics the domain knows; another is a
    // corrupt read model, not a reply-rate experiment.
    let metric = Metric::parse(&row.metric).ok_or_else(|| {
        anyhow::anyhow!(
            "experiment {experiment_id} has an unknown metric {:?}",
            row.metric
        )
    })?;
    let daily: Vec<(String, NaiveDate, u64, u64)> =
        variant_daily_counts(pool, client_id, experiment_id, metric)
            .await?
            .into_iter()
            .map(|(id, day, n, x)| (id, day, n.max(0) as u64, x.max(0) as u64))
            .collect();
    let looks = looks_from_daily(&variants, &daily, chrono::Utc::now().date_naive());
    Ok(Some((row, decide_over_looks(&looks))))
}

/// The variants of an experiment of `client_id`; `None` if the client has
/// no such experiment.
pub async fn variants(
    pool: &sqlx::PgPool,
    client_id: Uuid,
    experiment_id: Uuid,
) -> crate::Result<Option<Vec<Variant>>> {
    let variants: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT variants FROM experiments_view WHERE experiment_id = $1 AND client_id = $2",
    )
    .bind(experiment_id)
    .bind(client_id)
    .fetch_optional(pool)
    .await?;
    let Some(variants) = variants else {
        return Ok(None);
    };
    Ok(Some(
        serde_json::from_value(variants).map_err(anyhow::Error::from)?,
    ))
}
