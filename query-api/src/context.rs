//! Context reads: the document now or at a version or time, each agent's
//! view, the version list, diffs, and the approval queue.

use axum::extract::{Path, State};
use axum::http::header::{ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::FromRow;
use uuid::Uuid;

use sextant_adapters::http::{positioned, set_position, ClientScope, Problem, StrictQuery};
use sextant_domain::context::json::diff;
use sextant_domain::context::views::{agent_view, Agent};

use crate::consistency::reach;
use crate::error::ApiError;
use crate::AppState;

const PROJECTION: &str = "context";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/clients/{client_id}/context", get(current))
        .route(
            "/v1/clients/{client_id}/context/agents/{agent}",
            get(for_agent),
        )
        .route("/v1/clients/{client_id}/context/versions", get(versions))
        .route("/v1/clients/{client_id}/context/diff", get(diff_versions))
        .route("/v1/clients/{client_id}/approvals", get(approvals))
}

#[derive(Debug, Serialize, FromRow)]
struct Snapshot {
    version: i64,
    document: Value,
    updated_at: Option<DateTime<Utc>>,
}

/// The document at `version`, at time `at`, or now. Version 0 is the empty
/// document every client starts with.
async fn snapshot(
    state: &AppState,
    client_id: Uuid,
    version: Option<i64>,
    at: Option<DateTime<Utc>>,
) -> Result<Snapshot, ApiError> {
    let empty = || Snapshot {
        version: 0,
        document: json!({}),
        updated_at: None,
    };
    let found: Option<Snapshot> = match (version, at) {
        (Some(_), Some(_)) => {
            return Err(Problem::invalid_field("version", "give version or at, not both").into())
        }
        (Some(0), None) => return Ok(empty()),
        (Some(v), None) => {
            let row = sqlx::query_as(
                "SELECT version, document, created_at AS updated_at FROM context_versions \
                 WHERE client_id = $1 AND version = $2",
            )
            .bind(client_id)
            .bind(v)
            .fetch_optional(&state.pool)
            .await?;
            return row
                .ok_or_else(|| Problem::not_found(format!("version {v} does not exist")).into());
        }
        (None, Some(at)) => {
            sqlx::query_as(
                "SELECT version, document, created_at AS updated_at FROM context_versions \
                 WHERE client_id = $1 AND created_at <= $2 ORDER BY version DESC LIMIT 1",
            )
            .bind(client_id)
            .bind(at)
            .fetch_optional(&state.pool)
            .await?
        }
        (None, None) => {
            sqlx::query_as(
                "SELECT version, document, updated_at FROM context_current WHERE client_id = $1",
            )
            .bind(client_id)
            .fetch_optional(&state.pool)
            .await?
        }
    };
    Ok(found.unwrap_or_else(empty))
}

/// A JSON answer with an ETag; 304 when the caller already has it.
fn tagged(headers: &HeaderMap, etag: String, body: &Value, position: i64) -> Response {
    let matches = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if matches {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        set_position(&mut response, position);
        response
    } else {
        positioned(StatusCode::OK, body, position)
    };
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(ETAG, value);
    }
    response
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextParams {
    min_position: Option<i64>,
    version: Option<i64>,
    at: Option<DateTime<Utc>>,
}

