//! Provider webhooks under hostile input. For every provider, a seeded
//! pseudo-random stream of malformed, mutated and oversized payloads is
//! delivered correctly signed (so it reaches the parser and the mapper) and
//! with garbage signatures and headers. Whatever arrives:
//!
//! - the answer is never 5xx;
//! - a bad signature is 401 and writes nothing;
//! - every accepted delivery is accounted for, checked delivery by delivery
//!   against the database: as the events it wrote, as dead letters, as a
//!   duplicate of a delivery seen before, or as a documented event that
//!   records nothing (as the adapter itself maps it). Nothing is dropped.
//!
//! The payloads: fixed hostile bodies (not JSON, truncated, empty, over the
//! body limit, 10,000 levels deep, lone surrogates, NULs, 1e400...); then
//! the provider's documented fixtures, first in "theme" rounds where every
//! timestamp, email or id in them takes one hostile value, then with random
//! edits (fields dropped or replaced by nulls, arrays, objects, 100 KB
//! strings, emoji, RTL text, huge or out-of-range numbers, impossible or
//! far-away times) and text corruption (truncation, flipped bytes, raw NULs,
//! duplicated keys, a BOM, trailing garbage). Content types vary; forged
//! requests get signatures that are missing, not hex, of the wrong length,
//! of another secret or body, and HubSpot timestamps that are not numbers,
//! overflow i64 or are stale. The bugs this found have regression tests at
//! the end.

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sextant_adapters::http::BODY_LIMIT;
use sextant_adapters::webhooks::{self, Mapped, WebhookRequest};
use sextant_domain::values::Provider;
use sextant_tests::{Parts, Running, TestEnv, OPERATOR_KEY};
use uuid::Uuid;

const SECRET: &str = "fuzzing-webhook-secret-0123456789";
const SEED: u64 = 0x5eed_f00d_cafe_b0a7;
/// Mutated fixtures per provider (spread over its fixtures), on top of the
/// fixed hostile bodies, the forged signatures and the repeats.
const MUTATED_PER_PROVIDER: usize = 200;
/// Of which at least so many are random edits.
const MIN_RANDOM_PER_PROVIDER: usize = 48;

