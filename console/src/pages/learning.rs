//! What Sextant has learned: the pattern tables of each detector family
//! (`GET .../patterns/{family}` by metric and scope), sorted on the server
//! by any column, each with a forest plot of lift and interval; running
//! the suggestion engine now (admin); experiments, their results (rates
//! and intervals, always-valid p, the decision the numbers support, a
//! sample-ratio warning), starting one and concluding it (admin).

use std::cmp::Ordering;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::ConsoleError;
use crate::pages::{after_write, client_id, client_name, html, see_other, Params};
use crate::plot::{lift_interval, Forest, ForestInput};
use crate::session::{PostForm, Signed};
use crate::view::{percent, shown, when, Page};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/clients/{client_id}/learning", get(learning))
        .route(
            "/clients/{client_id}/learning/suggestions",
            post(run_suggestions),
        )
        .route("/clients/{client_id}/experiments", post(create_experiment))
        .route(
            "/clients/{client_id}/experiments/{experiment_id}",
            get(experiment),
        )
        .route(
            "/clients/{client_id}/experiments/{experiment_id}/conclude",
            post(conclude),
        )
}

pub const FAMILIES: [&str; 5] = ["what", "when", "how", "who", "versions"];
const METRICS: [&str; 3] = ["reply", "positive_reply", "meeting"];
/// The columns a pattern table sorts by.
const COLUMNS: [(&str, &str); 7] = [
    ("key", "Key"),
    ("sends", "Sends"),
    ("events", "Events"),
    ("rate", "Rate"),
    ("lift", "Lift"),
    ("p", "p"),
    ("q", "q"),
];
/// A row is marked significant below this Benjamini–Hochberg q.
const SIGNIFICANT_Q: f64 = 0.05;

#[derive(Debug, Deserialize)]
struct Baseline {
    sends: i64,
    events: i64,
    rate: f64,
    maturing_sends: i64,
    maturing_events: i64,
}

#[derive(Debug, Clone, Deserialize)]
struct PatternRow {
    key: String,
    sends: i64,
    events: i64,
    rate: f64,
    ci_low: f64,
    ci_high: f64,
    #[serde(default)]
    lift: Option<f64>,
    #[serde(default)]
    p: Option<f64>,
    #[serde(default)]
    q: Option<f64>,
    #[serde(default)]
    maturing_sends: i64,
    #[serde(default)]
    maturing_events: i64,
}

#[derive(Debug, Deserialize)]
struct PatternTable {
    window_days: i64,
    matured_before: String,
    baseline: Baseline,
    rows: Vec<PatternRow>,
}

/// A sort: a column and its direction, as `?sort=-lift` says it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sort {
    pub column: &'static str,
    pub descending: bool,
}

impl Sort {
    pub fn parse(text: Option<&str>) -> Result<Option<Self>, ConsoleError> {
        let Some(text) = text else { return Ok(None) };
        let (descending, name) = match text.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, text),
        };
        COLUMNS
            .iter()
            .find(|(c, _)| *c == name)
            .map(|(column, _)| Some(Self { column, descending }))
            .ok_or_else(|| {
                ConsoleError::BadRequest(format!(
                    "`sort` must be one of {}, with `-` before it for descending",
                    COLUMNS.map(|(c, _)| c).join(", ")
                ))
            })
    }

    fn text(self) -> String {
        format!("{}{}", if self.descending { "-" } else { "" }, self.column)
    }
}

