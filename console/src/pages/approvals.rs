//! The approval queue and the review of one update: its rationale, its
//! evidence as a table, and the diff it would make to the current context
//! (side by side and unified); approve, modify (each proposed value
//! editable, the API's refusals shown next to the field, nothing written),
//! reject (a reason is required), and bulk approval after a confirmation
//! page. A stale update (409) shows the paths that changed under it.
//! Actions are shown only to keys that may review; the API refuses a
//! forged one all the same, and its refusal is shown as it gave it.

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

use crate::api::{ApiFailure, FieldError};
use crate::error::ConsoleError;
use crate::pages::{after_write, client_id, client_name, html, see_other, Params};
use crate::session::{Fields, PostForm, Signed};
use crate::view::{age, flatten, shown, when, Diff, Page, Row};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/clients/{client_id}/approvals", get(queue))
        .route("/approvals", get(every_queue))
        .route("/clients/{client_id}/approvals/bulk", post(bulk))
        .route("/clients/{client_id}/approvals/{update_id}", get(item))
        .route(
            "/clients/{client_id}/approvals/{update_id}/approve",
            post(approve),
        )
        .route(
            "/clients/{client_id}/approvals/{update_id}/modify",
            post(modify),
        )
        .route(
            "/clients/{client_id}/approvals/{update_id}/reject",
            post(reject),
        )
}

/// The statuses the queue can be filtered by, as the query API names them.
const STATUSES: [&str; 7] = [
    "pending",
    "applied",
    "auto_applied",
    "rejected",
    "superseded",
    "withdrawn",
    "all",
];

/// A context update as the query API lists it.
#[derive(Debug, Clone, Deserialize)]
struct Update {
    update_id: Uuid,
    source: String,
    status: String,
    patch: Value,
    #[serde(default)]
    modified_patch: Option<Value>,
    base_version: i64,
    rationale: String,
    #[serde(default)]
    evidence: Value,
    #[serde(default)]
    confidence: Option<f64>,
    #[serde(default)]
    proposed_by: Option<String>,
    proposed_at: String,
    #[serde(default)]
    age_seconds: f64,
    #[serde(default)]
    decided_by: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    version: Option<i64>,
    #[serde(default)]
    via: Option<String>,
}

#[derive(Debug, Deserialize)]
struct UpdatePage {
    items: Vec<Update>,
    #[serde(default)]
    next_after: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Context {
    version: i64,
    document: Value,
}

/// An update as a page shows it.
struct ItemView {
    id: Uuid,
    source: String,
    status: String,
    pending: bool,
    rationale: String,
    evidence: Vec<Row>,
    confidence: String,
    age: String,
    proposed_by: String,
    proposed_at: String,
    base_version: i64,
    /// Proposed against an older version than the current one.
    behind: bool,
    diff: Diff,
    decision: Option<String>,
}

impl ItemView {
    fn of(update: &Update, context: &Context) -> Self {
        let patch = update.modified_patch.as_ref().unwrap_or(&update.patch);
        let pending = update.status == "pending";
        let decision = (!pending).then(|| {
            let mut text = update.status.replace('_', " ");
            if let Some(via) = &update.via {
                text.push_str(&format!(" ({})", via.replace('_', " ")));
            }
            if let Some(version) = update.version {
                text.push_str(&format!(", version {version}"));
            }
            if let Some(by) = &update.decided_by {
                text.push_str(&format!(", by {}", shown(by)));
            }
            if let Some(reason) = &update.reason {
                text.push_str(&format!(": {}", shown(reason)));
            } else if let Some(note) = &update.note {
                text.push_str(&format!(": {}", shown(note)));
            }
            text
        });
        Self {
            id: update.update_id,
            source: update.source.replace('_', " "),
            status: update.status.clone(),
            pending,
            rationale: shown(&update.rationale),
            evidence: flatten(&update.evidence),
            confidence: update
                .confidence
                .map(|c| format!("{c:.2}"))
                .unwrap_or_else(|| "–".into()),
            age: age(update.age_seconds),
            proposed_by: update
                .proposed_by
                .as_deref()
                .map(shown)
                .unwrap_or_else(|| "–".into()),
            proposed_at: when(&update.proposed_at),
            base_version: update.base_version,
            behind: pending && update.base_version < context.version,
            // Only a pending update's diff against the context now says
            // what approving it would do.
            diff: if pending {
                Diff::of_patch(&context.document, patch)
            } else {
                Diff::default()
            },
            decision,
        }
    }
}

/// Updates on a page of the queue, unless the address asks otherwise.
const QUEUE_PAGE: i64 = 25;

/// The sources an update comes from, as the API names them.
const SOURCES: [&str; 9] = [
    "crm_analysis",
    "email_performance",
    "linkedin_performance",
    "context_regression",
    "document",
    "manual",
    "agent_suggestion",
    "cross_client_patterns",
    "best_practices",
];

/// The pathways of docs/context-ledger.md, by the name a filter uses.
const PATHWAYS: [&str; 5] = [
    "analysis",
    "human",
    "agent_suggestion",
    "cross_client",
    "best_practices",
];

/// The pathway a source takes, as the domain's policy table says.
fn pathway_of(source: &str) -> Option<&'static str> {
    use sextant_domain::context::{Pathway, Source};
    let source: Source = serde_json::from_value(Value::String(source.to_owned())).ok()?;
    Some(match source.pathway() {
        Pathway::Analysis => "analysis",
        Pathway::Human => "human",
        Pathway::AgentSuggestion => "agent_suggestion",
        Pathway::CrossClient => "cross_client",
        Pathway::BestPractices => "best_practices",
    })
}

