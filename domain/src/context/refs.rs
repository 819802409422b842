//! Values kept out of the log by reference: what a document's insights
//! put into the context may be personal data (a lead's name in a pain
//! point, a person's title), and the log is immutable. Each leaf value of
//! such a patch is replaced by a reference, `"$insight:<uuid>"`, and the
//! value itself is kept in an erasable table (`context_insights`) under
//! that id.
//!
//! A reference is a string leaf, so a patch by reference touches the same
//! paths and merges the same way as the patch of values it stands for (a
//! leaf replaces whatever was at its path). The aggregate, its snapshots,
//! the events and the read models hold references only; hashes of versions
//! are over the references, so they do not change when a value is erased.
//! Readers resolve references to values ([`resolve`]); an erased value
//! resolves to nothing: its member is left out.

use std::collections::HashMap;

use serde_json::{Map, Value};
use uuid::Uuid;

/// How a reference begins; the insight's id follows.
pub const PREFIX: &str = "$insight:";

/// A merge patch whose every leaf value is a reference: only
/// [`by_reference`] makes one, so document insights cannot reach the log
/// as values.
#[derive(Debug, Clone, PartialEq)]
pub struct ByReference(Value);

impl ByReference {
    pub fn patch(&self) -> &Value {
        &self.0
    }

    pub fn into_patch(self) -> Value {
        self.0
    }
}

/// One value a patch by reference stands for, to be kept under `id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Referenced {
    pub id: Uuid,
    /// Where in the patch it was (a JSON pointer), for whoever reads the
    /// table.
    pub path: String,
    pub value: Value,
}

/// The reference to insight `id`.
pub fn reference(id: Uuid) -> Value {
    Value::String(format!("{PREFIX}{id}"))
}

/// The insight a value refers to, if it is a reference.
pub fn referenced_id(value: &Value) -> Option<Uuid> {
    value
        .as_str()?
        .strip_prefix(PREFIX)
        .and_then(|id| Uuid::parse_str(id).ok())
}

/// `patch` with each leaf value (anything but an object; a `null`, which
/// removes a path, and an empty object, which holds nothing, stay as they
/// are) replaced by a reference to an id `next_id` draws, and the values
/// referred to.
pub fn by_reference(
    patch: &Value,
    mut next_id: impl FnMut() -> Uuid,
) -> (ByReference, Vec<Referenced>) {
    fn walk(
        value: &Value,
        path: String,
        next_id: &mut dyn FnMut() -> Uuid,
        out: &mut Vec<Referenced>,
    ) -> Value {
        match value {
            Value::Object(map) if !map.is_empty() => Value::Object(
                map.iter()
                    .map(|(key, v)| {
                        let path = format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"));
                        (key.clone(), walk(v, path, next_id, out))
                    })
                    .collect(),
            ),
            Value::Object(_) | Value::Null => value.clone(),
            leaf => {
                let id = next_id();
                out.push(Referenced {
                    id,
                    path,
                    value: leaf.clone(),
                });
                reference(id)
            }
        }
    }
    let mut values = Vec::new();
    let patch = walk(patch, String::new(), &mut next_id, &mut values);
    (ByReference(patch), values)
}

/// Every insight `value` refers to.
pub fn references(value: &Value) -> Vec<Uuid> {
    fn walk(value: &Value, out: &mut Vec<Uuid>) {
        match value {
            Value::Object(map) => map.values().for_each(|v| walk(v, out)),
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            other => out.extend(referenced_id(other)),
        }
    }
    let mut ids = Vec::new();
    walk(value, &mut ids);
    ids.sort();
    ids.dedup();
    ids
}

/// `value` with every reference replaced by its value in `values`; a
/// reference whose value is not there (erased) is left out: an object
/// member or an array item goes, a reference on its own becomes `null`.
pub fn resolve(value: &Value, values: &HashMap<Uuid, Value>) -> Value {
    fn walk(value: &Value, values: &HashMap<Uuid, Value>) -> Option<Value> {
        match value {
            Value::Object(map) => Some(Value::Object(
                map.iter()
                    .filter_map(|(k, v)| walk(v, values).map(|v| (k.clone(), v)))
                    .collect::<Map<String, Value>>(),
            )),
            Value::Array(items) => Some(Value::Array(
                items.iter().filter_map(|v| walk(v, values)).collect(),
            )),
            other => match referenced_id(other) {
                Some(id) => values.get(&id).cloned(),
                None => Some(other.clone()),
            },
        }
    }
    walk(value, values).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::context::json;

    fn ids() -> impl FnMut() -> Uuid {
        let mut n = 0;
        move || {
            n += 1;
            Uuid::from_u128(n)
        }
    }

    #[test]
    fn a_patch_by_reference_touches_the_same_paths_and_keeps_no_value() {
        let patch = json!({
            "icp": {"pain_points": ["Ana Lima says close takes 9 days"], "regions": null, "extra": {}},
            "messaging": {"tone": "plain", "a/b": 3}
        });
        let (by_ref, values) = by_reference(&patch, ids());
        let mut before = json::touched_paths(&patch);
        let mut after = json::touched_paths(by_ref.patch());
        before.sort();
        after.sort();
        assert_eq!(before, after);
        let text = by_ref.patch().to_string();
        assert!(!text.contains("Ana") && !text.contains("plain"), "{text}");
        assert_eq!(values.len(), 3);
        assert_eq!(values[0].path, "/icp/pain_points");
        assert_eq!(references(by_ref.patch()).len(), 3);
    }

    #[test]
    fn resolving_gives_back_the_values_and_leaves_erased_ones_out() {
        let patch = json!({"icp": {"industries": ["fintech"], "titles": ["CFO"]}, "tone": "warm"});
        let (by_ref, values) = by_reference(&patch, ids());
        let mut document = json!({"company": {"name": "Acme"}});
        json::merge_patch(&mut document, by_ref.patch());
        let all: HashMap<Uuid, Value> = values.iter().map(|r| (r.id, r.value.clone())).collect();
        let mut expected = json!({"company": {"name": "Acme"}});
        json::merge_patch(&mut expected, &patch);
        assert_eq!(resolve(&document, &all), expected);
        let titles = values
            .iter()
            .find(|r| r.path == "/icp/titles")
            .expect("the titles were referred to");
        let mut erased = all.clone();
        erased.remove(&titles.id);
        assert_eq!(
            resolve(&document, &erased),
            json!({"company": {"name": "Acme"}, "icp": {"industries": ["fintech"]}, "tone": "warm"})
        );
    }

    #[test]
    fn a_string_is_a_reference_only_with_the_prefix_and_an_id() {
        assert_eq!(
            referenced_id(&reference(Uuid::from_u128(9))),
            Some(Uuid::from_u128(9))
        );
        for plain in [json!("$insight:nope"), json!("insight"), json!(3)] {
            assert_eq!(referenced_id(&plain), None);
            assert_eq!(resolve(&plain, &HashMap::new()), plain);
        }
    }
}
