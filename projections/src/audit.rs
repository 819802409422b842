//! The `audit` projection: every event of a client, as it was recorded, for
//! `GET /v1/clients/{id}/audit`: each event by reference (position, ids,
//! type, actor), its payload read from the log when asked for, never copied.
//! Events that belong to no client are not
//! listed here (the operator sees them in the event log itself).

use sextant_adapters::stream::RecordedEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::runtime::{Projection, ProjectionError};

pub struct AuditProjection;

#[async_trait::async_trait]
impl Projection for AuditProjection {
    fn name(&self) -> &'static str {
        "audit"
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
        let listed: Vec<(&RecordedEvent, Uuid)> = events
            .iter()
            .filter_map(|e| e.client_id.map(|c| (*e, c)))
            .collect();
        if listed.is_empty() {
            return Ok(());
        }
        let column = |f: fn(&RecordedEvent) -> String| -> Vec<String> {
            listed.iter().map(|(e, _)| f(e)).collect()
        };
        sqlx::query(
            "INSERT INTO audit_log (global_position, client_id, event_id, aggregate_type, aggregate_id, \
             sequence, event_type, event_version, actor, correlation_id, recorded_at) \
             SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::bigint[], \
                    $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[])",
        )
        .bind(listed.iter().map(|(e, _)| e.global_position).collect::<Vec<_>>())
        .bind(listed.iter().map(|(_, c)| *c).collect::<Vec<_>>())
        .bind(listed.iter().map(|(e, _)| e.event_id).collect::<Vec<_>>())
        .bind(column(|e| e.aggregate_type.clone()))
        .bind(column(|e| e.aggregate_id.clone()))
        .bind(listed.iter().map(|(e, _)| e.sequence).collect::<Vec<_>>())
        .bind(column(|e| e.event_type.clone()))
        .bind(column(|e| e.event_version.clone()))
        .bind(listed.iter().map(|(e, _)| e.actor()).collect::<Vec<_>>())
        .bind(listed.iter().map(|(e, _)| e.correlation_id()).collect::<Vec<_>>())
        .bind(listed.iter().map(|(e, _)| e.recorded_at).collect::<Vec<_>>())
        .execute(conn)
        .await?;
        Ok(())
    }
}
