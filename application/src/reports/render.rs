//! The CSV and HTML forms of the reports.
//!
//! Both are built from a report's tables ([`Tabular`]): each a list of
//! rows, a row's nested fields flattened into dotted columns
//! (`reply_rate.low`). CSV is one file in long form (`section`, `row`,
//! `field`, `value`) or, for one table (`?table=`), one row per item with a
//! column per field. HTML is one self-contained, printable page: inline
//! CSS, inline SVG charts drawn by `plotters`, no external asset; a rate or
//! verdict whose figure is still maturing says so in its cell, and p- and
//! q-values print as [`format_p`] writes them (never as 0).

use std::fmt::Write as _;

use plotters::prelude::*;
use serde_json::{Map, Value};
use sextant_domain::stats::{format_p, SMALLEST_P};

use super::{to_value, PlatformReport, WeeklyReport, WindowMaturity};

/// A report as named tables of rows.
pub trait Tabular {
    /// The tables, in the order the report shows them.
    fn tables(&self) -> Vec<(&'static str, Vec<Value>)>;
    /// The page title.
    fn title(&self) -> String;
}

fn rows(value: &Value, path: &[&str]) -> Vec<Value> {
    let mut at = value;
    for p in path {
        at = &at[*p];
    }
    match at {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

impl Tabular for WeeklyReport {
    fn tables(&self) -> Vec<(&'static str, Vec<Value>)> {
        let v = to_value(self);
        let mut summary = Map::new();
        if let Value::Object(fields) = &v {
            for (k, x) in fields {
                if (!x.is_object() && !x.is_array()) || k == "maturity" {
                    summary.insert(k.clone(), x.clone());
                }
            }
        }
        vec![
            ("summary", vec![Value::Object(summary)]),
            ("volume", rows(&v, &["headline", "volume"])),
            ("headline", rows(&v, &["headline", "metrics"])),
            ("funnel", rows(&v, &["funnel"])),
            ("trend", rows(&v, &["trend"])),
            ("activity", rows(&v, &["activity"])),
            ("breakdowns", rows(&v, &["breakdowns"])),
            ("changes", rows(&v, &["changes", "versions"])),
            ("declined", rows(&v, &["changes", "declined"])),
            ("patterns", rows(&v, &["learned", "patterns"])),
            ("waiting", rows(&v, &["learned", "waiting"])),
            (
                "experiments_started",
                rows(&v, &["learned", "experiments_started"]),
            ),
            (
                "experiments_concluded",
                rows(&v, &["learned", "experiments_concluded"]),
            ),
            ("next_steps", rows(&v, &["next_steps"])),
            ("alerts", rows(&v, &["alerts", "items"])),
        ]
    }

    fn title(&self) -> String {
        format!("Weekly report {}: {}", self.week, self.client_name)
    }
}

impl Tabular for PlatformReport {
    fn tables(&self) -> Vec<(&'static str, Vec<Value>)> {
        let v = to_value(self);
        let mut summary = Map::new();
        for k in ["week", "starts_on", "ends_on", "sort", "generated_at"] {
            summary.insert(k.to_owned(), v[k].clone());
        }
        vec![
            ("summary", vec![Value::Object(summary)]),
            ("clients", rows(&v, &["clients"])),
        ]
    }

    fn title(&self) -> String {
        format!("Platform report {}", self.week)
    }
}

/// The names of a report's tables (what `?table=` takes).
pub fn table_names<T: Tabular>(report: &T) -> Vec<&'static str> {
    report.tables().into_iter().map(|(n, _)| n).collect()
}

/// `value`'s fields, nested ones as dotted names; arrays as JSON text.
fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(fields) => {
            for (k, v) in fields {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, v, out);
            }
        }
        other => out.push((prefix.to_owned(), scalar(other))),
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(_) | Value::Object(_) => value.to_string(),
        other => other.to_string(),
    }
}

