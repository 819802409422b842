//! The deterministic insight extractor: what the default, offline install
//! uses when no LLM is configured (or the LLM fails).
//!
//! It reads `Label: value` lines (and `- item` lists under a `Label:` line)
//! whose label it knows, and maps them into the context sections of
//! docs/context-ledger.md. It never copies free prose into the context: only values under
//! labels a person wrote on purpose.

use serde_json::{json, Map, Value};

/// Known labels (lower-case, without punctuation) → (section, field, list?).
const LABELS: &[(&[&str], &str, &str, bool)] = &[
    (
        &["industries", "target industries", "industry"],
        "icp",
        "industries",
        true,
    ),
    (
        &["company sizes", "company size", "sizes"],
        "icp",
        "company_sizes",
        true,
    ),
    (
        &["regions", "region", "geographies"],
        "icp",
        "regions",
        true,
    ),
    (
        &["titles", "target titles", "roles", "target roles"],
        "icp",
        "titles",
        true,
    ),
    (&["pain points", "pains"], "icp", "pain_points", true),
    (
        &["disqualifiers", "exclude", "exclusions"],
        "icp",
        "disqualifiers",
        true,
    ),
    (
        &["value proposition", "value prop"],
        "company",
        "value_proposition",
        false,
    ),
    (&["differentiators"], "company", "differentiators", true),
    (
        &["proof points", "case studies"],
        "company",
        "proof_points",
        true,
    ),
    (
        &["what we sell", "product", "offering"],
        "company",
        "offering",
        false,
    ),
    (&["positioning"], "messaging", "positioning", false),
    (&["tone", "voice"], "messaging", "tone", false),
    (&["angles", "messaging angles"], "messaging", "angles", true),
    (&["terms to use", "use"], "messaging", "terms_to_use", true),
    (
        &["terms to avoid", "avoid", "do not say"],
        "messaging",
        "terms_to_avoid",
        true,
    ),
    (
        &["goals", "objectives", "campaign goals"],
        "campaign_goals",
        "objectives",
        true,
    ),
    (&["constraints"], "campaign_goals", "constraints", true),
];

fn lookup(label: &str) -> Option<(&'static str, &'static str, bool)> {
    let normalized: String = label
        .trim()
        .trim_start_matches(['#', '*', '-', ' '])
        .trim_end_matches(['*', ' '])
        .to_lowercase();
    LABELS
        .iter()
        .find(|(names, ..)| names.contains(&normalized.as_str()))
        .map(|(_, section, field, list)| (*section, *field, *list))
}

fn split_list(value: &str) -> Vec<Value> {
    value
        .split([',', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Value::String(s.to_owned()))
        .collect()
}

/// A merge patch of the insights found in `content`; `None` if it found none.
pub fn extract(content: &str) -> Option<Value> {
    let mut patch = Map::new();
    let mut open_list: Option<(&str, &str)> = None;
    let mut put = |section: &str, field: &str, value: Value, append: bool| {
        let entry = patch
            .entry(section.to_owned())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|m| m.entry(field.to_owned()).or_insert(Value::Null));
        if let Some(slot) = entry {
            match (append, slot.as_array_mut(), value) {
                (true, Some(items), Value::Array(more)) => items.extend(more),
                (_, _, value) => *slot = value,
            }
        }
    };
    for line in content.lines() {
        let trimmed = line.trim();
        if let Some(item) = trimmed
            .strip_prefix("- ")
            .or_else(|| trimmed.strip_prefix("* "))
        {
            if let Some((section, field)) = open_list {
                put(section, field, json!([item.trim()]), true);
                continue;
            }
        }
        open_list = None;
        let Some((label, value)) = trimmed.split_once(':') else {
            continue;
        };
        let Some((section, field, list)) = lookup(label) else {
            continue;
        };
        let value = value.trim();
        if value.is_empty() {
            if list {
                put(section, field, json!([]), false);
                open_list = Some((section, field));
            }
            continue;
        }
        let value = if list {
            Value::Array(split_list(value))
        } else {
            Value::String(value.to_owned())
        };
        put(section, field, value, false);
    }
    patch.retain(|_, fields| {
        fields.as_object().is_some_and(|f| {
            f.values()
                .any(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
        })
    });
    (!patch.is_empty()).then_some(Value::Object(patch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labelled_lines_and_lists_become_context_fields() {
        let notes = "Meeting with Ana, 18 Nov.\n\
                     Target industries: fintech, insurtech\n\
                     **Tone**: plain, no hype\n\
                     Pain points:\n  - month-end close takes 9 days\n  - audit prep\n\
                     Random prose: ignored\n\
                     Avoid: synergy; disrupt\n";
        let patch = extract(notes).expect("the notes state context");
        assert_eq!(patch["icp"]["industries"], json!(["fintech", "insurtech"]));
        assert_eq!(
            patch["icp"]["pain_points"],
            json!(["month-end close takes 9 days", "audit prep"])
        );
        assert_eq!(patch["messaging"]["tone"], json!("plain, no hype"));
        assert_eq!(
            patch["messaging"]["terms_to_avoid"],
            json!(["synergy", "disrupt"])
        );
        assert!(patch.get("random prose").is_none());
    }

    #[test]
    fn prose_without_known_labels_yields_nothing() {
        assert_eq!(extract("We talked about the weather and Q3 plans."), None);
        assert_eq!(extract("Industries:\n\nnothing listed"), None);
    }
}
