//! Experiments: create one; conclude one on its numbers. The use cases are
//! [`sextant_application::experiments`]'.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use uuid::Uuid;

use sextant_adapters::http::{positioned, Admins, ClientScope, Problem, RequestIds, StrictJson};
use sextant_application::experiments::{self, CreateExperiment};
use sextant_application::{ApiError, Caller};

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/clients/{client_id}/experiments", post(create))
        .route(
            "/v1/clients/{client_id}/experiments/{experiment_id}/conclude",
            post(conclude),
        )
}

async fn create(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
        ..
    }: ClientScope<Admins>,
    ids: RequestIds,
    StrictJson(body): StrictJson<CreateExperiment>,
) -> Result<Response, ApiError> {
    let caller = Caller::principal(&principal, ids.correlation_id);
    let created = experiments::create(&state.app, &caller, client_id, body).await?;
    Ok(positioned(StatusCode::CREATED, &created, created.position))
}

async fn conclude(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
        ..
    }: ClientScope<Admins>,
    Path((_, experiment)): Path<(String, String)>,
    ids: RequestIds,
) -> Result<Response, ApiError> {
    let experiment_id =
        Uuid::try_parse(&experiment).map_err(|_| Problem::not_found("no such experiment"))?;
    let caller = Caller::principal(&principal, ids.correlation_id);
    let concluded = experiments::conclude(&state.app, &caller, client_id, experiment_id).await?;
    Ok(positioned(StatusCode::OK, &concluded, concluded.position))
}
