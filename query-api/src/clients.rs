//! Client reads: the operator's list, one client's detail, its audit trail.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::FromRow;
use uuid::Uuid;

use sextant_adapters::http::{positioned, Auth, ClientScope, Problem, StrictQuery};

use crate::consistency::reach;
use crate::error::ApiError;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/clients", get(list))
        .route("/v1/clients/{client_id}", get(detail))
        .route("/v1/clients/{client_id}/audit", get(audit))
}

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 500;

/// The page size asked for (default 50, at most 500).
pub(crate) fn page_size(limit: Option<i64>) -> Result<i64, Problem> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(Problem::invalid_field(
            "limit",
            format!("must be 1 to {MAX_PAGE}"),
        )),
    }
}

#[derive(Debug, Serialize, FromRow)]
struct ClientRow {
    client_id: Uuid,
    name: String,
    industry: String,
    company_size: String,
    region: String,
    permission_mode: String,
    autopilot_threshold: f64,
    data_sharing_consent: bool,
    status: String,
    suspended_reason: Option<String>,
    registered_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const CLIENT_COLUMNS: &str = "client_id, name, industry, company_size, region, permission_mode, \
     autopilot_threshold, data_sharing_consent, status, suspended_reason, registered_at, updated_at";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    min_position: Option<i64>,
    limit: Option<i64>,
    /// Keyset cursor: the last client id of the previous page.
    after: Option<Uuid>,
}

async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    StrictQuery(params): StrictQuery<ListParams>,
) -> Result<Response, ApiError> {
    principal.require_operator()?;
    let limit = page_size(params.limit)?;
    let position = reach(&state, "clients", params.min_position).await?;
    let rows: Vec<ClientRow> = sqlx::query_as(&format!(
        "SELECT {CLIENT_COLUMNS} FROM clients_view WHERE client_id > $1 ORDER BY client_id LIMIT $2"
    ))
    .bind(params.after.unwrap_or(Uuid::nil()))
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await?;
    let more = rows.len() as i64 > limit;
    let items: Vec<&ClientRow> = rows.iter().take(limit as usize).collect();
    let next = more.then(|| items.last().map(|c| c.client_id)).flatten();
    Ok(positioned(
        StatusCode::OK,
        &json!({ "items": items, "next_after": next }),
        position,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DetailParams {
    min_position: Option<i64>,
}

#[derive(Debug, Serialize, FromRow)]
struct ResourceRow {
    kind: String,
    address: String,
    daily_cap: i32,
    registered_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, FromRow)]
struct KeyRow {
    key_id: Uuid,
    role: String,
    label: String,
    issued_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, FromRow)]
struct WebhookRow {
    provider: String,
    secret_fingerprint: String,
    updated_at: DateTime<Utc>,
}

async fn detail(
    State(state): State<AppState>,
    ClientScope { client_id, .. }: ClientScope,
    StrictQuery(params): StrictQuery<DetailParams>,
) -> Result<Response, ApiError> {
    let position = reach(&state, "clients", params.min_position).await?;
    let client: ClientRow = sqlx::query_as(&format!(
        "SELECT {CLIENT_COLUMNS} FROM clients_view WHERE client_id = $1"
    ))
    .bind(client_id)
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(Problem::client_not_found)?;
    let resources: Vec<ResourceRow> = sqlx::query_as(
        "SELECT kind, address, daily_cap, registered_at FROM client_resources \
         WHERE client_id = $1 ORDER BY kind, address",
    )
    .bind(client_id)
    .fetch_all(&state.pool)
    .await?;
    let keys: Vec<KeyRow> = sqlx::query_as(
        "SELECT key_id, role, label, issued_at, revoked_at FROM client_api_keys \
         WHERE client_id = $1 ORDER BY issued_at, key_id",
    )
    .bind(client_id)
    .fetch_all(&state.pool)
    .await?;
    let webhooks: Vec<WebhookRow> = sqlx::query_as(
        "SELECT provider, secret_fingerprint, updated_at FROM client_webhooks \
         WHERE client_id = $1 ORDER BY provider",
    )
    .bind(client_id)
    .fetch_all(&state.pool)
    .await?;
    let mut body = serde_json::to_value(&client).map_err(anyhow::Error::from)?;
    if let Value::Object(map) = &mut body {
        map.insert("resources".into(), json!(resources));
        map.insert("api_keys".into(), json!(keys));
        map.insert("webhooks".into(), json!(webhooks));
    }
    Ok(positioned(StatusCode::OK, &body, position))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    min_position: Option<i64>,
    limit: Option<i64>,
    /// Keyset cursor: list events below this position (newest first).
    before: Option<i64>,
}

#[derive(Debug, Serialize, FromRow)]
struct AuditRow {
    position: i64,
    event_id: Uuid,
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    event_version: String,
    actor: Option<String>,
    correlation_id: Option<String>,
    recorded_at: DateTime<Utc>,
    data: Value,
}

async fn audit(
    State(state): State<AppState>,
    ClientScope { client_id, .. }: ClientScope,
    StrictQuery(params): StrictQuery<AuditParams>,
) -> Result<Response, ApiError> {
    let limit = page_size(params.limit)?;
    // The audit trail answers for a client the clients read model knows:
    // both must have reached the position asked for.
    reach(&state, "clients", params.min_position).await?;
    let position = reach(&state, "audit", params.min_position).await?;
    crate::consistency::known_client(&state, client_id).await?;
    let rows: Vec<AuditRow> = sqlx::query_as(
        // The trail holds references; the events are read from the log.
        "SELECT e.global_position AS position, e.event_id, e.aggregate_type, e.aggregate_id, e.sequence, \
         e.event_type, e.event_version, e.metadata->>$4 AS actor, \
         e.metadata->>$5 AS correlation_id, e.recorded_at, e.payload AS data \
         FROM audit_log a JOIN events e ON e.global_position = a.global_position \
         WHERE a.client_id = $1 AND a.global_position < $2 \
         ORDER BY a.global_position DESC LIMIT $3",
    )
    .bind(client_id)
    .bind(params.before.unwrap_or(i64::MAX))
    .bind(limit + 1)
    .bind(sextant_domain::metadata::ACTOR)
    .bind(sextant_domain::metadata::CORRELATION_ID)
    .fetch_all(&state.pool)
    .await?;
    let more = rows.len() as i64 > limit;
    let items: Vec<&AuditRow> = rows.iter().take(limit as usize).collect();
    let next = more.then(|| items.last().map(|r| r.position)).flatten();
    Ok(positioned(
        StatusCode::OK,
        &json!({ "items": items, "next_before": next }),
        position,
    ))
}
