//! Client endpoints (API.md, "Command API"): register, update, API keys,
//! webhook secrets, sending resources, suspension.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, post, put};
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use sextant_adapters::http::{
    position_only, positioned, Auth, ClientScope, Problem, RequestIds, StrictJson,
};
use sextant_adapters::keys;
use sextant_domain::client::{ClientCommand, Profile, ProfileChange};
use sextant_domain::values::{
    ClientName, CompanySize, ConfidenceThreshold, DailyCap, Industry, KeyLabel, PermissionMode,
    Provider, Reason, Region, ResourceAddress, ResourceKind, Role,
};

use crate::error::ApiError;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/clients", post(register))
        .route("/v1/clients/{client_id}", axum::routing::patch(update))
        .route("/v1/clients/{client_id}/api-keys", post(issue_key))
        .route(
            "/v1/clients/{client_id}/api-keys/{key_id}",
            delete(revoke_key),
        )
        .route(
            "/v1/clients/{client_id}/webhooks/{provider}",
            put(set_webhook_secret),
        )
        .route("/v1/clients/{client_id}/resources", post(register_resource))
        .route("/v1/clients/{client_id}/suspend", post(suspend))
        .route("/v1/clients/{client_id}/reactivate", post(reactivate))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterClient {
    name: ClientName,
    industry: Industry,
    company_size: CompanySize,
    region: Region,
    #[serde(default)]
    permission_mode: PermissionMode,
    #[serde(default)]
    data_sharing_consent: bool,
}

