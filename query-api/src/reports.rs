//! Weekly reports: `GET /v1/clients/{client_id}/reports/weekly` (any key
//! of the client, or the operator) and the operator's platform report
//! `GET /v1/reports/weekly`, each as JSON (default), CSV (`Accept:
//! text/csv` or `?format=csv`; one table with `?table=`) or one
//! self-contained HTML page (`?format=html`).

use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use sextant_adapters::http::{
    positioned, set_position, ClientScope, OperatorKey, Problem, StrictQuery,
};
use sextant_application::read_model::clients;
use sextant_application::reports::render::{self, Tabular};
use sextant_application::reports::{self, sort_param, week_param};
use sextant_application::ApiError;
use sextant_projections::ProjectionName;

use crate::consistency::reach;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/clients/{client_id}/reports/weekly", get(weekly))
        .route("/v1/reports/weekly", get(platform))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    min_position: Option<i64>,
    /// `2026-W48`; default the last complete week.
    week: Option<String>,
    /// `json` (default), `csv` or `html`.
    format: Option<String>,
    /// One table of the CSV form.
    table: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlatformParams {
    min_position: Option<i64>,
    week: Option<String>,
    format: Option<String>,
    table: Option<String>,
    /// A column, `-` before it for descending.
    sort: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Json,
    Csv,
    Html,
}

/// The form asked for: `format` first, then a table (CSV), then `Accept`.
fn format_of(
    format: Option<&str>,
    table: Option<&str>,
    headers: &HeaderMap,
) -> Result<Format, Problem> {
    let format = match format {
        Some("json") => Format::Json,
        Some("csv") => Format::Csv,
        Some("html") => Format::Html,
        Some(_) => {
            return Err(Problem::invalid_field(
                "format",
                "must be json, csv or html",
            ))
        }
        None if table.is_some() => Format::Csv,
        None => {
            let accept = headers
                .get(ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_ascii_lowercase();
            if accept.contains("text/csv") {
                Format::Csv
            } else if accept.contains("text/html") && !accept.contains("application/json") {
                Format::Html
            } else {
                Format::Json
            }
        }
    };
    if table.is_some() && format != Format::Csv {
        return Err(Problem::invalid_field(
            "table",
            "only the CSV form has tables",
        ));
    }
    Ok(format)
}

/// Checks `table` names one of the report's tables.
fn check_table<T: Tabular>(report: &T, table: Option<&str>) -> Result<(), Problem> {
    match table {
        Some(t) if !render::table_names(report).contains(&t) => Err(Problem::invalid_field(
            "table",
            format!("must be one of {}", render::table_names(report).join(", ")),
        )),
        _ => Ok(()),
    }
}

fn text(body: String, media: &'static str, filename: Option<String>, position: i64) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(media));
    if let Some(name) =
        filename.and_then(|n| HeaderValue::from_str(&format!("attachment; filename=\"{n}\"")).ok())
    {
        response.headers_mut().insert(CONTENT_DISPOSITION, name);
    }
    set_position(&mut response, position);
    response
}

fn csv_answer<T: Tabular>(
    report: &T,
    table: Option<&str>,
    stem: &str,
    position: i64,
) -> Result<Response, ApiError> {
    let body = match table {
        Some(t) => render::csv_table(report, t)
            .ok_or_else(|| Problem::invalid_field("table", "no such table"))?,
        None => render::csv_all(report),
    }
    .map_err(|e| {
        tracing::error!(error = %e, "a report's CSV could not be written");
        Problem::internal()
    })?;
    let name = match table {
        Some(t) => format!("{stem}-{t}.csv"),
        None => format!("{stem}.csv"),
    };
    Ok(text(body, "text/csv; charset=utf-8", Some(name), position))
}

async fn weekly(
    State(state): State<AppState>,
    ClientScope { client_id, .. }: ClientScope,
    headers: HeaderMap,
    StrictQuery(params): StrictQuery<Params>,
) -> Result<Response, ApiError> {
    let week = week_param(params.week.as_deref())?;
    let format = format_of(params.format.as_deref(), params.table.as_deref(), &headers)?;
    reach(&state, ProjectionName::Clients, params.min_position).await?;
    reach(&state, ProjectionName::Context, params.min_position).await?;
    let position = reach(&state, ProjectionName::Reports, params.min_position).await?;
    clients::known(&state.pool, client_id).await?;
    let report = reports::weekly(&state.pool, client_id, week).await?;
    check_table(&report, params.table.as_deref())?;
    match format {
        Format::Json => Ok(positioned(StatusCode::OK, &report, position)),
        Format::Csv => csv_answer(
            &report,
            params.table.as_deref(),
            &format!("weekly-{}", report.week),
            position,
        ),
        Format::Html => Ok(text(
            render::weekly_html(&report),
            "text/html; charset=utf-8",
            None,
            position,
        )),
    }
}

/// `GET /v1/reports/weekly`: the operator key alone.
async fn platform(
    State(state): State<AppState>,
    _: OperatorKey,
    headers: HeaderMap,
    StrictQuery(params): StrictQuery<PlatformParams>,
) -> Result<Response, ApiError> {
    let week = week_param(params.week.as_deref())?;
    let sort = sort_param(params.sort.as_deref())?;
    let format = format_of(params.format.as_deref(), params.table.as_deref(), &headers)?;
    reach(&state, ProjectionName::Clients, params.min_position).await?;
    let position = reach(&state, ProjectionName::Reports, params.min_position).await?;
    let report = reports::platform_weekly(&state.pool, week, &sort).await?;
    check_table(&report, params.table.as_deref())?;
    match format {
        Format::Json => Ok(positioned(StatusCode::OK, &report, position)),
        Format::Csv => csv_answer(
            &report,
            params.table.as_deref(),
            &format!("platform-{}", report.week),
            position,
        ),
        Format::Html => Ok(text(
            render::platform_html(&report),
            "text/html; charset=utf-8",
            None,
            position,
        )),
    }
}
