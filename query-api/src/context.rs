//! Context reads: the document now or at a version or time, each agent's
//! view, the version list, diffs, the approval queue of a client and of
//! every client (the operator's), and one update.

use axum::extract::{Path, State};
use axum::http::header::{ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Datelike, FixedOffset, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use sextant_adapters::http::{
    positioned, set_position, ClientScope, OperatorKey, Problem, StrictQuery,
};
use sextant_application::read_model::clients;
use sextant_application::read_model::context::{self, At};
use sextant_domain::context::json::diff;
use sextant_domain::context::views::{agent_view, Agent};
use sextant_domain::context::{AppliedVia, UpdateStatus};
use sextant_projections::ProjectionName;

use crate::consistency::reach;
use crate::AppState;
use sextant_application::ApiError;

const PROJECTION: ProjectionName = ProjectionName::Context;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/clients/{client_id}/context", get(current))
        .route(
            "/v1/clients/{client_id}/context/agents/{agent}",
            get(for_agent),
        )
        .route("/v1/clients/{client_id}/context/versions", get(versions))
        .route("/v1/clients/{client_id}/context/diff", get(diff_versions))
        .route(
            "/v1/clients/{client_id}/context/updates/{update_id}",
            get(update),
        )
        .route("/v1/clients/{client_id}/approvals", get(approvals))
        .route("/v1/approvals", get(every_clients_approvals))
}

/// Which version a query asks for: `version`, the latest at time `at`, or
/// the latest.
fn at_of(version: Option<i64>, at: Option<&str>) -> Result<At, Problem> {
    match (version, at) {
        (Some(_), Some(_)) => Err(Problem::invalid_field(
            "version",
            "give version or at, not both",
        )),
        (Some(v), None) => Ok(At::Version(v)),
        (None, Some(at)) => Ok(At::Time(time_of("at", at)?)),
        (None, None) => Ok(At::Now),
    }
}

/// A time parameter (`at`, `since`, `until`), named `field`: an RFC 3339
/// time in the years 0000 to 9999 (UTC), the years RFC 3339 can write.
/// chrono reads years far beyond what Postgres `timestamptz` holds, and the
/// query would fail on such a one rather than answer.
pub(crate) fn time_of(field: &str, text: &str) -> Result<DateTime<Utc>, Problem> {
    let at = text
        .parse::<DateTime<FixedOffset>>()
        .map_err(|err| Problem::invalid_field(field, format!("must be an RFC 3339 time: {err}")))?
        .with_timezone(&Utc);
    if !(0..=9999).contains(&at.year()) {
        return Err(Problem::invalid_field(
            field,
            "must lie in the years 0000 to 9999",
        ));
    }
    Ok(at)
}

/// A JSON answer with an ETag; 304 when the caller already has it.
fn tagged(headers: &HeaderMap, etag: String, body: &Value, position: i64) -> Response {
    let matches = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if matches {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        set_position(&mut response, position);
        response
    } else {
        positioned(StatusCode::OK, body, position)
    };
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(ETAG, value);
    }
    response
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextParams {
    min_position: Option<i64>,
    version: Option<i64>,
    /// Read by [`time_of`], so that a bad one is answered naming `at`.
    at: Option<String>,
}