type Headers = Vec<(String, Vec<u8>)>;

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn new(provider: Provider) -> Self {
        // One stream per provider, so each test reproduces on its own.
        let salt = provider
            .as_str()
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        Self((SEED ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// ---------------------------------------------------------------------------
// Hostile material.

/// What a field can be replaced by: a JSON value, or raw JSON text no
/// `Value` can hold (numbers out of range, lone surrogates).
#[derive(Clone)]
enum Hostile {
    Json(Value),
    Raw(&'static str),
}

/// What random edits put in a field: every theme's values, and more.
fn hostile_values() -> Vec<Hostile> {
    let values = [
        json!({}),
        json!([null, 1, "two", {"three": [4]}]),
        json!({"id": {"id": {"id": 1}}}),
        json!(true),
        json!(false),
        json!(i64::MAX),
        json!(u64::MAX),
        json!("x".repeat(100 * 1024)),
        json!("😀🚀👩‍👩‍👧‍👦"),
        json!("\u{202e}שלום مرحبا\u{202c}"),
        json!("\u{200b}\u{feff}"),
        json!("\u{7}\u{1b}[31mred"),
        json!("EMAIL_SENT"),
        // More times: beyond chrono, impossible dates, far but plausible.
        json!("+275760-09-13T00:00:00Z"),
        json!("2025-02-30T10:00:00"),
        json!("2099-01-01 00:00:00"),
        json!("99999999999999999999"),
        json!(-62_135_596_800_000_i64),
        json!(253_402_300_799_000_i64),
        json!(4_102_444_800_000_i64),
    ];
    let raw = [
        "-1e400",
        "-0.0",
        "-9223372036854775809",
        "18446744073709551616",
        "1.0e-400",
        r#""\ud800""#,
        r#""\udc00 then \ud800""#,
        r#""\u0000""#,
        r#""\ud83d\ude00""#,
    ];
    values
        .into_iter()
        .map(Hostile::Json)
        .chain(raw.into_iter().map(Hostile::Raw))
        .chain(themes().into_iter().map(|(_, hostile)| hostile))
        .collect()
}

/// Bodies that are hostile whatever the provider; `sample` is one of its
/// fixtures.
fn hostile_bodies(sample: &[u8]) -> Vec<(String, Vec<u8>)> {
    let nested = |open: &str, inner: &str, close: &str| {
        format!("{}{inner}{}", open.repeat(10_000), close.repeat(10_000)).into_bytes()
    };
    let every_name = |value: &str| {
        format!(
            r#"{{"event_type":{value},"eventType":{value},"type":{value},"event":{{"type":{value}}},"meta":{{"eventName":{value}}},"subscriptionType":{value}}}"#
        )
        .into_bytes()
    };
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("an empty body", Vec::new()),
        ("whitespace", b" \r\n\t ".to_vec()),
        ("not JSON", b"hello, webhook".to_vec()),
        ("XML", b"<?xml version=\"1.0\"?><event/>".to_vec()),
        ("a form", b"event_type=EMAIL_SENT&secret=x".to_vec()),
        ("null", b"null".to_vec()),
        ("true", b"true".to_vec()),
        ("minus zero", b"-0".to_vec()),
        ("1e400", b"1e400".to_vec()),
        ("a huge integer", b"123456789012345678901234567890".to_vec()),
        ("a bare string", br#""EMAIL_SENT""#.to_vec()),
        ("an empty array", b"[]".to_vec()),
        ("an empty object", b"{}".to_vec()),
        ("an array of nulls", b"[null,null,null]".to_vec()),
        ("the fixture in an array", [b"[", sample, b"]"].concat()),
        ("the fixture twice", [sample, sample].concat()),
        ("half the fixture", sample[..sample.len() / 2].to_vec()),
        ("10,000 nested arrays", nested("[", "", "]")),
        ("10,000 nested objects", nested(r#"{"a":"#, "1", "}")),
        (
            "127 nested arrays",
            format!("{}{}", "[".repeat(127), "]".repeat(127)).into_bytes(),
        ),
        ("lone surrogates", every_name(r#""\ud800""#)),
        ("escaped NULs", every_name(r#""\u0000""#)),
        ("a number as event name", every_name("1e400")),
        (
            "a raw NUL byte",
            b"{\"event_type\":\"EMAIL_SENT\0\"}".to_vec(),
        ),
        ("invalid UTF-8", vec![0xff, 0xfe, 0xfd, b'{', b'}']),
        (
            "a BOM before the fixture",
            [&[0xef, 0xbb, 0xbf][..], sample].concat(),
        ),
    ];
    bodies
        .into_iter()
        .map(|(label, body)| (label.to_owned(), body))
        .collect()
}

/// One of a provider's documented example payloads, by name.
struct Fixture {
    name: String,
    value: Value,
    /// Whether it maps to a send (those go first in a round, so that the
    /// outcomes after them meet a known send).
    sends: bool,
}

fn fixtures(provider: Provider) -> Vec<Fixture> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../adapters/src/webhooks/fixtures")
        .join(provider.as_str());
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a fixture directory entry").path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            let sends = webhooks::map(provider, &text)
                .is_ok_and(|items| items.iter().any(|i| matches!(i, Mapped::Send(_))));
            Fixture {
                name: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                value: serde_json::from_slice(&text)
                    .unwrap_or_else(|e| panic!("{path:?} is JSON: {e}")),
                sends,
            }
        })
        .collect()
}

/// The fixture with its identifiers varied by `round`, consistently across
/// a provider's fixtures: a round's send and its outcomes still meet, but
/// they are mostly new to the domain, so outcomes are recorded rather than
/// deduplicated against the rounds before. (Nearby numeric ids of different
/// fixtures meet across rounds: out-of-order arrivals, which is welcome.)
fn salted(value: &Value, round: u64) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), salted(v, round)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| salted(v, round)).collect()),
        // Ids and epoch milliseconds; small numbers are steps and counts.
        Value::Number(n) => match n.as_u64() {
            Some(n) if n >= 1000 => json!(n + round),
            _ => value.clone(),
        },
        Value::String(s) => {
            let id_like = s.len() >= 4
                && !s.contains(':')
                && !s.contains(char::is_whitespace)
                && s.contains(|c: char| c.is_ascii_digit());
            match s.split_once('@') {
                Some((local, domain)) => json!(format!("{local}+r{round}@{domain}")),
                None if id_like => json!(format!("{s}-r{round}")),
                None => value.clone(),
            }
        }
        other => other.clone(),
    }
}

/// A fresh provider delivery id for the providers that carry one in the
/// body, so each mutation reaches the mapper instead of being deduplicated
/// as a repeat of the fixture.
fn fresh_delivery_id(provider: Provider, value: &mut Value, case: usize) {
    let slot = match provider {
        Provider::Lemlist => value.get_mut("_id"),
        Provider::Replyio => value.get_mut("event").and_then(|e| e.get_mut("id")),
        Provider::Hubspot => {
            for (i, event) in value.as_array_mut().into_iter().flatten().enumerate() {
                if let Some(id) = event.get_mut("eventId") {
                    *id = json!(case * 100 + i);
                }
            }
            None
        }
        _ => None,
    };
    if let Some(slot) = slot {
        *slot = json!(format!("fuzz-{case}"));
    }
}

#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

/// Every node's path below the root.
fn paths(value: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    let children: Vec<(Step, &Value)> = match value {
        Value::Object(map) => map.iter().map(|(k, v)| (Step::Key(k.clone()), v)).collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (Step::Index(i), v))
            .collect(),
        _ => Vec::new(),
    };
    for (step, child) in children {
        prefix.push(step);
        out.push(prefix.clone());
        paths(child, prefix, out);
        prefix.pop();
    }
}

/// Replaces (or with None, removes) the node at `path`.
fn edit(root: &mut Value, path: &[Step], replacement: Option<Value>) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = root;
    for step in parents {
        let next = match step {
            Step::Key(key) => node.get_mut(key.as_str()),
            Step::Index(i) => node.get_mut(*i),
        };
        let Some(next) = next else { return };
        node = next;
    }
    match (last, node, replacement) {
        (Step::Key(key), Value::Object(map), Some(value)) => {
            map.insert(key.clone(), value);
        }
        (Step::Key(key), Value::Object(map), None) => {
            map.remove(key);
        }
        (Step::Index(i), Value::Array(items), Some(value)) if *i < items.len() => items[*i] = value,
        (Step::Index(i), Value::Array(items), None) if *i < items.len() => {
            items.remove(*i);
        }
        _ => {}
    }
}

