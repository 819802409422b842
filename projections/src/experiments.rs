//! The `experiments` projection: each experiment's definition and status.

use sextant_adapters::stream::RecordedEvent;
use sextant_domain::aggregate_types;
use sextant_domain::experiment::ExperimentEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::runtime::{Projection, ProjectionError};

pub struct ExperimentsProjection;

#[async_trait::async_trait]
impl Projection for ExperimentsProjection {
    fn name(&self) -> &'static str {
        "experiments"
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[aggregate_types::EXPERIMENT])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["experiments_view"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let experiment_id = Uuid::parse_str(&event.aggregate_id)
            .map_err(|e| ProjectionError::Malformed(format!("experiment id: {e}")))?;
        match event.payload.parse::<ExperimentEvent>()? {
            ExperimentEvent::ExperimentCreated {
                client_id,
                name,
                variants,
                metric,
                ..
            } => {
                sqlx::query(
                    "INSERT INTO experiments_view (experiment_id, client_id, name, variants, metric, status, \
                     created_at, position) VALUES ($1, $2, $3, $4, $5, 'running', $6, $7)",
                )
                .bind(experiment_id)
                .bind(client_id)
                .bind(name)
                .bind(serde_json::to_value(&variants)?)
                .bind(metric.as_str())
                .bind(event.recorded_at)
                .bind(event.global_position)
                .execute(conn)
                .await?;
            }
            ExperimentEvent::ExperimentConcluded { winner, decision } => {
                sqlx::query(
                    "UPDATE experiments_view SET status = 'concluded', winner = $2, decision = $3, \
                     concluded_at = $4, position = $5 WHERE experiment_id = $1",
                )
                .bind(experiment_id)
                .bind(winner)
                .bind(decision)
                .bind(event.recorded_at)
                .bind(event.global_position)
                .execute(conn)
                .await?;
            }
        }
        Ok(())
    }
}

/// Each variant's sends and events (by the experiment's metric), from the
/// sends read model. Positive replies are the intents
/// `ReplyIntent::is_positive` names.
pub async fn variant_counts(
    pool: &sqlx::PgPool,
    client_id: Uuid,
    experiment_id: Uuid,
    metric: sextant_domain::learning::Metric,
) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
    use sextant_domain::learning::Metric;
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
) -> Result<Option<(ExperimentRow, sextant_domain::experiment::Decision)>, anyhow::Error> {
    use sextant_domain::experiment::{decide, Variant};
    use sextant_domain::learning::Metric;
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
    let metric = Metric::parse(&row.metric).unwrap_or(Metric::Reply);
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
