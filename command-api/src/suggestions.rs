//! `POST /v1/clients/{client_id}/suggestions/run`: runs the suggestion
//! engine for one client now (it also runs on its own schedule), and
//! answers what it proposed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;

use sextant_adapters::http::{positioned, Admins, ClientScope};
use sextant_application::{learning, ApiError};

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/clients/{client_id}/suggestions/run", post(run))
}

async fn run(
    State(state): State<AppState>,
    ClientScope { client_id, .. }: ClientScope<Admins>,
) -> Result<Response, ApiError> {
    let suggested = learning::suggest_now(&state.app, client_id).await?;
    Ok(positioned(StatusCode::OK, &suggested, suggested.position))
}
