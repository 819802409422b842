//! A client's settings: profile and time zone, permission mode (with what
//! each mode routes where), alert limits and report recipients (all
//! `PATCH /v1/clients/{id}`); webhook addresses per provider and whether a
//! secret is set (never the secret itself; a new one is set with
//! `PUT .../webhooks/{provider}`); API keys (issue: the new key is shown
//! once, on the answer to the POST, and never again; revoke); sending
//! resources and their daily caps. Changing anything is for admin keys
//! and the operator; other keys see the settings without the forms.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use reqwest::Method;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::error::ConsoleError;
use crate::pages::{after_write, client_id, html, see_other, Params};
use crate::session::{Fields, PostForm, Signed};
use crate::view::{shown, when, Page};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/clients/{client_id}/settings", get(settings))
        .route("/clients/{client_id}/settings/profile", post(profile))
        .route("/clients/{client_id}/settings/mode", post(mode))
        .route("/clients/{client_id}/settings/alerts", post(alerts))
        .route("/clients/{client_id}/settings/webhooks", post(webhook))
        .route("/clients/{client_id}/settings/keys", post(issue_key))
        .route(
            "/clients/{client_id}/settings/keys/{key_id}/revoke",
            post(revoke_key),
        )
        .route("/clients/{client_id}/settings/resources", post(resource))
}

pub const PROVIDERS: [&str; 8] = [
    "smartlead",
    "instantly",
    "hubspot",
    "salesloft",
    "replyio",
    "heyreach",
    "lemlist",
    "outreach",
];
const SIZES: [&str; 7] = [
    "1-10",
    "11-50",
    "51-200",
    "201-500",
    "501-1000",
    "1001-5000",
    "5001+",
];
const ROLES: [&str; 4] = ["admin", "reviewer", "ingest", "reader"];
const KINDS: [&str; 4] = ["mailbox", "linkedin_seat", "sms_number", "mail_account"];

/// Each permission mode and what it routes where (the policy table of
/// docs/context-ledger.md).
const MODES: [(&str, &str); 3] = [
    (
        "manual",
        "Manual: people's own changes apply at once; everything Sextant proposes (best practices, analyses, agent suggestions, cross-client patterns) waits in the approval queue.",
    ),
    (
        "co_pilot",
        "Co-pilot: people's changes and best practices apply at once; analyses, agent suggestions and cross-client patterns wait in the approval queue.",
    ),
    (
        "autopilot",
        "Autopilot: as co-pilot, but an analysis or agent suggestion whose confidence reaches the threshold applies at once (listed as auto-applied for review after the fact); cross-client patterns always wait for review.",
    ),
];

struct Choice {
    value: &'static str,
    label: String,
    selected: bool,
}

