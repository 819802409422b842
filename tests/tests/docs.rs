//! The documentation is held to the code like code: every test and function
//! it cites exists where it says, every relative link lands on a file of the
//! repository (and a heading anchor on a heading), the README stays short
//! enough to read, and the docs describe the system, not how it came to be.
//!
//! The docs are `README.md` and every `*.md` under `docs/`. Fenced code
//! blocks are not read for citations or links: they hold commands and
//! payloads, not references. No database or NATS is needed.
//!
//! What counts as a citation, so that ordinary snake_case names (settings,
//! metrics, tables, refusal reasons) are never taken for one:
//! - an inline code span that is a Rust path (`relay::backlog`,
//!   `SendState::decide`) whose last segment is a snake_case name: a
//!   function of that name must exist, in a file of the module the segment
//!   before it names (`relay.rs`, `relay/mod.rs`, or a file under a
//!   `relay/` directory) when that segment is a module, anywhere when it is
//!   a type;
//! - a list item that opens with a bare snake_case name of at least four
//!   words, in a list introduced (by its heading or the paragraph before
//!   it) as tests: a test of that name must exist under `tests/`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// External crates whose paths the docs may name; they are not ours to find.
const EXTERNAL_CRATES: &[&str] = &[
    "std",
    "core",
    "alloc",
    "serde",
    "serde_json",
    "tokio",
    "sqlx",
    "async_nats",
    "axum",
    "cqrs_es",
    "postgres_es",
    "futures",
    "anyhow",
];

/// Phrases that narrate how work went rather than what the system is.
const HISTORY_PHRASES: &[&str] = &[
    "this session",
    "latest session",
    "session before",
    "previous session",
    "earlier session",
    "last session",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace's root")
        .to_path_buf()
}

/// Every file under `dir` whose name ends with `suffix`, skipping build
/// output, version control and hidden directories (local state among them).
fn files_under(dir: &Path, suffix: &str, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).expect("a directory of the repository is readable");
    for entry in entries {
        let entry = entry.expect("a directory entry is readable");
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type().expect("a file type is readable");
        if kind.is_dir() {
            if name == "target" || name.starts_with('.') {
                continue;
            }
            files_under(&path, suffix, found);
        } else if name.ends_with(suffix) {
            found.push(path);
        }
    }
}

/// `README.md` and every Markdown file under `docs/`.
fn doc_files() -> Vec<PathBuf> {
    let root = repo_root();
    let mut docs = vec![root.join("README.md")];
    files_under(&root.join("docs"), ".md", &mut docs);
    docs.sort();
    docs
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("a file of the repository is readable UTF-8")
}

fn relative(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The lines of a Markdown text, numbered from 1, with the lines of fenced
/// code blocks (and their fences) left out.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<String> = None;
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker: String = trimmed
            .chars()
            .take_while(|c| *c == '`' || *c == '~')
            .collect();
        let is_fence =
            marker.len() >= 3 && marker.chars().all(|c| c == marker.as_bytes()[0] as char);
        match &fence {
            Some(open) => {
                if is_fence
                    && marker.starts_with(open.as_str())
                    && trimmed[marker.len()..].trim().is_empty()
                {
                    fence = None;
                }
            }
            None if is_fence => fence = Some(marker),
            None => lines.push((index + 1, line)),
        }
    }
    lines
}

/// The inline code spans of a line: a run of backticks opens one, and the
/// next run of the same length closes it.
fn code_spans(line: &str) -> Vec<&str> {
    let bytes = line.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'`' {
            i += 1;
            continue;
        }
        let open = bytes[i..].iter().take_while(|b| **b == b'`').count();
        let start = i + open;
        let mut j = start;
        let mut closed = None;
        while j < bytes.len() {
            if bytes[j] == b'`' {
                let run = bytes[j..].iter().take_while(|b| **b == b'`').count();
                if run == open {
                    closed = Some(j);
                    break;
                }
                j += run;
            } else {
                j += 1;
            }
        }
        match closed {
            Some(end) => {
                spans.push(line[start..end].trim());
                i = end + open;
            }
            None => i = start,
        }
    }
    spans
}

