//! Sending: deliverability per sending resource (the weekly report's
//! resource breakdown beside each resource's cap and the client's alert
//! limits), the suppression list, dead letters with their reasons and the
//! recent sends with their outcomes, each paged by its own cursor; a
//! lead's personal data shows only where the API gives it (admin and
//! operator). The authorisation decisions (every `authorization_decided`
//! of the audit trail, paged by its cursor) show leads by reference only.
//! Erasing a lead (admin) goes through a confirmation page.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use reqwest::Method;
use serde_json::Value;
use uuid::Uuid;

use crate::error::ConsoleError;
use crate::pages::{after_write, client_id, html, Params};
use crate::session::{PostForm, Signed};
use crate::view::{percent, shown, when, Page};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/clients/{client_id}/sends", get(sends))
        .route(
            "/clients/{client_id}/leads/erase",
            get(erase_page).post(erase),
        )
}

/// How many rows a list shows at a time.
const PAGE: usize = 25;

fn s(value: &Value, field: &str) -> String {
    value
        .get(field)
        .and_then(Value::as_str)
        .map(shown)
        .unwrap_or_default()
}

fn opt(value: &Value, field: &str) -> String {
    match value.get(field) {
        Some(Value::String(text)) => shown(text),
        Some(Value::Number(n)) => n.to_string(),
        _ => "–".into(),
    }
}

