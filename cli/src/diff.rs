//! A context diff (the query API's `ContextDiff`) as a unified diff: one
//! hunk per changed path, the old value's lines with `-`, the new value's
//! with `+`. Coloured on a terminal only (console decides).

use serde_json::Value;

use crate::output::{cyan, green, red};

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

pub fn render(diff: &Value) -> String {
    let mut out = String::new();
    out.push_str(&red(&format!("--- version {}", diff["from"])));
    out.push('\n');
    out.push_str(&green(&format!("+++ version {}", diff["to"])));
    out.push('\n');
    let changes = diff["changes"].as_array().cloned().unwrap_or_default();
    if changes.is_empty() {
        out.push_str("(no changes)\n");
    }
    for change in &changes {
        let path = change["path"].as_str().unwrap_or("");
        let op = change["op"].as_str().unwrap_or("");
        out.push_str(&cyan(&format!("@@ {path} ({op}) @@")));
        out.push('\n');
        if let Some(from) = change.get("from").filter(|_| op != "added") {
            for line in pretty(from).lines() {
                out.push_str(&red(&format!("-{line}")));
                out.push('\n');
            }
        }
        if let Some(to) = change.get("to").filter(|_| op != "removed") {
            for line in pretty(to).lines() {
                out.push_str(&green(&format!("+{line}")));
                out.push('\n');
            }
        }
    }
    out
}

/// A merge patch as the paths it sets (`+`) and removes (`-`, a `null`).
pub fn patch_lines(patch: &Value) -> String {
    let mut out = String::new();
    walk(patch, String::new(), &mut out);
    if out.is_empty() {
        out.push_str("  (empty patch)\n");
    }
    out
}

fn walk(v: &Value, path: String, out: &mut String) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, child) in map {
                let escaped = k.replace('~', "~0").replace('/', "~1");
                walk(child, format!("{path}/{escaped}"), out);
            }
        }
        Value::Null => {
            out.push_str(&red(&format!("- {path}")));
            out.push('\n');
        }
        other => {
            let text = serde_json::to_string(other).unwrap_or_default();
            out.push_str(&green(&format!("+ {path}: {text}")));
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_changed_path_shows_its_old_and_new_lines() {
        console::set_colors_enabled(false);
        let text = render(&json!({"from": 1, "to": 2, "changes": [
            {"path": "/messaging/tone", "op": "changed", "from": "formal", "to": "warm"},
            {"path": "/icp/size", "op": "added", "to": 50}
        ]}));
        assert_eq!(
            text,
            "--- version 1\n+++ version 2\n@@ /messaging/tone (changed) @@\n-\"formal\"\n+\"warm\"\n@@ /icp/size (added) @@\n+50\n"
        );
    }

    #[test]
    fn a_merge_patch_lists_what_it_sets_and_removes() {
        console::set_colors_enabled(false);
        let text = patch_lines(&json!({"messaging": {"old": null, "tone": "warm"}}));
        assert_eq!(text, "- /messaging/old\n+ /messaging/tone: \"warm\"\n");
    }
}
