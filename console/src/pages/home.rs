//! Home pages. The operator's: every client with this week's volume and
//! reply rate (the platform report), and the open alerts. A client's: the
//! week's headline, the pending approvals, the open alerts and the
//! activity feed (the audit trail, paged by its cursor). A client key's
//! home is its own client's. The operator registers a client from the
//! home page and lands on the new client's home.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::api::ApiFailure;
use crate::error::ConsoleError;
use crate::pages::{after_write, client_id, html, see_other, Params};
use crate::session::PostForm;
use crate::session::Signed;
use crate::view::{percent, shown, when, Page};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/clients", post(register))
        .route("/clients/{client_id}", get(client_home))
        .route("/clients/{client_id}/activity", get(activity_page))
}

#[derive(Debug, Deserialize)]
struct ClientItem {
    client_id: Uuid,
    name: String,
    status: String,
}

#[derive(Debug, Deserialize)]
struct ClientPage {
    items: Vec<ClientItem>,
    next_after: Option<Uuid>,
}

#[derive(Debug, Deserialize)]
struct Rate {
    rate: f64,
    sends: i64,
}

#[derive(Debug, Deserialize)]
struct PlatformRow {
    client_id: Uuid,
    sends: i64,
    reply_rate: Option<Rate>,
    pending_approvals: Option<i64>,
    open_alerts: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct PlatformReport {
    week: String,
    clients: Vec<PlatformRow>,
}

#[derive(Debug, Deserialize)]
struct Alert {
    client_id: Uuid,
    condition: String,
    subject: String,
    raised_at: String,
}

#[derive(Debug, Deserialize)]
struct AlertPage {
    items: Vec<Alert>,
}

struct ClientRow {
    id: Uuid,
    name: String,
    status: String,
    sends: String,
    reply_rate: String,
    pending: String,
    alerts: String,
}

struct AlertRow {
    client_id: Uuid,
    client: String,
    condition: String,
    subject: String,
    raised_at: String,
}

#[derive(Template)]
#[template(path = "operator_home.html")]
struct OperatorHome {
    page: Page,
    week: Option<String>,
    report_error: Option<String>,
    clients: Vec<ClientRow>,
    next_after: Option<Uuid>,
    alerts: Vec<AlertRow>,
    new_client: NewClient,
}

/// Company sizes and permission modes, as `RegisterClient` takes them.
const SIZES: [&str; 7] = [
    "1-10",
    "11-50",
    "51-200",
    "201-500",
    "501-1000",
    "1001-5000",
    "5001+",
];
const MODES: [(&str, &str); 3] = [
    (
        "manual",
        "manual: everything Sextant proposes waits for review",
    ),
    (
        "co_pilot",
        "co-pilot: people's changes and best practices apply at once",
    ),
    (
        "autopilot",
        "autopilot: confident analyses and suggestions apply at once",
    ),
];

struct Choice {
    value: &'static str,
    label: String,
    selected: bool,
}

/// The registration form: what was typed (kept after a refusal) and the
/// API's words on each field it refused.
struct NewClient {
    name: String,
    industry: String,
    region: String,
    timezone: String,
    sizes: Vec<Choice>,
    modes: Vec<Choice>,
    /// (field, message) as the API named them.
    errors: Vec<(String, String)>,
    problem: Option<String>,
}

impl NewClient {
    fn of(fields: &crate::session::Fields) -> Self {
        let get = |name: &str| fields.get(name).unwrap_or("").to_owned();
        let size = fields.get("company_size").unwrap_or("11-50");
        let mode = fields.get("permission_mode").unwrap_or("co_pilot");
        Self {
            name: get("name"),
            industry: get("industry"),
            region: get("region"),
            timezone: get("timezone"),
            sizes: SIZES
                .iter()
                .map(|v| Choice {
                    value: v,
                    label: (*v).to_owned(),
                    selected: *v == size,
                })
                .collect(),
            modes: MODES
                .iter()
                .map(|(v, label)| Choice {
                    value: v,
                    label: (*label).to_owned(),
                    selected: *v == mode,
                })
                .collect(),
            errors: Vec::new(),
            problem: None,
        }
    }

