//! Weekly report deliveries: `GET /v1/clients/{client_id}/reports/deliveries`
//! (any key of the client): every published week with its summary and how
//! its e-mail went, newest first, paged by the `before` cursor.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use sextant_adapters::http::{positioned, ClientScope, StrictQuery};
use sextant_application::read_model::clients;
use sextant_application::{delivery, ApiError};
use sextant_projections::ProjectionName;

use crate::consistency::reach;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/v1/clients/{client_id}/reports/deliveries",
        get(for_client),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    min_position: Option<i64>,
    limit: Option<i64>,
    /// Keyset cursor: `next_before` of the previous page.
    before: Option<i64>,
}

async fn for_client(
    State(state): State<AppState>,
    ClientScope { client_id, .. }: ClientScope,
    StrictQuery(params): StrictQuery<ListParams>,
) -> Result<Response, ApiError> {
    let limit = crate::clients::page_size(params.limit)?;
    reach(&state, ProjectionName::Clients, params.min_position).await?;
    let position = reach(
        &state,
        ProjectionName::ReportDeliveries,
        params.min_position,
    )
    .await?;
    clients::known(&state.pool, client_id).await?;
    let page = delivery::deliveries(&state.pool, client_id, params.before, limit).await?;
    Ok(positioned(StatusCode::OK, &page, position))
}
