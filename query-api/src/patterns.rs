//! Pattern tables: `GET /v1/clients/{client_id}/patterns/{family}`, rows of
//! the WHAT / WHEN / HOW / WHO / versions detectors with sends, events,
//! rate, 95% Wilson interval, lift over the client's baseline, p and
//! Benjamini–Hochberg q within the family.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use sextant_adapters::http::{positioned, ClientScope, Problem, StrictQuery};
use sextant_domain::learning::{pattern_rows, Family, Metric};
use sextant_projections::patterns::BASELINE;

use crate::consistency::reach;
use crate::error::ApiError;
use crate::AppState;

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

fn column(metric: Metric) -> &'static str {
    match metric {
        Metric::Reply => "replies",
        Metric::PositiveReply => "positive_replies",
        Metric::Meeting => "meetings",
    }
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
    reach(&state, "clients", params.min_position).await?;
    let position = reach(&state, "patterns", params.min_position).await?;
    crate::consistency::known_client(&state, client_id).await?;
    // `column` is one of three constants, never input.
    let counts: Vec<(String, String, i64, i64)> = sqlx::query_as(&format!(
        "SELECT family, key, sends, {} FROM pattern_counts \
         WHERE client_id = $1 AND scope = $2 AND (family = $3 OR (family = $4 AND key = $5))",
        column(metric)
    ))
    .bind(client_id)
    .bind(&scope)
    .bind(family.as_str())
    .bind(BASELINE.0)
    .bind(BASELINE.1)
    .fetch_all(&state.pool)
    .await?;
    let baseline = counts
        .iter()
        .find(|(f, k, ..)| f == BASELINE.0 && k == BASELINE.1)
        .map(|(_, _, n, x)| (*n as u64, *x as u64))
        .unwrap_or((0, 0));
    let rows: Vec<(String, u64, u64)> = counts
        .into_iter()
        .filter(|(f, ..)| f == family.as_str())
        .map(|(_, key, n, x)| (key, n as u64, x as u64))
        .collect();
    let rows = pattern_rows(&rows, baseline);
    Ok(positioned(
        StatusCode::OK,
        &json!({
            "family": family.as_str(),
            "metric": metric.as_str(),
            "scope": scope,
            "baseline": { "sends": baseline.0, "events": baseline.1,
                          "rate": if baseline.0 > 0 { baseline.1 as f64 / baseline.0 as f64 } else { 0.0 } },
            "rows": rows,
        }),
        position,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlatformParams {
    min_position: Option<i64>,
    metric: Option<String>,
    /// Only clients of this industry.
    industry: Option<String>,
}

/// `GET /v1/patterns/platform/{family}`: for the operator, or a client that
/// shares its own data.
async fn platform(
    State(state): State<AppState>,
    sextant_adapters::http::Auth(principal): sextant_adapters::http::Auth,
    Path(family): Path<String>,
    StrictQuery(params): StrictQuery<PlatformParams>,
) -> Result<Response, ApiError> {
    if let sextant_adapters::http::Principal::Key { client_id, .. } = &principal {
        let consents: Option<bool> = sqlx::query_scalar(
            "SELECT data_sharing_consent FROM clients_view WHERE client_id = $1",
        )
        .bind(client_id)
        .fetch_optional(&state.pool)
        .await?;
        if consents != Some(true) {
            return Err(Problem::forbidden(
                "platform patterns are for clients that share their own data; give data-sharing consent first",
            )
            .into());
        }
    }
    let family = Family::parse(&family).ok_or_else(|| {
        Problem::not_found("unknown pattern family; known: what, when, how, who, versions")
    })?;
    let metric = metric_of(params.metric.as_deref())?;
    reach(&state, "clients", params.min_position).await?;
    let position = reach(&state, "patterns", params.min_position).await?;
    let table = sextant_projections::platform::platform_table(
        &state.pool,
        family,
        metric,
        params.industry.as_deref(),
    )
    .await?;
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