/// Ages an update can be filtered by: waiting at least this long.
const AGES: [(&str, &str, f64); 4] = [
    ("", "any age", 0.0),
    ("1h", "over an hour", 3_600.0),
    ("1d", "over a day", 86_400.0),
    ("7d", "over a week", 604_800.0),
];

/// The console's own filters over a page of the queue: the API filters by
/// status only.
#[derive(Debug, Clone, Default)]
struct Filter {
    source: Option<String>,
    pathway: Option<String>,
    age: Option<(&'static str, f64)>,
    /// Only updates proposed after this instant (RFC 3339): what the
    /// queue's poll asks for.
    since: Option<chrono::DateTime<chrono::FixedOffset>>,
}

impl Filter {
    fn of(params: &Params) -> Result<Self, ConsoleError> {
        let source = params.text("source").map(str::to_owned);
        if let Some(source) = &source {
            if !SOURCES.contains(&source.as_str()) {
                return Err(ConsoleError::BadRequest(format!(
                    "`source` must be one of: {}",
                    SOURCES.join(", ")
                )));
            }
        }
        let pathway = params.text("pathway").map(str::to_owned);
        if let Some(pathway) = &pathway {
            if !PATHWAYS.contains(&pathway.as_str()) {
                return Err(ConsoleError::BadRequest(format!(
                    "`pathway` must be one of: {}",
                    PATHWAYS.join(", ")
                )));
            }
        }
        let age = match params.text("age") {
            None => None,
            Some(text) => Some(
                AGES.iter()
                    .find(|(value, _, _)| *value == text)
                    .map(|(value, _, seconds)| (*value, *seconds))
                    .ok_or_else(|| {
                        ConsoleError::BadRequest("`age` must be one of: 1h, 1d, 7d".into())
                    })?,
            ),
        };
        let since = match params.text("since") {
            None => None,
            Some(text) => Some(chrono::DateTime::parse_from_rfc3339(text).map_err(|_| {
                ConsoleError::BadRequest("`since` must be an RFC 3339 time".into())
            })?),
        };
        Ok(Self {
            source,
            pathway,
            age,
            since,
        })
    }

    fn keeps(&self, update: &Update) -> bool {
        self.source.as_deref().is_none_or(|s| s == update.source)
            && self
                .pathway
                .as_deref()
                .is_none_or(|p| pathway_of(&update.source) == Some(p))
            && self
                .age
                .is_none_or(|(_, seconds)| update.age_seconds >= seconds)
            && self.since.is_none_or(|since| {
                chrono::DateTime::parse_from_rfc3339(&update.proposed_at).is_ok_and(|at| at > since)
            })
    }

    fn is_empty(&self) -> bool {
        self.source.is_none() && self.pathway.is_none() && self.age.is_none()
    }

    /// The filter as query parameters, to carry into paging and polling.
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        if let Some(source) = &self.source {
            query.push(("source", source.clone()));
        }
        if let Some(pathway) = &self.pathway {
            query.push(("pathway", pathway.clone()));
        }
        if let Some((age, _)) = self.age {
            query.push(("age", age.to_owned()));
        }
        query
    }
}