fn choices(values: &[&'static str], current: &str) -> Vec<Choice> {
    values
        .iter()
        .map(|v| Choice {
            value: v,
            label: v.replace('_', " "),
            selected: *v == current,
        })
        .collect()
}

struct ModeView {
    value: &'static str,
    text: &'static str,
    selected: bool,
}

struct WebhookView {
    provider: &'static str,
    url: String,
    set: Option<String>,
}

struct KeyView {
    id: String,
    role: String,
    label: String,
    issued_at: String,
    revoked_at: Option<String>,
}

struct ResourceView {
    kind: String,
    address: String,
    cap: String,
    registered_at: String,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    page: Page,
    client_id: Uuid,
    is_admin: bool,
    name: String,
    industry: String,
    region: String,
    timezone: String,
    sizes: Vec<Choice>,
    status: String,
    modes: Vec<ModeView>,
    autopilot_threshold: String,
    bounce_limit: String,
    complaint_limit: String,
    recipients: String,
    webhooks: Vec<WebhookView>,
    keys: Vec<KeyView>,
    roles: Vec<Choice>,
    resources: Vec<ResourceView>,
    kinds: Vec<Choice>,
    /// Why the change just posted was not saved.
    refused: Option<String>,
}

fn text(value: &Value, field: &str) -> String {
    value
        .get(field)
        .and_then(Value::as_str)
        .map(shown)
        .unwrap_or_default()
}

/// A fraction as a percentage for a field: `0.05` is `5`.
fn as_percent(value: Option<f64>) -> String {
    value
        .map(|v| {
            let p = format!("{:.4}", v * 100.0);
            p.trim_end_matches('0').trim_end_matches('.').to_owned()
        })
        .unwrap_or_default()
}

async fn settings(
    State(state): State<AppState>,
    signed: Signed,
    Path(client): Path<String>,
    params: Params,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let min = params.min_position()?;
    let notice = params.done().notice();
    page(&state, &signed, client, min, notice, None).await
}

/// The settings as they are, with the notice of what was just saved or
/// why it was not (then answered 422).
async fn page(
    state: &AppState,
    signed: &Signed,
    client: Uuid,
    min: Option<i64>,
    notice: Option<String>,
    refused: Option<String>,
) -> Result<Response, ConsoleError> {
    let detail: Value = state
        .api
        .query(
            &signed.session.key,
            &format!("/v1/clients/{client}"),
            &[],
            min,
        )
        .await?;
    let name = detail.get("name").and_then(Value::as_str).unwrap_or("");
    let mode = detail
        .get("permission_mode")
        .and_then(Value::as_str)
        .unwrap_or("");
    let list = |field: &str| -> Vec<Value> {
        detail
            .get(field)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let secrets = list("webhooks");
    let base = state.api.command_url();
    let page = SettingsPage {
        page: Page::signed(format!("Settings · {}", shown(name)), signed)
            .for_client(client, name, "settings")
            .with_notice(notice),
        client_id: client,
        is_admin: signed.session.who.is_admin(),
        name: shown(name),
        industry: text(&detail, "industry"),
        region: text(&detail, "region"),
        timezone: text(&detail, "timezone"),
        sizes: choices(
            &SIZES,
            detail
                .get("company_size")
                .and_then(Value::as_str)
                .unwrap_or(""),
        ),
        status: text(&detail, "status"),
        modes: MODES
            .iter()
            .map(|(value, text)| ModeView {
                value,
                text,
                selected: *value == mode,
            })
            .collect(),
        autopilot_threshold: detail
            .get("autopilot_threshold")
            .and_then(Value::as_f64)
            .map(|t| t.to_string())
            .unwrap_or_default(),
        bounce_limit: as_percent(
            detail
                .pointer("/alert_limits/bounce_rate")
                .and_then(Value::as_f64),
        ),
        complaint_limit: as_percent(
            detail
                .pointer("/alert_limits/complaint_rate")
                .and_then(Value::as_f64),
        ),
        recipients: list("report_recipients")
            .iter()
            .filter_map(Value::as_str)
            .map(shown)
            .collect::<Vec<_>>()
            .join(", "),
        webhooks: PROVIDERS
            .iter()
            .map(|p| WebhookView {
                provider: p,
                url: format!("{base}/v1/webhooks/{p}/{client}"),
                set: secrets
                    .iter()
                    .find(|w| w.get("provider").and_then(Value::as_str) == Some(*p))
                    .map(|w| {
                        format!(
                            "set {}",
                            when(w.get("updated_at").and_then(Value::as_str).unwrap_or(""))
                        )
                    }),
            })
            .collect(),
        keys: list("api_keys")
            .iter()
            .map(|k| KeyView {
                id: text(k, "key_id"),
                role: text(k, "role"),
                label: text(k, "label"),
                issued_at: when(k.get("issued_at").and_then(Value::as_str).unwrap_or("")),
                revoked_at: k.get("revoked_at").and_then(Value::as_str).map(when),
            })
            .collect(),
        roles: choices(&ROLES, "reader"),
        resources: list("resources")
            .iter()
            .map(|r| ResourceView {
                kind: text(r, "kind").replace('_', " "),
                address: text(r, "address"),
                cap: r
                    .get("daily_cap")
                    .and_then(Value::as_i64)
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "–".into()),
                registered_at: when(r.get("registered_at").and_then(Value::as_str).unwrap_or("")),
            })
            .collect(),
        kinds: choices(&KINDS, "mailbox"),
        refused,
    };
    let status = if page.refused.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    html(status, &page)
}

/// What a refused change is shown as on the settings page: the console's
/// own reading of the form, or the API's refusal of the values (400, 409,
/// 422) with the fields it names. Anything else (no permission, the API
/// down) goes to the error page.
fn refusal(failure: ConsoleError) -> Result<String, ConsoleError> {
    match failure {
        ConsoleError::BadRequest(why) => Ok(why),
        ConsoleError::Api(failure) if matches!(failure.status, 400 | 409 | 422) => {
            let fields: Vec<String> = failure
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect();
            Ok(if fields.is_empty() {
                failure.detail
            } else {
                fields.join("; ")
            })
        }
        other => Err(other),
    }
}

/// A change's answer: on to what it leads to, or the settings again with
/// why it was refused, nothing changed.
async fn saved_or_refused(
    state: &AppState,
    form: &PostForm,
    client: Uuid,
    result: Result<Response, ConsoleError>,
) -> Result<Response, ConsoleError> {
    match result {
        Ok(answer) => Ok(answer),
        Err(failure) => {
            let why = refusal(failure)?;
            page(state, &form.signed, client, None, None, Some(why)).await
        }
    }
}

/// `PATCH /v1/clients/{id}` with `body`, then back to the settings.
async fn patch(
    state: &AppState,
    form: &PostForm,
    client: Uuid,
    body: Value,
) -> Result<Response, ConsoleError> {
    let written = state
        .api
        .command(
            &form.signed.session.key,
            Method::PATCH,
            &format!("/v1/clients/{client}"),
            Some(&body),
        )
        .await?;
    Ok(see_other(&after_write(
        &format!("/clients/{client}/settings"),
        &written,
        "settings_saved",
    )))
}

/// The fields named, trimmed, that are not empty: a blank field changes
/// nothing.
fn present(fields: &Fields, names: &[&str]) -> Map<String, Value> {
    let mut map = Map::new();
    for name in names {
        if let Some(value) = fields.get(name).map(str::trim).filter(|v| !v.is_empty()) {
            map.insert((*name).to_owned(), json!(value));
        }
    }
    map
}

fn number(fields: &Fields, name: &str, what: &str) -> Result<Option<f64>, ConsoleError> {
    match fields.get(name).map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => text
            .parse::<f64>()
            .map(Some)
            .map_err(|_| ConsoleError::BadRequest(format!("{what} must be a number"))),
    }
}