async fn current(
    State(state): State<AppState>,
    ClientScope { client_id, .. }: ClientScope,
    headers: HeaderMap,
    StrictQuery(params): StrictQuery<ContextParams>,
) -> Result<Response, ApiError> {
    // Checked before anything waits or reads: a bad one is the caller's.
    let at = at_of(params.version, params.at.as_deref())?;
    // The client is looked up in the clients read model: it must have
    // reached the position too.
    reach(&state, ProjectionName::Clients, params.min_position).await?;
    let position = reach(&state, PROJECTION, params.min_position).await?;
    clients::known(&state.pool, client_id).await?;
    let snap = context::snapshot(&state.pool, client_id, at).await?;
    let body = json!({
        "client_id": client_id,
        "version": snap.version,
        "document": snap.document,
        "updated_at": snap.updated_at,
    });
    Ok(tagged(
        &headers,
        format!("\"{}\"", snap.version),
        &body,
        position,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentParams {
    min_position: Option<i64>,
}

async fn for_agent(
    State(state): State<AppState>,
    ClientScope { client_id, .. }: ClientScope,
    Path((_, agent)): Path<(String, String)>,
    headers: HeaderMap,
    StrictQuery(params): StrictQuery<AgentParams>,
) -> Result<Response, ApiError> {
    let agent = Agent::parse(&agent).ok_or_else(|| {
        Problem::not_found(format!(
            "unknown agent; known: {}",
            Agent::ALL.map(Agent::as_str).join(", ")
        ))
    })?;
    // The client is looked up in the clients read model: it must have
    // reached the position too.
    reach(&state, ProjectionName::Clients, params.min_position).await?;
    let position = reach(&state, PROJECTION, params.min_position).await?;
    clients::known(&state.pool, client_id).await?;
    let snap = context::snapshot(&state.pool, client_id, At::Now).await?;
    let body = agent_view(agent, &snap.document, snap.version.max(0) as u64);
    Ok(tagged(
        &headers,
        format!("\"{}-{}\"", snap.version, agent.as_str()),
        &body,
        position,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageParams {
    min_position: Option<i64>,
    limit: Option<i64>,
    before: Option<i64>,
}

async fn versions(
    State(state): State<AppState>,
    ClientScope { client_id, .. }: ClientScope,
    StrictQuery(params): StrictQuery<PageParams>,
) -> Result<Response, ApiError> {
    let limit = crate::clients::page_size(params.limit)?;
    // The client is looked up in the clients read model: it must have
    // reached the position too.
    reach(&state, ProjectionName::Clients, params.min_position).await?;
    let position = reach(&state, PROJECTION, params.min_position).await?;
    clients::known(&state.pool, client_id).await?;
    let page = context::versions(&state.pool, client_id, params.before, limit).await?;
    Ok(positioned(StatusCode::OK, &page, position))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiffParams {
    min_position: Option<i64>,
    from: i64,
    to: i64,
}

async fn diff_versions(
    State(state): State<AppState>,
    ClientScope { client_id, .. }: ClientScope,
    StrictQuery(params): StrictQuery<DiffParams>,
) -> Result<Response, ApiError> {
    for (field, version) in [("from", params.from), ("to", params.to)] {
        if version < 0 {
            return Err(Problem::invalid_field(field, "versions are 0 or more").into());
        }
    }
    // The client is looked up in the clients read model: it must have
    // reached the position too.
    reach(&state, ProjectionName::Clients, params.min_position).await?;
    let position = reach(&state, PROJECTION, params.min_position).await?;
    clients::known(&state.pool, client_id).await?;
    let from = context::snapshot(&state.pool, client_id, At::Version(params.from)).await?;
    let to = context::snapshot(&state.pool, client_id, At::Version(params.to)).await?;
    let changes = diff(&from.document, &to.document);
    Ok(positioned(
        StatusCode::OK,
        &json!({ "from": params.from, "to": params.to, "changes": changes }),
        position,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalParams {
    min_position: Option<i64>,
    /// Read as an [`ApprovalFilter`] by the handler, so that an unknown
    /// one is answered naming `status` rather than the whole query.
    status: Option<String>,
    limit: Option<i64>,
    /// Keyset cursor: the `next_after` of the previous page (an update id),
    /// read by the handler so that a bad one is answered naming `after`.
    after: Option<String>,
}

/// Which updates the approval queue lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ApprovalFilter {
    /// The queue.
    #[default]
    Pending,
    Applied,
    /// What autopilot applied unreviewed, for review after the fact.
    AutoApplied,
    Rejected,
    Superseded,
    /// Withdrawn by Sextant: their evidence no longer held.
    Withdrawn,
    All,
}

impl ApprovalFilter {
    fn parse(text: Option<&str>) -> Result<Self, Problem> {
        use serde::de::value::{Error, StrDeserializer};
        let Some(text) = text else {
            return Ok(Self::default());
        };
        Self::deserialize(StrDeserializer::<Error>::new(text))
            .map_err(|err| Problem::invalid_field("status", err.to_string()))
    }

    /// The `status` and `via` columns it asks for (`None`: any).
    fn columns(self) -> (Option<UpdateStatus>, Option<AppliedVia>) {
        match self {
            Self::Pending => (Some(UpdateStatus::Pending), None),
            Self::Applied => (Some(UpdateStatus::Applied), None),
            Self::AutoApplied => (Some(UpdateStatus::Applied), Some(AppliedVia::Autopilot)),
            Self::Rejected => (Some(UpdateStatus::Rejected), None),
            Self::Superseded => (Some(UpdateStatus::Superseded), None),
            Self::Withdrawn => (Some(UpdateStatus::Withdrawn), None),
            Self::All => (None, None),
        }
    }
}

async fn approvals(
    State(state): State<AppState>,
    ClientScope { client_id, .. }: ClientScope,
    StrictQuery(params): StrictQuery<ApprovalParams>,
) -> Result<Response, ApiError> {
    let limit = crate::clients::page_size(params.limit)?;
    let (status, via) = ApprovalFilter::parse(params.status.as_deref())?.columns();
    let after = crate::clients::cursor("after", params.after.as_deref())?;
    // The client is looked up in the clients read model: it must have
    // reached the position too.
    reach(&state, ProjectionName::Clients, params.min_position).await?;
    let position = reach(&state, PROJECTION, params.min_position).await?;
    clients::known(&state.pool, client_id).await?;
    let queue = context::approvals(&state.pool, Some(client_id), status, via, after, limit).await?;
    Ok(positioned(StatusCode::OK, &queue, position))
}

/// The queue across every client, for the operator: each item names its
/// client.
async fn every_clients_approvals(
    State(state): State<AppState>,
    _: OperatorKey,
    StrictQuery(params): StrictQuery<ApprovalParams>,
) -> Result<Response, ApiError> {
    let limit = crate::clients::page_size(params.limit)?;
    let (status, via) = ApprovalFilter::parse(params.status.as_deref())?.columns();
    let after = crate::clients::cursor("after", params.after.as_deref())?;
    let position = reach(&state, PROJECTION, params.min_position).await?;
    let queue = context::approvals(&state.pool, None, status, via, after, limit).await?;
    Ok(positioned(StatusCode::OK, &queue, position))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateParams {
    min_position: Option<i64>,
}

async fn update(
    State(state): State<AppState>,
    ClientScope { client_id, .. }: ClientScope,
    Path((_, update_id)): Path<(String, String)>,
    StrictQuery(params): StrictQuery<UpdateParams>,
) -> Result<Response, ApiError> {
    // An id that does not parse names no update, as an unknown one.
    let update_id =
        Uuid::try_parse(&update_id).map_err(|_| Problem::not_found("no such update"))?;
    // The client is looked up in the clients read model: it must have
    // reached the position too.
    reach(&state, ProjectionName::Clients, params.min_position).await?;
    let position = reach(&state, PROJECTION, params.min_position).await?;
    clients::known(&state.pool, client_id).await?;
    let row = context::update(&state.pool, client_id, update_id)
        .await?
        .ok_or_else(|| Problem::not_found("no such update"))?;
    Ok(positioned(StatusCode::OK, &row, position))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_is_a_time_postgres_can_hold_or_a_422_naming_at() {
        assert!(time_of("at", "2026-11-18T10:00:00Z").is_ok());
        assert!(time_of("at", "0000-01-01T00:00:00Z").is_ok());
        for text in [
            "-5000-01-01T00:00:00Z",
            "+275000-01-01T00:00:00Z",
            "yesterday",
            "2026-13-45T99:99:99Z",
            "",
        ] {
            let refused = time_of("at", text).expect_err(text);
            assert_eq!(
                (refused.status, refused.errors[0].field.as_str()),
                (422, "at"),
                "{text}"
            );
        }
    }

    #[test]
    fn the_approval_filter_reads_every_documented_status_and_names_status_when_it_cannot() {
        let cases = [
            (None, (Some(UpdateStatus::Pending), None)),
            (Some("pending"), (Some(UpdateStatus::Pending), None)),
            (Some("applied"), (Some(UpdateStatus::Applied), None)),
            (
                Some("auto_applied"),
                (Some(UpdateStatus::Applied), Some(AppliedVia::Autopilot)),
            ),
            (Some("rejected"), (Some(UpdateStatus::Rejected), None)),
            (Some("superseded"), (Some(UpdateStatus::Superseded), None)),
            (Some("withdrawn"), (Some(UpdateStatus::Withdrawn), None)),
            (Some("all"), (None, None)),
        ];
        for (text, columns) in cases {
            let filter = ApprovalFilter::parse(text).expect("a documented status");
            assert_eq!(filter.columns(), columns, "{text:?}");
        }
        let refused = ApprovalFilter::parse(Some("maybe")).expect_err("an unknown status");
        assert_eq!(refused.status, 422);
        assert_eq!(refused.errors[0].field, "status");
    }
}