/// The line with its inline code spans blanked out.
fn without_code_spans(line: &str) -> String {
    let mut out = line.to_string();
    for span in code_spans(line) {
        if let Some(at) = out.find(span) {
            out.replace_range(at..at + span.len(), &" ".repeat(span.len()));
        }
    }
    out
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A lower-case snake_case name: what a Rust function is called.
fn is_snake_case(s: &str) -> bool {
    is_identifier(s)
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn word_count(s: &str) -> usize {
    s.split('_').filter(|w| !w.is_empty()).count()
}

/// Where a cited function is to be found.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Scope {
    /// In a file of this module (`<m>.rs`, `<m>/mod.rs`, a file under `<m>/`).
    Module(String),
    /// In any Rust file of the workspace.
    Anywhere,
    /// In a Rust file under `tests/`.
    Tests,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Citation {
    name: String,
    scope: Scope,
}

/// What one inline code span cites, if anything.
fn cited_by_path(span: &str) -> Option<Citation> {
    let span = span.strip_suffix("()").unwrap_or(span);
    if !span.contains("::") {
        return None;
    }
    let segments: Vec<&str> = span.split("::").collect();
    if !segments.iter().all(|s| is_identifier(s)) || EXTERNAL_CRATES.contains(&segments[0]) {
        return None;
    }
    let name = segments[segments.len() - 1];
    if !is_snake_case(name) {
        return None;
    }
    let parent = segments[segments.len() - 2];
    let scope = if is_snake_case(parent) {
        Scope::Module(parent.to_string())
    } else {
        Scope::Anywhere
    };
    Some(Citation {
        name: name.to_string(),
        scope,
    })
}

fn is_list_item(line: &str) -> Option<&str> {
    let trimmed = line.trim_start();
    for bullet in ["- ", "* ", "+ "] {
        if let Some(rest) = trimmed.strip_prefix(bullet) {
            return Some(rest);
        }
    }
    let digits = trimmed.chars().take_while(|c| c.is_ascii_digit()).count();
    if digits > 0 {
        if let Some(rest) = trimmed[digits..].strip_prefix(". ") {
            return Some(rest);
        }
    }
    None
}

/// Every citation in a Markdown text, with its line number.
fn citations(text: &str) -> Vec<(usize, Citation)> {
    let mut found = Vec::new();
    // The heading, and the paragraph last read, introduce the list being
    // read: the paragraph when there is one since the heading.
    let mut heading = String::new();
    let mut paragraph = String::new();
    let mut in_list = false;
    let mut after_blank = false;
    for (number, line) in prose_lines(text) {
        for span in code_spans(line) {
            if let Some(citation) = cited_by_path(span) {
                found.push((number, citation));
            }
        }
        let trimmed = line.trim();
        if trimmed.is_empty() {
            after_blank = true;
            continue;
        }
        if trimmed.starts_with('#') {
            heading = trimmed.to_lowercase();
            paragraph.clear();
            in_list = false;
        } else if let Some(item) = is_list_item(line) {
            in_list = true;
            let intro = if paragraph.is_empty() {
                &heading
            } else {
                &paragraph
            };
            if let (true, Some(rest)) = (intro.contains("test"), item.strip_prefix('`')) {
                if let Some(name) = rest.split('`').next() {
                    if is_snake_case(name) && word_count(name) >= 4 {
                        found.push((
                            number,
                            Citation {
                                name: name.to_string(),
                                scope: Scope::Tests,
                            },
                        ));
                    }
                }
            }
        } else if in_list && line.starts_with(' ') {
            // The continuation of a list item.
        } else if after_blank || in_list {
            paragraph = trimmed.to_lowercase();
            in_list = false;
        } else {
            paragraph.push(' ');
            paragraph.push_str(&trimmed.to_lowercase());
        }
        after_blank = false;
    }
    found
}

/// The names of the functions each Rust file of the workspace defines.
fn defined_functions() -> HashMap<PathBuf, HashSet<String>> {
    let root = repo_root();
    let mut files = Vec::new();
    files_under(&root, ".rs", &mut files);
    files
        .into_iter()
        .map(|path| {
            let text = read(&path);
            (path, function_names(&text))
        })
        .collect()
}

fn function_names(text: &str) -> HashSet<String> {
    let bytes = text.as_bytes();
    let mut names = HashSet::new();
    let mut from = 0;
    while let Some(at) = text[from..].find("fn") {
        let start = from + at;
        from = start + 2;
        let before_ok =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let after_ok = bytes
            .get(start + 2)
            .is_some_and(|b| b.is_ascii_whitespace());
        if !(before_ok && after_ok) {
            continue;
        }
        let rest = text[start + 2..].trim_start();
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            names.insert(name);
        }
    }
    names
}

fn in_scope(path: &Path, scope: &Scope) -> bool {
    let root = repo_root();
    let relative = path.strip_prefix(&root).unwrap_or(path);
    match scope {
        Scope::Anywhere => true,
        Scope::Tests => relative.starts_with("tests"),
        Scope::Module(module) => {
            let stem = path.file_stem().and_then(|s| s.to_str());
            let in_dir = relative
                .parent()
                .is_some_and(|p| p.components().any(|c| c.as_os_str() == module.as_str()));
            stem == Some(module.as_str()) || in_dir
        }
    }
}

#[test]
fn every_test_the_docs_cite_exists() {
    let defined = defined_functions();
    let mut cited = 0;
    let mut missing = Vec::new();
    for doc in doc_files() {
        for (line, citation) in citations(&read(&doc)) {
            cited += 1;
            let exists = defined.iter().any(|(path, names)| {
                names.contains(&citation.name) && in_scope(path, &citation.scope)
            });
            if !exists {
                missing.push(format!(
                    "{}:{line}: `{}` ({:?}) is defined nowhere it is said to be",
                    relative(&doc),
                    citation.name,
                    citation.scope
                ));
            }
        }
    }
    assert!(
        cited >= 50,
        "the docs cite only {cited} tests and functions; the scanner has stopped finding them"
    );
    assert!(
        missing.is_empty(),
        "cited but not found:\n{}",
        missing.join("\n")
    );
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings, repeats numbered as GitHub
/// numbers them.
fn anchors(text: &str) -> HashSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut anchors = HashSet::new();
    for (_, line) in prose_lines(text) {
        let trimmed = line.trim_start();
        let hashes = trimmed.chars().take_while(|c| *c == '#').count();
        if hashes == 0 || hashes > 6 || !trimmed[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&trimmed[hashes..]);
        let count = seen.entry(base.clone()).or_insert(0);
        anchors.insert(if *count == 0 {
            base.clone()
        } else {
            format!("{base}-{count}")
        });
        *count += 1;
    }
    anchors
}

/// The targets of the inline links (`[text](target)`) and reference
/// definitions (`[label]: target`) of a line, code spans left out.
fn link_targets(line: &str) -> Vec<String> {
    let line = without_code_spans(line);
    let mut targets = Vec::new();
    let mut from = 0;
    while let Some(at) = line[from..].find("](") {
        let start = from + at + 2;
        let mut depth = 1;
        let mut end = None;
        for (offset, c) in line[start..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(start + offset);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(end) = end else { break };
        let target = line[start..end].split_whitespace().next().unwrap_or("");
        targets.push(target.trim_matches(|c| c == '<' || c == '>').to_string());
        from = end;
    }
    let trimmed = line.trim_start();
    if trimmed.starts_with('[') {
        if let Some(at) = trimmed.find("]:") {
            if let Some(target) = trimmed[at + 2..].split_whitespace().next() {
                targets.push(target.to_string());
            }
        }
    }
    targets
}

#[test]
fn every_link_in_the_docs_points_at_a_file_in_the_repository() {
    let mut checked = 0;
    let mut broken = Vec::new();
    for doc in doc_files() {
        let text = read(&doc);
        let dir = doc.parent().expect("a doc sits in a directory");
        for (line, prose) in prose_lines(&text) {
            for target in link_targets(prose) {
                if target.starts_with("http://")
                    || target.starts_with("https://")
                    || target.starts_with("mailto:")
                {
                    continue;
                }
                checked += 1;
                let (path, anchor) = match target.split_once('#') {
                    Some((path, anchor)) => (path, Some(anchor)),
                    None => (target.as_str(), None),
                };
                let file = if path.is_empty() {
                    doc.clone()
                } else {
                    dir.join(path)
                };
                let place = format!("{}:{line}: `{target}`", relative(&doc));
                if !file.exists() {
                    broken.push(format!("{place}: no such file"));
                    continue;
                }
                let canonical = file
                    .canonicalize()
                    .expect("an existing path has a canonical form");
                if !canonical.starts_with(repo_root().canonicalize().expect("the root exists")) {
                    broken.push(format!("{place}: outside the repository"));
                    continue;
                }
                if let (Some(anchor), true) = (anchor, path.is_empty() || path.ends_with(".md")) {
                    if !anchors(&read(&file)).contains(anchor) {
                        broken.push(format!("{place}: no heading with that anchor"));
                    }
                }
            }
        }
    }
    assert!(
        checked > 0,
        "no relative link was found; the scanner has stopped finding them"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_stays_under_250_lines() {
    let lines = read(&repo_root().join("README.md")).lines().count();
    assert!(
        lines < 250,
        "README.md has {lines} lines; move the depth into docs/ and link to it"
    );
}

/// `issue` followed by a number, such as a tracker's reference.
fn mentions_an_issue_number(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = text[from..].find("issue ") {
        let after = from + at + "issue ".len();
        if text[after..].starts_with(|c: char| c.is_ascii_digit()) {
            return Some(from + at);
        }
        from = after;
    }
    None
}

#[test]
fn the_docs_speak_of_the_system_not_of_its_history() {
    let mut found = Vec::new();
    for doc in doc_files() {
        for (index, line) in read(&doc).lines().enumerate() {
            let lower = line.to_lowercase();
            let place = format!("{}:{}", relative(&doc), index + 1);
            for phrase in HISTORY_PHRASES {
                if lower.contains(phrase) {
                    found.push(format!("{place}: \"{phrase}\""));
                }
            }
            if mentions_an_issue_number(&lower).is_some() {
                found.push(format!("{place}: an issue number"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the docs narrate how work went; say what the system does instead:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_citation_scanner_reads_paths_and_test_lists_but_not_setting_names() {
    let text = "\
# Tests

The tests of the relay:

- `a_relay_restarted_mid_batch_loses_nothing`: once each.
- `SEXTANT_LOG`, `sextant_outbox_depth_total_count` and `send_state`.

Settings:

- `pattern_counts_by_client_and_key`: a table, not a test.

See `relay::backlog`, `SendState::decide`, `Thresholds::default()`,
`serde_json::from_slice`, `Incoming::Irrelevant` and `documents::*`.

```
`fenced::is_not_read`
```
";
    let cited: Vec<Citation> = citations(text).into_iter().map(|(_, c)| c).collect();
    let module = |m: &str, n: &str| Citation {
        name: n.to_string(),
        scope: Scope::Module(m.to_string()),
    };
    let anywhere = |n: &str| Citation {
        name: n.to_string(),
        scope: Scope::Anywhere,
    };
    assert_eq!(
        cited,
        vec![
            Citation {
                name: "a_relay_restarted_mid_batch_loses_nothing".to_string(),
                scope: Scope::Tests,
            },
            module("relay", "backlog"),
            anywhere("decide"),
            anywhere("default"),
        ],
        "only test-list items and Rust paths to snake_case names are citations"
    );
}

#[test]
fn links_are_read_outside_code_and_anchors_follow_github() {
    assert_eq!(
        link_targets("see [the relay](event-store-and-relay.md#the-relay) and `[not](a-link.md)`"),
        vec!["event-store-and-relay.md#the-relay".to_string()],
        "links inside code spans are not links"
    );
    assert_eq!(
        link_targets("[spec](https://example.com/x_(y)) then [b](b.md \"title\")"),
        vec!["https://example.com/x_(y)".to_string(), "b.md".to_string()],
        "parentheses nest, and a title is not part of the target"
    );
    let headings = anchors("# Sextant: how it is built\n## 7. Read your writes\n## Notes\n## Notes\n```\n# not a heading\n```\n");
    for anchor in [
        "sextant-how-it-is-built",
        "7-read-your-writes",
        "notes",
        "notes-1",
    ] {
        assert!(headings.contains(anchor), "{anchor} is one of {headings:?}");
    }
    assert!(
        !headings.contains("not-a-heading"),
        "a fenced line is no heading"
    );
}