async fn profile(
    State(state): State<AppState>,
    Path(client): Path<String>,
    form: PostForm,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let result = async {
        let body = present(
            &form.fields,
            &["name", "industry", "company_size", "region", "timezone"],
        );
        patch(&state, &form, client, Value::Object(body)).await
    }
    .await;
    saved_or_refused(&state, &form, client, result).await
}

async fn mode(
    State(state): State<AppState>,
    Path(client): Path<String>,
    form: PostForm,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let result = async {
        let mut body = present(&form.fields, &["permission_mode"]);
        if let Some(t) = number(&form.fields, "autopilot_threshold", "The threshold")? {
            body.insert("autopilot_threshold".into(), json!(t));
        }
        patch(&state, &form, client, Value::Object(body)).await
    }
    .await;
    saved_or_refused(&state, &form, client, result).await
}

async fn alerts(
    State(state): State<AppState>,
    Path(client): Path<String>,
    form: PostForm,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let result = async {
        let mut body = Map::new();
        let mut limits = Map::new();
        if let Some(b) = number(&form.fields, "bounce_rate", "The bounce limit")? {
            limits.insert("bounce_rate".into(), json!(b / 100.0));
        }
        if let Some(c) = number(&form.fields, "complaint_rate", "The complaint limit")? {
            limits.insert("complaint_rate".into(), json!(c / 100.0));
        }
        if !limits.is_empty() {
            body.insert("alert_limits".into(), Value::Object(limits));
        }
        if let Some(text) = form.fields.get("report_recipients") {
            let recipients: Vec<&str> = text
                .split([',', ';', '\n', ' '])
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .collect();
            body.insert("report_recipients".into(), json!(recipients));
        }
        patch(&state, &form, client, Value::Object(body)).await
    }
    .await;
    saved_or_refused(&state, &form, client, result).await
}

