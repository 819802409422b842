//! Weekly report publication on demand (`POST /v1/reports/publish`, the
//! operator's): publishes every client's due week and makes the delivery
//! attempts that are due, as the schedule in every command service also
//! does each minute. The use case is [`sextant_application::delivery`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;

use sextant_adapters::http::{positioned, OperatorKey, OptionalJson};
use sextant_application::delivery::{self, chrono_now};
use sextant_application::ApiError;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/reports/publish", post(publish))
}

async fn publish(
    State(state): State<AppState>,
    _: OperatorKey,
    OptionalJson(body): OptionalJson<delivery::PublishRequest>,
) -> Result<Response, ApiError> {
    let at = body.and_then(|b| b.at).unwrap_or_else(chrono_now);
    let run = delivery::publish_due(&state.app, at).await?;
    Ok(positioned(StatusCode::OK, &run, run.position))
}
