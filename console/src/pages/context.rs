//! The context: the document now (or at a version) as readable sections,
//! its history, a comparison of any two versions (`?from=&to=`, a URL to
//! share), and rollback after a confirmation page that shows the diff the
//! rollback will make.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::ConsoleError;
use crate::pages::{after_write, client_id, client_name, html, see_other, Params};
use crate::session::{PostForm, Signed};
use crate::view::{display, sections, shown, when, Change, Diff, Page, Section};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/clients/{client_id}/context", get(document))
        .route("/clients/{client_id}/context/history", get(history))
        .route("/clients/{client_id}/context/compare", get(compare))
        .route(
            "/clients/{client_id}/context/rollback",
            get(rollback_page).post(rollback),
        )
}

#[derive(Debug, Deserialize)]
struct Context {
    version: i64,
    document: Value,
    #[serde(default)]
    updated_at: Option<String>,
}

#[derive(Template)]
#[template(path = "context.html")]
struct DocumentPage {
    page: Page,
    client_id: Uuid,
    version: i64,
    latest: bool,
    updated_at: String,
    sections: Vec<Section>,
}

async fn read_context(
    state: &AppState,
    signed: &Signed,
    client: Uuid,
    version: Option<i64>,
    min: Option<i64>,
) -> Result<Context, ConsoleError> {
    let params: Vec<(&str, String)> = version
        .map(|v| vec![("version", v.to_string())])
        .unwrap_or_default();
    Ok(state
        .api
        .query(
            &signed.session.key,
            &format!("/v1/clients/{client}/context"),
            &params,
            min,
        )
        .await?)
}

async fn document(
    State(state): State<AppState>,
    signed: Signed,
    Path(client): Path<String>,
    params: Params,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let min = params.min_position()?;
    let version = params.int("version")?;
    let (name, context) = tokio::join!(
        client_name(&state, &signed, client, min),
        read_context(&state, &signed, client, version, min)
    );
    let (name, context) = (name?, context?);
    let page = DocumentPage {
        page: Page::signed(format!("Context · {}", shown(&name)), &signed)
            .for_client(client, &name, "context")
            .with_notice(params.done().notice()),
        client_id: client,
        version: context.version,
        latest: version.is_none(),
        updated_at: context.updated_at.as_deref().map(when).unwrap_or_default(),
        sections: sections(&context.document),
    };
    html(StatusCode::OK, &page)
}

#[derive(Debug, Deserialize)]
struct Version {
    version: i64,
    created_at: String,
    source: String,
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    via: Option<String>,
    #[serde(default)]
    rationale: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    rolled_back_to: Option<i64>,
    #[serde(default)]
    paths: Value,
}

#[derive(Debug, Deserialize)]
struct VersionPage {
    items: Vec<Version>,
    next_before: Option<i64>,
}

struct VersionRow {
    version: i64,
    previous: i64,
    at: String,
    source: String,
    actor: String,
    why: String,
    paths: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "history.html")]
struct HistoryPage {
    page: Page,
    client_id: Uuid,
    versions: Vec<VersionRow>,
    next_before: Option<i64>,
    may_review: bool,
    latest: i64,
}

async fn history(
    State(state): State<AppState>,
    signed: Signed,
    Path(client): Path<String>,
    params: Params,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let min = params.min_position()?;
    let mut query = vec![("limit", "50".to_owned())];
    let before = params.int("before")?;
    if let Some(before) = before {
        query.push(("before", before.to_string()));
    }
    let path = format!("/v1/clients/{client}/context/versions");
    // The first page starts at the current version; an older page asks
    // the context which version is current.
    let current = async {
        match before {
            None => Ok(None),
            Some(_) => read_context(&state, &signed, client, None, min)
                .await
                .map(|c| Some(c.version)),
        }
    };
    let (name, page, current) = tokio::join!(
        client_name(&state, &signed, client, min),
        state
            .api
            .query::<VersionPage>(&signed.session.key, &path, &query, min),
        current,
    );
    let (name, page, current) = (name?, page?, current?);
    let latest = current
        .or_else(|| page.items.first().map(|v| v.version))
        .unwrap_or(0);
    let versions = page
        .items
        .into_iter()
        .map(|v| {
            let why = match (&v.rolled_back_to, &v.reason, &v.rationale) {
                (Some(to), Some(reason), _) => {
                    format!("rolled back to version {to}: {}", shown(reason))
                }
                (Some(to), None, _) => format!("rolled back to version {to}"),
                (None, _, Some(rationale)) => shown(rationale),
                _ => String::new(),
            };
            let source = match &v.via {
                Some(via) => format!("{} ({})", v.source.replace('_', " "), via.replace('_', " ")),
                None => v.source.replace('_', " "),
            };
            VersionRow {
                version: v.version,
                previous: (v.version - 1).max(0),
                at: when(&v.created_at),
                source,
                actor: v.actor.as_deref().map(shown).unwrap_or_else(|| "–".into()),
                why,
                paths: match &v.paths {
                    Value::Array(paths) => paths.iter().map(display).collect::<Vec<_>>().join(", "),
                    _ => String::new(),
                },
                current: v.version == latest,
            }
        })
        .collect();
    let view = HistoryPage {
        page: Page::signed(format!("History · {}", shown(&name)), &signed)
            .for_client(client, &name, "history")
            .with_notice(params.done().notice()),
        client_id: client,
        versions,
        next_before: page.next_before,
        may_review: signed.session.who.may_review(),
        latest,
    };
    html(StatusCode::OK, &view)
}