fn flat_rows(rows: &[Value]) -> (Vec<String>, Vec<Vec<(String, String)>>) {
    let mut columns: Vec<String> = Vec::new();
    let flat: Vec<Vec<(String, String)>> = rows
        .iter()
        .map(|r| {
            let mut fields = Vec::new();
            flatten("", r, &mut fields);
            for (k, _) in &fields {
                if !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
            fields
        })
        .collect();
    (columns, flat)
}

/// The whole report as one CSV file: `section`, `row`, `field`, `value`.
pub fn csv_all<T: Tabular>(report: &T) -> Result<String, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(["section", "row", "field", "value"])?;
    for (section, rows) in report.tables() {
        let (_, flat) = flat_rows(&rows);
        for (i, fields) in flat.iter().enumerate() {
            for (field, value) in fields {
                out.write_record([section, &i.to_string(), field, value])?;
            }
        }
    }
    finish(out)
}

/// One table as CSV, a column per field; `None` if the report has no such
/// table.
pub fn csv_table<T: Tabular>(report: &T, table: &str) -> Option<Result<String, csv::Error>> {
    let (_, rows) = report.tables().into_iter().find(|(n, _)| *n == table)?;
    let (columns, flat) = flat_rows(&rows);
    let write = || {
        let mut out = csv::Writer::from_writer(Vec::new());
        out.write_record(&columns)?;
        for fields in &flat {
            out.write_record(columns.iter().map(|c| {
                fields
                    .iter()
                    .find(|(k, _)| k == c)
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("")
            }))?;
        }
        finish(out)
    };
    Some(write())
}

fn finish(out: csv::Writer<Vec<u8>>) -> Result<String, csv::Error> {
    let bytes = out
        .into_inner()
        .map_err(|e| csv::Error::from(std::io::Error::other(e.to_string())))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;font-size:.8em;margin:.5em 0}\
th,td{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}\
th{background:#f3f3f3}.maturing{color:#a60}figure{margin:1em 0;display:inline-block}\
figcaption{font-size:.85em;color:#555}\
@media print{body{margin:0}h2{page-break-after:avoid}table,figure{page-break-inside:avoid}}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>{body}</body></html>\n",
        escape(title),
        escape(title)
    )
}

