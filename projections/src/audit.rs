//! The `audit` projection: every event of a client, as it was recorded, for
//! `GET /v1/clients/{id}/audit`: each event by reference (the client and the
//! position), everything else read from the log when asked for, never
//! copied (migration 0014).
//! Events that belong to no client are not
//! listed here (the operator sees them in the event log itself).

use sextant_adapters::stream::RecordedEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::runtime::{Projection, ProjectionError, ProjectionName};

pub struct AuditProjection;

#[async_trait::async_trait]
impl Projection for AuditProjection {
    fn name(&self) -> &'static str {
        ProjectionName::Audit.as_str()
    }

    fn tables(&self) -> &'static [&'static str] {
        &["audit_log"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        self.apply_many(conn, &[event]).await
    }

    /// One statement per batch: the log is the busiest thing we project.
    async fn apply_many(
        &self,
        conn: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let (clients, positions): (Vec<Uuid>, Vec<i64>) = events
            .iter()
            .filter_map(|e| e.client_id.map(|c| (c, e.global_position)))
            .unzip();
        if clients.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO audit_log (client_id, global_position) \
             SELECT * FROM UNNEST($1::uuid[], $2::bigint[])",
        )
        .bind(&clients)
        .bind(&positions)
        .execute(conn)
        .await?;
        Ok(())
    }
}