async fn register(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ids: RequestIds,
    StrictJson(body): StrictJson<RegisterClient>,
) -> Result<Response, ApiError> {
    principal.require_operator()?;
    let client_id = Uuid::now_v7();
    let command = ClientCommand::RegisterClient {
        client_id,
        profile: Profile {
            name: body.name,
            industry: body.industry,
            company_size: body.company_size,
            region: body.region,
        },
        permission_mode: body.permission_mode,
        data_sharing_consent: body.data_sharing_consent,
    };
    let committed = crate::execute(&state.clients, client_id, &principal, &ids, command).await?;
    Ok(positioned(
        StatusCode::CREATED,
        &json!({ "client_id": client_id, "position": committed.position }),
        committed.position,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateClient {
    name: Option<ClientName>,
    industry: Option<Industry>,
    company_size: Option<CompanySize>,
    region: Option<Region>,
    permission_mode: Option<PermissionMode>,
    autopilot_confidence_threshold: Option<ConfidenceThreshold>,
    data_sharing_consent: Option<bool>,
}

async fn update(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
    }: ClientScope,
    ids: RequestIds,
    StrictJson(body): StrictJson<UpdateClient>,
) -> Result<Response, ApiError> {
    principal.authorize(client_id, &[Role::Admin])?;
    let command = ClientCommand::UpdateClient {
        profile: ProfileChange {
            name: body.name,
            industry: body.industry,
            company_size: body.company_size,
            region: body.region,
        },
        permission_mode: body.permission_mode,
        autopilot_threshold: body.autopilot_confidence_threshold,
        data_sharing_consent: body.data_sharing_consent,
    };
    let committed = crate::execute(&state.clients, client_id, &principal, &ids, command).await?;
    Ok(position_only(StatusCode::OK, committed.position))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueKey {
    role: Role,
    label: KeyLabel,
}

async fn issue_key(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
    }: ClientScope,
    ids: RequestIds,
    StrictJson(body): StrictJson<IssueKey>,
) -> Result<Response, ApiError> {
    principal.authorize(client_id, &[Role::Admin])?;
    let minted = keys::mint();
    let command = ClientCommand::IssueApiKey {
        key_id: minted.key_id,
        role: body.role,
        label: body.label.clone(),
        key_hash: minted.hash.clone(),
    };
    let committed = crate::execute(&state.clients, client_id, &principal, &ids, command).await?;
    // After-commit, idempotent: the key works at once, before the stream
    // delivers the event to the `clients` projection (which writes the same
    // row with the same values).
    if let Some(at) = committed.recorded_at {
        keys::record_issued(
            &state.pool,
            minted.key_id,
            client_id,
            body.role,
            body.label.as_str(),
            &minted.hash,
            at,
        )
        .await?;
    }
    Ok(positioned(
        StatusCode::CREATED,
        &json!({
            "key_id": minted.key_id,
            "key": minted.key,
            "role": body.role,
            "label": body.label,
            "position": committed.position,
        }),
        committed.position,
    ))
}

async fn revoke_key(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
    }: ClientScope,
    Path((_, key_id)): Path<(String, String)>,
    ids: RequestIds,
) -> Result<Response, ApiError> {
    principal.authorize(client_id, &[Role::Admin])?;
    let key_id = Uuid::try_parse(&key_id).map_err(|_| Problem::not_found("no such API key"))?;
    let committed = crate::execute(
        &state.clients,
        client_id,
        &principal,
        &ids,
        ClientCommand::RevokeApiKey { key_id },
    )
    .await?;
    // After-commit, idempotent: revocation takes effect now, not when the
    // projection catches up.
    if let Some(at) = committed.recorded_at {
        keys::record_revoked(&state.pool, key_id, at).await?;
    }
    Ok(position_only(StatusCode::OK, committed.position))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSecret {
    secret: String,
}

async fn set_webhook_secret(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
    }: ClientScope,
    Path((_, provider)): Path<(String, String)>,
    ids: RequestIds,
    StrictJson(body): StrictJson<WebhookSecret>,
) -> Result<Response, ApiError> {
    principal.authorize(client_id, &[Role::Admin])?;
    let provider = Provider::parse(&provider).ok_or_else(|| {
        Problem::not_found(format!(
            "unknown provider; known: {}",
            Provider::ALL.map(Provider::as_str).join(", ")
        ))
    })?;
    let secret = body.secret.trim();
    if secret.len() < 16 || secret.len() > 512 {
        return Err(Problem::invalid_field("secret", "must be 16 to 512 characters").into());
    }
    let fingerprint = keys::sha256_hex(secret)[..16].to_owned();
    let command = ClientCommand::SetWebhookSecret {
        provider,
        fingerprint: fingerprint.clone(),
    };
    let committed = crate::execute(&state.clients, client_id, &principal, &ids, command).await?;
    // The secret itself stays out of the event log. Written after the event
    // commits; should this write fail the caller gets an error and retries
    // (the command is idempotent), and webhook checks compare fingerprints,
    // so a half-done change never verifies with a stale secret.
    sqlx::query(
        "INSERT INTO webhook_secrets (client_id, provider, secret) VALUES ($1, $2, $3) \
         ON CONFLICT (client_id, provider) DO UPDATE SET secret = EXCLUDED.secret, updated_at = now()",
    )
    .bind(client_id)
    .bind(provider.as_str())
    .bind(secret)
    .execute(&state.pool)
    .await?;
    Ok(positioned(
        StatusCode::OK,
        &json!({ "provider": provider, "fingerprint": fingerprint, "position": committed.position }),
        committed.position,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterResource {
    kind: ResourceKind,
    address: ResourceAddress,
    daily_cap: Option<DailyCap>,
}

async fn register_resource(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
    }: ClientScope,
    ids: RequestIds,
    StrictJson(body): StrictJson<RegisterResource>,
) -> Result<Response, ApiError> {
    principal.authorize(client_id, &[Role::Admin])?;
    let daily_cap = body
        .daily_cap
        .unwrap_or_else(|| body.kind.default_daily_cap());
    let command = ClientCommand::RegisterResource {
        kind: body.kind,
        address: body.address.clone(),
        daily_cap: Some(daily_cap),
    };
    let committed = crate::execute(&state.clients, client_id, &principal, &ids, command).await?;
    Ok(positioned(
        StatusCode::CREATED,
        &json!({
            "kind": body.kind,
            "address": body.address,
            "daily_cap": daily_cap,
            "position": committed.position,
        }),
        committed.position,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suspend {
    reason: Reason,
}

async fn suspend(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
    }: ClientScope,
    ids: RequestIds,
    StrictJson(body): StrictJson<Suspend>,
) -> Result<Response, ApiError> {
    principal.require_operator()?;
    let command = ClientCommand::SuspendClient {
        reason: body.reason,
    };
    let committed = crate::execute(&state.clients, client_id, &principal, &ids, command).await?;
    Ok(position_only(StatusCode::OK, committed.position))
}

async fn reactivate(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
    }: ClientScope,
    ids: RequestIds,
) -> Result<Response, ApiError> {
    principal.require_operator()?;
    let committed = crate::execute(
        &state.clients,
        client_id,
        &principal,
        &ids,
        ClientCommand::ReactivateClient,
    )
    .await?;
    Ok(position_only(StatusCode::OK, committed.position))
}
