//! The `report_deliveries` projection: every published client-week with
//! its summary and its delivery as far as it went (`published`, `failing`
//! after a failed attempt, `delivered`), into `report_deliveries_view`.

use sextant_adapters::stream::RecordedEvent;
use sextant_domain::aggregate_types;
use sextant_domain::report::ReportEvent;
use sqlx::PgConnection;

use crate::runtime::{Projection, ProjectionError, ProjectionName};

pub struct ReportDeliveriesProjection;

fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[async_trait::async_trait]
impl Projection for ReportDeliveriesProjection {
    fn name(&self) -> &'static str {
        ProjectionName::ReportDeliveries.as_str()
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[aggregate_types::REPORT])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["report_deliveries_view"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        match event.payload.parse::<ReportEvent>()? {
            ReportEvent::ReportPublished {
                report_id,
                client_id,
                week,
                starts_on,
                ends_on,
                published_at,
                summary,
            } => {
                sqlx::query(
                    "INSERT INTO report_deliveries_view (report_id, client_id, week, starts_on, \
                     ends_on, published_at, published_position, summary, status, position) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'published', $7) \
                     ON CONFLICT (report_id) DO NOTHING",
                )
                .bind(report_id)
                .bind(client_id)
                .bind(week)
                .bind(starts_on)
                .bind(ends_on)
                .bind(published_at)
                .bind(event.global_position)
                .bind(summary)
                .execute(conn)
                .await?;
            }
            ReportEvent::ReportDeliveryFailed {
                report_id,
                attempt,
                recipients,
                error,
                failed_at,
            } => {
                sqlx::query(
                    "UPDATE report_deliveries_view SET status = 'failing', attempts = $2, \
                     recipients = $3, last_error = $4, last_failed_at = $5, position = $6 \
                     WHERE report_id = $1",
                )
                .bind(report_id)
                .bind(int(attempt))
                .bind(int(recipients))
                .bind(error)
                .bind(failed_at)
                .bind(event.global_position)
                .execute(conn)
                .await?;
            }
            ReportEvent::ReportDelivered {
                report_id,
                attempt,
                recipients,
                delivered_at,
            } => {
                sqlx::query(
                    "UPDATE report_deliveries_view SET status = 'delivered', attempts = $2, \
                     recipients = $3, delivered_at = $4, position = $5 WHERE report_id = $1",
                )
                .bind(report_id)
                .bind(int(attempt))
                .bind(int(recipients))
                .bind(delivered_at)
                .bind(event.global_position)
                .execute(conn)
                .await?;
            }
        }
        Ok(())
    }
}
