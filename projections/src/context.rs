//! The `context` projection: the current document of every client, every
//! version (for `?version=`, `?at=`, diffs and the version list), every
//! update (the approval queue) and the captured documents.
//!
//! Documents and patches are kept as the events carry them: the values of a
//! document's insights as references (`"$insight:<id>"`), which readers
//! resolve (`sextant_application::insights`). Erasing a value therefore
//! changes no row here, and a replay rebuilds exactly what is live.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sextant_adapters::stream::RecordedEvent;
use sextant_domain::aggregate_types;
use sextant_domain::context::{
    json, AppliedVia, ContextEvent, DocumentSource, Route, Source, UpdateStatus,
};
use sextant_domain::values::{Confidence, DocumentKey, Note, Rationale, Reason, Title};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::runtime::{Projection, ProjectionError, ProjectionName};

pub struct ContextProjection;

#[async_trait::async_trait]
impl Projection for ContextProjection {
    fn name(&self) -> &'static str {
        ProjectionName::Context.as_str()
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[aggregate_types::CLIENT_CONTEXT])
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "context_current",
            "context_versions",
            "context_updates",
            "context_documents",
        ]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let row = Row {
            client_id: Uuid::parse_str(&event.aggregate_id)
                .map_err(|e| ProjectionError::Malformed(format!("client id: {e}")))?,
            at: event.recorded_at,
            position: event.global_position,
            actor: event.actor(),
        };
        match event.payload.parse::<ContextEvent>()? {
            ContextEvent::UpdateProposed {
                update_id,
                source,
                patch,
                base_version,
                rationale,
                evidence,
                confidence,
                paths,
                route,
            } => {
                update_proposed(
                    conn,
                    &row,
                    update_id,
                    source,
                    &patch,
                    base_version,
                    &rationale,
                    &evidence,
                    confidence,
                    &paths,
                    route,
                )
                .await
            }
            ContextEvent::UpdateApproved { update_id, note } => {
                update_approved(conn, &row, update_id, note.as_ref()).await
            }
            ContextEvent::UpdateModified {
                update_id,
                patch,
                note,
                ..
            } => update_modified(conn, &row, update_id, &patch, note.as_ref()).await,
            ContextEvent::UpdateRejected { update_id, reason } => {
                update_rejected(conn, &row, update_id, &reason).await
            }
            ContextEvent::UpdateSuperseded { update_id, by } => {
                update_superseded(conn, &row, update_id, by).await
            }
            ContextEvent::UpdateWithdrawn {
                update_id,
                reason,
                evidence,
            } => update_withdrawn(conn, &row, update_id, &reason, &evidence).await,
            ContextEvent::UpdateApplied {
                update_id,
                version,
                patch,
                via,
                ..
            } => update_applied(conn, &row, update_id, version, &patch, via).await,
            ContextEvent::RolledBack {
                to_version,
                version,
                patch,
                reason,
                ..
            } => rolled_back(conn, &row, to_version, version, &patch, &reason).await,
            ContextEvent::DocumentCaptured {
                key,
                title,
                source,
                content_hash,
                captured_at,
                extractor,
                ..
            } => {
                document_captured(
                    conn,
                    &row,
                    &key,
                    &title,
                    source,
                    content_hash,
                    captured_at,
                    extractor,
                )
                .await
            }
        }
    }
}

/// The client an event belongs to, when it was recorded, its position and
/// who caused it.
struct Row {
    client_id: Uuid,
    at: DateTime<Utc>,
    position: i64,
    actor: Option<String>,
}

