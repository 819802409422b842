//! Context reads: the document now or at a version or time, the version
//! list, the approval queue (of a client or of every client) and one
//! update. Documents and patches are served with the
//! values of document insights in place of their references
//! ([`crate::insights`]); an erased value is left out.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use sextant_adapters::http::Problem;
use sextant_domain::context::{AppliedVia, UpdateStatus};

use super::paging::split;
use crate::{insights, Result};

/// The document at one version.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Snapshot {
    pub version: i64,
    pub document: Value,
    /// When that version was made; `None` for version 0.
    pub updated_at: Option<DateTime<Utc>>,
}

impl Snapshot {
    /// Version 0: the empty document every client starts with.
    fn empty() -> Self {
        Self {
            version: 0,
            document: json!({}),
            updated_at: None,
        }
    }
}

/// Which version of the document a snapshot is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// The latest.
    Now,
    /// This version; 404 if the client has no such version.
    Version(i64),
    /// The latest made at or before this time.
    Time(DateTime<Utc>),
}

/// The client's document at `at`; version 0 before the client's first
/// version.
pub async fn snapshot(pool: &PgPool, client_id: Uuid, at: At) -> Result<Snapshot> {
    let mut snapshot = stored_snapshot(pool, client_id, at).await?;
    snapshot.document = insights::resolve(pool, client_id, &snapshot.document).await?;
    Ok(snapshot)
}

/// The document as the read model holds it, by reference.
async fn stored_snapshot(pool: &PgPool, client_id: Uuid, at: At) -> Result<Snapshot> {
    let found: Option<Snapshot> = match at {
        At::Version(0) => return Ok(Snapshot::empty()),
        At::Version(v) => {
            let row = sqlx::query_as(
                "SELECT version, document, created_at AS updated_at FROM context_versions \
                 WHERE client_id = $1 AND version = $2",
            )
            .bind(client_id)
            .bind(v)
            .fetch_optional(pool)
            .await?;
            return row
                .ok_or_else(|| Problem::not_found(format!("version {v} does not exist")).into());
        }
        At::Time(at) => {
            sqlx::query_as(
                "SELECT version, document, created_at AS updated_at FROM context_versions \
                 WHERE client_id = $1 AND created_at <= $2 ORDER BY version DESC LIMIT 1",
            )
            .bind(client_id)
            .bind(at)
            .fetch_optional(pool)
            .await?
        }
        At::Now => {
            sqlx::query_as(
                "SELECT version, document, updated_at FROM context_current WHERE client_id = $1",
            )
            .bind(client_id)
            .fetch_optional(pool)
            .await?
        }
    };
    Ok(found.unwrap_or_else(Snapshot::empty))
}

/// One version of the document: what made it and which paths it touched.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct VersionRow {
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub source: String,
    pub actor: Option<String>,
    pub update_id: Option<Uuid>,
    pub via: Option<String>,
    pub rationale: Option<String>,
    pub evidence: Option<Value>,
    pub reason: Option<String>,
    pub rolled_back_to: Option<i64>,
    pub paths: Value,
}

/// A page of the version list, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct VersionPage {
    pub items: Vec<VersionRow>,
    /// The cursor of the next page; `None` on the last.
    pub next_before: Option<i64>,
}

/// Up to `limit` of the client's versions below `before` (from the newest
/// if `None`).
pub async fn versions(
    pool: &PgPool,
    client_id: Uuid,
    before: Option<i64>,
    limit: i64,
) -> Result<VersionPage> {
    let mut items: Vec<VersionRow> = sqlx::query_as(
        "SELECT version, created_at, source, actor, update_id, via, rationale, evidence, reason, \
         rolled_back_to, paths FROM context_versions WHERE client_id = $1 AND version < $2 \
         ORDER BY version DESC LIMIT $3",
    )
    .bind(client_id)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_before = more.then(|| items.last().map(|r| r.version)).flatten();
    Ok(VersionPage { items, next_before })
}

/// A context update and where its review stands.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct UpdateRow {
    pub update_id: Uuid,
    /// The client it was proposed for: the operator's queue spans clients.
    pub client_id: Uuid,
    pub source: String,
    pub status: String,
    pub route: String,
    pub patch: Value,
    pub modified_patch: Option<Value>,
    pub paths: Value,
    pub base_version: i64,
    pub rationale: String,
    pub evidence: Value,
    pub confidence: Option<f64>,
    pub proposed_by: Option<String>,
    pub proposed_at: DateTime<Utc>,
    pub age_seconds: f64,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub note: Option<String>,
    /// Why it was rejected or withdrawn.
    pub reason: Option<String>,
    pub superseded_by: Option<Uuid>,
    /// What showed that its evidence no longer held, once withdrawn.
    pub withdrawal_evidence: Option<Value>,
    pub version: Option<i64>,
    pub via: Option<String>,
}