fn describe(path: &[Step]) -> String {
    path.iter()
        .map(|step| match step {
            Step::Key(key) => key.clone(),
            Step::Index(i) => i.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        format!(
            "{}… ({} bytes)",
            text.chars().take(30).collect::<String>(),
            text.len()
        )
    } else {
        text
    }
}

/// The keys of the object the last `}` of the serialized value closes (the
/// root, or a batch's last event).
fn closing_keys(value: &Value) -> Vec<String> {
    let object = match value {
        Value::Array(items) => items.last(),
        other => Some(other),
    };
    object
        .and_then(Value::as_object)
        .map(|map| map.keys().cloned().collect())
        .unwrap_or_default()
}

/// Corrupts the serialized body; answers what it did.
fn corrupt(rng: &mut Rng, value: &Value, body: &mut Vec<u8>) -> String {
    let at = rng.below(body.len());
    match rng.below(6) {
        0 => {
            body.truncate(at);
            format!("truncated at {at}")
        }
        1 => {
            for _ in 0..=rng.below(4) {
                let i = rng.below(body.len());
                if let Some(byte) = body.get_mut(i) {
                    *byte = (rng.next() & 0xff) as u8;
                }
            }
            "bytes flipped".into()
        }
        2 => {
            body.insert(at, 0);
            format!("a raw NUL at {at}")
        }
        3 => {
            // A duplicated key, last (so, for serde, winning).
            let keys = closing_keys(value);
            let Some(close) = body.iter().rposition(|b| *b == b'}') else {
                return "no object to duplicate a key of".into();
            };
            if keys.is_empty() {
                return "no key to duplicate".into();
            }
            let key = rng.pick(&keys).clone();
            let dup = rng.pick(&["null", "\"EMAIL_TELEPORTED\"", "[]", "{}", "1e400", "-0"]);
            let tail = body.split_off(close);
            body.extend_from_slice(format!(",{}:{dup}", json!(key)).as_bytes());
            body.extend(tail);
            format!("key {key} duplicated as {dup}")
        }
        4 => {
            *body = [&[0xef, 0xbb, 0xbf][..], &body[..]].concat();
            "a BOM first".into()
        }
        _ => {
            body.extend_from_slice(b"}{]\"");
            "trailing garbage".into()
        }
    }
}

/// What a leaf of a payload is about, whatever the provider calls it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Time,
    Email,
    Id,
}

fn kind_of(path: &[Step], value: &Value) -> Option<Kind> {
    let key = match path.last() {
        Some(Step::Key(key)) => key.as_str(),
        _ => "",
    };
    let epoch_ms = 1_000_000_000_000..10_000_000_000_000;
    match value {
        Value::String(s) if s.contains('@') && !s.starts_with('<') => Some(Kind::Email),
        Value::String(s) if DateTime::parse_from_rfc3339(s).is_ok() => Some(Kind::Time),
        Value::Number(n) if n.as_i64().is_some_and(|ms| epoch_ms.contains(&ms)) => Some(Kind::Time),
        Value::String(_) | Value::Number(_)
            if key == "id" || key.ends_with("_id") || key.ends_with("Id") =>
        {
            Some(Kind::Id)
        }
        _ => None,
    }
}

/// Hostile values for every leaf of a kind at once: a round of its own for
/// each, over all of a provider's fixtures.
fn themes() -> Vec<(Kind, Hostile)> {
    let times = [
        json!(-8_000_000_000_000_000_i64),
        json!(-300_000_000_000_000_i64),
        json!("-250000-01-01T00:00:00"),
        json!("0000-01-01T00:00:00Z"),
        json!("1900-01-01T00:00:00Z"),
        json!(-1),
        json!(0),
        json!("9999-12-31T23:59:59Z"),
        json!(8_000_000_000_000_000_i64),
        json!("2025-13-45T99:99:99Z"),
        json!("yesterday"),
        Value::Null,
    ];
    let emails = [
        json!("lead\u{0}@example.com"),
        json!("bell\u{7}@example.com"),
        json!(format!("{}@example.com", "a".repeat(400))),
        json!("ünï\u{202e}cödé@exämple.com"),
        json!("nobody@"),
        json!("😀@😀.example"),
    ];
    let ids = [
        json!(""),
        json!("   "),
        json!("a\u{0}b"),
        json!("x".repeat(10_000)),
        json!("😀\u{202e}"),
        json!("a:b:c"),
        json!(-1),
        json!(1.5),
        json!(i64::MIN),
        json!([1]),
        Value::Null,
    ];
    let json = |kind: Kind, values: &[Value]| -> Vec<(Kind, Hostile)> {
        values
            .iter()
            .map(|v| (kind, Hostile::Json(v.clone())))
            .collect()
    };
    let raw = [
        (Kind::Time, "1e400"),
        (Kind::Time, "-0"),
        (Kind::Id, "123456789012345678901234567890"),
    ];
    [
        json(Kind::Time, &times),
        json(Kind::Email, &emails),
        json(Kind::Id, &ids),
        raw.map(|(kind, raw)| (kind, Hostile::Raw(raw))).to_vec(),
    ]
    .concat()
}

/// A fixture being mutated: its value (with markers where raw JSON text
/// goes), the raw texts, and what was done.
struct Draft {
    value: Value,
    raws: Vec<&'static str>,
    done: Vec<String>,
}

impl Draft {
    fn new(value: Value) -> Self {
        Self {
            value,
            raws: Vec::new(),
            done: Vec::new(),
        }
    }

    fn put(&mut self, path: &[Step], hostile: &Hostile) {
        let (replacement, shown) = match hostile {
            Hostile::Json(value) => (value.clone(), short(value)),
            Hostile::Raw(raw) => {
                self.raws.push(raw);
                (
                    json!(format!("@@raw{}@@", self.raws.len() - 1)),
                    (*raw).to_owned(),
                )
            }
        };
        self.done.push(format!("{} = {shown}", describe(path)));
        edit(&mut self.value, path, Some(replacement));
    }

    /// Every leaf of `kind` replaced by `hostile`.
    fn theme(&mut self, kind: Kind, hostile: &Hostile) {
        let mut all = Vec::new();
        paths(&self.value, &mut Vec::new(), &mut all);
        for path in all {
            if node(&self.value, &path).and_then(|v| kind_of(&path, v)) == Some(kind) {
                self.put(&path, hostile);
            }
        }
    }

    /// Up to three random edits, mostly of leaves.
    fn random_edits(&mut self, rng: &mut Rng, pool: &[Hostile]) {
        let edits = if rng.one_in(6) { 0 } else { 1 + rng.below(3) };
        for _ in 0..edits {
            let mut all = Vec::new();
            paths(&self.value, &mut Vec::new(), &mut all);
            let leaves: Vec<Vec<Step>> = all
                .iter()
                .filter(|p| node(&self.value, p).is_some_and(|v| !v.is_object() && !v.is_array()))
                .cloned()
                .collect();
            let from = if leaves.is_empty() || rng.one_in(4) {
                &all
            } else {
                &leaves
            };
            if from.is_empty() {
                break;
            }
            let path = rng.pick(from).clone();
            if rng.one_in(5) {
                edit(&mut self.value, &path, None);
                self.done.push(format!("{} dropped", describe(&path)));
            } else {
                self.put(&path, &rng.pick(pool).clone());
            }
        }
    }