struct StatusOption {
    value: &'static str,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct QueuePage {
    page: Page,
    client_id: Uuid,
    status: String,
    statuses: Vec<StatusOption>,
    sources: Vec<StatusOption>,
    pathways: Vec<StatusOption>,
    ages: Vec<StatusOption>,
    filtered: bool,
    items: Vec<ItemView>,
    may_review: bool,
    context_version: i64,
    /// The next page of the queue, when there is one.
    next_href: Option<String>,
    /// Where the poll for newer updates asks (pending only, at the tail).
    poll_href: Option<String>,
}

fn options(values: &[&'static str], current: Option<&str>) -> Vec<StatusOption> {
    std::iter::once(StatusOption {
        value: "",
        label: "any".into(),
        selected: current.is_none(),
    })
    .chain(values.iter().map(|v| StatusOption {
        value: v,
        label: v.replace('_', " "),
        selected: current == Some(*v),
    }))
    .collect()
}

async fn context_now(
    state: &AppState,
    signed: &Signed,
    client: Uuid,
    min: Option<i64>,
) -> Result<Context, ConsoleError> {
    Ok(state
        .api
        .query(
            &signed.session.key,
            &format!("/v1/clients/{client}/context"),
            &[],
            min,
        )
        .await?)
}

async fn queue(
    State(state): State<AppState>,
    signed: Signed,
    Path(client): Path<String>,
    params: Params,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let min = params.min_position()?;
    let status = params.text("status").unwrap_or("pending");
    if !STATUSES.contains(&status) {
        return Err(ConsoleError::BadRequest(format!(
            "`status` must be one of: {}",
            STATUSES.join(", ")
        )));
    }
    let filter = Filter::of(&params)?;
    let after = params.text("after").map(str::to_owned);
    // The page size: each update carries its evidence and diff, so a page
    // of 25 stays well under 150 KB; an address may ask for 1 to 100.
    let limit = params.int("limit")?.map(|l| l.clamp(1, 100));
    let path = format!("/v1/clients/{client}/approvals");
    let read = |after: Option<String>| {
        let mut query = vec![
            ("status", status.to_owned()),
            ("limit", limit.unwrap_or(QUEUE_PAGE).to_string()),
        ];
        if let Some(after) = after {
            query.push(("after", after));
        }
        let path = path.clone();
        let state = state.clone();
        let key = signed.session.key.clone();
        async move {
            state
                .api
                .query::<UpdatePage>(&key, &path, &query, min)
                .await
        }
    };
    let (name, list, context) = tokio::join!(
        client_name(&state, &signed, client, min),
        read(after.clone()),
        context_now(&state, &signed, client, min)
    );
    let (name, mut list, context) = (name?, list?, context?);
    // A poll for what is new reads on to the end of the queue.
    if filter.since.is_some() {
        for _ in 0..10 {
            let Some(next) = list.next_after.clone() else {
                break;
            };
            let more = read(Some(next)).await?;
            list.items.extend(more.items);
            list.next_after = more.next_after;
        }
    }
    let items: Vec<&Update> = list.items.iter().filter(|u| filter.keeps(u)).collect();
    let mut carried = vec![("status", status.to_owned())];
    carried.extend(filter.query());
    if let Some(limit) = limit {
        carried.push(("limit", limit.to_string()));
    }
    let href = |extra: Vec<(&'static str, String)>| {
        let mut query = carried.clone();
        query.extend(extra);
        format!(
            "/clients/{client}/approvals?{}",
            serde_urlencoded::to_string(&query).unwrap_or_default()
        )
    };
    let next_href = list
        .next_after
        .as_ref()
        .filter(|_| filter.since.is_none())
        .map(|next| href(vec![("after", next.clone())]));
    // The newest proposal shown so far (or, with nothing shown, the one
    // the poll already had): the poll asks for anything after it.
    let newest = list
        .items
        .iter()
        .filter_map(|u| chrono::DateTime::parse_from_rfc3339(&u.proposed_at).ok())
        .max()
        .or(filter.since)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned());
    let poll_href =
        (status == "pending" && list.next_after.is_none()).then(|| href(vec![("since", newest)]));
    let page = QueuePage {
        page: Page::signed(format!("Approvals · {}", shown(&name)), &signed)
            .for_client(client, &name, "approvals")
            .with_notice(params.done().notice()),
        client_id: client,
        status: status.to_owned(),
        statuses: STATUSES
            .iter()
            .map(|s| StatusOption {
                value: s,
                label: s.replace('_', " "),
                selected: *s == status,
            })
            .collect(),
        sources: options(&SOURCES, filter.source.as_deref()),
        pathways: options(&PATHWAYS, filter.pathway.as_deref()),
        ages: AGES
            .iter()
            .map(|(value, label, _)| StatusOption {
                value,
                label: (*label).to_owned(),
                selected: filter.age.map(|(a, _)| a).unwrap_or("") == *value,
            })
            .collect(),
        filtered: !filter.is_empty(),
        items: items.iter().map(|u| ItemView::of(u, &context)).collect(),
        may_review: signed.session.who.may_review(),
        context_version: context.version,
        next_href,
        poll_href,
    };
    html(StatusCode::OK, &page)
}