fn sort_rows(rows: &mut [PatternRow], sort: Sort) {
    rows.sort_by(|a, b| {
        let numbers = match sort.column {
            "key" => return turn(a.key.cmp(&b.key), sort),
            "sends" => return turn(a.sends.cmp(&b.sends), sort),
            "events" => return turn(a.events.cmp(&b.events), sort),
            "rate" => (Some(a.rate), Some(b.rate)),
            "lift" => (a.lift, b.lift),
            "p" => (a.p, b.p),
            _ => (a.q, b.q),
        };
        // Rows without a number sort last whichever way round.
        match numbers {
            (Some(x), Some(y)) => turn(x.partial_cmp(&y).unwrap_or(Ordering::Equal), sort),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
    });
}

fn turn(order: Ordering, sort: Sort) -> Ordering {
    if sort.descending {
        order.reverse()
    } else {
        order
    }
}

fn p_text(p: Option<f64>) -> String {
    match p {
        None => "–".into(),
        Some(p) if p < 0.0001 => "< 0.0001".into(),
        Some(p) => format!("{p:.4}"),
    }
}

struct RowView {
    key: String,
    sends: i64,
    events: i64,
    rate: String,
    interval: String,
    lift: String,
    p: String,
    q: String,
    significant: bool,
    maturing: String,
}

struct Header {
    label: &'static str,
    href: String,
    /// `ascending`, `descending` or `none`, for `aria-sort`.
    aria_sort: &'static str,
    numeric: bool,
}

struct FamilyView {
    family: &'static str,
    error: Option<String>,
    baseline: String,
    window: String,
    rows: Vec<RowView>,
    plot: Forest,
}

struct ExperimentRow {
    id: Uuid,
    name: String,
    metric: String,
    status: String,
    decision: String,
    created_at: String,
}

#[derive(Template)]
#[template(path = "learning.html")]
struct LearningPage {
    page: Page,
    client_id: Uuid,
    metrics: Vec<(&'static str, String, bool)>,
    scope: String,
    headers: Vec<Header>,
    families: Vec<FamilyView>,
    experiments: Vec<ExperimentRow>,
    experiments_error: Option<String>,
    next_before: Option<String>,
    is_admin: bool,
}

fn unavailable(failure: &crate::api::ApiFailure) -> String {
    if failure.detail.is_empty() {
        format!("Not available ({}).", failure.status)
    } else {
        format!("Not available: {}", shown(&failure.detail))
    }
}

fn family_view(family: &'static str, table: PatternTable, sort: Option<Sort>) -> FamilyView {
    let mut rows = table.rows;
    if let Some(sort) = sort {
        sort_rows(&mut rows, sort);
    }
    let inputs: Vec<ForestInput> = rows
        .iter()
        .map(|r| {
            let interval = lift_interval(
                r.ci_low,
                r.ci_high,
                r.sends,
                r.events,
                table.baseline.sends,
                table.baseline.events,
            );
            ForestInput {
                label: shown(&r.key),
                lift: r.lift,
                low: interval.map(|i| i.0),
                high: interval.map(|i| i.1),
                significant: r.q.is_some_and(|q| q < SIGNIFICANT_Q),
            }
        })
        .collect();
    let b = &table.baseline;
    FamilyView {
        family,
        error: None,
        baseline: format!(
            "Baseline: {} of {} matured sends ({}); {} sends still maturing with {} events so far.",
            b.events,
            b.sends,
            percent(b.rate),
            b.maturing_sends,
            b.maturing_events
        ),
        window: format!(
            "Sends up to {} have matured ({}-day window).",
            when(&table.matured_before),
            table.window_days
        ),
        rows: rows
            .iter()
            .map(|r| RowView {
                key: shown(&r.key),
                sends: r.sends,
                events: r.events,
                rate: percent(r.rate),
                interval: format!("{} – {}", percent(r.ci_low), percent(r.ci_high)),
                lift: r
                    .lift
                    .map(|l| format!("{l:.2}"))
                    .unwrap_or_else(|| "–".into()),
                p: p_text(r.p),
                q: p_text(r.q),
                significant: r.q.is_some_and(|q| q < SIGNIFICANT_Q),
                maturing: if r.maturing_sends > 0 {
                    format!("{} ({} events)", r.maturing_sends, r.maturing_events)
                } else {
                    "–".into()
                },
            })
            .collect(),
        plot: Forest::of(&inputs),
    }
}

async fn learning(
    State(state): State<AppState>,
    signed: Signed,
    Path(client): Path<String>,
    params: Params,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let min = params.min_position()?;
    let metric = params.text("metric").unwrap_or("reply");
    if !METRICS.contains(&metric) {
        return Err(ConsoleError::BadRequest(format!(
            "`metric` must be one of: {}",
            METRICS.join(", ")
        )));
    }
    let scope = params.text("scope").unwrap_or("client").trim().to_owned();
    let sort = Sort::parse(params.text("sort"))?;
    let name = client_name(&state, &signed, client, min).await?;
    let key = &signed.session.key;
    let query = [("metric", metric.to_owned()), ("scope", scope.clone())];
    let paths: Vec<String> = FAMILIES
        .iter()
        .map(|f| format!("/v1/clients/{client}/patterns/{f}"))
        .collect();
    let mut experiments_query = vec![("limit", "20".to_owned())];
    if let Some(before) = params.text("experiments_before") {
        experiments_query.push(("before", before.to_owned()));
    }
    let experiments_path = format!("/v1/clients/{client}/experiments");
    let (what, when_, how, who, versions, experiments) = tokio::join!(
        state.api.query::<PatternTable>(key, &paths[0], &query, min),
        state.api.query::<PatternTable>(key, &paths[1], &query, min),
        state.api.query::<PatternTable>(key, &paths[2], &query, min),
        state.api.query::<PatternTable>(key, &paths[3], &query, min),
        state.api.query::<PatternTable>(key, &paths[4], &query, min),
        state
            .api
            .query::<Value>(key, &experiments_path, &experiments_query, min),
    );
    let mut families = Vec::new();
    for (family, table) in FAMILIES.iter().zip([what, when_, how, who, versions]) {
        match table {
            Ok(table) => families.push(family_view(family, table, sort)),
            // A scope or metric the API refuses is the reader's mistake:
            // the page says so rather than failing.
            Err(failure) if failure.status == 422 || failure.status == 404 => {
                families.push(FamilyView {
                    family,
                    error: Some(unavailable(&failure)),
                    baseline: String::new(),
                    window: String::new(),
                    rows: Vec::new(),
                    plot: Forest::of(&[]),
                })
            }
            Err(failure) => return Err(failure.into()),
        }
    }
    let (experiments, experiments_error, next_before) = match experiments {
        Ok(page) => (
            page.get("items")
                .and_then(Value::as_array)
                .map(|items| items.iter().filter_map(experiment_row).collect())
                .unwrap_or_default(),
            None,
            page.get("next_before")
                .and_then(Value::as_str)
                .map(str::to_owned),
        ),
        Err(failure) => (Vec::new(), Some(unavailable(&failure)), None),
    };
    let headers = COLUMNS
        .iter()
        .map(|(column, label)| {
            let current = sort.filter(|s| s.column == *column);
            // A click on the sorted column turns it round; on another,
            // sorts by it, numbers largest first.
            let next = match current {
                Some(s) => Sort {
                    column,
                    descending: !s.descending,
                },
                None => Sort {
                    column,
                    descending: *column != "key" && *column != "p" && *column != "q",
                },
            };
            let query = serde_urlencoded::to_string([
                ("metric", metric),
                ("scope", scope.as_str()),
                ("sort", next.text().as_str()),
            ])
            .unwrap_or_default();
            Header {
                label,
                href: format!("/clients/{client}/learning?{query}"),
                aria_sort: match current {
                    Some(s) if s.descending => "descending",
                    Some(_) => "ascending",
                    None => "none",
                },
                numeric: *column != "key",
            }
        })
        .collect();
    let page = LearningPage {
        page: Page::signed(format!("Learning · {}", shown(&name)), &signed)
            .for_client(client, &name, "learning")
            .with_notice(params.done().notice()),
        client_id: client,
        metrics: METRICS
            .iter()
            .map(|m| (*m, m.replace('_', " "), *m == metric))
            .collect(),
        scope: shown(&scope),
        headers,
        families,
        experiments,
        experiments_error,
        next_before,
        is_admin: signed.session.who.is_admin(),
    };
    html(StatusCode::OK, &page)
}

fn text_of(value: &Value, field: &str) -> String {
    value
        .get(field)
        .and_then(Value::as_str)
        .map(shown)
        .unwrap_or_default()
}

fn experiment_row(item: &Value) -> Option<ExperimentRow> {
    Some(ExperimentRow {
        id: item
            .get("experiment_id")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::try_parse(s).ok())?,
        name: text_of(item, "name"),
        metric: text_of(item, "metric").replace('_', " "),
        status: text_of(item, "status"),
        decision: item
            .get("decision")
            .and_then(Value::as_str)
            .map(|d| d.replace('_', " "))
            .unwrap_or_else(|| "–".into()),
        created_at: when(item.get("created_at").and_then(Value::as_str).unwrap_or("")),
    })
}

/// `POST .../learning/suggestions`: runs the suggestion engine for the
/// client now; the page after says how many suggestions it made.
async fn run_suggestions(
    State(state): State<AppState>,
    Path(client): Path<String>,
    form: PostForm,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let written = state
        .api
        .command(
            &form.signed.session.key,
            Method::POST,
            &format!("/v1/clients/{client}/suggestions/run"),
            None,
        )
        .await?;
    let made = written
        .body
        .get("suggestions")
        .and_then(Value::as_array)
        .map(|s| {
            s.iter()
                .filter(|s| s.get("update_id").is_some_and(|u| !u.is_null()))
                .count()
        })
        .unwrap_or(0);
    let mut query = vec![
        ("done", "suggestions_run".to_owned()),
        ("count", made.to_string()),
    ];
    if let Some(position) = written.position {
        query.push(("min_position", position.to_string()));
    }
    Ok(see_other(&format!(
        "/clients/{client}/learning?{}",
        serde_urlencoded::to_string(&query).unwrap_or_default()
    )))
}

/// `POST .../experiments`: a name, a metric and up to four variants with
/// their weights (blank rows ignored).
async fn create_experiment(
    State(state): State<AppState>,
    Path(client): Path<String>,
    form: PostForm,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let fields = &form.fields;
    let mut variants = Vec::new();
    for i in 1..=4 {
        let id = fields.get(&format!("variant_{i}")).unwrap_or("").trim();
        if id.is_empty() {
            continue;
        }
        let weight_text = fields.get(&format!("weight_{i}")).unwrap_or("").trim();
        let weight: f64 = if weight_text.is_empty() {
            1.0
        } else {
            weight_text.parse().map_err(|_| {
                ConsoleError::BadRequest(format!("the weight of variant {i} must be a number"))
            })?
        };
        variants.push(json!({ "id": id, "weight": weight }));
    }
    let body = json!({
        "name": fields.get("name").unwrap_or("").trim(),
        "metric": fields.get("metric").unwrap_or("reply"),
        "variants": variants,
    });
    let written = state
        .api
        .command(
            &form.signed.session.key,
            Method::POST,
            &format!("/v1/clients/{client}/experiments"),
            Some(&body),
        )
        .await?;
    let id = written
        .body
        .get("experiment_id")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::try_parse(s).ok());
    Ok(match id {
        Some(id) => see_other(&after_write(
            &format!("/clients/{client}/experiments/{id}"),
            &written,
            "experiment_created",
        )),
        None => see_other(&after_write(
            &format!("/clients/{client}/learning"),
            &written,
            "experiment_created",
        )),
    })
}

