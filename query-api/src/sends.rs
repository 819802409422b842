//! Sends reads: the suppression list.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use sextant_adapters::http::{positioned, ClientScope, Problem, StrictQuery};
use sextant_application::read_model::{clients, sends};
use sextant_projections::ProjectionName;

use crate::consistency::reach;
use crate::AppState;
use sextant_application::ApiError;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/clients/{client_id}/suppression", get(suppression))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    min_position: Option<i64>,
    limit: Option<i64>,
    /// Keyset cursor: the last lead ref of the previous page.
    after: Option<String>,
}

async fn suppression(
    State(state): State<AppState>,
    ClientScope { client_id, .. }: ClientScope,
    StrictQuery(params): StrictQuery<Params>,
) -> Result<Response, ApiError> {
    let limit = match params.limit {
        None => 100,
        Some(n) if (1..=1000).contains(&n) => n,
        Some(_) => return Err(Problem::invalid_field("limit", "must be 1 to 1000").into()),
    };
    reach(&state, ProjectionName::Clients, params.min_position).await?;
    let position = reach(&state, ProjectionName::Sends, params.min_position).await?;
    clients::known(&state.pool, client_id).await?;
    let page = sends::suppression(&state.pool, client_id, params.after.as_deref(), limit).await?;
    Ok(positioned(StatusCode::OK, &page, position))
}