fn html_table(name: &str, rows: &[Value]) -> String {
    let (columns, flat) = flat_rows(rows);
    let mut out = format!("<h2>{}</h2>", escape(&name.replace('_', " ")));
    if flat.is_empty() {
        out.push_str("<p>None.</p>");
        return out;
    }
    let _ = write!(out, "<table id=\"table-{}\"><thead><tr>", escape(name));
    for c in &columns {
        let _ = write!(out, "<th>{}</th>", escape(c));
    }
    out.push_str("</tr></thead><tbody>");
    for fields in &flat {
        out.push_str("<tr>");
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        for c in &columns {
            let value = field(c).unwrap_or("");
            let _ = write!(out, "<td>{}", escape(&readable(c, value)));
            if maturing_flag(c).and_then(|f| field(&f)) == Some("true") {
                out.push_str(" <span class=\"maturing\">maturing</span>");
            }
            out.push_str("</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// The field of a row that says whether `column`'s figure is still
/// maturing: `maturing` beside a rate or a verdict (`previous_week.maturing`
/// for `previous_week.verdict`), `meetings_maturing` for `meetings`. `None`
/// for a column no flag speaks for.
fn maturing_flag(column: &str) -> Option<String> {
    let (prefix, last) = match column.rsplit_once('.') {
        Some((prefix, last)) => (format!("{prefix}."), last),
        None => (String::new(), column),
    };
    match last {
        "rate" | "verdict" => Some(format!("{prefix}maturing")),
        "meetings" | "conversions" => Some(format!("{prefix}{last}_maturing")),
        _ => None,
    }
}

/// Whether `column` holds a p- or q-value (`p`, `previous_week.q`,
/// `reply_rate_p`).
fn is_p_value(column: &str) -> bool {
    let last = column.rsplit('.').next().unwrap_or(column);
    matches!(last, "p" | "q") || last.ends_with("_p") || last.ends_with("_q")
}

/// A p- or q-value as [`format_p`] writes it; one below the smallest the
/// statistics answer (they never answer 0) reads as below it.
fn p_text(p: f64) -> String {
    if p < SMALLEST_P {
        format!("< {}", format_p(SMALLEST_P))
    } else {
        format_p(p)
    }
}

/// Rates and interval bounds as percentages, p- and q-values by
/// [`p_text`]; other numbers as they are.
fn readable(column: &str, value: &str) -> String {
    let last = column.rsplit('.').next().unwrap_or(column);
    let is_rate = matches!(last, "rate" | "low" | "high" | "difference")
        || last.ends_with("_rate")
        || last == "reply_rate_change";
    match value.parse::<f64>() {
        Ok(x) if is_p_value(column) => p_text(x),
        Ok(x) if is_rate && !value.is_empty() => format!("{:.2}%", x * 100.0),
        Ok(x) if value.contains('.') || value.contains('e') => format!("{x:.4}"),
        _ => value.to_owned(),
    }
}

/// The page's sentence on one maturing outcome kind, if it is maturing.
fn maturing_note(id: &str, what: &str, m: &WindowMaturity) -> String {
    if !m.maturing {
        return String::new();
    }
    format!(
        "<p class=\"maturing\" id=\"maturing-{id}\">Maturing: {what} of this week's sends may \
         still come until {} ({}-day window); those rates are still rising.</p>",
        m.matures_at.format("%Y-%m-%d %H:%M UTC"),
        m.window_days
    )
}

/// The weekly report as one self-contained HTML page.
pub fn weekly_html(report: &WeeklyReport) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<p>Week {} ({} to {}, {}). Maturity windows: replies {} days, meetings {} days, \
         conversions {} days.</p>",
        escape(&report.week),
        report.starts_on,
        report.ends_on,
        escape(&report.timezone),
        report.maturity.reply.window_days,
        report.maturity.meeting.window_days,
        report.maturity.conversion.window_days
    );
    let m = &report.maturity;
    body.push_str(&maturing_note(
        "reply",
        "replies (and opens, clicks, unsubscribes, complaints)",
        &m.reply,
    ));
    body.push_str(&maturing_note("meeting", "meetings", &m.meeting));
    body.push_str(&maturing_note("conversion", "conversions", &m.conversion));
    let charts = [
        ("funnel", "Funnel: sent to converted", funnel_chart(report)),
        (
            "trend",
            "Reply rate, 12 weeks, with 95% intervals",
            trend_chart(report),
        ),
        ("volume", "Sends per week, 12 weeks", volume_chart(report)),
    ];
    let mut tables = report.tables().into_iter();
    for (name, rows) in tables.by_ref().take(3) {
        body.push_str(&html_table(name, &rows));
    }
    body.push_str("<h2>charts</h2>");
    for (id, caption, svg) in charts {
        let _ = write!(
            body,
            "<figure id=\"chart-{id}\">{svg}<figcaption>{}</figcaption></figure>",
            escape(caption)
        );
    }
    for (name, rows) in tables {
        body.push_str(&html_table(name, &rows));
    }
    page(&report.title(), &body)
}

/// The platform report as one self-contained HTML page.
pub fn platform_html(report: &PlatformReport) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<p>Week {} ({} to {}), sorted by {}.</p>",
        escape(&report.week),
        report.starts_on,
        report.ends_on,
        escape(&report.sort)
    );
    for (name, rows) in report.tables() {
        body.push_str(&html_table(name, &rows));
    }
    page(&report.title(), &body)
}

const WIDTH: u32 = 640;
const HEIGHT: u32 = 280;

fn svg<F>(draw: F) -> String
where
    F: FnOnce(&DrawingArea<SVGBackend, plotters::coord::Shift>) -> Result<(), String>,
{
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .map_err(|e| e.to_string())
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(|e| e.to_string()));
        if let Err(err) = drawn {
            tracing::warn!(error = %err, "a report chart could not be drawn");
        }
    }
    out
}

