//! Context endpoints: propose an update, approve / modify / reject it, roll
//! back; and the document pathway. The use cases are
//! [`sextant_application::context`]'s. Proposals and documents admit
//! `ingest` and `reviewer` keys; which sources each may propose, and
//! whether it applies without review, is the context ledger's rule
//! (`sextant_domain::context::route_for`), not the endpoint's.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use uuid::Uuid;

use sextant_adapters::http::{
    position_only, positioned, ClientScope, OptionalJson, Problem, Proposers, RequestIds,
    Reviewers, StrictJson,
};
use sextant_application::context::{
    self, CaptureDocument, Modify, ProposeUpdate, Reject, RollBack, Versioned,
};
use sextant_application::{ApiError, Caller};
use sextant_domain::values::Note;

use crate::AppState;

/// Documents may be larger than other bodies.
pub const DOCUMENT_BODY_LIMIT: usize = 4 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/clients/{client_id}/context/updates", post(propose))
        .route(
            "/v1/clients/{client_id}/context/updates/{update_id}/approve",
            post(approve),
        )
        .route(
            "/v1/clients/{client_id}/context/updates/{update_id}/modify",
            post(modify),
        )
        .route(
            "/v1/clients/{client_id}/context/updates/{update_id}/reject",
            post(reject),
        )
        .route("/v1/clients/{client_id}/context/rollback", post(roll_back))
        .route(
            "/v1/clients/{client_id}/documents",
            post(capture_document).layer(axum::extract::DefaultBodyLimit::max(DOCUMENT_BODY_LIMIT)),
        )
}

fn update_id_from_path(text: &str) -> Result<Uuid, Problem> {
    Uuid::try_parse(text).map_err(|_| Problem::not_found("no such update"))
}

fn version_answer(versioned: &Versioned) -> Response {
    positioned(StatusCode::OK, versioned, versioned.position)
}

async fn propose(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
        ..
    }: ClientScope<Proposers>,
    ids: RequestIds,
    StrictJson(body): StrictJson<ProposeUpdate>,
) -> Result<Response, ApiError> {
    let caller = Caller::principal(&principal, ids.correlation_id);
    let proposed = context::propose(&state.app, &caller, client_id, body).await?;
    Ok(positioned(
        StatusCode::ACCEPTED,
        &proposed,
        proposed.position,
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Approve {
    note: Option<Note>,
}

async fn approve(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
        ..
    }: ClientScope<Reviewers>,
    Path((_, update_id)): Path<(String, String)>,
    ids: RequestIds,
    OptionalJson(body): OptionalJson<Approve>,
) -> Result<Response, ApiError> {
    let update_id = update_id_from_path(&update_id)?;
    let caller = Caller::principal(&principal, ids.correlation_id);
    let note = body.and_then(|b| b.note);
    let versioned = context::approve(&state.app, &caller, client_id, update_id, note).await?;
    Ok(version_answer(&versioned))
}

async fn modify(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
        ..
    }: ClientScope<Reviewers>,
    Path((_, update_id)): Path<(String, String)>,
    ids: RequestIds,
    StrictJson(body): StrictJson<Modify>,
) -> Result<Response, ApiError> {
    let update_id = update_id_from_path(&update_id)?;
    let caller = Caller::principal(&principal, ids.correlation_id);
    let versioned = context::modify(&state.app, &caller, client_id, update_id, body).await?;
    Ok(version_answer(&versioned))
}

async fn reject(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
        ..
    }: ClientScope<Reviewers>,
    Path((_, update_id)): Path<(String, String)>,
    ids: RequestIds,
    StrictJson(body): StrictJson<Reject>,
) -> Result<Response, ApiError> {
    let update_id = update_id_from_path(&update_id)?;
    let caller = Caller::principal(&principal, ids.correlation_id);
    let position = context::reject(&state.app, &caller, client_id, update_id, body).await?;
    Ok(position_only(StatusCode::OK, position))
}

async fn roll_back(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
        ..
    }: ClientScope<Reviewers>,
    ids: RequestIds,
    StrictJson(body): StrictJson<RollBack>,
) -> Result<Response, ApiError> {
    let caller = Caller::principal(&principal, ids.correlation_id);
    let versioned = context::roll_back(&state.app, &caller, client_id, body).await?;
    Ok(version_answer(&versioned))
}

async fn capture_document(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
        ..
    }: ClientScope<Proposers>,
    ids: RequestIds,
    StrictJson(body): StrictJson<CaptureDocument>,
) -> Result<Response, ApiError> {
    let caller = Caller::principal(&principal, ids.correlation_id);
    let captured = context::capture_document(&state.app, &caller, client_id, body).await?;
    let status = if captured.changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(positioned(status, &captured, captured.position))
}