struct CrossItem {
    client_id: Uuid,
    client: String,
    id: Uuid,
    source: String,
    status: String,
    rationale: String,
    confidence: String,
    age: String,
}

#[derive(Template)]
#[template(path = "all_approvals.html")]
struct AllApprovals {
    page: Page,
    status: String,
    statuses: Vec<StatusOption>,
    items: Vec<CrossItem>,
    next_href: Option<String>,
}

/// The operator's queue over every client (`GET /v1/approvals`), paged by
/// its cursor; each update links to its own page under its client.
async fn every_queue(
    State(state): State<AppState>,
    signed: Signed,
    params: Params,
) -> Result<Response, ConsoleError> {
    let min = params.min_position()?;
    let status = params.text("status").unwrap_or("pending");
    if !STATUSES.contains(&status) {
        return Err(ConsoleError::BadRequest(format!(
            "`status` must be one of: {}",
            STATUSES.join(", ")
        )));
    }
    let key = &signed.session.key;
    let mut query = vec![("status", status.to_owned()), ("limit", "100".to_owned())];
    if let Some(after) = params.text("after") {
        query.push(("after", after.to_owned()));
    }
    let clients_query = [("limit", "500".to_owned())];
    let (list, clients) = tokio::join!(
        state.api.query::<Value>(key, "/v1/approvals", &query, min),
        state
            .api
            .query::<Value>(key, "/v1/clients", &clients_query, min),
    );
    let list = list?;
    let clients = clients.unwrap_or(Value::Null);
    let name_of = |id: &str| {
        clients
            .get("items")
            .and_then(Value::as_array)
            .and_then(|items| {
                items
                    .iter()
                    .find(|c| c.get("client_id").and_then(Value::as_str) == Some(id))
            })
            .and_then(|c| c.get("name").and_then(Value::as_str))
            .map(shown)
            .unwrap_or_else(|| id.to_owned())
    };
    let items = list
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|item| {
            let client = item.get("client_id").and_then(Value::as_str)?.to_owned();
            let update: Update = serde_json::from_value(item).ok()?;
            Some(CrossItem {
                client_id: Uuid::try_parse(&client).ok()?,
                client: name_of(&client),
                id: update.update_id,
                source: update.source.replace('_', " "),
                status: update.status.replace('_', " "),
                rationale: shown(&update.rationale),
                confidence: update
                    .confidence
                    .map(|c| format!("{c:.2}"))
                    .unwrap_or_else(|| "–".into()),
                age: age(update.age_seconds),
            })
        })
        .collect();
    let next_href = list.get("next_after").and_then(Value::as_str).map(|next| {
        format!(
            "/approvals?{}",
            serde_urlencoded::to_string([("status", status), ("after", next)]).unwrap_or_default()
        )
    });
    let page = AllApprovals {
        page: Page::signed("Approvals of every client", &signed)
            .in_section("all-approvals")
            .with_notice(params.done().notice()),
        status: status.to_owned(),
        statuses: STATUSES
            .iter()
            .map(|s| StatusOption {
                value: s,
                label: s.replace('_', " "),
                selected: *s == status,
            })
            .collect(),
        items,
        next_href,
    };
    html(StatusCode::OK, &page)
}

