//! Reports: a client's weekly report for any week (`?week=2026-W48`) as
//! tables (headline, funnel, breakdowns, what changed, what was learned,
//! next steps, alerts), its CSV and HTML downloads (the console fetches
//! them with the session's key and passes them on as attachments: the key
//! never reaches the browser), and the operator's platform report.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{Datelike, NaiveDate, Weekday};
use serde_json::Value;
use uuid::Uuid;

use crate::error::ConsoleError;
use crate::pages::{client_id, html, Params};
use crate::session::Signed;
use crate::view::{percent, shown, when, Page};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/clients/{client_id}/reports", get(weekly))
        .route("/clients/{client_id}/reports/download", get(download))
        .route("/reports", get(platform))
}

/// `2026-W48`, checked: the API says what else is wrong with it.
fn week_param(params: &Params) -> Result<Option<String>, ConsoleError> {
    let Some(week) = params.text("week") else {
        return Ok(None);
    };
    let week = week.trim();
    let ok = week.len() == 8
        && week.as_bytes()[4] == b'-'
        && week.as_bytes()[5] == b'W'
        && week[..4].bytes().all(|b| b.is_ascii_digit())
        && week[6..].bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(Some(week.to_owned()))
    } else {
        Err(ConsoleError::BadRequest(
            "`week` is an ISO week such as 2026-W48".into(),
        ))
    }
}

/// The ISO weeks before and after `week`.
fn neighbours(week: &str) -> Option<(String, String)> {
    let year: i32 = week.get(..4)?.parse().ok()?;
    let number: u32 = week.get(6..)?.parse().ok()?;
    let monday = NaiveDate::from_isoywd_opt(year, number, Weekday::Mon)?;
    let name = |d: NaiveDate| {
        let w = d.iso_week();
        format!("{}-W{:02}", w.year(), w.week())
    };
    Some((
        name(monday - chrono::Duration::days(7)),
        name(monday + chrono::Duration::days(7)),
    ))
}

fn s(value: &Value, pointer: &str) -> String {
    match value.pointer(pointer) {
        Some(Value::String(text)) => shown(text),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => "–".into(),
    }
}

