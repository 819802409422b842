//! The `alerts` projection: every alert (one episode of a client's
//! condition) with its status, evidence, resolution and acknowledgement,
//! into `alerts_view`.

use sextant_adapters::stream::RecordedEvent;
use sextant_domain::aggregate_types;
use sextant_domain::alert::AlertEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::runtime::{Projection, ProjectionError, ProjectionName};

pub struct AlertsProjection;

#[async_trait::async_trait]
impl Projection for AlertsProjection {
    fn name(&self) -> &'static str {
        ProjectionName::Alerts.as_str()
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[aggregate_types::ALERT])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["alerts_view"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let condition_id = Uuid::parse_str(&event.aggregate_id)
            .map_err(|e| ProjectionError::Malformed(format!("alert id: {e}")))?;
        match event.payload.parse::<AlertEvent>()? {
            AlertEvent::AlertRaised {
                alert_id,
                client_id,
                condition,
                subject,
                key,
                episode,
                evidence,
            } => {
                sqlx::query(
                    "INSERT INTO alerts_view (alert_id, client_id, condition_id, condition, condition_key, \
                     subject, episode, status, evidence, raised_at, raised_position, position) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $9, $10, $10)",
                )
                .bind(alert_id)
                .bind(client_id)
                .bind(condition_id)
                .bind(condition.as_str())
                .bind(key)
                .bind(subject)
                .bind(i32::try_from(episode).unwrap_or(i32::MAX))
                .bind(evidence)
                .bind(event.recorded_at)
                .bind(event.global_position)
                .execute(conn)
                .await?;
            }
            AlertEvent::AlertResolved {
                alert_id, evidence, ..
            } => {
                sqlx::query(
                    "UPDATE alerts_view SET status = 'resolved', resolved_at = $2, resolution_evidence = $3, \
                     position = $4 WHERE alert_id = $1",
                )
                .bind(alert_id)
                .bind(event.recorded_at)
                .bind(evidence)
                .bind(event.global_position)
                .execute(conn)
                .await?;
            }
            AlertEvent::AlertAcknowledged { alert_id, by, note } => {
                sqlx::query(
                    "UPDATE alerts_view SET acknowledged_at = $2, acknowledged_by = $3, acknowledgement = $4, \
                     position = $5 WHERE alert_id = $1",
                )
                .bind(alert_id)
                .bind(event.recorded_at)
                .bind(by)
                .bind(note)
                .bind(event.global_position)
                .execute(conn)
                .await?;
            }
        }
        Ok(())
    }
}
