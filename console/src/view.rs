//! What every page shares: the layout's data ([`Page`]), and JSON turned
//! into something a person reads: rows of label and value, diffs side by
//! side and unified. Text from the system (names, context values,
//! evidence) is escaped by askama like everything else; on top of that,
//! invisible and direction-changing characters are shown as visible marks
//! (`[U+202E]`), so a value cannot hide text or reorder what follows it.

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::session::Signed;

/// The layout's data: the title, who is signed in, the CSRF token for the
/// sign-out form, the client being looked at, and a notice after an action.
#[derive(Debug, Clone)]
pub struct Page {
    pub title: String,
    pub who: Option<String>,
    pub csrf: String,
    pub client: Option<ClientNav>,
    pub notice: Option<String>,
    /// Which link is the current page: a client's `home`, `approvals`,
    /// `context`, `history`, `learning`, `sends`, `reports`, `alerts`,
    /// `settings`; the operator's `clients`, `all-approvals`, `platform`.
    pub section: &'static str,
    /// The operator may go back to the list of every client.
    pub operator: bool,
}

/// The client a page is about, for the navigation.
#[derive(Debug, Clone)]
pub struct ClientNav {
    pub id: Uuid,
    pub name: String,
}

impl Page {
    /// A page without a session (sign-in, errors).
    pub fn bare(title: &str) -> Self {
        Self {
            title: title.to_owned(),
            who: None,
            csrf: String::new(),
            client: None,
            notice: None,
            section: "",
            operator: false,
        }
    }

    pub fn signed(title: impl Into<String>, signed: &Signed) -> Self {
        Self {
            title: title.into(),
            who: Some(signed.session.who.label()),
            csrf: signed.session.csrf.clone(),
            client: None,
            notice: None,
            section: "",
            operator: signed.session.who.is_operator(),
        }
    }

    pub fn for_client(mut self, id: Uuid, name: &str, section: &'static str) -> Self {
        self.client = Some(ClientNav {
            id,
            name: shown(name),
        });
        self.section = section;
        self
    }

    /// Marks a page outside any client as current in the navigation.
    pub fn in_section(mut self, section: &'static str) -> Self {
        self.section = section;
        self
    }

    pub fn with_notice(mut self, notice: Option<String>) -> Self {
        self.notice = notice;
        self
    }
}

/// Characters that are invisible or change the direction of the text
/// around them (bidi embeddings, overrides and isolates, zero-width
/// characters, the BOM, the soft hyphen).
fn is_hidden(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}'
        | '\u{FEFF}')
        || (c.is_control() && c != '\n' && c != '\t')
}

/// `text` with hidden characters shown as `[U+XXXX]`.
pub fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_hidden(c) {
            out.push_str(&format!("[U+{:04X}]", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// A value as a person reads it: text as itself, numbers and the rest as
/// compact JSON, arrays of scalars as a list.
pub fn display(value: &Value) -> String {
    match value {
        Value::String(s) => shown(s),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        Value::Array(items) if items.iter().all(|i| !i.is_array() && !i.is_object()) => {
            if items.is_empty() {
                "(none)".into()
            } else {
                items.iter().map(display).collect::<Vec<_>>().join(", ")
            }
        }
        other => shown(&other.to_string()),
    }
}

/// One row of a flattened JSON value.
#[derive(Debug, Clone)]
pub struct Row {
    pub label: String,
    pub value: String,
    pub numeric: bool,
}

/// Every leaf of `value` as a row labelled by its path (`icp › regions`);
/// arrays of scalars are one leaf.
pub fn flatten(value: &Value) -> Vec<Row> {
    let mut rows = Vec::new();
    flatten_into(value, &mut Vec::new(), &mut rows);
    rows
}

fn flatten_into(value: &Value, path: &mut Vec<String>, rows: &mut Vec<Row>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, item) in map {
                path.push(shown(key));
                flatten_into(item, path, rows);
                path.pop();
            }
        }
        Value::Array(items) if items.iter().any(|i| i.is_array() || i.is_object()) => {
            for (i, item) in items.iter().enumerate() {
                path.push(format!("{}", i + 1));
                flatten_into(item, path, rows);
                path.pop();
            }
        }
        leaf => rows.push(Row {
            label: if path.is_empty() {
                "value".into()
            } else {
                path.join(" › ")
            },
            value: display(leaf),
            numeric: leaf.is_number(),
        }),
    }
}

/// A top-level section of the context document.
#[derive(Debug, Clone)]
pub struct Section {
    pub key: String,
    pub title: String,
    pub rows: Vec<Row>,
}

/// The document as sections, one per top-level key, in the document's
/// order.
pub fn sections(document: &Value) -> Vec<Section> {
    let Value::Object(map) = document else {
        return Vec::new();
    };
    map.iter()
        .map(|(key, value)| Section {
            key: shown(key),
            title: shown(&key.replace('_', " ")),
            rows: flatten(value),
        })
        .collect()
}

/// One change between two documents, as the query API's diff or the
/// ledger's own diff gives it.
#[derive(Debug, Clone, Deserialize)]
pub struct Change {
    pub path: String,
    pub op: String,
    #[serde(default)]
    pub from: Option<Value>,
    #[serde(default)]
    pub to: Option<Value>,
}

impl From<sextant_domain::context::json::Change> for Change {
    fn from(change: sextant_domain::context::json::Change) -> Self {
        let op = match change.op {
            sextant_domain::context::json::ChangeOp::Added => "added",
            sextant_domain::context::json::ChangeOp::Removed => "removed",
            sextant_domain::context::json::ChangeOp::Changed => "changed",
        };
        Self {
            path: change.path,
            op: op.into(),
            from: change.from,
            to: change.to,
        }
    }
}