#[derive(Debug, Deserialize)]
struct DiffAnswer {
    changes: Vec<Change>,
}

async fn diff(
    state: &AppState,
    signed: &Signed,
    client: Uuid,
    from: i64,
    to: i64,
    min: Option<i64>,
) -> Result<Diff, ConsoleError> {
    let answer: DiffAnswer = state
        .api
        .query(
            &signed.session.key,
            &format!("/v1/clients/{client}/context/diff"),
            &[("from", from.to_string()), ("to", to.to_string())],
            min,
        )
        .await?;
    Ok(Diff::of(answer.changes))
}

#[derive(Template)]
#[template(path = "compare.html")]
struct ComparePage {
    page: Page,
    client_id: Uuid,
    from: i64,
    to: i64,
    latest: i64,
    diff: Option<Diff>,
}

async fn compare(
    State(state): State<AppState>,
    signed: Signed,
    Path(client): Path<String>,
    uri: Uri,
    params: Params,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let min = params.min_position()?;
    let (from, to) = (params.int("from")?, params.int("to")?);
    // One address per comparison, whatever order the history form sent.
    if let (Some(from), Some(to)) = (from, to) {
        let canonical = format!("from={from}&to={to}");
        if uri.query() != Some(canonical.as_str()) && min.is_none() {
            return Ok(see_other(&format!(
                "/clients/{client}/context/compare?{canonical}"
            )));
        }
    }
    let name = client_name(&state, &signed, client, min).await?;
    let now = read_context(&state, &signed, client, None, min).await?;
    let diff = match (from, to) {
        (Some(from), Some(to)) => Some(diff(&state, &signed, client, from, to, min).await?),
        _ => None,
    };
    let page = ComparePage {
        page: Page::signed(format!("Compare · {}", shown(&name)), &signed)
            .for_client(client, &name, "history"),
        client_id: client,
        from: from.unwrap_or((now.version - 1).max(0)),
        to: to.unwrap_or(now.version),
        latest: now.version,
        diff,
    };
    html(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "rollback.html")]
struct RollbackPage {
    page: Page,
    client_id: Uuid,
    to: i64,
    current: i64,
    diff: Diff,
    may_review: bool,
    problem: Option<String>,
    reason_error: Option<String>,
    reason: String,
}

#[allow(clippy::too_many_arguments)]
async fn rollback_view(
    state: &AppState,
    signed: &Signed,
    client: Uuid,
    to: i64,
    status: StatusCode,
    problem: Option<String>,
    reason_error: Option<String>,
    reason: String,
) -> Result<Response, ConsoleError> {
    let name = client_name(state, signed, client, None).await?;
    let now = read_context(state, signed, client, None, None).await?;
    let diff = diff(state, signed, client, now.version, to, None).await?;
    let page = RollbackPage {
        page: Page::signed(format!("Roll back · {}", shown(&name)), signed)
            .for_client(client, &name, "history"),
        client_id: client,
        to,
        current: now.version,
        diff,
        may_review: signed.session.who.may_review(),
        problem,
        reason_error,
        reason,
    };
    html(status, &page)
}

async fn rollback_page(
    State(state): State<AppState>,
    signed: Signed,
    Path(client): Path<String>,
    params: Params,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let to = params
        .int("to")?
        .ok_or_else(|| ConsoleError::BadRequest("`to` names the version to roll back to".into()))?;
    rollback_view(
        &state,
        &signed,
        client,
        to,
        StatusCode::OK,
        None,
        None,
        String::new(),
    )
    .await
}

async fn rollback(
    State(state): State<AppState>,
    Path(client): Path<String>,
    form: PostForm,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let signed = &form.signed;
    let to: i64 = form
        .fields
        .get("to_version")
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| ConsoleError::BadRequest("`to_version` must be a version".into()))?;
    let reason = form
        .fields
        .get("reason")
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let body = json!({ "to_version": to, "reason": reason });
    match state
        .api
        .command(
            &signed.session.key,
            Method::POST,
            &format!("/v1/clients/{client}/context/rollback"),
            Some(&body),
        )
        .await
    {
        Ok(written) => Ok(see_other(&after_write(
            &format!("/clients/{client}/context"),
            &written,
            "rolled_back",
        ))),
        Err(failure) if failure.status == 422 || failure.status == 409 => {
            let reason_error = failure.for_field("reason").map(str::to_owned);
            let problem = Some(format!("Nothing was changed. {}", failure.detail));
            let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::CONFLICT);
            rollback_view(
                &state,
                signed,
                client,
                to,
                status,
                problem,
                reason_error,
                reason,
            )
            .await
        }
        Err(failure) => Err(failure.into()),
    }
}