/// The columns of an [`UpdateRow`], from `context_updates`.
const UPDATE_COLUMNS: &str = "update_id, client_id, source, status, route, patch, modified_patch, \
     paths, base_version, rationale, evidence, confidence, proposed_by, proposed_at, \
     EXTRACT(EPOCH FROM (now() - proposed_at))::float8 AS age_seconds, decided_by, decided_at, note, \
     reason, superseded_by, withdrawal_evidence, version, via";

/// The approval queue: updates as listed for review, oldest proposal first.
#[derive(Debug, Clone, Serialize)]
pub struct Approvals {
    pub items: Vec<UpdateRow>,
    /// The cursor of the next page (`after`: the last update id of this
    /// one); `None` on the last.
    pub next_after: Option<Uuid>,
}

/// Up to `limit` updates of one client or (`None`) of every client, oldest
/// proposal first, after the update `after` (from the first if `None`);
/// only those in `status` and only those applied `via`, when given. An
/// `after` that names no update (of the client, when one is given) is
/// refused naming `after`.
pub async fn approvals(
    pool: &PgPool,
    client_id: Option<Uuid>,
    status: Option<UpdateStatus>,
    via: Option<AppliedVia>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Approvals> {
    let cursor: Option<(DateTime<Utc>, Uuid)> = match after {
        None => None,
        Some(after) => Some(
            sqlx::query_as(
                "SELECT proposed_at, update_id FROM context_updates \
                 WHERE update_id = $1 AND ($2::uuid IS NULL OR client_id = $2)",
            )
            .bind(after)
            .bind(client_id)
            .fetch_optional(pool)
            .await?
            .ok_or_else(|| {
                Problem::invalid_field(
                    "after",
                    "names no update of this list: pass the next_after of a previous page",
                )
            })?,
        ),
    };
    let (after_at, after_id) = cursor.unzip();
    // Without a cursor the bound is (-infinity, nil), below every row, so
    // that one statement (and one index range) serves every page.
    let rows: Vec<UpdateRow> = sqlx::query_as(&format!(
        "SELECT {UPDATE_COLUMNS} FROM context_updates \
         WHERE ($1::uuid IS NULL OR client_id = $1) AND ($2::text IS NULL OR status = $2) \
           AND ($3::text IS NULL OR via = $3) \
           AND (proposed_at, update_id) > (COALESCE($4::timestamptz, '-infinity'::timestamptz), \
                                           COALESCE($5::uuid, '00000000-0000-0000-0000-000000000000'::uuid)) \
         ORDER BY proposed_at, update_id LIMIT $6"
    ))
    .bind(client_id)
    .bind(status.map(UpdateStatus::as_str))
    .bind(via.map(AppliedVia::as_str))
    .bind(after_at)
    .bind(after_id)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let (mut items, next_after) = split(rows, limit, |row| row.update_id);
    resolve_patches(pool, &mut items).await?;
    Ok(Approvals { items, next_after })
}

/// One update of the client, as the approval queue lists it; `None` if the
/// client has no such update.
pub async fn update(pool: &PgPool, client_id: Uuid, update_id: Uuid) -> Result<Option<UpdateRow>> {
    let row: Option<UpdateRow> = sqlx::query_as(&format!(
        "SELECT {UPDATE_COLUMNS} FROM context_updates WHERE update_id = $1 AND client_id = $2"
    ))
    .bind(update_id)
    .bind(client_id)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut items = vec![row];
    resolve_patches(pool, &mut items).await?;
    Ok(items.pop())
}

/// The patches of `items` with their insights' values in place, one query
/// per client.
async fn resolve_patches(pool: &PgPool, items: &mut [UpdateRow]) -> Result<()> {
    let mut clients: Vec<Uuid> = items.iter().map(|row| row.client_id).collect();
    clients.sort_unstable();
    clients.dedup();
    for client_id in clients {
        let patches: Vec<&mut Value> = items
            .iter_mut()
            .filter(|row| row.client_id == client_id)
            .flat_map(|row| std::iter::once(&mut row.patch).chain(row.modified_patch.as_mut()))
            .collect();
        insights::resolve_all(pool, client_id, patches).await?;
    }
    Ok(())
}