async fn conclude(
    State(state): State<AppState>,
    Path((client, experiment)): Path<(String, String)>,
    form: PostForm,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let experiment = experiment_id(&experiment)?;
    let written = state
        .api
        .command(
            &form.signed.session.key,
            Method::POST,
            &format!("/v1/clients/{client}/experiments/{experiment}/conclude"),
            None,
        )
        .await?;
    Ok(see_other(&after_write(
        &format!("/clients/{client}/experiments/{experiment}"),
        &written,
        "experiment_concluded",
    )))
}

fn experiment_id(text: &str) -> Result<Uuid, ConsoleError> {
    Uuid::try_parse(text).map_err(|_| ConsoleError::NotFound("There is no such experiment.".into()))
}

struct VariantView {
    id: String,
    weight: String,
    sends: i64,
    events: i64,
    rate: String,
    interval: String,
    p: String,
    winner: bool,
}

#[derive(Template)]
#[template(path = "experiment.html")]
struct ExperimentPage {
    page: Page,
    client_id: Uuid,
    experiment_id: Uuid,
    name: String,
    metric: String,
    status: String,
    running: bool,
    created_at: String,
    concluded_at: Option<String>,
    recorded: Option<String>,
    decision: String,
    decision_text: String,
    sample_ratio_p: String,
    mismatch: bool,
    looks: i64,
    rule: String,
    variants: Vec<VariantView>,
    plot: Forest,
    is_admin: bool,
}