    /// The body, sometimes corrupted as text; and what was done.
    fn render(mut self, rng: &mut Rng, may_corrupt: bool) -> (String, Vec<u8>) {
        let text = if rng.one_in(2) {
            serde_json::to_string(&self.value)
        } else {
            serde_json::to_string_pretty(&self.value)
        };
        let mut text = text.expect("a Value serializes");
        for (i, raw) in self.raws.iter().enumerate() {
            text = text.replace(&format!("\"@@raw{i}@@\""), raw);
        }
        let mut body = text.into_bytes();
        if may_corrupt && rng.one_in(6) && !body.is_empty() {
            self.done.push(corrupt(rng, &self.value, &mut body));
        }
        if self.done.is_empty() {
            self.done.push("unmutated".into());
        }
        (self.done.join(", "), body)
    }
}

fn node<'v>(root: &'v Value, path: &[Step]) -> Option<&'v Value> {
    path.iter().try_fold(root, |v, step| match step {
        Step::Key(key) => v.get(key.as_str()),
        Step::Index(i) => v.get(*i),
    })
}

/// `value` (an object, or a batch whose first event is one) with a field
/// padding its serialization to `size` bytes.
fn padded_to(value: &Value, size: usize) -> Vec<u8> {
    let mut value = value.clone();
    let target = match &mut value {
        Value::Array(items) => items.first_mut(),
        other => Some(other),
    };
    if let Some(Value::Object(map)) = target {
        map.insert("zz_padding".into(), json!(""));
    }
    let base = serde_json::to_vec(&value).expect("serializes").len();
    let padding = "p".repeat(size.saturating_sub(base));
    let text = serde_json::to_string(&value).expect("serializes");
    text.replacen(
        "\"zz_padding\":\"\"",
        &format!("\"zz_padding\":\"{padding}\""),
        1,
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------
// Delivering and accounting.

async fn post(
    app: &Running,
    url: &str,
    headers: &Headers,
    body: &[u8],
    label: &str,
) -> (StatusCode, Value) {
    let mut request = app.http.post(url).body(body.to_vec());
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|e| panic!("{label}: header name {name}: {e}"));
        let value =
            HeaderValue::from_bytes(value).unwrap_or_else(|e| panic!("{label}: {name}: {e}"));
        request = request.header(name, value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{label}: no answer: {e}"));
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("{label}: no answer body: {e}"));
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn header_map(headers: &Headers) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// Rows that count: events, dead letters, remembered deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Rows {
    events: i64,
    dead_letters: i64,
    deliveries: i64,
}

impl Rows {
    async fn now(env: &TestEnv) -> Self {
        let (events, dead_letters, deliveries) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM webhook_dead_letters), \
             (SELECT count(*) FROM webhook_deliveries)",
        )
        .fetch_one(&env.pool)
        .await
        .expect("count rows");
        Self {
            events,
            dead_letters,
            deliveries,
        }
    }

    fn since(self, before: Self) -> Self {
        Self {
            events: self.events - before.events,
            dead_letters: self.dead_letters - before.dead_letters,
            deliveries: self.deliveries - before.deliveries,
        }
    }
}

/// What became of the deliveries sent to one provider.
#[derive(Default)]
struct Tally {
    signed: usize,
    forged: usize,
    /// Sends and outcomes recorded (one event each).
    recorded: i64,
    /// Dead-letter rows: one per unmappable delivery, one per delivery
    /// with invalid items.
    dead_letters: i64,
    /// Items dead-lettered as invalid.
    dead_items: i64,
    /// Deliveries answered as repeats.
    duplicate_deliveries: usize,
    /// Items the domain already had.
    duplicate_items: i64,
    /// Documented events that say nothing about a send (mapped to nothing).
    nothing_to_record: usize,
    too_large: usize,
    refused: usize,
}

/// A count in an answer: a JSON number, never a flag (`true` fails).
fn count(answer: &Value, key: &str) -> i64 {
    answer[key]
        .as_i64()
        .unwrap_or_else(|| panic!("no {key} count in the answer {answer}"))
}

struct Fuzz<'a> {
    env: &'a TestEnv,
    app: &'a Running,
    provider: Provider,
    url: String,
    rng: Rng,
    pool: Vec<Hostile>,
    seen: HashSet<Vec<u8>>,
    rows: Rows,
    case: usize,
    tally: Tally,
}

impl<'a> Fuzz<'a> {
    async fn new(env: &'a TestEnv, app: &'a Running, provider: Provider) -> Self {
        let client = client_for(app, provider).await;
        Self {
            env,
            app,
            provider,
            url: format!(
                "{}/v1/webhooks/{}/{client}",
                app.command_url,
                provider.as_str()
            ),
            rng: Rng::new(provider),
            pool: hostile_values(),
            seen: HashSet::new(),
            rows: Rows::now(env).await,
            case: 0,
            tally: Tally::default(),
        }
    }

    /// The headers (besides the signature) a provider sends with a
    /// fixture: Salesloft's event name, Outreach's delivery id; sometimes
    /// missing or garbage.
    fn provider_headers(&mut self, fixture: &str) -> Headers {
        let roll = self.rng.below(10);
        let (name, value) = match self.provider {
            Provider::Salesloft => (
                "x-salesloft-event",
                match roll {
                    0 => return Vec::new(),
                    1 => self
                        .rng
                        .pick(&[
                            &b"EMAIL_UPDATED"[..],
                            b"bogus_event",
                            b"\xf0\x9f\x98\x80",
                            b"email_updated, meeting_booked",
                        ])
                        .to_vec(),
                    _ => fixture.as_bytes().to_vec(),
                },
            ),
            Provider::Outreach => (
                "outreach-webhook-id",
                match roll {
                    0 => return Vec::new(),
                    1 => "i".repeat(300).into_bytes(),
                    2 => b"\xff\xfe".to_vec(),
                    _ => format!("fuzz-{}", self.case).into_bytes(),
                },
            ),
            _ => return Vec::new(),
        };
        vec![(name.to_owned(), value)]
    }