fn n(value: &Value, pointer: &str) -> i64 {
    value.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn list(value: &Value, pointer: &str) -> Vec<Value> {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// A rate object (`rate`, `low`, `high`, `events`, `sends`) as text.
fn rate(value: &Value, pointer: &str) -> String {
    let Some(r) = value.pointer(pointer) else {
        return "–".into();
    };
    match (
        r.get("rate").and_then(Value::as_f64),
        r.get("sends").and_then(Value::as_i64),
    ) {
        (Some(rate), Some(sends)) if sends > 0 => percent(rate),
        _ => "–".into(),
    }
}

fn interval(value: &Value, pointer: &str) -> String {
    let Some(r) = value.pointer(pointer) else {
        return "–".into();
    };
    match (
        r.get("low").and_then(Value::as_f64),
        r.get("high").and_then(Value::as_f64),
        r.get("sends").and_then(Value::as_i64),
    ) {
        (Some(low), Some(high), Some(sends)) if sends > 0 => {
            format!("{} – {}", percent(low), percent(high))
        }
        _ => "–".into(),
    }
}

struct MetricRow {
    metric: String,
    rate: String,
    interval: String,
    counts: String,
    previous: String,
    trailing: String,
    significant: bool,
    /// Its own window has not passed: the rate is still rising.
    maturing: bool,
}

struct FunnelRow {
    stage: String,
    count: i64,
    rate: String,
    interval: String,
    maturing: bool,
}

struct BreakdownRow {
    dimension: String,
    value: String,
    sends: i64,
    reply: String,
    positive: String,
    bounce: String,
    complaint: String,
    maturing: bool,
}

struct VersionRow {
    version: i64,
    previous: i64,
    at: String,
    source: String,
    actor: String,
    why: String,
}

struct TextRow {
    cells: Vec<String>,
}

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage {
    page: Page,
    client_id: Uuid,
    week: String,
    previous_week: Option<String>,
    next_week: Option<String>,
    period: String,
    maturing: Vec<MaturingKind>,
    volume: String,
    metrics: Vec<MetricRow>,
    funnel: Vec<FunnelRow>,
    breakdowns: Vec<BreakdownRow>,
    versions: Vec<VersionRow>,
    declined: Vec<TextRow>,
    patterns: Vec<TextRow>,
    waiting: Vec<TextRow>,
    experiments: Vec<TextRow>,
    next_steps: Vec<TextRow>,
    alerts: String,
    csv_href: String,
    html_href: String,
}

/// One outcome kind of the week still maturing, as the page says it.
struct MaturingKind {
    /// `reply`, `meeting` or `conversion`.
    id: &'static str,
    text: String,
}

/// The outcome kinds the report says are still maturing, each with the
/// date it matures (`maturity.<kind>`). A report without `maturity` says
/// it of replies only (`maturing`, `matures_at`).
fn maturing_kinds(report: &Value) -> Vec<MaturingKind> {
    let kinds: [(&'static str, &str); 3] = [
        (
            "reply",
            "Replies (and opens, clicks, unsubscribes and complaints)",
        ),
        ("meeting", "Meetings"),
        ("conversion", "Conversions"),
    ];
    kinds
        .into_iter()
        .filter_map(|(id, what)| {
            let window = report.pointer(&format!("/maturity/{id}"));
            let (maturing, matures_at) = match window {
                Some(w) => (w.get("maturing"), w.get("matures_at")),
                None if id == "reply" => (report.get("maturing"), report.get("matures_at")),
                None => (None, None),
            };
            if !maturing.and_then(Value::as_bool).unwrap_or(false) {
                return None;
            }
            let until = when(matures_at.and_then(Value::as_str).unwrap_or(""));
            let days = window
                .and_then(|w| w.get("window_days"))
                .and_then(Value::as_u64)
                .map(|d| format!(" ({d}-day window)"))
                .unwrap_or_default();
            Some(MaturingKind {
                id,
                text: format!("{what} may still come until {until}{days}."),
            })
        })
        .collect()
}

fn flag(value: &Value, key: &str) -> bool {
    value.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn comparison(value: &Value, pointer: &str) -> (String, bool) {
    let Some(c) = value.pointer(pointer).filter(|c| c.is_object()) else {
        return ("–".into(), false);
    };
    let verdict = c
        .get("verdict")
        .and_then(Value::as_str)
        .unwrap_or("–")
        .to_owned();
    let against = rate(c, "/against");
    let significant = c
        .get("significant")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    (format!("{verdict} (against {against})"), significant)
}

async fn weekly(
    State(state): State<AppState>,
    signed: Signed,
    Path(client): Path<String>,
    params: Params,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let min = params.min_position()?;
    let week = week_param(&params)?;
    let name = crate::pages::client_name(&state, &signed, client, min).await?;
    let query: Vec<(&str, String)> = week.iter().map(|w| ("week", w.clone())).collect();
    let report: Value = state
        .api
        .query(
            &signed.session.key,
            &format!("/v1/clients/{client}/reports/weekly"),
            &query,
            min,
        )
        .await?;
    let week = report
        .get("week")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let (previous_week, next_week) = neighbours(&week).unzip();
    let metrics = list(&report, "/headline/metrics")
        .iter()
        .map(|m| {
            let (previous, a) = comparison(m, "/previous_week");
            let (trailing, b) = comparison(m, "/trailing_8_weeks");
            MetricRow {
                metric: s(m, "/metric").replace('_', " "),
                rate: rate(m, ""),
                interval: interval(m, ""),
                counts: format!("{} of {}", n(m, "/events"), n(m, "/sends")),
                previous,
                trailing,
                significant: a || b,
                maturing: flag(m, "maturing"),
            }
        })
        .collect();
    let funnel = list(&report, "/funnel")
        .iter()
        .map(|f| FunnelRow {
            stage: s(f, "/stage").replace('_', " "),
            count: n(f, "/count"),
            rate: rate(f, ""),
            interval: interval(f, ""),
            maturing: flag(f, "maturing"),
        })
        .collect();
    let breakdowns = list(&report, "/breakdowns")
        .iter()
        .map(|b| BreakdownRow {
            dimension: s(b, "/dimension"),
            value: s(b, "/value"),
            sends: n(b, "/sends"),
            reply: rate(b, "/reply_rate"),
            positive: rate(b, "/positive_reply_rate"),
            bounce: rate(b, "/bounce_rate"),
            complaint: rate(b, "/complaint_rate"),
            maturing: flag(b, "maturing"),
        })
        .collect();
    let versions = list(&report, "/changes/versions")
        .iter()
        .map(|v| {
            let version = n(v, "/version");
            let why = match (
                v.get("rolled_back_to").and_then(Value::as_i64),
                v.get("reason").and_then(Value::as_str),
                v.get("rationale").and_then(Value::as_str),
            ) {
                (Some(to), reason, _) => format!(
                    "rolled back to version {to}{}",
                    reason
                        .map(|r| format!(": {}", shown(r)))
                        .unwrap_or_default()
                ),
                (None, _, Some(rationale)) => shown(rationale),
                _ => String::new(),
            };
            let mut source = s(v, "/source").replace('_', " ");
            if let Some(via) = v.get("via").and_then(Value::as_str) {
                source.push_str(&format!(" ({})", via.replace('_', " ")));
            }
            VersionRow {
                version,
                previous: (version - 1).max(0),
                at: when(v.get("applied_at").and_then(Value::as_str).unwrap_or("")),
                source,
                actor: v
                    .get("decided_by")
                    .and_then(Value::as_str)
                    .or_else(|| v.get("actor").and_then(Value::as_str))
                    .map(shown)
                    .unwrap_or_else(|| "–".into()),
                why,
            }
        })
        .collect();
    let declined = list(&report, "/changes/declined")
        .iter()
        .map(|d| TextRow {
            cells: vec![
                s(d, "/source").replace('_', " "),
                s(d, "/status"),
                s(d, "/decided_by"),
                s(d, "/reason"),
            ],
        })
        .collect();
    let patterns = list(&report, "/learned/patterns")
        .iter()
        .map(|p| TextRow {
            cells: vec![
                s(p, "/rationale"),
                s(p, "/status").replace('_', " "),
                p.get("confidence")
                    .and_then(Value::as_f64)
                    .map(|c| format!("{c:.2}"))
                    .unwrap_or_else(|| "–".into()),
            ],
        })
        .collect();
    let waiting = list(&report, "/learned/waiting")
        .iter()
        .map(|w| TextRow {
            cells: vec![
                s(w, "/source").replace('_', " "),
                s(w, "/proposed_by"),
                w.get("waiting_days")
                    .and_then(Value::as_f64)
                    .map(|d| format!("{d:.1}"))
                    .unwrap_or_else(|| "–".into()),
            ],
        })
        .collect();
    let mut experiments: Vec<TextRow> = Vec::new();
    for (pointer, what) in [
        ("/learned/experiments_started", "started"),
        ("/learned/experiments_concluded", "concluded"),
    ] {
        for e in list(&report, pointer) {
            experiments.push(TextRow {
                cells: vec![
                    s(&e, "/name"),
                    what.to_owned(),
                    s(&e, "/metric").replace('_', " "),
                    s(&e, "/decision").replace('_', " "),
                    s(&e, "/winner"),
                ],
            });
        }
    }
    let next_steps = list(&report, "/next_steps")
        .iter()
        .map(|step| TextRow {
            cells: vec![
                s(step, "/rank"),
                s(step, "/rule").replace('_', " "),
                s(step, "/action"),
            ],
        })
        .collect();
    let download = |format: &str| {
        let q = serde_urlencoded::to_string([("format", format), ("week", week.as_str())])
            .unwrap_or_default();
        format!("/clients/{client}/reports/download?{q}")
    };
    let page = ReportPage {
        page: Page::signed(format!("Report {week} · {}", shown(&name)), &signed)
            .for_client(client, &name, "reports"),
        client_id: client,
        csv_href: download("csv"),
        html_href: download("html"),
        period: format!(
            "{} to {} ({})",
            s(&report, "/starts_on"),
            s(&report, "/ends_on"),
            s(&report, "/timezone")
        ),
        maturing: maturing_kinds(&report),
        volume: format!(
            "{} sends (previous week {}, mean of the 8 weeks before {:.1}).",
            n(&report, "/headline/volume/sends"),
            n(&report, "/headline/volume/previous_week"),
            report
                .pointer("/headline/volume/trailing_8_weeks_mean")
                .and_then(Value::as_f64)
                .unwrap_or(0.0)
        ),
        metrics,
        funnel,
        breakdowns,
        versions,
        declined,
        patterns,
        waiting,
        experiments,
        next_steps,
        alerts: format!(
            "{} open; {} raised this week.",
            n(&report, "/alerts/open"),
            n(&report, "/alerts/raised_this_week")
        ),
        week,
        previous_week,
        next_week,
    };
    html(StatusCode::OK, &page)
}

/// The report as CSV or HTML, fetched with the session's key and handed
/// over as a file to save (an attachment: the HTML is never shown inside
/// the console's own pages).
async fn download(
    State(state): State<AppState>,
    signed: Signed,
    Path(client): Path<String>,
    params: Params,
) -> Result<Response, ConsoleError> {
    let client = client_id(&client)?;
    let format = match params.text("format") {
        Some("csv") => "csv",
        Some("html") => "html",
        _ => return Err(ConsoleError::BadRequest("`format` is csv or html".into())),
    };
    let week = week_param(&params)?;
    let mut query = vec![("format", format.to_owned())];
    if let Some(week) = &week {
        query.push(("week", week.clone()));
    }
    let (_, body) = state
        .api
        .query_raw(
            &signed.session.key,
            &format!("/v1/clients/{client}/reports/weekly"),
            &query,
        )
        .await?;
    let kind = if format == "csv" {
        "text/csv; charset=utf-8"
    } else {
        "text/html; charset=utf-8"
    };
    let file = format!(
        "attachment; filename=\"sextant-{client}-{}.{format}\"",
        week.as_deref().unwrap_or("last-week")
    );
    Ok((
        [
            (CONTENT_TYPE, HeaderValue::from_static(kind)),
            (
                CONTENT_DISPOSITION,
                HeaderValue::from_str(&file)
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
            ),
        ],
        body,
    )
        .into_response())
}

struct PlatformRow {
    client_id: String,
    name: String,
    sends: i64,
    previous: i64,
    reply: String,
    change: String,
    verdict: String,
    bounce: String,
    complaint: String,
    alerts: i64,
    pending: i64,
    maturing: bool,
}

struct SortLink {
    label: &'static str,
    href: String,
    aria_sort: &'static str,
}

#[derive(Template)]
#[template(path = "platform_report.html")]
struct PlatformPage {
    page: Page,
    week: String,
    previous_week: Option<String>,
    next_week: Option<String>,
    rows: Vec<PlatformRow>,
    headers: Vec<SortLink>,
}

/// The columns of the platform report, as its `?sort=` names them.
const PLATFORM_SORTS: [(&str, &str); 8] = [
    ("name", "Client"),
    ("sends", "Sends"),
    ("reply_rate", "Reply rate"),
    ("reply_rate_change", "Change"),
    ("bounce_rate", "Bounce rate"),
    ("complaint_rate", "Complaint rate"),
    ("open_alerts", "Open alerts"),
    ("pending_approvals", "Pending"),
];

async fn platform(
    State(state): State<AppState>,
    signed: Signed,
    params: Params,
) -> Result<Response, ConsoleError> {
    let min = params.min_position()?;
    let week = week_param(&params)?;
    let sort = params.text("sort").unwrap_or("name").to_owned();
    let mut query = vec![("sort", sort.clone())];
    if let Some(week) = &week {
        query.push(("week", week.clone()));
    }
    let report: Value = state
        .api
        .query(&signed.session.key, "/v1/reports/weekly", &query, min)
        .await?;
    let week = report
        .get("week")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let (previous_week, next_week) = neighbours(&week).unzip();
    let rows = list(&report, "/clients")
        .iter()
        .map(|c| PlatformRow {
            client_id: s(c, "/client_id"),
            name: s(c, "/name"),
            sends: n(c, "/sends"),
            previous: n(c, "/previous_sends"),
            reply: rate(c, "/reply_rate"),
            change: c
                .get("reply_rate_change")
                .and_then(Value::as_f64)
                .map(|d| format!("{:+.1} pt", d * 100.0))
                .unwrap_or_else(|| "–".into()),
            verdict: s(c, "/reply_rate_verdict"),
            bounce: rate(c, "/bounce_rate"),
            complaint: rate(c, "/complaint_rate"),
            alerts: n(c, "/open_alerts"),
            pending: n(c, "/pending_approvals"),
            maturing: c.get("maturing").and_then(Value::as_bool).unwrap_or(false),
        })
        .collect();
    let headers = PLATFORM_SORTS
        .iter()
        .map(|(column, label)| {
            let descending = sort == format!("-{column}");
            let ascending = sort == *column;
            let next = if ascending {
                format!("-{column}")
            } else {
                (*column).to_owned()
            };
            let q = serde_urlencoded::to_string([("week", week.as_str()), ("sort", next.as_str())])
                .unwrap_or_default();
            SortLink {
                label,
                href: format!("/reports?{q}"),
                aria_sort: if ascending {
                    "ascending"
                } else if descending {
                    "descending"
                } else {
                    "none"
                },
            }
        })
        .collect();
    let page = PlatformPage {
        page: Page::signed(format!("Platform report {week}"), &signed).in_section("platform"),
        week,
        previous_week,
        next_week,
        rows,
        headers,
    };
    html(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weeks_around_a_week_cross_the_year_as_iso_weeks_do() {
        assert_eq!(
            neighbours("2026-W48"),
            Some(("2026-W47".into(), "2026-W49".into()))
        );
        assert_eq!(
            neighbours("2026-W01"),
            Some(("2025-W52".into(), "2026-W02".into()))
        );
        assert_eq!(neighbours("nonsense"), None);
    }

    #[test]
    fn each_outcome_kind_still_maturing_is_named_with_its_date_and_a_matured_one_is_not() {
        let report = serde_json::json!({
            "maturing": false,
            "matures_at": "2026-12-14T00:00:00Z",
            "maturity": {
                "reply": { "window_days": 14, "matures_at": "2026-12-14T00:00:00Z", "maturing": false },
                "meeting": { "window_days": 30, "matures_at": "2026-12-30T00:00:00Z", "maturing": true },
                "conversion": { "window_days": 60, "matures_at": "2027-01-29T00:00:00Z", "maturing": true },
            },
        });
        let kinds = maturing_kinds(&report);
        let ids: Vec<&str> = kinds.iter().map(|k| k.id).collect();
        assert_eq!(ids, ["meeting", "conversion"]);
        assert_eq!(
            kinds[0].text,
            "Meetings may still come until 2026-12-30 00:00 UTC (30-day window)."
        );
        assert!(
            kinds[1].text.contains("2027-01-29 00:00 UTC"),
            "{}",
            kinds[1].text
        );

        let replies_only = serde_json::json!({
            "maturing": true,
            "matures_at": "2026-12-14T00:00:00Z",
        });
        let kinds = maturing_kinds(&replies_only);
        assert_eq!(kinds.len(), 1);
        assert!(kinds[0].text.starts_with("Replies"), "{}", kinds[0].text);
        assert!(
            kinds[0].text.contains("2026-12-14 00:00 UTC"),
            "{}",
            kinds[0].text
        );
    }
}
