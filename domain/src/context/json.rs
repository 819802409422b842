//! Pure JSON machinery of the context ledger: RFC 7386 merge patches, the
//! paths a patch touches, path-by-path diffs, and stable hashes.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Applies an RFC 7386 JSON merge patch to `target`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// The leaf paths a merge patch sets or removes, as JSON pointers
/// (`/icp/industries`). An empty object sets its own path.
pub fn touched_paths(patch: &Value) -> Vec<String> {
    let mut paths = Vec::new();
    if patch.as_object().is_some_and(|m| m.is_empty()) {
        return paths;
    }
    collect_paths(patch, String::new(), &mut paths);
    paths
}

fn collect_paths(patch: &Value, prefix: String, out: &mut Vec<String>) {
    match patch {
        Value::Object(map) if !map.is_empty() => {
            for (key, value) in map {
                collect_paths(value, format!("{prefix}/{}", escape(key)), out);
            }
        }
        _ => out.push(if prefix.is_empty() {
            "/".into()
        } else {
            prefix
        }),
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Two paths overlap when one is the other or lies inside it.
pub fn paths_overlap(a: &str, b: &str) -> bool {
    let inside = |outer: &str, inner: &str| {
        outer == "/" || inner == outer || inner.starts_with(&format!("{outer}/"))
    };
    inside(a, b) || inside(b, a)
}

/// The merge patch that turns `from` into `to`.
pub fn patch_between(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => {
            let mut patch = Map::new();
            for key in a.keys() {
                if !b.contains_key(key) {
                    patch.insert(key.clone(), Value::Null);
                }
            }
            for (key, value) in b {
                match a.get(key) {
                    Some(old) if old == value => {}
                    Some(old) if old.is_object() && value.is_object() => {
                        patch.insert(key.clone(), patch_between(old, value));
                    }
                    _ => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            Value::Object(patch)
        }
        _ => to.clone(),
    }
}

/// One difference between two documents.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    pub path: String,
    pub op: ChangeOp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    Added,
    Removed,
    Changed,
}

/// Path-by-path differences from `a` to `b`: objects are compared key by
/// key, anything else (arrays included) as a whole value.
pub fn diff(a: &Value, b: &Value) -> Vec<Change> {
    let mut changes = Vec::new();
    diff_into(a, b, String::new(), &mut changes);
    changes
}

fn diff_into(a: &Value, b: &Value, prefix: String, out: &mut Vec<Change>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let path = format!("{prefix}/{}", escape(key));
                match (x.get(key), y.get(key)) {
                    (Some(old), Some(new)) => diff_into(old, new, path, out),
                    (Some(old), None) => out.push(Change {
                        path,
                        op: ChangeOp::Removed,
                        from: Some(old.clone()),
                        to: None,
                    }),
                    (None, Some(new)) => out.push(Change {
                        path,
                        op: ChangeOp::Added,
                        from: None,
                        to: Some(new.clone()),
                    }),
                    (None, None) => {}
                }
            }
        }
        _ if a == b => {}
        _ => out.push(Change {
            path: if prefix.is_empty() {
                "/".into()
            } else {
                prefix
            },
            op: ChangeOp::Changed,
            from: Some(a.clone()),
            to: Some(b.clone()),
        }),
    }
}

/// SHA-256 of the canonical JSON text (object keys sorted), hex.
pub fn hash(value: &Value) -> String {
    hex::encode(Sha256::digest(canonical(value).as_bytes()))
}

