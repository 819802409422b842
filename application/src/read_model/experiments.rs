//! An experiment with what its numbers say now: the experiments read model
//! and each variant's counts from the sends read model, judged by the
//! domain's decision rule. Both services answer from it: the query API shows
//! it, the command API concludes on it.

use uuid::Uuid;

use sextant_domain::experiment::{decide, Decision, Variant};
use sextant_domain::learning::Metric;

/// Each variant's sends and events (by the experiment's metric), from the
/// sends read model. Positive replies are the intents
/// `ReplyIntent::is_positive` names.
pub async fn variant_counts(
    pool: &sqlx::PgPool,
    client_id: Uuid,
    experiment_id: Uuid,
    metric: Metric,
) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
    let event = match metric {
        Metric::Reply => "o.kind = 'replied'",
        Metric::PositiveReply => {
            "o.kind = 'replied' AND o.intent IN ('interested', 'meeting_request', 'question')"
        }
        Metric::Meeting => "o.kind = 'meeting_booked'",
    };
    // `event` is one of three constants above, never input.
    sqlx::query_as(&format!(
        "SELECT s.variant, count(DISTINCT s.send_id), count(DISTINCT o.send_id) FILTER (WHERE {event}) \
         FROM sends_view s LEFT JOIN send_outcomes o ON o.send_id = s.send_id \
         WHERE s.client_id = $1 AND s.experiment_id = $2 AND s.variant IS NOT NULL GROUP BY s.variant"
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

/// An experiment of `client_id` with what its numbers say now; `None` if
/// the client has no such experiment.
pub async fn results(
    pool: &sqlx::PgPool,
    client_id: Uuid,
    experiment_id: Uuid,
) -> Result<Option<(ExperimentRow, Decision)>, anyhow::Error> {
    let row: Option<ExperimentRow> = sqlx::query_as(
        "SELECT experiment_id, name, variants, metric, status, winner, decision, created_at, concluded_at \
         FROM experiments_view WHERE experiment_id = $1 AND client_id = $2",
    )
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
    let counts = variant_counts(pool, client_id, experiment_id, metric).await?;
    let observed: Vec<(Variant, u64, u64)> = variants
        .into_iter()
        .map(|v| {
            let (n, x) = counts
                .iter()
                .find(|(id, ..)| id == &v.id)
                .map(|(_, n, x)| (*n as u64, *x as u64))
                .unwrap_or((0, 0));
            (v, n, x)
        })
        .collect();
    Ok(Some((row, decide(&observed))))
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