/// An object added or removed whole, as one change per leaf, so that each
/// path it brings or takes is a row of its own.
fn expand(change: Change) -> Vec<Change> {
    fn leaves(value: &Value, path: String, out: &mut Vec<(String, Value)>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, item) in map {
                    let key = key.replace('~', "~0").replace('/', "~1");
                    leaves(item, format!("{path}/{key}"), out);
                }
            }
            leaf => out.push((path, leaf.clone())),
        }
    }
    let whole = match (change.op.as_str(), &change.from, &change.to) {
        ("added", _, Some(value @ Value::Object(_))) => value,
        ("removed", Some(value @ Value::Object(_)), _) => value,
        _ => return vec![change],
    };
    let mut found = Vec::new();
    leaves(whole, change.path.clone(), &mut found);
    found
        .into_iter()
        .map(|(path, value)| Change {
            path,
            op: change.op.clone(),
            from: (change.op == "removed").then(|| value.clone()),
            to: (change.op == "added").then_some(value),
        })
        .collect()
}

/// A diff, ready for both views.
#[derive(Debug, Clone, Default)]
pub struct Diff {
    pub rows: Vec<DiffRow>,
    pub lines: Vec<DiffLine>,
}

/// A row of the side-by-side view.
#[derive(Debug, Clone)]
pub struct DiffRow {
    pub path: String,
    pub op: String,
    pub before: String,
    pub after: String,
}

/// A line of the unified view: `-` before, `+` after.
#[derive(Debug, Clone)]
pub struct DiffLine {
    pub sign: &'static str,
    pub class: &'static str,
    pub text: String,
}

impl Diff {
    pub fn of(changes: Vec<Change>) -> Self {
        let rows: Vec<DiffRow> = changes
            .into_iter()
            .flat_map(expand)
            .map(|c| DiffRow {
                path: shown(&c.path),
                op: c.op,
                before: c.from.as_ref().map(display).unwrap_or_default(),
                after: c.to.as_ref().map(display).unwrap_or_default(),
            })
            .collect();
        let mut lines = Vec::new();
        for row in &rows {
            if row.op != "added" {
                lines.push(DiffLine {
                    sign: "-",
                    class: "del",
                    text: format!("{}: {}", row.path, row.before),
                });
            }
            if row.op != "removed" {
                lines.push(DiffLine {
                    sign: "+",
                    class: "ins",
                    text: format!("{}: {}", row.path, row.after),
                });
            }
        }
        Self { rows, lines }
    }

    /// What applying `patch` (a JSON merge patch) to `current` changes.
    pub fn of_patch(current: &Value, patch: &Value) -> Self {
        let mut proposed = current.clone();
        sextant_domain::context::json::merge_patch(&mut proposed, patch);
        Self::of(
            sextant_domain::context::json::diff(current, &proposed)
                .into_iter()
                .map(Change::from)
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// `2026-12-05 21:52 UTC` from an RFC 3339 time; the text itself otherwise.
pub fn when(text: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M UTC")
                .to_string()
        })
        .unwrap_or_else(|_| shown(text))
}

/// A rate as a percentage with one decimal.
pub fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

/// How long ago, shortly: `3 d ago`, `5 h ago`, `12 min ago`, `just now`.
pub fn age(seconds: f64) -> String {
    let s = seconds.max(0.0);
    let text = if s >= 86_400.0 {
        format!("{:.0} d", (s / 86_400.0).floor())
    } else if s >= 3_600.0 {
        format!("{:.0} h", (s / 3_600.0).floor())
    } else if s >= 60.0 {
        format!("{:.0} min", (s / 60.0).floor())
    } else {
        return "just now".into();
    };
    format!("{text} ago")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hidden_characters_are_shown_as_marks_and_markup_is_left_to_the_escaper() {
        assert_eq!(shown("a\u{202E}b\u{200B}c"), "a[U+202E]b[U+200B]c");
        assert_eq!(
            shown("<script>alert(1)</script>"),
            "<script>alert(1)</script>"
        );
    }

    #[test]
    fn evidence_flattens_to_labelled_rows_with_numbers_marked() {
        let rows = flatten(&json!({ "sends": 1200, "by": { "week": [1, 2] }, "note": "x" }));
        let mut seen: Vec<(&str, &str, bool)> = rows
            .iter()
            .map(|r| (r.label.as_str(), r.value.as_str(), r.numeric))
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            vec![
                ("by › week", "1, 2", false),
                ("note", "x", false),
                ("sends", "1200", true)
            ]
        );
    }

    #[test]
    fn a_patch_diff_shows_what_it_adds_and_changes_in_both_views() {
        let diff = Diff::of_patch(
            &json!({ "messaging": { "tone": "plain" } }),
            &json!({ "messaging": { "tone": "bold" }, "icp": { "regions": ["NZ"] } }),
        );
        let rows: Vec<(&str, &str, &str, &str)> = diff
            .rows
            .iter()
            .map(|r| {
                (
                    r.path.as_str(),
                    r.op.as_str(),
                    r.before.as_str(),
                    r.after.as_str(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                ("/icp/regions", "added", "", "NZ"),
                ("/messaging/tone", "changed", "plain", "bold")
            ]
        );
        let lines: Vec<String> = diff
            .lines
            .iter()
            .map(|l| format!("{}{}", l.sign, l.text))
            .collect();
        assert_eq!(
            lines,
            vec![
                "+/icp/regions: NZ",
                "-/messaging/tone: plain",
                "+/messaging/tone: bold"
            ]
        );
    }
}