    /// The API's message for `field`, shown next to it.
    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }
}

/// A section that could not be read says so instead of failing the page.
fn unavailable(failure: &ApiFailure) -> String {
    if failure.detail.is_empty() {
        format!("Not available ({}).", failure.status)
    } else {
        format!("Not available: {}", failure.detail)
    }
}

async fn home(
    State(state): State<AppState>,
    signed: Signed,
    params: Params,
) -> Result<Response, ConsoleError> {
    if let Some(own) = signed.session.who.own_client() {
        return Ok(see_other(&format!("/clients/{own}")));
    }
    let blank = NewClient::of(&crate::session::Fields::default());
    operator_home(
        &state,
        &signed,
        params.text("after"),
        params.min_position()?,
        params.done().notice(),
        blank,
        StatusCode::OK,
    )
    .await
}

async fn operator_home(
    state: &AppState,
    signed: &Signed,
    after: Option<&str>,
    min: Option<i64>,
    notice: Option<String>,
    new_client: NewClient,
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    let key = &signed.session.key;
    let mut query = vec![("limit", "100".to_owned())];
    if let Some(after) = after {
        query.push(("after", after.to_owned()));
    }
    let clients: ClientPage = state.api.query(key, "/v1/clients", &query, min).await?;
    let alerts_query = [("status", "open".to_owned()), ("limit", "50".to_owned())];
    let (report, alerts) = tokio::join!(
        state
            .api
            .query::<PlatformReport>(key, "/v1/reports/weekly", &[], min),
        state
            .api
            .query::<AlertPage>(key, "/v1/alerts", &alerts_query, min),
    );
    let (week, report_error, platform) = match report {
        Ok(report) => (Some(report.week), None, report.clients),
        Err(failure) => (None, Some(unavailable(&failure)), Vec::new()),
    };
    let name_of = |id: Uuid| {
        clients
            .items
            .iter()
            .find(|c| c.client_id == id)
            .map(|c| shown(&c.name))
            .unwrap_or_else(|| id.to_string())
    };
    let alerts: Vec<AlertRow> = alerts
        .map(|page| page.items)
        .unwrap_or_default()
        .into_iter()
        .map(|a| AlertRow {
            client_id: a.client_id,
            client: name_of(a.client_id),
            condition: a.condition.replace('_', " "),
            subject: shown(&a.subject),
            raised_at: when(&a.raised_at),
        })
        .collect();
    let rows = clients
        .items
        .iter()
        .map(|c| {
            let row = platform.iter().find(|p| p.client_id == c.client_id);
            ClientRow {
                id: c.client_id,
                name: shown(&c.name),
                status: c.status.clone(),
                sends: row
                    .map(|r| r.sends.to_string())
                    .unwrap_or_else(|| "–".into()),
                reply_rate: row
                    .and_then(|r| r.reply_rate.as_ref())
                    .filter(|r| r.sends > 0)
                    .map(|r| percent(r.rate))
                    .unwrap_or_else(|| "–".into()),
                pending: row
                    .and_then(|r| r.pending_approvals)
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "–".into()),
                alerts: row
                    .and_then(|r| r.open_alerts)
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "–".into()),
            }
        })
        .collect();
    let page = OperatorHome {
        page: Page::signed("Clients", signed)
            .in_section("clients")
            .with_notice(notice),
        week,
        report_error,
        clients: rows,
        next_after: clients.next_after,
        alerts,
        new_client,
    };
    html(status, &page)
}