async fn current(
    State(state): State<AppState>,
    ClientScope { client_id, .. }: ClientScope,
    headers: HeaderMap,
    StrictQuery(params): StrictQuery<ContextParams>,
) -> Result<Response, ApiError> {
    // The client is looked up in the clients read model: it must have
    // reached the position too.
    reach(&state, "clients", params.min_position).await?;
    let position = reach(&state, PROJECTION, params.min_position).await?;
    crate::consistency::known_client(&state, client_id).await?;
    let snap = snapshot(&state, client_id, params.version, params.at).await?;
    let body = json!({
        "client_id": client_id,
        "version": snap.version,
        "document": snap.document,
        "updated_at": snap.updated_at,
    });
    Ok(tagged(
        &headers,
        format!("\"{}\"", snap.version),
        &body,
        position,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentParams {
    min_position: Option<i64>,
}

async fn for_agent(
    State(state): State<AppState>,
    ClientScope { client_id, .. }: ClientScope,
    Path((_, agent)): Path<(String, String)>,
    headers: HeaderMap,
    StrictQuery(params): StrictQuery<AgentParams>,
) -> Result<Response, ApiError> {
    let agent = Agent::parse(&agent).ok_or_else(|| {
        Problem::not_found(format!(
            "unknown agent; known: {}",
            Agent::ALL.map(Agent::as_str).join(", ")
        ))
    })?;
    // The client is looked up in the clients read model: it must have
    // reached the position too.
    reach(&state, "clients", params.min_position).await?;
    let position = reach(&state, PROJECTION, params.min_position).await?;
    crate::consistency::known_client(&state, client_id).await?;
    let snap = snapshot(&state, client_id, None, None).await?;
    let body = agent_view(agent, &snap.document, snap.version.max(0) as u64);
    Ok(tagged(
        &headers,
        format!("\"{}-{}\"", snap.version, agent.as_str()),
        &body,
        position,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageParams {
    min_position: Option<i64>,
    limit: Option<i64>,
    before: Option<i64>,
}

#[derive(Debug, Serialize, FromRow)]
struct VersionRow {
    version: i64,
    created_at: DateTime<Utc>,
    source: String,
    actor: Option<String>,
    update_id: Option<Uuid>,
    via: Option<String>,
    rationale: Option<String>,
    evidence: Option<Value>,
    reason: Option<String>,
    rolled_back_to: Option<i64>,
    paths: Value,
}

async fn versions(
    State(state): State<AppState>,
    ClientScope { client_id, .. }: ClientScope,
    StrictQuery(params): StrictQuery<PageParams>,
) -> Result<Response, ApiError> {
    let limit = crate::clients::page_size(params.limit)?;
    // The client is looked up in the clients read model: it must have
    // reached the position too.
    reach(&state, "clients", params.min_position).await?;
    let position = reach(&state, PROJECTION, params.min_position).await?;
    crate::consistency::known_client(&state, client_id).await?;
    let rows: Vec<VersionRow> = sqlx::query_as(
        "SELECT version, created_at, source, actor, update_id, via, rationale, evidence, reason, \
         rolled_back_to, paths FROM context_versions WHERE client_id = $1 AND version < $2 \
         ORDER BY version DESC LIMIT $3",
    )
    .bind(client_id)
    .bind(params.before.unwrap_or(i64::MAX))
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await?;
    let more = rows.len() as i64 > limit;
    let items: Vec<&VersionRow> = rows.iter().take(limit as usize).collect();
    let next = more.then(|| items.last().map(|r| r.version)).flatten();
    Ok(positioned(
        StatusCode::OK,
        &json!({ "items": items, "next_before": next }),
        position,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiffParams {
    min_position: Option<i64>,
    from: i64,
    to: i64,
}

async fn diff_versions(
    State(state): State<AppState>,
    ClientScope { client_id, .. }: ClientScope,
    StrictQuery(params): StrictQuery<DiffParams>,
) -> Result<Response, ApiError> {
    for (field, version) in [("from", params.from), ("to", params.to)] {
        if version < 0 {
            return Err(Problem::invalid_field(field, "versions are 0 or more").into());
        }
    }
    // The client is looked up in the clients read model: it must have
    // reached the position too.
    reach(&state, "clients", params.min_position).await?;
    let position = reach(&state, PROJECTION, params.min_position).await?;
    crate::consistency::known_client(&state, client_id).await?;
    let from = snapshot(&state, client_id, Some(params.from), None).await?;
    let to = snapshot(&state, client_id, Some(params.to), None).await?;
    let changes = diff(&from.document, &to.document);
    Ok(positioned(
        StatusCode::OK,
        &json!({ "from": params.from, "to": params.to, "changes": changes }),
        position,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalParams {
    min_position: Option<i64>,
    status: Option<String>,
    limit: Option<i64>,
}

#[derive(Debug, Serialize, FromRow)]
struct UpdateRow {
    update_id: Uuid,
    source: String,
    status: String,
    route: String,
    patch: Value,
    modified_patch: Option<Value>,
    paths: Value,
    base_version: i64,
    rationale: String,
    evidence: Value,
    confidence: Option<f64>,
    proposed_by: Option<String>,
    proposed_at: DateTime<Utc>,
    age_seconds: f64,
    decided_by: Option<String>,
    decided_at: Option<DateTime<Utc>>,
    note: Option<String>,
    reason: Option<String>,
    superseded_by: Option<Uuid>,
    version: Option<i64>,
    via: Option<String>,
}

async fn approvals(
    State(state): State<AppState>,
    ClientScope { client_id, .. }: ClientScope,
    StrictQuery(params): StrictQuery<ApprovalParams>,
) -> Result<Response, ApiError> {
    let limit = crate::clients::page_size(params.limit)?;
    // `auto_applied`: what autopilot applied unreviewed, for review after
    // the fact.
    let (status, via) = match params.status.as_deref().unwrap_or("pending") {
        s @ ("pending" | "applied" | "rejected" | "superseded") => (Some(s.to_owned()), None),
        "auto_applied" => (Some("applied".to_owned()), Some("autopilot")),
        "all" => (None, None),
        other => {
            return Err(Problem::invalid_field(
                "status",
                format!(
                "{other:?} is not one of pending, applied, auto_applied, rejected, superseded, all"
            ),
            )
            .into())
        }
    };
    // The client is looked up in the clients read model: it must have
    // reached the position too.
    reach(&state, "clients", params.min_position).await?;
    let position = reach(&state, PROJECTION, params.min_position).await?;
    crate::consistency::known_client(&state, client_id).await?;
    let rows: Vec<UpdateRow> = sqlx::query_as(
        "SELECT update_id, source, status, route, patch, modified_patch, paths, base_version, rationale, \
         evidence, confidence, proposed_by, proposed_at, \
         EXTRACT(EPOCH FROM (now() - proposed_at))::float8 AS age_seconds, decided_by, decided_at, note, \
         reason, superseded_by, version, via FROM context_updates \
         WHERE client_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR via = $3) \
         ORDER BY proposed_at, update_id LIMIT $4",
    )
    .bind(client_id)
    .bind(status)
    .bind(via)
    .bind(limit)
    .fetch_all(&state.pool)
    .await?;
    Ok(positioned(
        StatusCode::OK,
        &json!({ "items": rows }),
        position,
    ))
}
