//! Alerts: acknowledge one (`POST /v1/clients/{client_id}/alerts/{alert_id}/acknowledge`),
//! and run the detector now (`POST /v1/alerts/detect`, the operator's; it
//! also runs on its own schedule). The use cases are
//! [`sextant_application::alerts`]'.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use uuid::Uuid;

use sextant_adapters::http::{
    positioned, ClientScope, OperatorKey, OptionalJson, Problem, RequestIds, Reviewers,
};
use sextant_application::{alerts, ApiError, Caller};
use sextant_domain::values::Note;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/clients/{client_id}/alerts/{alert_id}/acknowledge",
            post(acknowledge),
        )
        .route("/v1/alerts/detect", post(detect))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Acknowledge {
    note: Option<Note>,
}

async fn acknowledge(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
        ..
    }: ClientScope<Reviewers>,
    Path((_, alert)): Path<(String, String)>,
    ids: RequestIds,
    OptionalJson(body): OptionalJson<Acknowledge>,
) -> Result<Response, ApiError> {
    let alert_id = Uuid::try_parse(&alert).map_err(|_| Problem::not_found("no such alert"))?;
    let caller = Caller::principal(&principal, ids.correlation_id);
    let note = body.and_then(|b| b.note);
    let acknowledged = alerts::acknowledge(&state.app, &caller, client_id, alert_id, note).await?;
    Ok(positioned(
        StatusCode::OK,
        &acknowledged,
        acknowledged.position,
    ))
}

async fn detect(State(state): State<AppState>, _: OperatorKey) -> Result<Response, ApiError> {
    let detection = alerts::detect_now(&state.app).await?;
    Ok(positioned(StatusCode::OK, &detection, detection.position))
}
