//! Alerts: a client's (`GET /v1/clients/{client_id}/alerts`, any key of the
//! client) and every client's (`GET /v1/alerts`, the operator's), newest
//! first, paged by the `before` cursor.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use sextant_adapters::http::{positioned, ClientScope, OperatorKey, Problem, StrictQuery};
use sextant_application::read_model::alerts::{self, StatusFilter};
use sextant_application::read_model::clients;
use sextant_projections::ProjectionName;

use crate::consistency::reach;
use crate::AppState;
use sextant_application::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/clients/{client_id}/alerts", get(for_client))
        .route("/v1/alerts", get(every_client))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    min_position: Option<i64>,
    /// Read as a [`StatusFilter`] by the handler, so that an unknown one
    /// is answered naming `status`.
    status: Option<String>,
    limit: Option<i64>,
    /// Keyset cursor: `next_before` of the previous page.
    before: Option<i64>,
}

fn status_of(text: Option<&str>) -> Result<StatusFilter, Problem> {
    match text {
        None => Ok(StatusFilter::default()),
        Some("open") => Ok(StatusFilter::Open),
        Some("resolved") => Ok(StatusFilter::Resolved),
        Some("all") => Ok(StatusFilter::All),
        Some(_) => Err(Problem::invalid_field(
            "status",
            "must be one of: open, resolved, all",
        )),
    }
}

async fn for_client(
    State(state): State<AppState>,
    ClientScope { client_id, .. }: ClientScope,
    StrictQuery(params): StrictQuery<ListParams>,
) -> Result<Response, ApiError> {
    let status = status_of(params.status.as_deref())?;
    let limit = crate::clients::page_size(params.limit)?;
    // The client is looked up in the clients read model: it must have
    // reached the position too.
    reach(&state, ProjectionName::Clients, params.min_position).await?;
    let position = reach(&state, ProjectionName::Alerts, params.min_position).await?;
    clients::known(&state.pool, client_id).await?;
    let page = alerts::list(&state.pool, Some(client_id), status, params.before, limit).await?;
    Ok(positioned(StatusCode::OK, &page, position))
}

async fn every_client(
    State(state): State<AppState>,
    _: OperatorKey,
    StrictQuery(params): StrictQuery<ListParams>,
) -> Result<Response, ApiError> {
    let status = status_of(params.status.as_deref())?;
    let limit = crate::clients::page_size(params.limit)?;
    let position = reach(&state, ProjectionName::Alerts, params.min_position).await?;
    let page = alerts::list(&state.pool, None, status, params.before, limit).await?;
    Ok(positioned(StatusCode::OK, &page, position))
}
