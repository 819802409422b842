//! Experiments: a client's list, results per variant with the decision,
//! and assignment.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use sextant_adapters::http::{positioned, ClientScope, Problem, StrictQuery};
use sextant_application::read_model::clients;
use sextant_application::read_model::experiments::{self, StatusFilter};
use sextant_domain::experiment::assign;
use sextant_domain::send::input::parse_lead_ref;
use sextant_projections::ProjectionName;

use crate::consistency::reach;
use crate::AppState;
use sextant_application::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/clients/{client_id}/experiments", get(list))
        .route(
            "/v1/clients/{client_id}/experiments/{experiment_id}",
            get(show),
        )
        .route(
            "/v1/clients/{client_id}/experiments/{experiment_id}/assignment",
            get(assignment),
        )
}

/// The cursor and the status are read by the handler, so that a bad one is
/// answered naming it rather than the whole query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    min_position: Option<i64>,
    status: Option<String>,
    limit: Option<i64>,
    /// Keyset cursor: the `next_before` of the previous page (an
    /// experiment id).
    before: Option<String>,
}

fn status_of(text: Option<&str>) -> Result<StatusFilter, Problem> {
    match text {
        None => Ok(StatusFilter::default()),
        Some("running") => Ok(StatusFilter::Running),
        Some("concluded") => Ok(StatusFilter::Concluded),
        Some("all") => Ok(StatusFilter::All),
        Some(_) => Err(Problem::invalid_field(
            "status",
            "must be one of: running, concluded, all",
        )),
    }
}

/// The experiments themselves, without results: those are computed from
/// the sends per experiment, one at a time ([`show`]).
async fn list(
    State(state): State<AppState>,
    ClientScope { client_id, .. }: ClientScope,
    StrictQuery(params): StrictQuery<ListParams>,
) -> Result<Response, ApiError> {
    let status = status_of(params.status.as_deref())?;
    let limit = crate::clients::page_size(params.limit)?;
    let before = crate::clients::cursor("before", params.before.as_deref())?;
    // The client is looked up in the clients read model: it must have
    // reached the position too.
    reach(&state, ProjectionName::Clients, params.min_position).await?;
    let position = reach(&state, ProjectionName::Experiments, params.min_position).await?;
    clients::known(&state.pool, client_id).await?;
    let page = experiments::list(&state.pool, client_id, status, before, limit).await?;
    Ok(positioned(StatusCode::OK, &page, position))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShowParams {
    min_position: Option<i64>,
}

fn experiment_id(text: &str) -> Result<Uuid, Problem> {
    Uuid::try_parse(text).map_err(|_| Problem::not_found("no such experiment"))
}

async fn show(
    State(state): State<AppState>,
    ClientScope { client_id, .. }: ClientScope,
    Path((_, experiment)): Path<(String, String)>,
    StrictQuery(params): StrictQuery<ShowParams>,
) -> Result<Response, ApiError> {
    let experiment = experiment_id(&experiment)?;
    reach(&state, ProjectionName::Sends, params.min_position).await?;
    let position = reach(&state, ProjectionName::Experiments, params.min_position).await?;
    let (row, decision) = experiments::results(&state.pool, client_id, experiment)
        .await?
        .ok_or_else(|| Problem::not_found("no such experiment"))?;
    Ok(positioned(
        StatusCode::OK,
        &json!({ "experiment": row, "results": decision }),
        position,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignmentParams {
    min_position: Option<i64>,
    lead_ref: String,
}

async fn assignment(
    State(state): State<AppState>,
    ClientScope { client_id, .. }: ClientScope,
    Path((_, experiment)): Path<(String, String)>,
    StrictQuery(params): StrictQuery<AssignmentParams>,
) -> Result<Response, ApiError> {
    let experiment = experiment_id(&experiment)?;
    let lead_ref = parse_lead_ref(&params.lead_ref)
        .map_err(|e| Problem::invalid_field(&e.field, e.message))?;
    let position = reach(&state, ProjectionName::Experiments, params.min_position).await?;
    let variants = experiments::variants(&state.pool, client_id, experiment)
        .await?
        .ok_or_else(|| Problem::not_found("no such experiment"))?;
    let variant = assign(experiment, &lead_ref, &variants).map(|v| v.id.clone());
    Ok(positioned(
        StatusCode::OK,
        &json!({ "experiment_id": experiment, "lead_ref": lead_ref, "variant": variant }),
        position,
    ))
}