    fn content_type(&mut self) -> Option<Vec<u8>> {
        if self.rng.below(10) < 7 {
            return Some(b"application/json".to_vec());
        }
        let kinds: [Option<&[u8]>; 6] = [
            None,
            Some(b"text/plain"),
            Some(b"application/x-www-form-urlencoded"),
            Some(b"application/json; charset=utf-16"),
            Some(b"multipart/form-data; boundary=x"),
            Some(b"\xff\xfe/\xfd"),
        ];
        self.rng.pick(&kinds).map(<[u8]>::to_vec)
    }

    /// Delivers `body` correctly signed (sometimes with the secret in the
    /// query instead) and checks what became of it.
    /// The headers that sign `body` for `url` as the provider would, with
    /// `secret` at `at`.
    fn sign(&self, secret: &str, url: &str, body: &[u8], at: DateTime<Utc>) -> Headers {
        webhooks::sign_for_test(self.provider, secret, "POST", url, body, at)
            .into_iter()
            .map(|(name, value)| (name, value.into_bytes()))
            .collect()
    }

    /// The rows written since the last call.
    async fn written(&mut self) -> Rows {
        let now = Rows::now(self.env).await;
        let delta = now.since(self.rows);
        self.rows = now;
        delta
    }

    /// Answers the status and the answer's body.
    async fn signed(
        &mut self,
        label: &str,
        body: &[u8],
        mut headers: Headers,
    ) -> (StatusCode, Value) {
        self.tally.signed += 1;
        let mut url = self.url.clone();
        let auth = self.sign(SECRET, &url, body, Utc::now());
        let shared_secret = auth
            .first()
            .is_some_and(|(n, _)| n == webhooks::SECRET_HEADER);
        if shared_secret && self.rng.one_in(4) {
            url = format!("{url}?{}={SECRET}", webhooks::SECRET_QUERY_PARAM);
        } else {
            headers.extend(auth);
        }
        if let Some(content_type) = self.content_type() {
            headers.push(("content-type".into(), content_type));
        }
        let context = format!("{:?} signed, {label}", self.provider);
        let (status, answer) = post(self.app, &url, &headers, body, &context).await;
        let context = format!("{context}: {status} {answer}");
        let delta = self.written().await;

        assert!(!status.is_server_error(), "{context}");
        if body.len() > BODY_LIMIT {
            assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{context}");
            assert_eq!(
                delta,
                Rows::default(),
                "a refused body writes nothing: {context}"
            );
            self.tally.too_large += 1;
            return (status, answer);
        }
        assert!(status.is_success(), "signed, so accepted: {context}");

        let map = header_map(&headers);
        let request = WebhookRequest {
            method: "POST",
            url: &url,
            headers: &map,
            body,
        };
        let key = match webhooks::delivery_id(self.provider, &request) {
            Some(id) => [b"id:", id.as_bytes()].concat(),
            None => [b"body:", body].concat(),
        };
        let repeated = !self.seen.insert(key);
        if answer["duplicate"] == true {
            assert!(
                repeated,
                "a first delivery taken for a repeat is lost: {context}"
            );
            assert_eq!(delta, Rows::default(), "a repeat writes nothing: {context}");
            self.tally.duplicate_deliveries += 1;
            return (status, answer);
        }
        assert!(
            !repeated,
            "a repeated delivery is processed again: {context}"
        );
        assert_eq!(delta.deliveries, 1, "the delivery is remembered: {context}");
        match webhooks::map_request(self.provider, &request) {
            Err(reason) => {
                assert_eq!(status, StatusCode::ACCEPTED, "{reason}: {context}");
                assert_eq!(answer["dead_lettered"], 1, "{reason}: {context}");
                assert_eq!(
                    (delta.events, delta.dead_letters),
                    (0, 1),
                    "an unmappable delivery is one dead letter: {context}"
                );
                self.tally.dead_letters += 1;
            }
            Ok(items) => {
                let recorded = count(&answer, "sends") + count(&answer, "outcomes");
                let duplicates = count(&answer, "duplicates");
                let dead = count(&answer, "dead_lettered");
                assert_eq!(
                    recorded + duplicates + dead,
                    items.len() as i64,
                    "every mapped item is accounted for: {items:?}: {context}"
                );
                // A delivery's invalid items share one dead letter.
                assert_eq!(
                    (delta.events, delta.dead_letters),
                    (recorded, i64::from(dead > 0)),
                    "what the answer counts is what was written: {context}"
                );
                self.tally.recorded += recorded;
                self.tally.dead_letters += i64::from(dead > 0);
                self.tally.dead_items += dead;
                self.tally.duplicate_items += duplicates;
                if items.is_empty() {
                    self.tally.nothing_to_record += 1;
                }
            }
        }
        (status, answer)
    }

    /// Delivers with forged authentication; expects `expected` and nothing
    /// written.
    async fn forged(&mut self, label: &str, forgery: &Forgery, body: &[u8]) {
        self.tally.forged += 1;
        let context = format!("{:?} forged ({}), {label}", self.provider, forgery.label);
        let (status, answer) = post(self.app, &forgery.url, &forgery.headers, body, &context).await;
        let delta = self.written().await;
        let context = format!("{context}: {status} {answer}");
        assert!(!status.is_server_error(), "{context}");
        assert_eq!(status, forgery.expected, "{context}");
        assert_eq!(
            delta,
            Rows::default(),
            "a refused delivery writes nothing: {context}"
        );
        self.tally.refused += 1;
    }

