//! `POST /v1/patterns/platform/practices` (operator): approves a platform
//! practice for every client that shares data
//! ([`sextant_application::platform`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;

use sextant_adapters::http::{positioned, OperatorKey, RequestIds, StrictJson};
use sextant_application::platform::{self, Practice};
use sextant_application::{ApiError, Caller};

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/patterns/platform/practices", post(approve_practice))
}

async fn approve_practice(
    State(state): State<AppState>,
    OperatorKey(principal): OperatorKey,
    ids: RequestIds,
    StrictJson(body): StrictJson<Practice>,
) -> Result<Response, ApiError> {
    let caller = Caller::principal(&principal, ids.correlation_id);
    let spread = platform::approve_practice(&state.app, &caller, body).await?;
    Ok(positioned(StatusCode::OK, &spread, spread.position))
}
