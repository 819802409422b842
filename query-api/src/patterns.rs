//! Pattern tables: `GET /v1/clients/{client_id}/patterns/{family}`, rows of
//! the WHAT / WHEN / HOW / WHO / versions detectors with sends, events,
//! rate, 95% Wilson interval, lift over the client's baseline, p and
//! Benjamini–Hochberg q within the family.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use sextant_adapters::http::{positioned, Auth, ClientScope, Principal, Problem, StrictQuery};
use sextant_application::read_model::{clients, patterns, platform};
use sextant_domain::learning::{Family, Metric};
use sextant_projections::ProjectionName;

use crate::consistency::reach;
use crate::AppState;
use sextant_application::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/clients/{client_id}/patterns/{family}", get(table))
        .route("/v1/patterns/platform/{family}", get(platform))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    min_position: Option<i64>,
    /// `reply` (default), `positive_reply` or `meeting`.
    metric: Option<String>,
    /// `client` (default) or `industry:<name>`.
    scope: Option<String>,
}

async fn table(
    State(state): State<AppState>,
    ClientScope { client_id, .. }: ClientScope,
    Path((_, family)): Path<(String, String)>,
    StrictQuery(params): StrictQuery<Params>,
) -> Result<Response, ApiError> {
    let family = Family::parse(&family).ok_or_else(|| {
        Problem::not_found("unknown pattern family; known: what, when, how, who, versions")
    })?;
    let metric = metric_of(params.metric.as_deref())?;
    let scope = params
        .scope
        .unwrap_or_else(|| "client".into())
        .to_lowercase();
    if scope != "client" && !scope.starts_with("industry:") {
        return Err(Problem::invalid_field("scope", "must be client or industry:<name>").into());
    }
    reach(&state, ProjectionName::Clients, params.min_position).await?;
    let position = reach(&state, ProjectionName::Patterns, params.min_position).await?;
    clients::known(&state.pool, client_id).await?;
    let table = patterns::client_table(&state.pool, client_id, family, metric, scope).await?;
    Ok(positioned(StatusCode::OK, &table, position))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlatformParams {
    min_position: Option<i64>,
    metric: Option<String>,
    /// Only clients of this industry.
    industry: Option<String>,
}

/// A caller of the platform tables: the operator, or any key of a client
/// that shares its own data. Checked before the path's family and the query
/// string are read: anyone else gets 403 whatever they asked.
struct PlatformReader;

impl FromRequestParts<AppState> for PlatformReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Auth(principal) = Auth::from_request_parts(parts, state).await?;
        if let Principal::Key { client_id, .. } = &principal {
            if !clients::shares_data(&state.pool, *client_id).await? {
                return Err(Problem::forbidden(
                    "platform patterns are for the operator key and for keys of clients that \
                     share their own data; give data-sharing consent first",
                )
                .into());
            }
        }
        Ok(Self)
    }
}

/// `GET /v1/patterns/platform/{family}`: for the operator, or a client that
/// shares its own data.
async fn platform(
    State(state): State<AppState>,
    _: PlatformReader,
    Path(family): Path<String>,
    StrictQuery(params): StrictQuery<PlatformParams>,
) -> Result<Response, ApiError> {
    let family = Family::parse(&family).ok_or_else(|| {
        Problem::not_found("unknown pattern family; known: what, when, how, who, versions")
    })?;
    let metric = metric_of(params.metric.as_deref())?;
    reach(&state, ProjectionName::Clients, params.min_position).await?;
    let position = reach(&state, ProjectionName::Patterns, params.min_position).await?;
    let table =
        platform::platform_table(&state.pool, family, metric, params.industry.as_deref()).await?;
    Ok(positioned(StatusCode::OK, &table, position))
}

/// The metric asked for; `reply` when none is.
fn metric_of(asked: Option<&str>) -> Result<Metric, Problem> {
    match asked {
        None => Ok(Metric::Reply),
        Some(m) => Metric::parse(m).ok_or_else(|| {
            Problem::invalid_field("metric", "must be reply, positive_reply or meeting")
        }),
    }
}