    /// Every way of getting the authentication of a delivery of `body`
    /// wrong.
    fn forgeries(&self, body: &[u8], extra: &Headers) -> Vec<Forgery> {
        let sign = |secret: &str, body: &[u8], at| self.sign(secret, &self.url, body, at);
        let good = sign(SECRET, body, Utc::now());
        let (name, value) = good.first().cloned().expect("a signature header");
        let mut values: Vec<(&str, Vec<u8>)> = vec![
            ("non-hex", b"zzzz-not-hex-at-all".to_vec()),
            ("short hex", b"00ff".to_vec()),
            ("a zero digest", "0".repeat(64).into_bytes()),
            ("8 KB", "f".repeat(8192).into_bytes()),
            ("non-ASCII", b"\xff\xfe\x80\x81".to_vec()),
            ("a prefix only", b"sha256=".to_vec()),
            (
                "base64 zeros",
                b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_vec(),
            ),
            ("one more byte", [&value[..], b"00"].concat()),
            ("one char short", value[..value.len() - 1].to_vec()),
        ];
        for (what, headers) in [
            (
                "another secret",
                sign("not-the-client-secret", body, Utc::now()),
            ),
            (
                "another body",
                sign(SECRET, &[body, b" "].concat(), Utc::now()),
            ),
        ] {
            // A shared secret is the same whatever the body: only what
            // differs from the good value is a forgery.
            if headers[0].1 != value {
                values.push((what, headers[0].1.clone()));
            }
        }
        if let Some(last) = value.last() {
            let changed = if *last == b'0' { b'1' } else { b'0' };
            values.push((
                "the last char changed",
                [&value[..value.len() - 1], &[changed][..]].concat(),
            ));
        }
        let with = |label: String, replaced: Option<Vec<u8>>| {
            let mut headers: Headers = good[1..].to_vec();
            if let Some(value) = replaced {
                headers.push((name.clone(), value));
            }
            headers.extend(extra.iter().cloned());
            Forgery {
                label,
                url: self.url.clone(),
                headers,
                expected: StatusCode::UNAUTHORIZED,
            }
        };
        let mut all: Vec<Forgery> = values
            .into_iter()
            .map(|(label, value)| with(format!("{name}: {label}"), Some(value)))
            .collect();
        all.push(with(format!("no {name}"), None));
        if self.provider == Provider::Hubspot {
            all.extend(self.hubspot_timestamps(body, extra));
        }
        if name == webhooks::SECRET_HEADER {
            for query in [
                "secret=wrong",
                "secret=",
                "secret=%ZZ&secret",
                "secret=wrong&secret=x",
            ] {
                let mut forgery = with(format!("query {query}"), None);
                forgery.url = format!("{}?{query}", self.url);
                all.push(forgery);
            }
        }
        all
    }

    /// HubSpot's timestamp header, unparseable, overflowing or stale.
    fn hubspot_timestamps(&self, body: &[u8], extra: &Headers) -> Vec<Forgery> {
        let stale = self.sign(SECRET, &self.url, body, Utc::now() - Duration::minutes(10));
        let fresh = self.sign(SECRET, &self.url, body, Utc::now());
        let mut all = vec![Forgery {
            label: "signed ten minutes ago".into(),
            url: self.url.clone(),
            headers: [stale, extra.clone()].concat(),
            expected: StatusCode::UNAUTHORIZED,
        }];
        for timestamp in [
            "not-a-number",
            "99999999999999999999",
            "-9223372036854775808",
            "9223372036854775807",
            "1e12",
            "0x17f",
            "1.5",
            "-0",
            "",
        ] {
            let mut headers: Headers = fresh
                .iter()
                .filter(|(n, _)| !n.eq_ignore_ascii_case("x-hubspot-request-timestamp"))
                .cloned()
                .collect();
            headers.push((
                "x-hubspot-request-timestamp".into(),
                timestamp.as_bytes().to_vec(),
            ));
            headers.extend(extra.iter().cloned());
            all.push(Forgery {
                label: format!("timestamp {timestamp:?}"),
                url: self.url.clone(),
                headers,
                expected: StatusCode::UNAUTHORIZED,
            });
        }
        all
    }

    /// The fixed hostile bodies, each correctly signed and forged.
    async fn hostile_bodies(&mut self, fixtures: &[Fixture]) {
        let sample = serde_json::to_vec(&fixtures[0].value).expect("serializes");
        let mut bodies = hostile_bodies(&sample);
        bodies.push((
            "a fixture padded just under the limit".into(),
            padded_to(&fixtures[0].value, BODY_LIMIT - 64),
        ));
        bodies.push((
            "a fixture padded over the limit".into(),
            padded_to(&fixtures[0].value, BODY_LIMIT + 1),
        ));
        for (label, body) in bodies {
            self.case += 1;
            let headers = self.provider_headers(&fixtures[0].name);
            self.signed(&label, &body, headers.clone()).await;
            let forgeries = self.forgeries(&body, &headers);
            let mut forgery = self.rng.pick(&forgeries).clone();
            if body.len() > BODY_LIMIT {
                // Too large to read, so never authenticated.
                forgery.expected = StatusCode::PAYLOAD_TOO_LARGE;
            }
            self.forged(&label, &forgery, &body).await;
        }
    }

    /// Every forgery against one clean fixture, and requests for clients
    /// and providers that do not exist.
    async fn every_forgery(&mut self, fixture: &Fixture) {
        let body = serde_json::to_vec(&fixture.value).expect("serializes");
        let headers = self.provider_headers(&fixture.name);
        for forgery in self.forgeries(&body, &headers) {
            self.forged(&fixture.name, &forgery, &body).await;
        }
        let base = format!("{}/v1/webhooks", self.app.command_url);
        let provider = self.provider.as_str();
        let unknown = Uuid::new_v4();
        let paths = [
            (
                format!("{base}/{provider}/{unknown}"),
                StatusCode::UNAUTHORIZED,
            ),
            (
                format!("{base}/{provider}/not-a-uuid"),
                StatusCode::NOT_FOUND,
            ),
            (format!("{base}/{provider}/%00"), StatusCode::NOT_FOUND),
            (
                format!("{base}/{}/{unknown}", provider.to_uppercase()),
                StatusCode::NOT_FOUND,
            ),
        ];
        let forgeries: Vec<Forgery> = paths
            .into_iter()
            .map(|(url, expected)| Forgery {
                label: format!("POST {url}"),
                headers: [self.sign(SECRET, &url, &body, Utc::now()), headers.clone()].concat(),
                url,
                expected,
            })
            .collect();
        for forgery in forgeries {
            self.forged(&fixture.name, &forgery, &body).await;
        }
    }

