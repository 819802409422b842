//! Client reads: the operator's list, one client's detail, its audit trail.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use uuid::Uuid;

use sextant_adapters::http::{positioned, ClientScope, OperatorKey, Problem, StrictQuery};
use sextant_application::read_model::clients;
use sextant_projections::ProjectionName;

use crate::consistency::reach;
use crate::AppState;
use sextant_application::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/clients", get(list))
        .route("/v1/clients/{client_id}", get(detail))
        .route("/v1/clients/{client_id}/audit", get(audit))
}

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 500;

/// The page size asked for (default 50, at most 500).
pub(crate) fn page_size(limit: Option<i64>) -> Result<i64, Problem> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(Problem::invalid_field(
            "limit",
            format!("must be 1 to {MAX_PAGE}"),
        )),
    }
}

/// A keyset cursor read from its query parameter `field`, so that one that
/// does not parse is answered naming it rather than the whole query.
pub(crate) fn cursor<T: std::str::FromStr>(
    field: &str,
    text: Option<&str>,
) -> Result<Option<T>, Problem> {
    text.map(|text| {
        text.parse().map_err(|_| {
            Problem::invalid_field(
                field,
                format!("must be the next_{field} of a previous page"),
            )
        })
    })
    .transpose()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    min_position: Option<i64>,
    limit: Option<i64>,
    /// Keyset cursor: the last client id of the previous page.
    after: Option<Uuid>,
}

async fn list(
    State(state): State<AppState>,
    _: OperatorKey,
    StrictQuery(params): StrictQuery<ListParams>,
) -> Result<Response, ApiError> {
    let limit = page_size(params.limit)?;
    let position = reach(&state, ProjectionName::Clients, params.min_position).await?;
    let page = clients::list(&state.pool, params.after, limit).await?;
    Ok(positioned(StatusCode::OK, &page, position))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DetailParams {
    min_position: Option<i64>,
}

/// Webhook secret fingerprints only for the operator and admin and
/// reviewer keys ([`clients::Credentials::of`]).
async fn detail(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
        ..
    }: ClientScope,
    StrictQuery(params): StrictQuery<DetailParams>,
) -> Result<Response, ApiError> {
    let position = reach(&state, ProjectionName::Clients, params.min_position).await?;
    let credentials = clients::Credentials::of(&principal);
    let client = clients::detail(&state.pool, client_id, credentials).await?;
    Ok(positioned(StatusCode::OK, &client, position))
}

/// The cursor and the filters are read by the handler, so that a bad one
/// is answered naming it rather than the whole query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    min_position: Option<i64>,
    limit: Option<i64>,
    /// Keyset cursor: list events below this position (newest first).
    before: Option<String>,
    actor: Option<String>,
    event_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// Far longer than any actor an event records (`key:` and a UUID is 40
/// characters): a longer one can match nothing.
const MAX_ACTOR: usize = 200;

fn audit_filter(params: &AuditParams) -> Result<clients::AuditFilter, Problem> {
    let actor = match params.actor.as_deref() {
        Some(actor) if actor.is_empty() || actor.len() > MAX_ACTOR => {
            return Err(Problem::invalid_field(
                "actor",
                format!("must be 1 to {MAX_ACTOR} characters, as events record it (operator, key:<key id>, ...)"),
            ))
        }
        actor => actor.map(str::to_owned),
    };
    let event_type = match params.event_type.as_deref() {
        None => None,
        Some(text) => Some(
            clients::EVENT_TYPES
                .into_iter()
                .find(|known| *known == text)
                .ok_or_else(|| {
                    Problem::invalid_field(
                        "event_type",
                        format!("unknown; known: {}", clients::EVENT_TYPES.join(", ")),
                    )
                })?,
        ),
    };
    let since = params
        .since
        .as_deref()
        .map(|text| crate::context::time_of("since", text))
        .transpose()?;
    let until = params
        .until
        .as_deref()
        .map(|text| crate::context::time_of("until", text))
        .transpose()?;
    if let (Some(since), Some(until)) = (since, until) {
        if until <= since {
            return Err(Problem::invalid_field("until", "must be after since"));
        }
    }
    Ok(clients::AuditFilter {
        actor,
        event_type,
        since,
        until,
    })
}

/// Key hashes and secret fingerprints in the events only for the operator
/// and admin and reviewer keys ([`clients::Credentials::of`]).
async fn audit(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
        ..
    }: ClientScope,
    StrictQuery(params): StrictQuery<AuditParams>,
) -> Result<Response, ApiError> {
    let limit = page_size(params.limit)?;
    let before = cursor("before", params.before.as_deref())?;
    let filter = audit_filter(&params)?;
    // The audit trail answers for a client the clients read model knows:
    // both must have reached the position asked for.
    reach(&state, ProjectionName::Clients, params.min_position).await?;
    let position = reach(&state, ProjectionName::Audit, params.min_position).await?;
    clients::known(&state.pool, client_id).await?;
    let credentials = clients::Credentials::of(&principal);
    let page = clients::audit(&state.pool, client_id, &filter, before, limit, credentials).await?;
    Ok(positioned(StatusCode::OK, &page, position))
}