/// One proposed value of the modify form: a leaf of the patch.
struct Leaf {
    pointer: String,
    label: String,
    value: String,
    /// `text`: the field holds text as it is; `json`: a JSON value.
    kind: &'static str,
    error: Option<String>,
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// Every leaf of a patch (anything but a non-empty object), by pointer.
fn leaves(patch: &Value) -> Vec<Leaf> {
    fn walk(value: &Value, pointer: String, out: &mut Vec<Leaf>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, item) in map {
                    walk(item, format!("{pointer}/{}", escape(key)), out);
                }
            }
            leaf => {
                let (value, kind) = match leaf {
                    Value::String(s) => (s.clone(), "text"),
                    other => (other.to_string(), "json"),
                };
                out.push(Leaf {
                    label: shown(
                        &pointer
                            .trim_start_matches('/')
                            .split('/')
                            .map(unescape)
                            .collect::<Vec<_>>()
                            .join(" › "),
                    ),
                    pointer,
                    value,
                    kind,
                    error: None,
                });
            }
        }
    }
    let mut out = Vec::new();
    walk(patch, String::new(), &mut out);
    out
}

/// The patch the modify form's fields describe, or the fields that do not
/// hold what their kind needs.
fn patch_of(fields: &Fields) -> Result<Value, Vec<(String, String)>> {
    let mut patch = Value::Object(Map::new());
    let mut errors = Vec::new();
    for (pointer, text) in fields.prefixed("v:") {
        let kind = fields.get(&format!("t:{pointer}")).unwrap_or("json");
        let value = if kind == "text" {
            Value::String(text.to_owned())
        } else {
            match serde_json::from_str::<Value>(text.trim()) {
                Ok(value) => value,
                Err(_) => {
                    errors.push((
                        pointer.to_owned(),
                        "not a JSON value: a number, true, false, null, a [list] or an {object}"
                            .to_owned(),
                    ));
                    continue;
                }
            }
        };
        let segments: Vec<String> = pointer
            .trim_start_matches('/')
            .split('/')
            .map(unescape)
            .collect();
        let mut at = &mut patch;
        for (i, segment) in segments.iter().enumerate() {
            let Value::Object(map) = at else { break };
            if i + 1 == segments.len() {
                map.insert(segment.clone(), value.clone());
                break;
            }
            at = map
                .entry(segment.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    if errors.is_empty() {
        Ok(patch)
    } else {
        Err(errors)
    }
}

/// The pointer of the patch value an API error names (`patch.a.b[1]` is
/// `/a/b`); `None` for the patch as a whole or another field.
fn pointer_of(field: &str) -> Option<String> {
    let rest = field.strip_prefix("patch.")?;
    let segments: Vec<String> = rest
        .split('.')
        .map(|s| escape(s.split('[').next().unwrap_or(s)))
        .collect();
    Some(format!("/{}", segments.join("/")))
}

/// What the item page shows besides the update: a failed action's errors.
#[derive(Default)]
struct Outcome {
    /// The API's or the form's refusal, shown at the top.
    problem: Option<String>,
    /// The paths a stale update conflicts on (409).
    conflicts: Vec<String>,
    reason_error: Option<String>,
    note_error: Option<String>,
    /// The modify form's values as submitted, with their errors.
    leaves: Option<Vec<Leaf>>,
    reason: String,
    /// What the page says after a redirect from a write.
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "approval.html")]
struct ItemPage {
    page: Page,
    client_id: Uuid,
    item: ItemView,
    leaves: Vec<Leaf>,
    may_review: bool,
    context_version: i64,
    problem: Option<String>,
    conflicts: Vec<String>,
    reason_error: Option<String>,
    note_error: Option<String>,
    reason: String,
}

/// One update of the client's, by id (`GET .../context/updates/{id}`).
async fn find_update(
    state: &AppState,
    signed: &Signed,
    client: Uuid,
    update: Uuid,
    min: Option<i64>,
) -> Result<Update, ConsoleError> {
    Ok(state
        .api
        .query::<Update>(
            &signed.session.key,
            &format!("/v1/clients/{client}/context/updates/{update}"),
            &[],
            min,
        )
        .await?)
}

async fn item_page(
    state: &AppState,
    signed: &Signed,
    client: Uuid,
    update: Uuid,
    min: Option<i64>,
    status: StatusCode,
    outcome: Outcome,
) -> Result<Response, ConsoleError> {
    let name = client_name(state, signed, client, min).await?;
    let (found, context) = tokio::join!(
        find_update(state, signed, client, update, min),
        context_now(state, signed, client, min),
    );
    let (found, context) = (found?, context?);
    let item = ItemView::of(&found, &context);
    let leaves = outcome
        .leaves
        .unwrap_or_else(|| leaves(found.modified_patch.as_ref().unwrap_or(&found.patch)));
    let page = ItemPage {
        page: Page::signed(format!("Update · {}", shown(&name)), signed)
            .for_client(client, &name, "approvals")
            .with_notice(outcome.notice),
        client_id: client,
        item,
        leaves,
        may_review: signed.session.who.may_review(),
        context_version: context.version,
        problem: outcome.problem,
        conflicts: outcome.conflicts,
        reason_error: outcome.reason_error,
        note_error: outcome.note_error,
        reason: outcome.reason,
    };
    html(status, &page)
}

fn update_id(text: &str) -> Result<Uuid, ConsoleError> {
    Uuid::try_parse(text).map_err(|_| ConsoleError::NotFound("There is no such update.".into()))
}

async fn item(
    State(state): State<AppState>,
    signed: Signed,
    Path((client, update)): Path<(String, String)>,
    params: Params,
) -> Result<Response, ConsoleError> {
    let (client, update) = (client_id(&client)?, update_id(&update)?);
    item_page(
        &state,
        &signed,
        client,
        update,
        params.min_position()?,
        StatusCode::OK,
        Outcome {
            notice: params.done().notice(),
            ..Outcome::default()
        },
    )
    .await
}

/// A reason or note as the API takes it: one line (the API refuses
/// control characters, and a textarea sends line breaks).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The outcome of a refused review action: a stale update's conflicts,
/// or the refusal itself (403, 404, ... as the API worded it) on the page.
fn refused(failure: &ApiFailure) -> Outcome {
    let mut outcome = Outcome::default();
    if failure.status == 409 {
        outcome.conflicts = failure
            .errors
            .iter()
            .map(|e| shown(&e.field))
            .filter(|f| f.starts_with('/'))
            .collect();
    }
    outcome.problem = Some(if failure.detail.is_empty() {
        failure.title.clone()
    } else {
        failure.detail.clone()
    });
    outcome
}

/// A refusal the item page cannot show better than the error page: the
/// caller may not act (403) or the update or client is not there (404).
fn is_for_error_page(failure: &ApiFailure) -> bool {
    matches!(failure.status, 401 | 403 | 404) || failure.status >= 500
}

fn status_of(failure: &ApiFailure) -> StatusCode {
    StatusCode::from_u16(failure.status).unwrap_or(StatusCode::BAD_GATEWAY)
}

async fn approve(
    State(state): State<AppState>,
    Path((client, update)): Path<(String, String)>,
    form: PostForm,
) -> Result<Response, ConsoleError> {
    let (client, update) = (client_id(&client)?, update_id(&update)?);
    let note = one_line(form.fields.get("note").unwrap_or(""));
    let body = (!note.is_empty()).then(|| json!({ "note": note }));
    let path = format!("/v1/clients/{client}/context/updates/{update}/approve");
    let signed = &form.signed;
    match state
        .api
        .command(&signed.session.key, Method::POST, &path, body.as_ref())
        .await
    {
        Ok(written) => Ok(see_other(&after_write(
            &format!("/clients/{client}/approvals"),
            &written,
            "approved",
        ))),
        Err(failure) if is_for_error_page(&failure) => Err(failure.into()),
        Err(failure) => {
            let mut outcome = refused(&failure);
            outcome.note_error = failure.for_field("note").map(str::to_owned);
            item_page(
                &state,
                signed,
                client,
                update,
                None,
                status_of(&failure),
                outcome,
            )
            .await
        }
    }
}

async fn modify(
    State(state): State<AppState>,
    Path((client, update)): Path<(String, String)>,
    form: PostForm,
) -> Result<Response, ConsoleError> {
    let (client, update) = (client_id(&client)?, update_id(&update)?);
    let signed = &form.signed;
    // The form's values as they were sent, to show them again if refused.
    let submitted = |errors: &[(String, String)], api: &[FieldError]| -> Vec<Leaf> {
        form.fields
            .prefixed("v:")
            .map(|(pointer, value)| {
                let kind = if form.fields.get(&format!("t:{pointer}")) == Some("text") {
                    "text"
                } else {
                    "json"
                };
                let error = errors
                    .iter()
                    .find(|(p, _)| p == pointer)
                    .map(|(_, m)| m.clone())
                    .or_else(|| {
                        api.iter()
                            .find(|e| {
                                pointer_of(&e.field).is_some_and(|p| {
                                    p == pointer || p.starts_with(&format!("{pointer}/"))
                                })
                            })
                            .map(|e| e.message.clone())
                    });
                Leaf {
                    label: shown(
                        &pointer
                            .trim_start_matches('/')
                            .split('/')
                            .map(unescape)
                            .collect::<Vec<_>>()
                            .join(" › "),
                    ),
                    pointer: pointer.to_owned(),
                    value: value.to_owned(),
                    kind,
                    error,
                }
            })
            .collect()
    };
    let patch = match patch_of(&form.fields) {
        Ok(patch) => patch,
        Err(errors) => {
            let outcome = Outcome {
                problem: Some("Some values could not be read; nothing was changed.".into()),
                leaves: Some(submitted(&errors, &[])),
                ..Outcome::default()
            };
            return item_page(
                &state,
                signed,
                client,
                update,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
                outcome,
            )
            .await;
        }
    };
    let note = one_line(form.fields.get("note").unwrap_or(""));
    let mut body = json!({ "patch": patch });
    if !note.is_empty() {
        body["note"] = json!(note);
    }
    let path = format!("/v1/clients/{client}/context/updates/{update}/modify");
    match state
        .api
        .command(&signed.session.key, Method::POST, &path, Some(&body))
        .await
    {
        Ok(written) => Ok(see_other(&after_write(
            &format!("/clients/{client}/approvals"),
            &written,
            "modified",
        ))),
        Err(failure) if is_for_error_page(&failure) => Err(failure.into()),
        Err(failure) => {
            let mut outcome = refused(&failure);
            outcome.note_error = failure.for_field("note").map(str::to_owned);
            outcome.leaves = Some(submitted(&[], &failure.errors));
            if failure.status == 422 {
                outcome.problem = Some(format!(
                    "The API refused the modified values; nothing was changed. {}",
                    failure.detail
                ));
            }
            item_page(
                &state,
                signed,
                client,
                update,
                None,
                status_of(&failure),
                outcome,
            )
            .await
        }
    }
}

async fn reject(
    State(state): State<AppState>,
    Path((client, update)): Path<(String, String)>,
    form: PostForm,
) -> Result<Response, ConsoleError> {
    let (client, update) = (client_id(&client)?, update_id(&update)?);
    let signed = &form.signed;
    let reason = one_line(form.fields.get("reason").unwrap_or(""));
    // Sent even when empty: the API is the judge of a reason, and its
    // refusal is shown next to the field.
    let body = json!({ "reason": reason });
    let path = format!("/v1/clients/{client}/context/updates/{update}/reject");
    match state
        .api
        .command(&signed.session.key, Method::POST, &path, Some(&body))
        .await
    {
        Ok(written) => Ok(see_other(&after_write(
            &format!("/clients/{client}/approvals"),
            &written,
            "rejected",
        ))),
        Err(failure) if is_for_error_page(&failure) => Err(failure.into()),
        Err(failure) => {
            let mut outcome = refused(&failure);
            outcome.reason_error = failure.for_field("reason").map(str::to_owned);
            outcome.reason = reason;
            if outcome.reason_error.is_some() {
                outcome.problem = Some("A rejection needs a reason; nothing was changed.".into());
            }
            item_page(
                &state,
                signed,
                client,
                update,
                None,
                status_of(&failure),
                outcome,
            )
            .await
        }
    }
}

struct Selected {
    id: Uuid,
    source: String,
    rationale: String,
    paths: Vec<String>,
}

#[derive(Template)]
#[template(path = "bulk_confirm.html")]
struct BulkConfirm {
    page: Page,
    client_id: Uuid,
    selected: Vec<Selected>,
    csrf: String,
}

struct BulkOutcome {
    id: Uuid,
    ok: bool,
    message: String,
}

#[derive(Template)]
#[template(path = "bulk_result.html")]
struct BulkResult {
    page: Page,
    client_id: Uuid,
    outcomes: Vec<BulkOutcome>,
    queue_url: String,
}

/// Bulk approval: the first POST (the queue's selection) shows what will be
/// approved; the second (`confirm=yes`) approves each in turn.
async fn bulk(
    State(state): State<AppState>,
    Path(client): Path<String>,
    form: PostForm,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let signed = &form.signed;
    let mut ids = Vec::new();
    for text in form.fields.all("update") {
        let id = update_id(text)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        return Ok(see_other(&format!(
            "/clients/{client}/approvals?done=none_selected"
        )));
    }
    let name = client_name(&state, signed, client, None).await?;
    let key = &signed.session.key;
    if form.fields.get("confirm") != Some("yes") {
        let pending: UpdatePage = state
            .api
            .query(
                key,
                &format!("/v1/clients/{client}/approvals"),
                &[
                    ("status", "pending".to_owned()),
                    ("limit", "500".to_owned()),
                ],
                None,
            )
            .await?;
        let context = context_now(&state, signed, client, None).await?;
        let selected = ids
            .iter()
            .filter_map(|id| pending.items.iter().find(|u| u.update_id == *id))
            .map(|u| Selected {
                id: u.update_id,
                source: u.source.replace('_', " "),
                rationale: shown(&u.rationale),
                paths: ItemView::of(u, &context)
                    .diff
                    .rows
                    .into_iter()
                    .map(|r| r.path)
                    .collect(),
            })
            .collect();
        let page = BulkConfirm {
            page: Page::signed("Approve these updates?", signed).for_client(
                client,
                &name,
                "approvals",
            ),
            client_id: client,
            selected,
            csrf: signed.session.csrf.clone(),
        };
        return html(StatusCode::OK, &page);
    }
    let mut outcomes = Vec::new();
    let mut position: Option<i64> = None;
    for id in ids {
        let path = format!("/v1/clients/{client}/context/updates/{id}/approve");
        let answer = state.api.command(key, Method::POST, &path, None).await;
        let (ok, message) = match answer {
            Ok(written) => {
                position = position.max(written.position);
                let version = written
                    .body
                    .get("version")
                    .and_then(Value::as_i64)
                    .map(|v| format!("approved: version {v}"))
                    .unwrap_or_else(|| "approved".into());
                (true, version)
            }
            Err(failure) => (false, refused(&failure).problem.unwrap_or_default()),
        };
        outcomes.push(BulkOutcome { id, ok, message });
    }
    let approved = outcomes.iter().filter(|o| o.ok).count();
    let mut query = vec![
        ("done", "bulk_approved".to_owned()),
        ("count", approved.to_string()),
    ];
    if let Some(position) = position {
        query.push(("min_position", position.to_string()));
    }
    let queue_url = format!(
        "/clients/{client}/approvals?{}",
        serde_urlencoded::to_string(&query).unwrap_or_default()
    );
    if approved == outcomes.len() {
        return Ok(see_other(&queue_url));
    }
    let page = BulkResult {
        page: Page::signed("Bulk approval", signed).for_client(client, &name, "approvals"),
        client_id: client,
        outcomes,
        queue_url,
    };
    html(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_modify_form_round_trips_a_patch_through_its_fields() {
        let patch =
            json!({ "messaging": { "tone": "bold", "a/b": [1, 2] }, "limits": { "max": 3 } });
        let mut pairs = Vec::new();
        for leaf in leaves(&patch) {
            pairs.push((format!("v:{}", leaf.pointer), leaf.value.clone()));
            pairs.push((format!("t:{}", leaf.pointer), leaf.kind.to_owned()));
        }
        let body = serde_urlencoded::to_string(&pairs).expect("a form");
        let fields = Fields::parse(body.as_bytes()).expect("fields");
        assert_eq!(patch_of(&fields).ok(), Some(patch));
    }

    #[test]
    fn a_value_that_is_not_json_is_named_by_its_pointer() {
        let fields =
            Fields::parse(b"v:%2Flimits%2Fmax=three&t:%2Flimits%2Fmax=json").expect("fields");
        let errors = patch_of(&fields).expect_err("not JSON");
        assert_eq!(errors[0].0, "/limits/max");
    }

    #[test]
    fn api_field_names_map_to_the_pointer_of_the_value() {
        assert_eq!(
            pointer_of("patch.limits.max").as_deref(),
            Some("/limits/max")
        );
        assert_eq!(pointer_of("patch.a.list[1]").as_deref(), Some("/a/list"));
        assert_eq!(pointer_of("patch"), None);
        assert_eq!(pointer_of("note"), None);
    }

    #[test]
    fn each_source_has_the_pathway_of_the_policy_table() {
        assert_eq!(pathway_of("manual"), Some("human"));
        assert_eq!(pathway_of("email_performance"), Some("analysis"));
        assert_eq!(pathway_of("cross_client_patterns"), Some("cross_client"));
        assert_eq!(pathway_of("nonsense"), None);
    }

    #[test]
    fn a_reason_is_sent_as_one_line() {
        assert_eq!(one_line("  not\r\nnow  "), "not now");
    }
}