fn rate_of(value: &Value, field: &str) -> (String, f64, i64) {
    let rate = value
        .pointer(&format!("/{field}/rate"))
        .and_then(Value::as_f64);
    let sends = value
        .pointer(&format!("/{field}/sends"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    match rate {
        Some(rate) if sends > 0 => (percent(rate), rate, sends),
        _ => ("–".into(), 0.0, sends),
    }
}

struct ResourceRow {
    resource: String,
    kind: String,
    cap: String,
    sends: String,
    reply: String,
    bounce: String,
    complaint: String,
    bounce_over: bool,
    complaint_over: bool,
}

struct SuppressionRow {
    lead_ref: String,
    reason: String,
    since: String,
}

struct DeadLetterRow {
    id: i64,
    provider: String,
    reason: String,
    received_at: String,
}

struct SendRow {
    send_id: String,
    sent_at: String,
    lead_ref: String,
    channel: String,
    campaign: String,
    resource: String,
    variant: String,
    outcomes: String,
    email: Option<String>,
    name: Option<String>,
    subject: Option<String>,
}

/// One `authorization_decided` event: no personal data, the lead by
/// reference.
struct DecisionRow {
    at: String,
    lead_ref: String,
    channel: String,
    resource: String,
    tier: String,
    permit: bool,
    reasons: String,
}

fn decision(entry: &Value) -> DecisionRow {
    let data = entry.get("data").cloned().unwrap_or(Value::Null);
    let reasons = data
        .get("reasons")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(|r| shown(&r.replace('_', " ")))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "–".into());
    DecisionRow {
        at: when(
            entry
                .get("recorded_at")
                .and_then(Value::as_str)
                .unwrap_or(""),
        ),
        lead_ref: s(&data, "lead_ref"),
        channel: s(&data, "channel"),
        resource: s(&data, "resource"),
        tier: s(&data, "tier"),
        permit: data.get("permit").and_then(Value::as_bool).unwrap_or(false),
        reasons,
    }
}

#[derive(Template)]
#[template(path = "sends.html")]
struct SendsPage {
    page: Page,
    client_id: Uuid,
    week: String,
    limits: String,
    resources: Vec<ResourceRow>,
    report_error: Option<String>,
    suppression: Vec<SuppressionRow>,
    suppression_next: Option<String>,
    dead_letters: Vec<DeadLetterRow>,
    dead_next: Option<String>,
    sends: Vec<SendRow>,
    sends_next: Option<String>,
    decisions: Vec<DecisionRow>,
    decisions_next: Option<String>,
    personal: bool,
    is_admin: bool,
}

fn cursor(page: &Value, field: &str) -> Option<String> {
    match page.get(field) {
        Some(Value::String(text)) => Some(text.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn items(page: &Value) -> Vec<Value> {
    page.get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

async fn sends(
    State(state): State<AppState>,
    signed: Signed,
    Path(client): Path<String>,
    params: Params,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let min = params.min_position()?;
    let key = &signed.session.key;
    let base = format!("/v1/clients/{client}");
    let limit = ("limit", PAGE.to_string());
    let mut suppression_q = vec![limit.clone()];
    if let Some(after) = params.text("suppression_after") {
        suppression_q.push(("after", after.to_owned()));
    }
    let mut dead_q = vec![limit.clone()];
    if let Some(before) = params.text("dead_before") {
        dead_q.push(("before", before.to_owned()));
    }
    let mut sends_q = vec![limit];
    if let Some(before) = params.text("before") {
        sends_q.push(("before", before.to_owned()));
    }
    let mut decisions_q = vec![
        ("limit", PAGE.to_string()),
        ("event_type", "authorization_decided".to_owned()),
    ];
    if let Some(before) = params.text("decisions_before") {
        decisions_q.push(("before", before.to_owned()));
    }
    let (report_path, suppression_path, dead_path, sends_path, audit_path) = (
        format!("{base}/reports/weekly"),
        format!("{base}/suppression"),
        format!("{base}/dead-letters"),
        format!("{base}/sends"),
        format!("{base}/audit"),
    );
    let (detail, report, suppression, dead, recent, decisions) = tokio::join!(
        state.api.query::<Value>(key, &base, &[], min),
        state.api.query::<Value>(key, &report_path, &[], min),
        state
            .api
            .query::<Value>(key, &suppression_path, &suppression_q, min),
        state.api.query::<Value>(key, &dead_path, &dead_q, min),
        state.api.query::<Value>(key, &sends_path, &sends_q, min),
        state
            .api
            .query::<Value>(key, &audit_path, &decisions_q, min),
    );
    let detail = detail?;
    let (suppression, dead, recent, decisions) = (suppression?, dead?, recent?, decisions?);
    let name = detail.get("name").and_then(Value::as_str).unwrap_or("");
    let bounce_limit = detail
        .pointer("/alert_limits/bounce_rate")
        .and_then(Value::as_f64);
    let complaint_limit = detail
        .pointer("/alert_limits/complaint_rate")
        .and_then(Value::as_f64);
    let registered: Vec<Value> = detail
        .get("resources")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let (week, report_error, breakdown) = match &report {
        Ok(report) => (
            s(report, "week"),
            None,
            report
                .get("breakdowns")
                .and_then(Value::as_array)
                .map(|rows| {
                    rows.iter()
                        .filter(|r| r.get("dimension").and_then(Value::as_str) == Some("resource"))
                        .cloned()
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        ),
        Err(failure) => (
            String::new(),
            Some(format!(
                "The week's figures are not available: {}",
                shown(&failure.detail)
            )),
            Vec::new(),
        ),
    };
    // Every registered resource, with the week's figures where it sent;
    // then any resource that sent without being registered.
    let mut resources: Vec<ResourceRow> = Vec::new();
    let row_for = |address: &str, kind: String, cap: String| {
        let figures = breakdown.iter().find(|r| {
            r.get("value")
                .and_then(Value::as_str)
                .map(str::to_lowercase)
                == Some(address.to_lowercase())
        });
        let (reply, _, _) =
            figures
                .map(|f| rate_of(f, "reply_rate"))
                .unwrap_or(("–".into(), 0.0, 0));
        let (bounce, b, bs) =
            figures
                .map(|f| rate_of(f, "bounce_rate"))
                .unwrap_or(("–".into(), 0.0, 0));
        let (complaint, c, cs) =
            figures
                .map(|f| rate_of(f, "complaint_rate"))
                .unwrap_or(("–".into(), 0.0, 0));
        ResourceRow {
            resource: shown(address),
            kind,
            cap,
            sends: figures
                .and_then(|f| f.get("sends").and_then(Value::as_i64))
                .map(|n| n.to_string())
                .unwrap_or_else(|| "0".into()),
            reply,
            bounce,
            complaint,
            bounce_over: bs > 0 && bounce_limit.is_some_and(|l| b > l),
            complaint_over: cs > 0 && complaint_limit.is_some_and(|l| c > l),
        }
    };
    for r in &registered {
        let address = r.get("address").and_then(Value::as_str).unwrap_or("");
        resources.push(row_for(
            address,
            s(r, "kind").replace('_', " "),
            opt(r, "daily_cap"),
        ));
    }
    for f in &breakdown {
        let value = f.get("value").and_then(Value::as_str).unwrap_or("");
        let known = registered.iter().any(|r| {
            r.get("address")
                .and_then(Value::as_str)
                .is_some_and(|a| a.eq_ignore_ascii_case(value))
        });
        if !known {
            resources.push(row_for(value, "–".into(), "–".into()));
        }
    }
    let mut personal = false;
    let sends = items(&recent)
        .iter()
        .map(|item| {
            let outcomes = item
                .get("outcomes")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .map(|o| {
                            let mut text = s(o, "kind").replace('_', " ");
                            if let Some(extra) = o
                                .get("intent")
                                .and_then(Value::as_str)
                                .or_else(|| o.get("bounce_type").and_then(Value::as_str))
                            {
                                text.push_str(&format!(" ({})", shown(extra)));
                            }
                            text
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "–".into());
            let p = item.get("personal").filter(|p| p.is_object());
            personal |= p.is_some();
            let field = |f: &str| p.and_then(|p| p.get(f)).and_then(Value::as_str).map(shown);
            SendRow {
                send_id: s(item, "send_id"),
                sent_at: when(item.get("sent_at").and_then(Value::as_str).unwrap_or("")),
                lead_ref: s(item, "lead_ref"),
                channel: s(item, "channel"),
                campaign: opt(item, "campaign_id"),
                resource: opt(item, "resource"),
                variant: opt(item, "variant"),
                outcomes,
                email: field("email"),
                name: field("name"),
                subject: field("subject"),
            }
        })
        .collect();
    let limits = match (bounce_limit, complaint_limit) {
        (Some(b), Some(c)) => format!(
            "Alert limits: bounce rate {}, complaint rate {:.2}%; a rate over its limit is marked.",
            percent(b),
            c * 100.0
        ),
        _ => String::new(),
    };
    let page = SendsPage {
        page: Page::signed(format!("Sends · {}", shown(name)), &signed)
            .for_client(client, name, "sends")
            .with_notice(params.done().notice()),
        client_id: client,
        week,
        limits,
        resources,
        report_error,
        suppression: items(&suppression)
            .iter()
            .map(|i| SuppressionRow {
                lead_ref: s(i, "lead_ref"),
                reason: s(i, "reason").replace('_', " "),
                since: when(i.get("since").and_then(Value::as_str).unwrap_or("")),
            })
            .collect(),
        suppression_next: cursor(&suppression, "next_after"),
        dead_letters: items(&dead)
            .iter()
            .map(|i| DeadLetterRow {
                id: i.get("id").and_then(Value::as_i64).unwrap_or(0),
                provider: s(i, "provider"),
                reason: s(i, "reason"),
                received_at: when(i.get("received_at").and_then(Value::as_str).unwrap_or("")),
            })
            .collect(),
        dead_next: cursor(&dead, "next_before"),
        sends,
        sends_next: cursor(&recent, "next_before"),
        decisions: items(&decisions).iter().map(decision).collect(),
        decisions_next: cursor(&decisions, "next_before"),
        personal,
        is_admin: signed.session.who.is_admin(),
    };
    html(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "erase_confirm.html")]
struct EraseConfirm {
    page: Page,
    client_id: Uuid,
    lead_ref: String,
    /// The reference as typed, for the hidden field (escaped by askama).
    lead_ref_raw: String,
}

/// A lead reference as the API takes it in a path: trimmed, not empty.
fn lead_ref(text: Option<&str>) -> Result<String, ConsoleError> {
    let text = text.unwrap_or("").trim();
    if text.is_empty() || text.len() > 200 {
        return Err(ConsoleError::BadRequest(
            "Give the lead's reference (1 to 200 characters).".into(),
        ));
    }
    Ok(text.to_owned())
}

async fn erase_page(
    State(state): State<AppState>,
    signed: Signed,
    Path(client): Path<String>,
    params: Params,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let lead = lead_ref(params.text("lead_ref"))?;
    let name = crate::pages::client_name(&state, &signed, client, None).await?;
    let page = EraseConfirm {
        page: Page::signed("Erase a lead?", &signed).for_client(client, &name, "sends"),
        client_id: client,
        lead_ref: shown(&lead),
        lead_ref_raw: lead,
    };
    html(StatusCode::OK, &page)
}

async fn erase(
    State(state): State<AppState>,
    Path(client): Path<String>,
    form: PostForm,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let lead = lead_ref(form.fields.get("lead_ref"))?;
    if form.fields.get("confirm") != Some("yes") {
        return Err(ConsoleError::BadRequest(
            "Erasing needs the confirmation page's button.".into(),
        ));
    }
    let segment: String = lead
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect();
    let written = state
        .api
        .command(
            &form.signed.session.key,
            Method::POST,
            &format!("/v1/clients/{client}/leads/{segment}/erase"),
            None,
        )
        .await?;
    Ok(crate::pages::see_other(&after_write(
        &format!("/clients/{client}/sends"),
        &written,
        "erased",
    )))
}
