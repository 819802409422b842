//! Alerts: a client's open, resolved or all alerts (paged), each with its
//! evidence as a table, who acknowledged it and when; reviewers, admins
//! and the operator acknowledge an alert with an optional note.
//! Acknowledging says a person has seen it; only the detector resolves.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::ConsoleError;
use crate::pages::{after_write, client_id, client_name, html, see_other, Params};
use crate::session::{PostForm, Signed};
use crate::view::{flatten, shown, when, Page, Row};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/clients/{client_id}/alerts", get(alerts))
        .route(
            "/clients/{client_id}/alerts/{alert_id}/acknowledge",
            post(acknowledge),
        )
}

const STATUSES: [&str; 3] = ["open", "resolved", "all"];

struct AlertView {
    id: String,
    condition: String,
    subject: String,
    status: String,
    raised_at: String,
    resolved_at: Option<String>,
    acknowledged: Option<String>,
    evidence: Vec<Row>,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    page: Page,
    client_id: Uuid,
    status: String,
    statuses: Vec<(&'static str, bool)>,
    alerts: Vec<AlertView>,
    next_before: Option<i64>,
    may_acknowledge: bool,
}

fn text(value: &Value, field: &str) -> Option<String> {
    value.get(field).and_then(Value::as_str).map(shown)
}

async fn alerts(
    State(state): State<AppState>,
    signed: Signed,
    Path(client): Path<String>,
    params: Params,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let min = params.min_position()?;
    let status = params.text("status").unwrap_or("open");
    if !STATUSES.contains(&status) {
        return Err(ConsoleError::BadRequest(
            "`status` must be one of: open, resolved, all".into(),
        ));
    }
    let name = client_name(&state, &signed, client, min).await?;
    let mut query = vec![("status", status.to_owned()), ("limit", "50".to_owned())];
    if let Some(before) = params.int("before")? {
        query.push(("before", before.to_string()));
    }
    let page: Value = state
        .api
        .query(
            &signed.session.key,
            &format!("/v1/clients/{client}/alerts"),
            &query,
            min,
        )
        .await?;
    let alerts = page
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|a| AlertView {
            id: text(a, "alert_id").unwrap_or_default(),
            condition: text(a, "condition").unwrap_or_default().replace('_', " "),
            subject: text(a, "subject").unwrap_or_default(),
            status: text(a, "status").unwrap_or_default(),
            raised_at: when(a.get("raised_at").and_then(Value::as_str).unwrap_or("")),
            resolved_at: a.get("resolved_at").and_then(Value::as_str).map(when),
            acknowledged: a.get("acknowledged_at").and_then(Value::as_str).map(|at| {
                let mut t = format!(
                    "Acknowledged {} by {}",
                    when(at),
                    text(a, "acknowledged_by").unwrap_or_else(|| "–".into())
                );
                if let Some(note) = text(a, "acknowledgement") {
                    t.push_str(&format!(": {note}"));
                }
                t
            }),
            evidence: flatten(a.get("evidence").unwrap_or(&Value::Null)),
        })
        .collect();
    let view = AlertsPage {
        page: Page::signed(format!("Alerts · {}", shown(&name)), &signed)
            .for_client(client, &name, "alerts")
            .with_notice(params.done().notice()),
        client_id: client,
        status: status.to_owned(),
        statuses: STATUSES.iter().map(|s| (*s, *s == status)).collect(),
        alerts,
        next_before: page.get("next_before").and_then(Value::as_i64),
        may_acknowledge: signed.session.who.may_review(),
    };
    html(StatusCode::OK, &view)
}

async fn acknowledge(
    State(state): State<AppState>,
    Path((client, alert)): Path<(String, String)>,
    form: PostForm,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let alert = Uuid::try_parse(&alert)
        .map_err(|_| ConsoleError::NotFound("There is no such alert.".into()))?;
    let note = form
        .fields
        .get("note")
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let body = (!note.is_empty()).then(|| json!({ "note": note }));
    let written = state
        .api
        .command(
            &form.signed.session.key,
            Method::POST,
            &format!("/v1/clients/{client}/alerts/{alert}/acknowledge"),
            body.as_ref(),
        )
        .await?;
    let status = match form.fields.get("status") {
        Some(s) if STATUSES.contains(&s) => s,
        _ => "open",
    };
    Ok(see_other(&format!(
        "{}&status={status}",
        after_write(
            &format!("/clients/{client}/alerts"),
            &written,
            "acknowledged"
        )
    )))
}
