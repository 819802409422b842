//! Sends reads: the suppression list, the sends with their outcomes, the
//! dead-lettered webhook deliveries. A lead's personal data (and a dead
//! letter's payload, which names leads) only for the operator and admin
//! keys ([`sends::PersonalData::of`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use sextant_adapters::http::{positioned, ClientScope, Problem, StrictQuery};
use sextant_application::read_model::{clients, sends};
use sextant_domain::send::Channel;
use sextant_domain::values::Provider;
use sextant_projections::ProjectionName;

use crate::consistency::reach;
use crate::AppState;
use sextant_application::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/clients/{client_id}/suppression", get(suppression))
        .route("/v1/clients/{client_id}/sends", get(list_sends))
        .route("/v1/clients/{client_id}/dead-letters", get(dead_letters))
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

/// A send's campaign id is at most this long: a longer one matches nothing.
const MAX_CAMPAIGN: usize = 200;

/// The cursor and the filters are read by the handler, so that a bad one
/// is answered naming it rather than the whole query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendParams {
    min_position: Option<i64>,
    limit: Option<i64>,
    /// Keyset cursor: the `next_before` of the previous page (a send id).
    before: Option<String>,
    channel: Option<String>,
    campaign_id: Option<String>,
}

fn send_filter(params: &SendParams) -> Result<sends::SendFilter, Problem> {
    let channel = params
        .channel
        .as_deref()
        .map(|text| {
            use serde::de::value::{Error, StrDeserializer};
            Channel::deserialize(StrDeserializer::<Error>::new(text))
                .map_err(|err| Problem::invalid_field("channel", err.to_string()))
        })
        .transpose()?;
    let campaign_id = match params.campaign_id.as_deref() {
        Some(text) if text.is_empty() || text.len() > MAX_CAMPAIGN => {
            return Err(Problem::invalid_field(
                "campaign_id",
                format!("must be 1 to {MAX_CAMPAIGN} characters"),
            ))
        }
        text => text.map(str::to_owned),
    };
    Ok(sends::SendFilter {
        channel,
        campaign_id,
    })
}

async fn list_sends(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
        ..
    }: ClientScope,
    StrictQuery(params): StrictQuery<SendParams>,
) -> Result<Response, ApiError> {
    let limit = crate::clients::page_size(params.limit)?;
    let before = crate::clients::cursor("before", params.before.as_deref())?;
    let filter = send_filter(&params)?;
    reach(&state, ProjectionName::Clients, params.min_position).await?;
    let position = reach(&state, ProjectionName::Sends, params.min_position).await?;
    clients::known(&state.pool, client_id).await?;
    let personal = sends::PersonalData::of(&principal);
    let page = sends::sends(&state.pool, client_id, &filter, before, limit, personal).await?;
    Ok(positioned(StatusCode::OK, &page, position))
}

/// The cursor and the provider are read by the handler, so that a bad one
/// is answered naming it rather than the whole query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLetterParams {
    min_position: Option<i64>,
    limit: Option<i64>,
    /// Keyset cursor: the `next_before` of the previous page.
    before: Option<String>,
    provider: Option<String>,
}

/// Dead letters are written by the command API as it answers the delivery,
/// not by a projection: `min_position` waits for the clients read model
/// the client is looked up in.
async fn dead_letters(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
        ..
    }: ClientScope,
    StrictQuery(params): StrictQuery<DeadLetterParams>,
) -> Result<Response, ApiError> {
    let limit = crate::clients::page_size(params.limit)?;
    let before = crate::clients::cursor("before", params.before.as_deref())?;
    let provider = params
        .provider
        .as_deref()
        .map(|text| {
            Provider::parse(text).ok_or_else(|| {
                Problem::invalid_field(
                    "provider",
                    format!(
                        "unknown; known: {}",
                        Provider::ALL.map(Provider::as_str).join(", ")
                    ),
                )
            })
        })
        .transpose()?;
    let position = reach(&state, ProjectionName::Clients, params.min_position).await?;
    clients::known(&state.pool, client_id).await?;
    let personal = sends::PersonalData::of(&principal);
    let page =
        sends::dead_letters(&state.pool, client_id, provider, before, limit, personal).await?;
    Ok(positioned(StatusCode::OK, &page, position))
}