    /// Mutations of the provider's fixtures, round after round: first a
    /// round per theme (every time, email or id replaced by one hostile
    /// value), then rounds of random edits.
    async fn mutated_fixtures(&mut self, fixtures: &[Fixture]) {
        let themes = themes();
        let random = MUTATED_PER_PROVIDER
            .saturating_sub(themes.len() * fixtures.len())
            .max(MIN_RANDOM_PER_PROVIDER);
        let rounds = themes.len() + random.div_ceil(fixtures.len());
        for round in 0..rounds {
            let theme = themes.get(round);
            let mut order: Vec<&Fixture> = fixtures.iter().collect();
            for i in (1..order.len()).rev() {
                order.swap(i, self.rng.below(i + 1));
            }
            if theme.is_some() || round % 2 == 0 {
                order.sort_by_key(|f| !f.sends);
            }
            for fixture in order {
                self.case += 1;
                let mut value = salted(&fixture.value, round as u64 + 1);
                fresh_delivery_id(self.provider, &mut value, self.case);
                let mut draft = Draft::new(value);
                match theme {
                    Some((kind, hostile)) => draft.theme(*kind, hostile),
                    None => draft.random_edits(&mut self.rng, &self.pool),
                }
                let (edits, body) = draft.render(&mut self.rng, theme.is_none());
                let label = format!(
                    "case {}: round {round}, {}: {edits}",
                    self.case, fixture.name
                );
                let headers = self.provider_headers(&fixture.name);
                self.signed(&label, &body, headers.clone()).await;
                if self.rng.one_in(10) {
                    // The provider retries: a repeat.
                    self.signed(&format!("{label} (again)"), &body, headers.clone())
                        .await;
                }
                if self.rng.one_in(6) {
                    let forgeries = self.forgeries(&body, &headers);
                    let forgery = self.rng.pick(&forgeries);
                    self.forged(&label, forgery, &body).await;
                }
            }
        }
    }

    /// The database agrees with the tally as a whole, too.
    async fn balance(&self, start: Rows) {
        let delta = Rows::now(self.env).await.since(start);
        assert_eq!(
            (delta.events, delta.dead_letters),
            (self.tally.recorded, self.tally.dead_letters),
            "{:?}: the rows written are the sum of what was answered",
            self.provider,
        );
    }
}

#[derive(Clone)]
struct Forgery {
    label: String,
    url: String,
    headers: Headers,
    expected: StatusCode,
}

async fn client_for(app: &Running, provider: Provider) -> Uuid {
    let (client, _) = app.register_client("Fuzzed").await;
    let path = format!("/v1/clients/{client}/webhooks/{}", provider.as_str());
    let secret = json!({ "secret": SECRET });
    let answer = app
        .command(Method::PUT, &path, Some(OPERATOR_KEY), Some(secret))
        .await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{provider:?}: set the secret: {answer:?}"
    );
    client
}

async fn fuzz(provider: Provider) {
    let started = Instant::now();
    let env = TestEnv::new().await;
    let app = env.start_with(Parts::apis_only()).await;
    let fixtures = fixtures(provider);
    assert!(!fixtures.is_empty(), "{provider:?} has fixtures");
    let mut fuzz = Fuzz::new(&env, &app, provider).await;
    let start = fuzz.rows;
    fuzz.hostile_bodies(&fixtures).await;
    fuzz.mutated_fixtures(&fixtures).await;
    fuzz.every_forgery(&fixtures[0]).await;
    fuzz.balance(start).await;
    let t = &fuzz.tally;
    println!(
        "{provider:?}: {} deliveries ({} signed, {} forged) in {:.1?}: {} items recorded, \
         {} dead letters ({} invalid items), {} repeated deliveries, {} duplicate items, \
         {} with nothing to record, {} too large, {} refused",
        t.signed + t.forged,
        t.signed,
        t.forged,
        started.elapsed(),
        t.recorded,
        t.dead_letters,
        t.dead_items,
        t.duplicate_deliveries,
        t.duplicate_items,
        t.nothing_to_record,
        t.too_large,
        t.refused,
    );
    assert!(fuzz.tally.recorded > 0, "{provider:?}: nothing ever landed");
    app.stop().await;
}