/// JSON text with object keys in sorted order, so equal values hash equal.
pub fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// The evidence as it matters: numbers rounded to two significant digits,
/// keys sorted. Two evidences with the same fingerprint are not materially
/// different (a rejected suggestion is not proposed again on such evidence).
pub fn material_fingerprint(evidence: &Value) -> String {
    fn round(value: &Value) -> Value {
        match value {
            Value::Number(n) => match n.as_f64() {
                Some(f) if f != 0.0 && f.is_finite() => {
                    let magnitude = f.abs().log10().floor() as i32;
                    let scale = 10f64.powi(1 - magnitude);
                    serde_json::json!((f * scale).round() / scale)
                }
                _ => value.clone(),
            },
            Value::Array(items) => Value::Array(items.iter().map(round).collect()),
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (k.clone(), round(v))).collect())
            }
            other => other.clone(),
        }
    }
    hash(&round(evidence))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386_examples() {
        // The test cases of RFC 7386, appendix A.
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"a":"foo"}), json!("bar"), json!("bar")),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (target, patch, expected) in cases {
            let mut doc = target.clone();
            merge_patch(&mut doc, &patch);
            assert_eq!(doc, expected, "{target} + {patch}");
        }
    }

    #[test]
    fn touched_paths_are_the_leaves_of_the_patch() {
        let patch = json!({"icp": {"industries": ["fintech"], "regions": null}, "a/b": 1});
        let mut paths = touched_paths(&patch);
        paths.sort();
        assert_eq!(paths, vec!["/a~1b", "/icp/industries", "/icp/regions"]);
    }

    #[test]
    fn paths_overlap_when_one_contains_the_other() {
        assert!(paths_overlap("/icp", "/icp/industries"));
        assert!(paths_overlap("/icp/industries", "/icp"));
        assert!(paths_overlap("/icp/industries", "/icp/industries"));
        assert!(!paths_overlap("/icp/industries", "/icp/industries_extra"));
        assert!(!paths_overlap("/icp/regions", "/icp/industries"));
        assert!(paths_overlap("/", "/anything"));
    }

    #[test]
    fn the_patch_between_two_documents_turns_one_into_the_other() {
        let a =
            json!({"icp": {"industries": ["fintech"], "regions": ["AU"]}, "tone": "warm", "x": 1});
        let b = json!({"icp": {"industries": ["saas"], "regions": ["AU"]}, "tone": "warm", "y": {"z": 2}});
        let patch = patch_between(&a, &b);
        let mut doc = a.clone();
        merge_patch(&mut doc, &patch);
        assert_eq!(doc, b);
        assert_eq!(
            patch,
            json!({"icp": {"industries": ["saas"]}, "x": null, "y": {"z": 2}})
        );
    }

    #[test]
    fn diff_lists_changes_path_by_path() {
        let a = json!({"icp": {"industries": ["fintech"], "regions": ["AU"]}, "x": 1});
        let b = json!({"icp": {"industries": ["saas"], "regions": ["AU"]}, "y": 2});
        let changes = diff(&a, &b);
        let summary: Vec<(String, ChangeOp)> =
            changes.iter().map(|c| (c.path.clone(), c.op)).collect();
        assert_eq!(
            summary,
            vec![
                ("/icp/industries".into(), ChangeOp::Changed),
                ("/x".into(), ChangeOp::Removed),
                ("/y".into(), ChangeOp::Added),
            ]
        );
        assert!(diff(&a, &a).is_empty());
    }

    #[test]
    fn hashes_ignore_key_order() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"d":2,"c":3}}"#).expect("valid JSON");
        let b: Value = serde_json::from_str(r#"{"a":{"c":3,"d":2},"b":1}"#).expect("valid JSON");
        assert_eq!(hash(&a), hash(&b));
        assert_ne!(hash(&a), hash(&json!({"b": 2})));
    }

    #[test]
    fn evidence_differs_materially_only_beyond_two_significant_digits() {
        let base = json!({"sends": 1200, "reply_rate": 0.0412, "lift": 1.31});
        let noise = json!({"lift": 1.33, "reply_rate": 0.0408, "sends": 1210});
        let real = json!({"sends": 2400, "reply_rate": 0.0412, "lift": 1.31});
        assert_eq!(material_fingerprint(&base), material_fingerprint(&noise));
        assert_ne!(material_fingerprint(&base), material_fingerprint(&real));
    }
}
