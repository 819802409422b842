//! Client endpoints: register, update, API keys, webhook secrets, sending
//! resources, suspension. Each admits the callers its extractor's type
//! names (checked before the body is read), parses, calls its use case in
//! [`sextant_application::clients`] and renders the answer.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, post, put};
use axum::Router;
use uuid::Uuid;

use sextant_adapters::http::{
    position_only, positioned, Admins, ClientScope, OperatorKey, OperatorOnly, Problem, RequestIds,
    StrictJson,
};
use sextant_application::clients::{
    self, IssueKey, RegisterClient, RegisterResource, Suspend, UpdateClient, WebhookSecret,
};
use sextant_application::{ApiError, Caller};
use sextant_domain::values::Provider;

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

async fn register(
    State(state): State<AppState>,
    OperatorKey(principal): OperatorKey,
    ids: RequestIds,
    StrictJson(body): StrictJson<RegisterClient>,
) -> Result<Response, ApiError> {
    let caller = Caller::principal(&principal, ids.correlation_id);
    let registered = clients::register(&state.app, &caller, body).await?;
    Ok(positioned(
        StatusCode::CREATED,
        &registered,
        registered.position,
    ))
}

async fn update(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
        ..
    }: ClientScope<Admins>,
    ids: RequestIds,
    StrictJson(body): StrictJson<UpdateClient>,
) -> Result<Response, ApiError> {
    let caller = Caller::principal(&principal, ids.correlation_id);
    let position = clients::update(&state.app, &caller, client_id, body).await?;
    Ok(position_only(StatusCode::OK, position))
}

async fn issue_key(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
        ..
    }: ClientScope<Admins>,
    ids: RequestIds,
    StrictJson(body): StrictJson<IssueKey>,
) -> Result<Response, ApiError> {
    let caller = Caller::principal(&principal, ids.correlation_id);
    let issued = clients::issue_key(&state.app, &caller, client_id, body).await?;
    Ok(positioned(StatusCode::CREATED, &issued, issued.position))
}

async fn revoke_key(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
        ..
    }: ClientScope<Admins>,
    Path((_, key_id)): Path<(String, String)>,
    ids: RequestIds,
) -> Result<Response, ApiError> {
    let key_id = Uuid::try_parse(&key_id).map_err(|_| Problem::not_found("no such API key"))?;
    let caller = Caller::principal(&principal, ids.correlation_id);
    let position = clients::revoke_key(&state.app, &caller, client_id, key_id).await?;
    Ok(position_only(StatusCode::OK, position))
}

async fn set_webhook_secret(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
        ..
    }: ClientScope<Admins>,
    Path((_, provider)): Path<(String, String)>,
    ids: RequestIds,
    StrictJson(body): StrictJson<WebhookSecret>,
) -> Result<Response, ApiError> {
    let provider = Provider::parse(&provider).ok_or_else(|| {
        Problem::not_found(format!(
            "unknown provider; known: {}",
            Provider::ALL.map(Provider::as_str).join(", ")
        ))
    })?;
    let caller = Caller::principal(&principal, ids.correlation_id);
    let set = clients::set_webhook_secret(&state.app, &caller, client_id, provider, body).await?;
    Ok(positioned(StatusCode::OK, &set, set.position))
}

async fn register_resource(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
        ..
    }: ClientScope<Admins>,
    ids: RequestIds,
    StrictJson(body): StrictJson<RegisterResource>,
) -> Result<Response, ApiError> {
    let caller = Caller::principal(&principal, ids.correlation_id);
    let registered = clients::register_resource(&state.app, &caller, client_id, body).await?;
    Ok(positioned(
        StatusCode::CREATED,
        &registered,
        registered.position,
    ))
}

async fn suspend(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
        ..
    }: ClientScope<OperatorOnly>,
    ids: RequestIds,
    StrictJson(body): StrictJson<Suspend>,
) -> Result<Response, ApiError> {
    let caller = Caller::principal(&principal, ids.correlation_id);
    let position = clients::suspend(&state.app, &caller, client_id, body).await?;
    Ok(position_only(StatusCode::OK, position))
}

async fn reactivate(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
        ..
    }: ClientScope<OperatorOnly>,
    ids: RequestIds,
) -> Result<Response, ApiError> {
    let caller = Caller::principal(&principal, ids.correlation_id);
    let position = clients::reactivate(&state.app, &caller, client_id).await?;
    Ok(position_only(StatusCode::OK, position))
}