async fn experiment(
    State(state): State<AppState>,
    signed: Signed,
    Path((client, experiment)): Path<(String, String)>,
    params: Params,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let experiment = experiment_id(&experiment)?;
    let min = params.min_position()?;
    let name = client_name(&state, &signed, client, min).await?;
    let found: Value = state
        .api
        .query(
            &signed.session.key,
            &format!("/v1/clients/{client}/experiments/{experiment}"),
            &[],
            min,
        )
        .await?;
    let def = found.get("experiment").cloned().unwrap_or(Value::Null);
    let results = found.get("results").cloned().unwrap_or(Value::Null);
    let decision = results
        .get("decision")
        .and_then(Value::as_str)
        .unwrap_or("keep_running")
        .to_owned();
    let winner = results
        .get("winner")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let decision_text = match (decision.as_str(), &winner) {
        ("winner", Some(w)) => format!(
            "The numbers support a winner now: {}. It beats every other variant at the corrected level.",
            shown(w)
        ),
        ("sample_ratio_mismatch", _) => "The sends do not split as the weights say (sample-ratio mismatch): the assignment is broken, so no result can be trusted.".into(),
        _ => "Keep running: no variant beats every other yet.".into(),
    };
    let sample_ratio_p = results
        .get("sample_ratio_p")
        .and_then(Value::as_f64)
        .unwrap_or(1.0);
    let rows: Vec<Value> = results
        .get("variants")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let num = |v: &Value, f: &str| v.get(f).and_then(Value::as_f64).unwrap_or(0.0);
    let int = |v: &Value, f: &str| v.get(f).and_then(Value::as_i64).unwrap_or(0);
    let variants: Vec<VariantView> = rows
        .iter()
        .map(|v| {
            let id = v.get("id").and_then(Value::as_str).unwrap_or("");
            VariantView {
                id: shown(id),
                weight: format!("{}", num(v, "weight")),
                sends: int(v, "sends"),
                events: int(v, "events"),
                rate: percent(num(v, "rate")),
                interval: format!(
                    "{} – {}",
                    percent(num(v, "ci_low")),
                    percent(num(v, "ci_high"))
                ),
                p: p_text(v.get("always_valid_p").and_then(Value::as_f64)),
                winner: winner.as_deref() == Some(id),
            }
        })
        .collect();
    // The variants' rates against the pooled rate, on the same plot as
    // the patterns.
    let (all_sends, all_events) = rows.iter().fold((0, 0), |(s, e), v| {
        (s + int(v, "sends"), e + int(v, "events"))
    });
    let pooled = if all_sends > 0 {
        all_events as f64 / all_sends as f64
    } else {
        0.0
    };
    let inputs: Vec<ForestInput> = rows
        .iter()
        .map(|v| {
            let ok = pooled > 0.0 && int(v, "sends") > 0;
            ForestInput {
                label: shown(v.get("id").and_then(Value::as_str).unwrap_or("")),
                lift: ok.then(|| num(v, "rate") / pooled),
                low: ok.then(|| num(v, "ci_low") / pooled),
                high: ok.then(|| num(v, "ci_high") / pooled),
                significant: winner.as_deref() == v.get("id").and_then(Value::as_str),
            }
        })
        .collect();
    let status = text_of(&def, "status");
    let recorded = def.get("decision").and_then(Value::as_str).map(|d| {
        let mut text = d.replace('_', " ");
        if let Some(w) = def.get("winner").and_then(Value::as_str) {
            text.push_str(&format!(", winner {}", shown(w)));
        }
        text
    });
    let page = ExperimentPage {
        page: Page::signed(format!("Experiment · {}", shown(&name)), &signed)
            .for_client(client, &name, "learning")
            .with_notice(params.done().notice()),
        client_id: client,
        experiment_id: experiment,
        name: text_of(&def, "name"),
        metric: text_of(&def, "metric").replace('_', " "),
        running: status == "running",
        status,
        created_at: when(def.get("created_at").and_then(Value::as_str).unwrap_or("")),
        concluded_at: def.get("concluded_at").and_then(Value::as_str).map(when),
        recorded,
        decision: decision.clone(),
        decision_text,
        sample_ratio_p: p_text(Some(sample_ratio_p)),
        mismatch: decision == "sample_ratio_mismatch" || sample_ratio_p < 0.001,
        looks: results.get("looks").and_then(Value::as_i64).unwrap_or(0),
        rule: text_of(&results, "rule"),
        variants,
        plot: Forest::of(&inputs),
        is_admin: signed.session.who.is_admin(),
    };
    html(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, lift: Option<f64>) -> PatternRow {
        PatternRow {
            key: key.into(),
            sends: 10,
            events: 1,
            rate: 0.1,
            ci_low: 0.0,
            ci_high: 0.2,
            lift,
            p: None,
            q: None,
            maturing_sends: 0,
            maturing_events: 0,
        }
    }

    #[test]
    fn rows_sort_by_any_column_either_way_with_missing_numbers_last() {
        let mut rows = vec![row("b", Some(1.0)), row("a", None), row("c", Some(2.0))];
        sort_rows(
            &mut rows,
            Sort::parse(Some("-lift")).ok().flatten().expect("a sort"),
        );
        let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["c", "b", "a"]);
        sort_rows(
            &mut rows,
            Sort::parse(Some("key")).ok().flatten().expect("a sort"),
        );
        let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert!(Sort::parse(Some("-nonsense")).is_err());
    }
}