fn funnel_chart(report: &WeeklyReport) -> String {
    let stages: Vec<(String, i64)> = report
        .funnel
        .iter()
        .map(|s| (s.stage.to_owned(), s.count))
        .collect();
    let top = stages.iter().map(|s| s.1).max().unwrap_or(0).max(1) as f64 * 1.1;
    svg(|root| {
        let labels = stages.clone();
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..stages.len() as f64, 0f64..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(stages.len() * 2 + 1)
            .x_label_formatter(&move |x| {
                let i = x.floor() as usize;
                if (x - x.floor() - 0.5).abs() < 0.01 {
                    labels.get(i).map(|l| l.0.clone()).unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(stages.iter().enumerate().map(|(i, (_, n))| {
                Rectangle::new(
                    [(i as f64 + 0.15, 0.0), (i as f64 + 0.85, *n as f64)],
                    BLUE.mix(0.6).filled(),
                )
            }))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

fn week_labels(report: &WeeklyReport) -> Vec<String> {
    report
        .trend
        .iter()
        .map(|p| {
            p.week
                .split_once('-')
                .map(|(_, w)| w.to_owned())
                .unwrap_or_default()
        })
        .collect()
}

fn trend_chart(report: &WeeklyReport) -> String {
    let points: Vec<(f64, f64, f64, f64)> = report
        .trend
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let r = &p.reply_rate;
            (i as f64, r.rate * 100.0, r.low * 100.0, r.high * 100.0)
        })
        .collect();
    let top = points
        .iter()
        .map(|p| if p.3.is_finite() { p.3 } else { 0.0 })
        .fold(1.0f64, f64::max)
        * 1.1;
    let labels = week_labels(report);
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5f64..points.len() as f64 - 0.5, 0f64..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(points.len())
            .x_label_formatter(&|x| labels.get(x.round() as usize).cloned().unwrap_or_default())
            .y_label_formatter(&|y| format!("{y:.1}%"))
            .draw()
            .map_err(|e| e.to_string())?;
        // The interval band, then error bars and the rate.
        let mut band: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.3)).collect();
        band.extend(points.iter().rev().map(|p| (p.0, p.2)));
        chart
            .draw_series(std::iter::once(Polygon::new(band, BLUE.mix(0.15).filled())))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(|p| ErrorBar::new_vertical(p.0, p.2, p.1, p.3, BLUE.filled(), 6)),
            )
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(points.iter().map(|p| (p.0, p.1)), &BLUE))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

fn volume_chart(report: &WeeklyReport) -> String {
    let sends: Vec<(f64, i64, bool)> = report
        .trend
        .iter()
        .enumerate()
        .map(|(i, p)| (i as f64, p.sends, p.maturing))
        .collect();
    let top = sends.iter().map(|s| s.1).max().unwrap_or(0).max(1) as f64 * 1.1;
    let labels = week_labels(report);
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..sends.len() as f64 - 0.5, 0f64..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(sends.len())
            .x_label_formatter(&|x| labels.get(x.round() as usize).cloned().unwrap_or_default())
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(sends.iter().map(|(x, n, maturing)| {
                let colour = if *maturing {
                    RGBColor(204, 136, 0).mix(0.6)
                } else {
                    BLUE.mix(0.6)
                };
                Rectangle::new([(x - 0.35, 0.0), (x + 0.35, *n as f64)], colour.filled())
            }))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiny_p_or_q_value_never_prints_as_zero() {
        for column in [
            "previous_week.p",
            "trailing_8_weeks.q",
            "reply_rate_p",
            "reply_rate_q",
        ] {
            let text = readable(column, "1e-20");
            assert_eq!(text, "1.0e-20", "{column}");
        }
        assert_eq!(readable("previous_week.p", "0.02846"), "0.0285");
        assert_eq!(readable("previous_week.q", "1.0"), "1.0000");
        assert_eq!(readable("previous_week.p", "0.0"), "< 2.2e-308");
        // Other numbers keep their four decimals; rates their percentage.
        assert_eq!(readable("previous_week.z", "1.23456"), "1.2346");
        assert_eq!(readable("previous_week.against.rate", "0.25"), "25.00%");
    }

    #[test]
    fn a_rate_or_verdict_reads_the_maturing_flag_beside_it() {
        assert_eq!(maturing_flag("rate").as_deref(), Some("maturing"));
        assert_eq!(
            maturing_flag("previous_week.verdict").as_deref(),
            Some("previous_week.maturing")
        );
        assert_eq!(
            maturing_flag("meetings").as_deref(),
            Some("meetings_maturing")
        );
        assert_eq!(maturing_flag("sends"), None);
        assert_eq!(maturing_flag("previous_week.p"), None);
    }
}