/// Every provider in turn, each in its own task: one that fails still lets
/// the others run, and the failure names every provider that broke and how.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_webhooks_never_answer_5xx_and_lose_nothing_for_any_provider() {
    let mut failures = Vec::new();
    for provider in Provider::ALL {
        if let Err(failure) = tokio::spawn(fuzz(provider)).await {
            let reason = match failure.try_into_panic() {
                Ok(panic) => panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "a panic without a message".to_owned()),
                Err(failure) => failure.to_string(),
            };
            failures.push(format!("{provider:?}: {reason}"));
        }
    }
    assert!(
        failures.is_empty(),
        "hostile webhooks broke {} of {} providers:\n{}",
        failures.len(),
        Provider::ALL.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Regressions: what the fuzzing found, and the most telling other cases.

fn fixture(provider: Provider, name: &str) -> Value {
    fixtures(provider)
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{provider:?} has a fixture {name}"))
        .value
}

async fn deliver(fuzz: &mut Fuzz<'_>, label: &str, value: &Value) -> (StatusCode, Value) {
    let body = serde_json::to_vec(value).expect("serializes");
    fuzz.signed(label, &body, Vec::new()).await
}

/// `what` names the delivery (and its provider) in a failure.
fn assert_dead_lettered(what: &str, status: StatusCode, answer: &Value) {
    assert_eq!(status, StatusCode::ACCEPTED, "{what}: {answer}");
    assert_eq!(answer["dead_lettered"], 1, "{what}: {answer}");
}

/// The reason and the payload size of the latest dead letter.
async fn last_dead_letter(env: &TestEnv) -> (String, i32) {
    sqlx::query_as(
        "SELECT reason, length(payload) FROM webhook_dead_letters ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&env.pool)
    .await
    .expect("a dead letter")
}

/// Epoch milliseconds reach 250,000 years back, past what Postgres
/// `timestamptz` holds: an unsubscribe so dated, of a known send, failed
/// writing the suppression with a 500, so the provider retried forever and
/// the delivery was neither recorded nor dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsubscribe_dated_before_postgres_time_is_dead_lettered_not_a_500() {
    let env = TestEnv::new().await;
    let app = env.start_with(Parts::apis_only()).await;
    let mut fuzz = Fuzz::new(&env, &app, Provider::Smartlead).await;
    let (_, sent) = deliver(
        &mut fuzz,
        "the send",
        &fixture(Provider::Smartlead, "email_sent"),
    )
    .await;
    assert_eq!(sent["sends"], 1, "{sent}");
    let mut unsubscribed = fixture(Provider::Smartlead, "lead_unsubscribed");
    unsubscribed["event_timestamp"] = json!(-8_000_000_000_000_000_i64);
    let (status, answer) = deliver(&mut fuzz, "an ancient unsubscribe", &unsubscribed).await;
    assert_dead_lettered("Smartlead: an ancient unsubscribe", status, &answer);
    let (reason, _) = last_dead_letter(&env).await;
    assert!(reason.contains("timestamp"), "{reason}");
    app.stop().await;
}

/// The domain's email check lets control characters through and Postgres
/// text cannot hold NUL: the whole delivery failed with a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_email_with_a_nul_is_dead_lettered_not_a_500() {
    let env = TestEnv::new().await;
    let app = env.start_with(Parts::apis_only()).await;
    let mut fuzz = Fuzz::new(&env, &app, Provider::Lemlist).await;
    let mut sent = fixture(Provider::Lemlist, "emails_sent");
    sent["leadEmail"] = json!("olivia\u{0}@agency.example");
    let (status, answer) = deliver(&mut fuzz, "a NUL in the email", &sent).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (&answer["sends"], &answer["dead_lettered"]),
        (&json!(0), &json!(1)),
        "{answer}"
    );
    let (reason, _) = last_dead_letter(&env).await;
    assert!(reason.contains("lead.email"), "{reason}");
    app.stop().await;
}

/// Deliveries without a provider id are deduplicated by a hash of the body;
/// it was taken of the body's lossy UTF-8 reading, so two bodies differing
/// only in invalid bytes (Latin-1 accents, say) were one delivery, and the
/// second was answered as a repeat and kept nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_differing_only_in_invalid_utf8_are_not_taken_for_repeats() {
    let env = TestEnv::new().await;
    let app = env.start_with(Parts::apis_only()).await;
    let mut fuzz = Fuzz::new(&env, &app, Provider::Instantly).await;
    for accent in [0xe9, 0xe8] {
        let body = [
            &br#"{"event_type":"email_sent","lead_email":"caf"#[..],
            &[accent],
            b"@x.example\"}",
        ]
        .concat();
        let (status, answer) = fuzz.signed("Latin-1", &body, Vec::new()).await;
        assert_dead_lettered(&format!("Instantly: Latin-1 {accent:#x}"), status, &answer);
    }
    app.stop().await;
}

/// Each invalid item of a delivery was dead-lettered with the whole
/// payload: a 480 KB HubSpot batch of 3,000 future-dated events wrote
/// 1.5 GB and took a minute, far past the provider's timeout (so it retried,
/// and wrote it all again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_invalid_events_is_one_dead_letter_not_one_per_event() {
    let env = TestEnv::new().await;
    let app = env.start_with(Parts::apis_only()).await;
    let mut fuzz = Fuzz::new(&env, &app, Provider::Hubspot).await;
    let template = fixture(Provider::Hubspot, "object_property_change")[0].clone();
    let batch: Vec<Value> = (0..3000)
        .map(|i| {
            let mut event = template.clone();
            event["eventId"] = json!(i);
            event["objectId"] = json!(i);
            event["occurredAt"] = json!(4_102_444_800_000_i64); // 2100
            event
        })
        .collect();
    let body = serde_json::to_vec(&batch).expect("serializes");
    let started = Instant::now();
    let (status, answer) = fuzz.signed("3,000 future events", &body, Vec::new()).await;
    assert_eq!(
        (status, &answer["dead_lettered"]),
        (StatusCode::OK, &json!(3000)),
        "{answer}"
    );
    let (reason, size) = last_dead_letter(&env).await;
    assert!(reason.contains("(3000 items)"), "{reason}");
    assert!(
        usize::try_from(size).expect("a size") <= body.len(),
        "the payload is kept once"
    );
    println!(
        "3,000 invalid events dead-lettered in {:.1?}",
        started.elapsed()
    );
    app.stop().await;
}

/// serde_json's recursion limit keeps 10,000 levels of nesting from the
/// stack: dead-lettered (and so kept), by every provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_nested_arrays_are_dead_lettered_by_every_provider() {
    let env = TestEnv::new().await;
    let app = env.start_with(Parts::apis_only()).await;
    let body = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes();
    for provider in Provider::ALL {
        let mut fuzz = Fuzz::new(&env, &app, provider).await;
        let (status, answer) = fuzz.signed("10,000 nested arrays", &body, Vec::new()).await;
        assert_dead_lettered(
            &format!("{provider:?}: 10,000 nested arrays"),
            status,
            &answer,
        );
    }
    app.stop().await;
}
