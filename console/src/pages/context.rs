//! The context: the document now (or at a version, or as of a time) as
//! readable sections, the view each agent gets of it, its history, a comparison of any two versions (`?from=&to=`, a URL to
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
use sextant_domain::context::views::Agent;

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

/// An agent in the picker.
struct AgentChoice {
    value: &'static str,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "context.html")]
struct DocumentPage {
    page: Page,
    client_id: Uuid,
    heading: String,
    /// Which version is shown and since when, in words.
    summary: String,
    version: i64,
    latest: bool,
    sections: Vec<Section>,
    agents: Vec<AgentChoice>,
    /// The agent whose view is shown, if any.
    agent: Option<String>,
    /// The time as typed, kept in its field.
    at: String,
    /// The API's words on a time it refused.
    at_error: Option<String>,
}

/// "email strategist".
fn agent_label(agent: Agent) -> String {
    agent.as_str().replace('_', " ")
}

fn agent_choices(selected: Option<Agent>) -> Vec<AgentChoice> {
    Agent::ALL
        .iter()
        .map(|a| AgentChoice {
            value: a.as_str(),
            label: agent_label(*a),
            selected: Some(*a) == selected,
        })
        .collect()
}

/// The time for the API's `at`: as typed, except that a time without an
/// offset (what a browser's date-time field sends) is read as UTC.
fn at_for_api(text: &str) -> String {
    [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
    ]
    .iter()
    .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
    .map(|naive| {
        naive
            .and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    })
    .unwrap_or_else(|| text.to_owned())
}

/// The sections an agent's view has, in the order the document has them,
/// then the playbook rows, best practices and the agent's instructions.
const AGENT_SECTIONS: [&str; 8] = [
    "company",
    "icp",
    "personas",
    "messaging",
    "campaign_goals",
    "playbook",
    "best_practices",
    "instructions",
];

/// An empty section is a section without rows: the template says so.
fn readable(document: &Value) -> Vec<Section> {
    let mut out = sections(document);
    for section in &mut out {
        let empty = document
            .get(&section.key)
            .is_some_and(|v| v.as_object().is_some_and(|m| m.is_empty()));
        if empty {
            section.rows.clear();
        }
    }
    out
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
    let at = params.text("at").map(str::trim).unwrap_or("").to_owned();
    let agent = match params.text("agent") {
        None => None,
        Some(text) => Some(Agent::parse(text).ok_or_else(|| {
            ConsoleError::NotFound(format!(
                "There is no such agent. The agents are: {}.",
                Agent::ALL.map(|a| a.as_str()).join(", ")
            ))
        })?),
    };
    if agent.is_some() && (version.is_some() || !at.is_empty()) {
        return Err(ConsoleError::BadRequest(
            "An agent's view is of the context now: give `agent`, or `version` or `at`.".into(),
        ));
    }
    let name = client_name(&state, &signed, client, min).await?;
    let page = Page::signed(format!("Context · {}", shown(&name)), &signed)
        .for_client(client, &name, "context")
        .with_notice(params.done().notice());
    let mut view = DocumentPage {
        page,
        client_id: client,
        heading: "Context".into(),
        summary: String::new(),
        version: 0,
        latest: true,
        sections: Vec::new(),
        agents: agent_choices(agent),
        agent: agent.map(agent_label),
        at: at.clone(),
        at_error: None,
    };
    let key = &signed.session.key;
    if let Some(agent) = agent {
        let shaped: Value = state
            .api
            .query(
                key,
                &format!("/v1/clients/{client}/context/agents/{}", agent.as_str()),
                &[],
                min,
            )
            .await?;
        let version = shaped
            .get("context_version")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let picked: serde_json::Map<String, Value> = AGENT_SECTIONS
            .iter()
            .filter_map(|s| shaped.get(*s).map(|v| ((*s).to_owned(), v.clone())))
            .collect();
        let mut sections = readable(&Value::Object(picked));
        sections.sort_by_key(|s| AGENT_SECTIONS.iter().position(|k| *k == s.key));
        view.heading = format!("Context for the {}", agent_label(agent));
        view.summary = format!(
            "What the {} reads of version {version}: its sections, its playbook rows and best practices, and its own instructions.",
            agent_label(agent)
        );
        view.version = version;
        view.sections = sections;
        return html(StatusCode::OK, &view);
    }
    if !at.is_empty() {
        let answer = state
            .api
            .query::<Context>(
                key,
                &format!("/v1/clients/{client}/context"),
                &[("at", at_for_api(&at))],
                min,
            )
            .await;
        match answer {
            Ok(context) => {
                let then = when(&at_for_api(&at));
                view.heading = format!("Context as of {then}");
                view.summary = if context.version == 0 {
                    "No version had been made then: the context was empty.".into()
                } else {
                    format!(
                        "Version {} held then{}.",
                        context.version,
                        context
                            .updated_at
                            .as_deref()
                            .map(|u| format!(", made {}", when(u)))
                            .unwrap_or_default()
                    )
                };
                view.version = context.version;
                view.latest = false;
                view.sections = readable(&context.document);
                return html(StatusCode::OK, &view);
            }
            Err(failure) if failure.status == 422 => {
                view.at_error = Some(shown(
                    failure.for_field("at").unwrap_or(failure.detail.as_str()),
                ));
                let now = read_context(&state, &signed, client, None, min).await?;
                view.summary = format!(
                    "Nothing is shown for that time. This is the context now, version {}.",
                    now.version
                );
                view.version = now.version;
                view.sections = readable(&now.document);
                return html(StatusCode::UNPROCESSABLE_ENTITY, &view);
            }
            Err(failure) => return Err(failure.into()),
        }
    }
    let context = read_context(&state, &signed, client, version, min).await?;
    if version.is_some() {
        view.heading = format!("Context at version {}", context.version);
        view.latest = false;
    }
    view.summary = format!(
        "Version {}{}.",
        context.version,
        context
            .updated_at
            .as_deref()
            .map(|u| format!(", made {}", when(u)))
            .unwrap_or_default()
    );
    view.version = context.version;
    view.sections = readable(&context.document);
    html(StatusCode::OK, &view)
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