async fn webhook(
    State(state): State<AppState>,
    Path(client): Path<String>,
    form: PostForm,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let result = async {
        let provider = form.fields.get("provider").unwrap_or("");
        if !PROVIDERS.contains(&provider) {
            return Err(ConsoleError::BadRequest(format!(
                "`provider` must be one of: {}",
                PROVIDERS.join(", ")
            )));
        }
        let body = json!({ "secret": form.fields.get("secret").unwrap_or("") });
        let written = state
            .api
            .command(
                &form.signed.session.key,
                Method::PUT,
                &format!("/v1/clients/{client}/webhooks/{provider}"),
                Some(&body),
            )
            .await?;
        Ok(see_other(&after_write(
            &format!("/clients/{client}/settings"),
            &written,
            "webhook_set",
        )))
    }
    .await;
    saved_or_refused(&state, &form, client, result).await
}

#[derive(Template)]
#[template(path = "key_issued.html")]
struct KeyIssued {
    page: Page,
    key: String,
    role: String,
    label: String,
    settings_href: String,
}

/// Issues a key and shows it on the answer to this POST: the one time it
/// is shown. The page is not kept by any cache (`no-store`), and the key
/// is in no address.
async fn issue_key(
    State(state): State<AppState>,
    Path(client): Path<String>,
    form: PostForm,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let result = async {
        let role = form.fields.get("role").unwrap_or("");
        let label = form.fields.get("label").unwrap_or("").trim();
        let body = json!({ "role": role, "label": label });
        let written = state
            .api
            .command(
                &form.signed.session.key,
                Method::POST,
                &format!("/v1/clients/{client}/api-keys"),
                Some(&body),
            )
            .await?;
        let name = crate::pages::client_name(&state, &form.signed, client, None).await?;
        let page = KeyIssued {
            page: Page::signed("A new key", &form.signed).for_client(client, &name, "settings"),
            key: text(&written.body, "key"),
            role: text(&written.body, "role"),
            label: text(&written.body, "label"),
            settings_href: after_write(
                &format!("/clients/{client}/settings"),
                &crate::api::Written {
                    body: Value::Null,
                    position: written.position,
                },
                "settings_saved",
            ),
        };
        html(StatusCode::OK, &page)
    }
    .await;
    saved_or_refused(&state, &form, client, result).await
}

async fn revoke_key(
    State(state): State<AppState>,
    Path((client, key)): Path<(String, String)>,
    form: PostForm,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let key = Uuid::try_parse(&key)
        .map_err(|_| ConsoleError::NotFound("There is no such key.".into()))?;
    let written = state
        .api
        .command(
            &form.signed.session.key,
            Method::DELETE,
            &format!("/v1/clients/{client}/api-keys/{key}"),
            None,
        )
        .await?;
    Ok(see_other(&after_write(
        &format!("/clients/{client}/settings"),
        &written,
        "key_revoked",
    )))
}

async fn resource(
    State(state): State<AppState>,
    Path(client): Path<String>,
    form: PostForm,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let result = async {
        let mut body = present(&form.fields, &["kind", "address"]);
        if let Some(cap) = form
            .fields
            .get("daily_cap")
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            let cap: i64 = cap.parse().map_err(|_| {
                ConsoleError::BadRequest("The daily cap must be a whole number".into())
            })?;
            body.insert("daily_cap".into(), json!(cap));
        }
        let written = state
            .api
            .command(
                &form.signed.session.key,
                Method::POST,
                &format!("/v1/clients/{client}/resources"),
                Some(&Value::Object(body)),
            )
            .await?;
        Ok(see_other(&after_write(
            &format!("/clients/{client}/settings"),
            &written,
            "resource_saved",
        )))
    }
    .await;
    saved_or_refused(&state, &form, client, result).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_shown_as_percentages_without_trailing_zeros() {
        assert_eq!(as_percent(Some(0.05)), "5");
        assert_eq!(as_percent(Some(0.001)), "0.1");
        assert_eq!(as_percent(None), "");
    }
}