#[allow(clippy::too_many_arguments)]
async fn update_proposed(
    conn: &mut PgConnection,
    row: &Row,
    update_id: Uuid,
    source: Source,
    patch: &Value,
    base_version: u64,
    rationale: &Rationale,
    evidence: &Value,
    confidence: Option<Confidence>,
    paths: &[String],
    route: Route,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO context_updates (update_id, client_id, source, status, route, patch, paths, \
         base_version, rationale, evidence, confidence, proposed_by, proposed_at, position) \
         VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(update_id)
    .bind(row.client_id)
    .bind(source.as_str())
    .bind(
        serde_json::to_value(route)?
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
    .bind(patch)
    .bind(serde_json::to_value(paths)?)
    .bind(base_version as i64)
    .bind(rationale.as_str())
    .bind(evidence)
    .bind(confidence.map(|c| c.value()))
    .bind(&row.actor)
    .bind(row.at)
    .bind(row.position)
    .execute(conn)
    .await?;
    Ok(())
}

async fn update_approved(
    conn: &mut PgConnection,
    row: &Row,
    update_id: Uuid,
    note: Option<&Note>,
) -> Result<(), ProjectionError> {
    decide(conn, row, update_id, note.map(|n| n.as_str()), None).await?;
    Ok(())
}

async fn update_modified(
    conn: &mut PgConnection,
    row: &Row,
    update_id: Uuid,
    patch: &Value,
    note: Option<&Note>,
) -> Result<(), ProjectionError> {
    decide(conn, row, update_id, note.map(|n| n.as_str()), None).await?;
    sqlx::query("UPDATE context_updates SET modified_patch = $2 WHERE update_id = $1")
        .bind(update_id)
        .bind(patch)
        .execute(conn)
        .await?;
    Ok(())
}

async fn update_rejected(
    conn: &mut PgConnection,
    row: &Row,
    update_id: Uuid,
    reason: &Reason,
) -> Result<(), ProjectionError> {
    decide(conn, row, update_id, None, Some(reason.as_str())).await?;
    set_status(conn, update_id, UpdateStatus::Rejected, row.position).await?;
    Ok(())
}

async fn update_superseded(
    conn: &mut PgConnection,
    row: &Row,
    update_id: Uuid,
    by: Uuid,
) -> Result<(), ProjectionError> {
    set_status(conn, update_id, UpdateStatus::Superseded, row.position).await?;
    sqlx::query("UPDATE context_updates SET superseded_by = $2 WHERE update_id = $1")
        .bind(update_id)
        .bind(by)
        .execute(conn)
        .await?;
    Ok(())
}

/// Withdrawn by Sextant: recorded like a decision (who, when, the reason in
/// `reason`), with the evidence that withdrew it.
async fn update_withdrawn(
    conn: &mut PgConnection,
    row: &Row,
    update_id: Uuid,
    reason: &Reason,
    evidence: &Value,
) -> Result<(), ProjectionError> {
    decide(conn, row, update_id, None, Some(reason.as_str())).await?;
    set_status(conn, update_id, UpdateStatus::Withdrawn, row.position).await?;
    sqlx::query("UPDATE context_updates SET withdrawal_evidence = $2 WHERE update_id = $1")
        .bind(update_id)
        .bind(evidence)
        .execute(conn)
        .await?;
    Ok(())
}

/// The update's row takes its version, and the document its next version
/// with the update's source, rationale and evidence.
async fn update_applied(
    conn: &mut PgConnection,
    row: &Row,
    update_id: Uuid,
    version: u64,
    patch: &Value,
    via: AppliedVia,
) -> Result<(), ProjectionError> {
    let via = serde_json::to_value(via)?
        .as_str()
        .unwrap_or_default()
        .to_owned();
    set_status(conn, update_id, UpdateStatus::Applied, row.position).await?;
    sqlx::query("UPDATE context_updates SET version = $2, via = $3 WHERE update_id = $1")
        .bind(update_id)
        .bind(version as i64)
        .bind(&via)
        .execute(&mut *conn)
        .await?;
    let (source, rationale, evidence): (String, String, Value) = sqlx::query_as(
        "SELECT source, rationale, evidence FROM context_updates WHERE update_id = $1",
    )
    .bind(update_id)
    .fetch_one(&mut *conn)
    .await?;
    let document = next_document(conn, row.client_id, patch).await?;
    record_version(
        conn,
        NewVersion {
            client_id: row.client_id,
            version,
            document: &document,
            source: &source,
            actor: &row.actor,
            update_id: Some(update_id),
            via: Some(&via),
            rationale: Some(&rationale),
            evidence: Some(&evidence),
            reason: None,
            rolled_back_to: None,
            paths: json::touched_paths(patch),
            at: row.at,
            position: row.position,
        },
    )
    .await
}

async fn rolled_back(
    conn: &mut PgConnection,
    row: &Row,
    to_version: u64,
    version: u64,
    patch: &Value,
    reason: &Reason,
) -> Result<(), ProjectionError> {
    let document = next_document(conn, row.client_id, patch).await?;
    record_version(
        conn,
        NewVersion {
            client_id: row.client_id,
            version,
            document: &document,
            source: "rollback",
            actor: &row.actor,
            update_id: None,
            via: None,
            rationale: None,
            evidence: None,
            reason: Some(reason.as_str()),
            rolled_back_to: Some(to_version),
            paths: json::touched_paths(patch),
            at: row.at,
            position: row.position,
        },
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn document_captured(
    conn: &mut PgConnection,
    row: &Row,
    key: &DocumentKey,
    title: &Title,
    source: DocumentSource,
    content_hash: String,
    captured_at: DateTime<Utc>,
    extractor: Option<String>,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO context_documents (client_id, key, content_hash, title, source, captured_at, \
         recorded_at, extractor, captures) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1) \
         ON CONFLICT (client_id, key) DO UPDATE SET content_hash = EXCLUDED.content_hash, \
         title = EXCLUDED.title, source = EXCLUDED.source, captured_at = EXCLUDED.captured_at, \
         recorded_at = EXCLUDED.recorded_at, extractor = EXCLUDED.extractor, \
         captures = context_documents.captures + 1",
    )
    .bind(row.client_id)
    .bind(key.as_str())
    .bind(content_hash)
    .bind(title.as_str())
    .bind(
        serde_json::to_value(source)?
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
    .bind(captured_at)
    .bind(row.at)
    .bind(extractor)
    .execute(conn)
    .await?;
    Ok(())
}

async fn decide(
    conn: &mut PgConnection,
    row: &Row,
    update_id: Uuid,
    note: Option<&str>,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE context_updates SET decided_by = $2, decided_at = $3, note = COALESCE($4, note), \
         reason = COALESCE($5, reason), position = $6 WHERE update_id = $1",
    )
    .bind(update_id)
    .bind(&row.actor)
    .bind(row.at)
    .bind(note)
    .bind(reason)
    .bind(row.position)
    .execute(conn)
    .await?;
    Ok(())
}

async fn set_status(
    conn: &mut PgConnection,
    update_id: Uuid,
    status: UpdateStatus,
    position: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE context_updates SET status = $2, position = $3 WHERE update_id = $1")
        .bind(update_id)
        .bind(status.as_str())
        .bind(position)
        .execute(conn)
        .await?;
    Ok(())
}

/// The current document with `patch` applied.
async fn next_document(
    conn: &mut PgConnection,
    client_id: Uuid,
    patch: &Value,
) -> Result<Value, sqlx::Error> {
    let current: Option<Value> =
        sqlx::query_scalar("SELECT document FROM context_current WHERE client_id = $1")
            .bind(client_id)
            .fetch_optional(conn)
            .await?;
    let mut document = current.unwrap_or_else(|| serde_json::json!({}));
    json::merge_patch(&mut document, patch);
    Ok(document)
}

struct NewVersion<'a> {
    client_id: Uuid,
    version: u64,
    document: &'a Value,
    source: &'a str,
    actor: &'a Option<String>,
    update_id: Option<Uuid>,
    via: Option<&'a str>,
    rationale: Option<&'a str>,
    evidence: Option<&'a Value>,
    reason: Option<&'a str>,
    rolled_back_to: Option<u64>,
    paths: Vec<String>,
    at: DateTime<Utc>,
    position: i64,
}

async fn record_version(conn: &mut PgConnection, v: NewVersion<'_>) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO context_versions (client_id, version, document, source, actor, update_id, via, \
         rationale, evidence, reason, rolled_back_to, paths, created_at, position) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(v.client_id)
    .bind(v.version as i64)
    .bind(v.document)
    .bind(v.source)
    .bind(v.actor)
    .bind(v.update_id)
    .bind(v.via)
    .bind(v.rationale)
    .bind(v.evidence)
    .bind(v.reason)
    .bind(v.rolled_back_to.map(|n| n as i64))
    .bind(serde_json::to_value(&v.paths)?)
    .bind(v.at)
    .bind(v.position)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO context_current (client_id, version, document, updated_at, position) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (client_id) DO UPDATE SET version = EXCLUDED.version, \
         document = EXCLUDED.document, updated_at = EXCLUDED.updated_at, position = EXCLUDED.position",
    )
    .bind(v.client_id)
    .bind(v.version as i64)
    .bind(v.document)
    .bind(v.at)
    .bind(v.position)
    .execute(conn)
    .await?;
    Ok(())
}
