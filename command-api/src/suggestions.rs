//! `POST /v1/clients/{client_id}/suggestions/run`: runs the suggestion
//! engine for one client now (it also runs on its own, every minute), and
//! answers what it proposed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::json;

use sextant_adapters::http::{positioned, ClientScope};
use sextant_domain::values::Role;
use sextant_projections::suggestions::{Engine, Thresholds};

use crate::error::ApiError;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/clients/{client_id}/suggestions/run", post(run))
}

pub fn engine(state: &AppState) -> Engine {
    Engine::new(
        state.pool.clone(),
        state.context.clone(),
        state.clients.clone(),
        Thresholds::default(),
    )
}

async fn run(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
    }: ClientScope,
) -> Result<Response, ApiError> {
    principal.authorize(client_id, &[Role::Admin])?;
    state.registered_client(client_id).await?;
    let suggested = engine(&state).run_for(client_id).await?;
    let position = sextant_adapters::db::head_position(&state.pool).await?;
    Ok(positioned(
        StatusCode::OK,
        &json!({ "suggestions": suggested, "position": position }),
        position,
    ))
}