/// Registers a client (`POST /v1/clients`, the operator only) and goes to
/// its home, read at the registration's position. A refusal (422) shows
/// the API's words next to each field it names, with what was typed; a
/// key's forged POST is the API's 403.
async fn register(State(state): State<AppState>, form: PostForm) -> Result<Response, ConsoleError> {
    let mut body = Map::new();
    for field in [
        "name",
        "industry",
        "company_size",
        "region",
        "permission_mode",
    ] {
        body.insert(field.into(), json!(form.fields.get(field).unwrap_or("")));
    }
    // A blank time zone is the API's default, UTC.
    if let Some(zone) = form
        .fields
        .get("timezone")
        .map(str::trim)
        .filter(|z| !z.is_empty())
    {
        body.insert("timezone".into(), json!(zone));
    }
    let answer = state
        .api
        .command(
            &form.signed.session.key,
            Method::POST,
            "/v1/clients",
            Some(&Value::Object(body)),
        )
        .await;
    match answer {
        Ok(written) => {
            let id = written
                .body
                .get("client_id")
                .and_then(Value::as_str)
                .and_then(|id| Uuid::try_parse(id).ok())
                .ok_or_else(|| {
                    ConsoleError::BadRequest("The API did not name the new client.".into())
                })?;
            Ok(see_other(&after_write(
                &format!("/clients/{id}"),
                &written,
                "client_registered",
            )))
        }
        Err(failure) if failure.status == 422 => {
            let mut new_client = NewClient::of(&form.fields);
            new_client.errors = failure
                .errors
                .iter()
                .map(|e| (e.field.clone(), shown(&e.message)))
                .collect();
            new_client.problem = Some(format!(
                "The client was not registered. {}",
                shown(&failure.detail)
            ));
            operator_home(
                &state,
                &form.signed,
                None,
                None,
                None,
                new_client,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(failure) => Err(failure.into()),
    }
}

#[derive(Debug, Deserialize)]
struct AuditEntry {
    event_type: String,
    actor: Option<String>,
    recorded_at: String,
}

#[derive(Debug, Deserialize)]
struct AuditPage {
    items: Vec<AuditEntry>,
    next_before: Option<i64>,
}

struct ActivityRow {
    what: String,
    actor: String,
    at: String,
}

struct Metric {
    name: String,
    rate: String,
    events: i64,
    sends: i64,
}

struct Headline {
    week: String,
    sends: i64,
    previous: i64,
    maturing: bool,
    metrics: Vec<Metric>,
}

struct ClientAlert {
    condition: String,
    subject: String,
    raised_at: String,
}

#[derive(Template)]
#[template(path = "client_home.html")]
struct ClientHome {
    page: Page,
    client_id: Uuid,
    name: String,
    status: String,
    mode: String,
    headline: Option<Headline>,
    report_error: Option<String>,
    pending: Option<usize>,
    alerts: Vec<ClientAlert>,
    activity: Vec<ActivityRow>,
    next_before: Option<i64>,
}

fn headline_of(report: &Value) -> Option<Headline> {
    let volume = report.pointer("/headline/volume")?;
    let metrics = report
        .pointer("/headline/metrics")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter(|m| {
                    matches!(
                        m.get("metric").and_then(Value::as_str),
                        Some("reply" | "positive_reply" | "meeting" | "bounce")
                    )
                })
                .map(|m| Metric {
                    name: m
                        .get("metric")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .replace('_', " "),
                    rate: percent(m.get("rate").and_then(Value::as_f64).unwrap_or(0.0)),
                    events: m.get("events").and_then(Value::as_i64).unwrap_or(0),
                    sends: m.get("sends").and_then(Value::as_i64).unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Headline {
        week: report
            .get("week")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        sends: volume.get("sends").and_then(Value::as_i64).unwrap_or(0),
        previous: volume
            .get("previous_week")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        maturing: report
            .get("maturing")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        metrics,
    })
}

async fn activity(
    state: &AppState,
    signed: &Signed,
    client: Uuid,
    before: Option<i64>,
    min: Option<i64>,
) -> Result<(Vec<ActivityRow>, Option<i64>), ConsoleError> {
    let mut query = vec![("limit", "20".to_owned())];
    if let Some(before) = before {
        query.push(("before", before.to_string()));
    }
    let audit: AuditPage = state
        .api
        .query(
            &signed.session.key,
            &format!("/v1/clients/{client}/audit"),
            &query,
            min,
        )
        .await?;
    let rows = audit
        .items
        .into_iter()
        .map(|e| ActivityRow {
            what: e.event_type.replace('_', " "),
            actor: e.actor.map(|a| shown(&a)).unwrap_or_else(|| "–".into()),
            at: when(&e.recorded_at),
        })
        .collect();
    Ok((rows, audit.next_before))
}

async fn client_home(
    State(state): State<AppState>,
    signed: Signed,
    Path(client): Path<String>,
    params: Params,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let key = &signed.session.key;
    let min = params.min_position()?;
    let detail: Value = state
        .api
        .query(key, &format!("/v1/clients/{client}"), &[], min)
        .await?;
    let name = detail
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let approvals_path = format!("/v1/clients/{client}/approvals");
    let alerts_path = format!("/v1/clients/{client}/alerts");
    let report_path = format!("/v1/clients/{client}/reports/weekly");
    let pending_query = [
        ("status", "pending".to_owned()),
        ("limit", "500".to_owned()),
    ];
    let alerts_query = [("status", "open".to_owned()), ("limit", "20".to_owned())];
    let (report, pending, alerts, activity) = tokio::join!(
        state.api.query::<Value>(key, &report_path, &[], min),
        state
            .api
            .query::<Value>(key, &approvals_path, &pending_query, min),
        state
            .api
            .query::<Value>(key, &alerts_path, &alerts_query, min),
        activity(&state, &signed, client, params.int("before")?, min),
    );
    let (headline, report_error) = match report {
        Ok(report) => (headline_of(&report), None),
        Err(failure) => (None, Some(unavailable(&failure))),
    };
    let pending = pending.ok().and_then(|p| {
        p.get("items")
            .and_then(Value::as_array)
            .map(|items| items.len())
    });
    let alerts = alerts
        .ok()
        .and_then(|page| page.get("items").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .iter()
        .map(|a| ClientAlert {
            condition: a
                .get("condition")
                .and_then(Value::as_str)
                .unwrap_or("")
                .replace('_', " "),
            subject: shown(a.get("subject").and_then(Value::as_str).unwrap_or("")),
            raised_at: when(a.get("raised_at").and_then(Value::as_str).unwrap_or("")),
        })
        .collect();
    let (activity, next_before) = activity?;
    let page = ClientHome {
        page: Page::signed(shown(&name), &signed)
            .for_client(client, &name, "home")
            .with_notice(params.done().notice()),
        client_id: client,
        name: shown(&name),
        status: detail
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        mode: detail
            .get("permission_mode")
            .and_then(Value::as_str)
            .unwrap_or("")
            .replace('_', " "),
        headline,
        report_error,
        pending,
        alerts,
        activity,
        next_before,
    };
    html(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "activity.html")]
struct ActivityPage {
    page: Page,
    client_id: Uuid,
    activity: Vec<ActivityRow>,
    next_before: Option<i64>,
}

/// Older activity: a page of its own without JavaScript; with htmx, its
/// rows are appended to the client home's feed.
async fn activity_page(
    State(state): State<AppState>,
    signed: Signed,
    Path(client): Path<String>,
    params: Params,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let min = params.min_position()?;
    let name = crate::pages::client_name(&state, &signed, client, min).await?;
    let (activity, next_before) =
        activity(&state, &signed, client, params.int("before")?, min).await?;
    let page = ActivityPage {
        page: Page::signed("Activity", &signed).for_client(client, &name, "home"),
        client_id: client,
        activity,
        next_before,
    };
    html(StatusCode::OK, &page)
}
