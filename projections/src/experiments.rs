//! The `experiments` projection: each experiment's definition and status.

use sextant_adapters::stream::RecordedEvent;
use sextant_domain::aggregate_types;
use sextant_domain::experiment::ExperimentEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::runtime::{Projection, ProjectionError, ProjectionName};

pub struct ExperimentsProjection;

#[async_trait::async_trait]
impl Projection for ExperimentsProjection {
    fn name(&self) -> &'static str {
        ProjectionName::Experiments.as_str()
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
                .bind(decision.as_str())
                .bind(event.recorded_at)
                .bind(event.global_position)
                .execute(conn)
                .await?;
            }
        }
        Ok(())
    }
}
