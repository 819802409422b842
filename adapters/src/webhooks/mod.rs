//! Provider webhooks: checking that a delivery really comes from the
//! provider, finding its delivery id, and mapping its payload to canonical
//! sends and outcomes.
//!
//! One module per provider; what each provider documents (signature scheme,
//! event types, payload fields, example payloads) and the choices made where
//! the documentation is silent are written down in `docs/providers.md`. The
//! documented example payloads are kept as fixtures under
//! `adapters/src/webhooks/fixtures/<provider>/`.
//!
//! Nothing here panics on any input: every field is read defensively and a
//! payload that cannot be used is an [`Unmappable`], which the caller
//! dead-letters with its reason.

use axum::http::HeaderMap;
use base64::Engine as _;
use chrono::{DateTime, Datelike, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

use sextant_domain::send::input::{OutcomeInput, SendInput};
use sextant_domain::send::{BounceType, OutcomeKind, ReplyIntent};
use sextant_domain::values::Provider;

use crate::keys::constant_time_eq;

mod heyreach;
mod hubspot;
mod instantly;
mod lemlist;
mod outreach;
mod replyio;
mod salesloft;
mod smartlead;

/// Header that carries the client's webhook secret for providers that sign
/// nothing (set it as a custom header where the provider allows one).
pub const SECRET_HEADER: &str = "x-sextant-webhook-secret";
/// Query parameter that carries the client's webhook secret for providers
/// that sign nothing and allow no custom header.
pub const SECRET_QUERY_PARAM: &str = "secret";

/// One inbound webhook call, as the HTTP layer received it.
pub struct WebhookRequest<'a> {
    pub method: &'a str,
    /// The full URL the provider called (scheme, host, path, query), as HubSpot v3 signs it.
    pub url: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SignatureError {
    #[error("the webhook carries no signature and no secret")]
    Missing,
    #[error("the webhook signature or secret does not match")]
    Invalid,
    #[error("the webhook timestamp is outside the accepted window")]
    Stale,
}

/// A canonical item a delivery maps to.
// Boxing the send would change the public shape the HTTP layer matches on;
// a delivery maps to a handful of items at most.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    Send(SendInput),
    Outcome(OutcomeInput),
}

#[derive(Debug, thiserror::Error)]
pub enum Unmappable {
    #[error("malformed payload: {0}")]
    Malformed(String),
    #[error("unknown event type {0:?}")]
    UnknownEvent(String),
    #[error("{0}")]
    Unusable(String),
}

/// Verifies the request with the client's secret for `provider`. For a
/// provider that signs nothing, the secret must accompany the call: header
/// `x-sextant-webhook-secret` or query parameter `secret` (constant-time
/// compare).
pub fn verify(
    provider: Provider,
    request: &WebhookRequest<'_>,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    if secret.is_empty() {
        // An unset secret must never let anything through.
        return Err(SignatureError::Invalid);
    }
    match provider {
        Provider::Smartlead => smartlead::verify(request, secret),
        Provider::Instantly => instantly::verify(request, secret),
        Provider::Hubspot => hubspot::verify(request, secret, now),
        Provider::Salesloft => salesloft::verify(request, secret),
        Provider::Replyio => replyio::verify(request, secret),
        Provider::Heyreach => heyreach::verify(request, secret),
        Provider::Lemlist => lemlist::verify(request, secret),
        Provider::Outreach => outreach::verify(request, secret),
    }
}

/// The provider's delivery/event id for deduplication, if it has one (header
/// or body field); else None (the caller then dedupes by a hash of the body).
pub fn delivery_id(provider: Provider, request: &WebhookRequest<'_>) -> Option<String> {
    let id = match provider {
        Provider::Smartlead => smartlead::delivery_id(request),
        Provider::Instantly => instantly::delivery_id(request),
        Provider::Hubspot => hubspot::delivery_id(request),
        Provider::Salesloft => salesloft::delivery_id(request),
        Provider::Replyio => replyio::delivery_id(request),
        Provider::Heyreach => heyreach::delivery_id(request),
        Provider::Lemlist => lemlist::delivery_id(request),
        Provider::Outreach => outreach::delivery_id(request),
    };
    id.map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty() && id.len() <= 256 && !id.chars().any(char::is_control))
}

/// Maps one delivery (which may hold several events, e.g. HubSpot batches)
/// to canonical sends and outcomes. Events the provider documents but that
/// say nothing about a send or an outcome map to an empty Vec; undocumented
/// or unmappable ones are errors (the caller dead-letters them with the
/// reason and answers 2xx).
pub fn map(provider: Provider, body: &[u8]) -> Result<Vec<Mapped>, Unmappable> {
    match provider {
        Provider::Smartlead => smartlead::map(body),
        Provider::Instantly => instantly::map(body),
        Provider::Hubspot => hubspot::map(body),
        Provider::Salesloft => salesloft::map(None, body),
        Provider::Replyio => replyio::map(body),
        Provider::Heyreach => heyreach::map(body),
        Provider::Lemlist => lemlist::map(body),
        Provider::Outreach => outreach::map(body),
    }
}

/// Like [`map`], but also reads what a provider puts in headers rather than
/// in the body. Salesloft names the event only in the `x-salesloft-event`
/// header (the body is the bare resource), so with this an unknown Salesloft
/// event is an [`Unmappable::UnknownEvent`] instead of being inferred from
/// the body's shape. Same as [`map`] for every other provider.
pub fn map_request(
    provider: Provider,
    request: &WebhookRequest<'_>,
) -> Result<Vec<Mapped>, Unmappable> {
    match provider {
        Provider::Salesloft => salesloft::map(
            header(request.headers, salesloft::EVENT_HEADER),
            request.body,
        ),
        other => map(other, request.body),
    }
}

/// Headers to add to a request so that [`verify`] accepts it: each
/// provider's signature scheme computed with `secret`, or the shared-secret
/// header for providers that sign nothing. For tests (this crate's and the
/// HTTP layer's end-to-end tests).
#[doc(hidden)]
pub fn sign_for_test(
    provider: Provider,
    secret: &str,
    method: &str,
    url: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Vec<(String, String)> {
    match provider {
        Provider::Smartlead => smartlead::sign(secret, body),
        Provider::Hubspot => hubspot::sign(secret, method, url, body, now),
        Provider::Salesloft => salesloft::sign(secret, body),
        Provider::Outreach => outreach::sign(secret, body),
        Provider::Instantly | Provider::Replyio | Provider::Heyreach | Provider::Lemlist => {
            vec![(SECRET_HEADER.to_owned(), secret.to_owned())]
        }
    }
}

// ---------------------------------------------------------------------------
// Shared helpers for the provider modules.

/// A header's value, trimmed; None when absent, empty or not visible ASCII.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A query parameter of the URL the provider called, percent-decoded.
fn query_param(url: &str, name: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    let query = query.split('#').next().unwrap_or_default();
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// The secrets that accompany a call: the `x-sextant-webhook-secret` header
/// and the `secret` query parameter.
fn presented_secrets(request: &WebhookRequest<'_>) -> Vec<String> {
    header(request.headers, SECRET_HEADER)
        .map(str::to_owned)
        .into_iter()
        .chain(query_param(request.url, SECRET_QUERY_PARAM))
        .collect()
}

/// Accepts when any presented secret equals the client's (constant time).
fn check_secrets(presented: &[String], secret: &str) -> Result<(), SignatureError> {
    if presented.is_empty() {
        return Err(SignatureError::Missing);
    }
    if presented
        .iter()
        .any(|given| constant_time_eq(given.as_bytes(), secret.as_bytes()))
    {
        Ok(())
    } else {
        Err(SignatureError::Invalid)
    }
}

/// The shared-secret check for providers that sign nothing: the secret in
/// the `x-sextant-webhook-secret` header or the `secret` query parameter.
fn verify_shared_secret(request: &WebhookRequest<'_>, secret: &str) -> Result<(), SignatureError> {
    check_secrets(&presented_secrets(request), secret)
}

type HmacSha256 = Hmac<Sha256>;
type HmacSha1 = Hmac<sha1::Sha1>;

fn hmac_sha256(secret: &str, parts: &[&[u8]]) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).ok()?;
    for part in parts {
        mac.update(part);
    }
    Some(mac)
}

fn hmac_sha1(secret: &str, body: &[u8]) -> Option<HmacSha1> {
    let mut mac = HmacSha1::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(body);
    Some(mac)
}

/// Checks a hex digest (either case) in constant time.
fn verify_hex<M: Mac>(mac: Option<M>, signature: &str) -> Result<(), SignatureError> {
    let mac = mac.ok_or(SignatureError::Invalid)?;
    let given = hex::decode(signature.trim()).map_err(|_| SignatureError::Invalid)?;
    mac.verify_slice(&given)
        .map_err(|_| SignatureError::Invalid)
}

/// Checks a standard base64 digest in constant time.
fn verify_base64<M: Mac>(mac: Option<M>, signature: &str) -> Result<(), SignatureError> {
    let mac = mac.ok_or(SignatureError::Invalid)?;
    let given = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| SignatureError::Invalid)?;
    mac.verify_slice(&given)
        .map_err(|_| SignatureError::Invalid)
}

fn hex_digest<M: Mac>(mac: Option<M>) -> String {
    mac.map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default()
}

fn base64_digest<M: Mac>(mac: Option<M>) -> String {
    mac.map(|m| base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes()))
        .unwrap_or_default()
}

/// Parses the body as JSON.
fn parse(body: &[u8]) -> Result<Value, Unmappable> {
    serde_json::from_slice(body).map_err(|e| Unmappable::Malformed(e.to_string()))
}

/// Parses the body as a JSON object.
fn parse_object(body: &[u8]) -> Result<Value, Unmappable> {
    let value = parse(body)?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(Unmappable::Malformed("expected a JSON object".into()))
    }
}

/// The value at a path of object keys.
fn at<'v>(value: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

/// A non-empty, trimmed string at a path.
fn text(value: &Value, path: &[&str]) -> Option<String> {
    match at(value, path)? {
        Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        _ => None,
    }
}

/// An identifier at a path: a non-empty string, or an integer rendered as
/// text.
fn id(value: &Value, path: &[&str]) -> Option<String> {
    match at(value, path)? {
        Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// The first identifier found at any of the paths.
fn first_id(value: &Value, paths: &[&[&str]]) -> Option<String> {
    paths.iter().find_map(|path| id(value, path))
}

/// The first non-empty string found at any of the paths.
fn first_text(value: &Value, paths: &[&[&str]]) -> Option<String> {
    paths.iter().find_map(|path| text(value, path))
}

/// An unsigned integer at a path (a number or a numeric string).
fn uint(value: &Value, path: &[&str]) -> Option<u64> {
    match at(value, path)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn boolean(value: &Value, path: &[&str]) -> Option<bool> {
    match at(value, path)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A campaign step as the domain takes it: 1 to 100, else none.
fn step(value: &Value, path: &[&str]) -> Option<u32> {
    uint(value, path)
        .filter(|s| (1..=100).contains(s))
        .and_then(|s| u32::try_from(s).ok())
}

/// A timestamp at a path: RFC 3339, an ISO date-time without zone (taken as
/// UTC), or epoch milliseconds (number or numeric string); only in the
/// years RFC 3339 can write, 0000 to 9999. Epoch milliseconds reach back
/// 250,000 years, far past what Postgres `timestamptz` holds (4713 BC): an
/// unsubscribe dated so attached to a known send failed the write of the
/// suppression with a 500 (retried forever, never recorded nor
/// dead-lettered); out of range, it is no time at all.
fn time(value: &Value, path: &[&str]) -> Option<DateTime<Utc>> {
    match at(value, path)? {
        Value::String(s) => parse_time(s),
        Value::Number(n) => n.as_i64().and_then(DateTime::from_timestamp_millis),
        _ => None,
    }
    .filter(|at| (0..=9999).contains(&at.year()))
}

/// The first timestamp found at any of the paths.
fn first_time(value: &Value, paths: &[&[&str]]) -> Option<DateTime<Utc>> {
    paths.iter().find_map(|path| time(value, path))
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if text.is_empty() || text.len() > 64 {
        return None;
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(naive.and_utc());
        }
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_millis);
    }
    None
}

/// A short, stable, non-reversible-at-a-glance token for a lead identifier
/// that is personal data (an email address or a profile URL), for building
/// touch ids when the provider gives no lead id. It never holds the value
/// itself: provider message ids enter the event log.
fn lead_token(personal: &str) -> String {
    let digest = Sha256::digest(personal.trim().to_lowercase().as_bytes());
    format!("h{}", &hex::encode(digest)[..16])
}

/// An opaque lead ref from a provider's lead id, for sends that carry no
/// email: `{provider}_{kind}_{id}` limited to the characters and length the
/// domain accepts; None if nothing usable is left.
fn provider_lead_ref(provider: Provider, kind: &str, lead_id: &str) -> Option<String> {
    let cleaned: String = lead_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    if cleaned.is_empty() {
        return None;
    }
    let mut lead_ref = format!("{}_{kind}_{cleaned}", provider.as_str());
    lead_ref.truncate(128);
    Some(lead_ref)
}

/// A reply intent from a provider's reply category, sentiment or label.
fn intent_from_category(category: &str) -> Option<ReplyIntent> {
    let normalized: String = category
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c == '_' || c == '-' { ' ' } else { c })
        .collect();
    let normalized = normalized.split_whitespace().collect::<Vec<_>>().join(" ");
    match normalized.as_str() {
        "interested" | "positive" | "lead interested" => Some(ReplyIntent::Interested),
        "meeting request" | "meeting requested" | "meeting booked" => {
            Some(ReplyIntent::MeetingRequest)
        }
        "information request" | "question" | "more info" => Some(ReplyIntent::Question),
        "not interested" | "negative" | "wrong person" | "not a fit" => {
            Some(ReplyIntent::NotInterested)
        }
        "do not contact" | "unsubscribe" | "unsubscribed" | "opt out" => {
            Some(ReplyIntent::Unsubscribe)
        }
        "out of office" | "ooo" => Some(ReplyIntent::OutOfOffice),
        "auto reply" | "automatic reply" | "autoreply" => Some(ReplyIntent::AutoReply),
        _ => None,
    }
}

fn bounce_type(text: &str) -> Option<BounceType> {
    match text.trim().to_ascii_lowercase().as_str() {
        "hard" | "permanent" | "hard_bounce" | "hardbounce" => Some(BounceType::Hard),
        "soft" | "temporary" | "transient" | "soft_bounce" | "softbounce" => Some(BounceType::Soft),
        _ => None,
    }
}

/// A canonical outcome.
fn outcome(
    provider: Provider,
    provider_message_id: String,
    provider_event_id: Option<String>,
    kind: OutcomeKind,
    occurred_at: DateTime<Utc>,
) -> Mapped {
    Mapped::Outcome(OutcomeInput {
        provider: provider.as_str().to_owned(),
        provider_message_id,
        provider_event_id,
        kind,
        intent: None,
        bounce_type: None,
        occurred_at,
    })
}

/// A canonical reply with its intent.
fn reply(
    provider: Provider,
    provider_message_id: String,
    provider_event_id: Option<String>,
    intent: Option<ReplyIntent>,
    occurred_at: DateTime<Utc>,
) -> Mapped {
    Mapped::Outcome(OutcomeInput {
        provider: provider.as_str().to_owned(),
        provider_message_id,
        provider_event_id,
        kind: OutcomeKind::Replied,
        intent,
        bounce_type: None,
        occurred_at,
    })
}

/// A canonical bounce with its type.
fn bounce(
    provider: Provider,
    provider_message_id: String,
    provider_event_id: Option<String>,
    bounce_type: Option<BounceType>,
    occurred_at: DateTime<Utc>,
) -> Mapped {
    Mapped::Outcome(OutcomeInput {
        provider: provider.as_str().to_owned(),
        provider_message_id,
        provider_event_id,
        kind: OutcomeKind::Bounced,
        intent: None,
        bounce_type,
        occurred_at,
    })
}

fn unusable(message: impl Into<String>) -> Unmappable {
    Unmappable::Unusable(message.into())
}

#[cfg(test)]
pub(crate) mod test_support {
    //! What the provider modules' tests share.

    use axum::http::{HeaderMap, HeaderName, HeaderValue};
    use chrono::{DateTime, Utc};
    use sextant_domain::send::input::{OutcomeInput, SendInput};

    use super::Mapped;

    pub const SECRET: &str = "whsec_test_5f1c0e9a2b7d4c3e";
    pub const URL: &str = "https://hooks.sextant.example/webhooks/provider?client=c1";

    /// The fixed clock of the tests.
    pub fn now() -> DateTime<Utc> {
        ts("2025-06-01T12:00:00Z")
    }

    pub fn ts(text: &str) -> DateTime<Utc> {
        super::parse_time(text).expect("a valid test time")
    }

    pub fn headers_of(pairs: &[(String, String)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).expect("a valid header name"),
                HeaderValue::from_str(value).expect("a valid header value"),
            );
        }
        headers
    }

    pub fn header_pairs(pairs: &[(&str, &str)]) -> HeaderMap {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        headers_of(&owned)
    }

    pub fn outcomes(items: &[Mapped]) -> Vec<&OutcomeInput> {
        items
            .iter()
            .filter_map(|m| match m {
                Mapped::Outcome(o) => Some(o),
                Mapped::Send(_) => None,
            })
            .collect()
    }

    /// The single send a delivery mapped to.
    pub fn only_send(items: &[Mapped]) -> &SendInput {
        match items {
            [Mapped::Send(send)] => send,
            other => panic!("expected one send, got {other:?}"),
        }
    }

    /// The single outcome a delivery mapped to.
    pub fn only_outcome(items: &[Mapped]) -> &OutcomeInput {
        match items {
            [Mapped::Outcome(outcome)] => outcome,
            other => panic!("expected one outcome, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    #[test]
    fn an_empty_configured_secret_never_verifies() {
        let headers = HeaderMap::new();
        for provider in Provider::ALL {
            let request = WebhookRequest {
                method: "POST",
                url: "https://hooks.example.com/w?secret=",
                headers: &headers,
                body: b"{}",
            };
            assert_eq!(
                verify(provider, &request, "", now()),
                Err(SignatureError::Invalid),
                "{provider:?}"
            );
        }
    }

    #[test]
    fn sign_for_test_produces_headers_every_provider_accepts() {
        for provider in Provider::ALL {
            let body = br#"{"any":"thing"}"#;
            let url = "https://hooks.example.com/webhooks/p?client=1";
            let headers = headers_of(&sign_for_test(provider, SECRET, "POST", url, body, now()));
            let request = WebhookRequest {
                method: "POST",
                url,
                headers: &headers,
                body,
            };
            assert_eq!(
                verify(provider, &request, SECRET, now()),
                Ok(()),
                "{provider:?}"
            );
            assert_eq!(
                verify(provider, &request, "another-secret", now()),
                Err(SignatureError::Invalid),
                "{provider:?}"
            );
        }
    }

    #[test]
    fn garbage_bodies_never_panic() {
        let inputs: [&[u8]; 9] = [
            b"",
            b"null",
            b"[]",
            b"[1,2,3]",
            b"\"text\"",
            b"{\"event_type\":42}",
            b"{\"data\":[],\"meta\":7}",
            &[0xff, 0xfe, 0x00],
            b"[{\"subscriptionType\":null}]",
        ];
        for provider in Provider::ALL {
            for input in inputs {
                let _ = map(provider, input);
            }
        }
    }

    #[test]
    fn times_parse_in_the_documented_forms() {
        let expected = DateTime::parse_from_rfc3339("2024-01-15T10:30:00Z")
            .map(|t| t.with_timezone(&Utc))
            .ok();
        assert_eq!(parse_time("2024-01-15T10:30:00Z"), expected);
        assert_eq!(parse_time("2024-01-15T10:30:00+00:00"), expected);
        assert_eq!(parse_time("2024-01-15T10:30:00"), expected);
        assert_eq!(parse_time("2024-01-15T10:30:00.000"), expected);
        assert_eq!(parse_time("1705314600000"), expected);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn times_outside_the_years_rfc_3339_can_write_are_no_times() {
        let v = serde_json::json!({
            "ancient": -8_000_000_000_000_000_i64,
            "before_postgres": -300_000_000_000_000_i64,
            "signed_year": "-250000-01-01T00:00:00",
            "year_zero": "0000-01-01T00:00:00Z",
            "last": "9999-12-31T23:59:59Z",
        });
        assert_eq!(time(&v, &["ancient"]), None);
        assert_eq!(time(&v, &["before_postgres"]), None);
        assert_eq!(time(&v, &["signed_year"]), None);
        assert!(time(&v, &["year_zero"]).is_some());
        assert!(time(&v, &["last"]).is_some());
        // The next candidate is used instead.
        assert_eq!(
            first_time(&v, &[&["ancient"], &["last"]]),
            time(&v, &["last"])
        );
    }

    #[test]
    fn reply_categories_map_to_intents() {
        assert_eq!(
            intent_from_category("Interested"),
            Some(ReplyIntent::Interested)
        );
        assert_eq!(
            intent_from_category("Meeting Request"),
            Some(ReplyIntent::MeetingRequest)
        );
        assert_eq!(
            intent_from_category("Out Of Office"),
            Some(ReplyIntent::OutOfOffice)
        );
        assert_eq!(
            intent_from_category("Do Not Contact"),
            Some(ReplyIntent::Unsubscribe)
        );
        assert_eq!(
            intent_from_category("not_interested"),
            Some(ReplyIntent::NotInterested)
        );
        assert_eq!(intent_from_category("Uncategorizable"), None);
    }

    /// Every fixture, with its provider.
    const FIXTURES: [(Provider, &str, &str); 36] = [
        (
            Provider::Smartlead,
            "email_sent",
            include_str!("fixtures/smartlead/email_sent.json"),
        ),
        (
            Provider::Smartlead,
            "email_open",
            include_str!("fixtures/smartlead/email_open.json"),
        ),
        (
            Provider::Smartlead,
            "email_reply",
            include_str!("fixtures/smartlead/email_reply.json"),
        ),
        (
            Provider::Smartlead,
            "email_bounce",
            include_str!("fixtures/smartlead/email_bounce.json"),
        ),
        (
            Provider::Smartlead,
            "lead_unsubscribed",
            include_str!("fixtures/smartlead/lead_unsubscribed.json"),
        ),
        (
            Provider::Smartlead,
            "lead_category_updated",
            include_str!("fixtures/smartlead/lead_category_updated.json"),
        ),
        (
            Provider::Instantly,
            "email_sent",
            include_str!("fixtures/instantly/email_sent.json"),
        ),
        (
            Provider::Instantly,
            "email_opened",
            include_str!("fixtures/instantly/email_opened.json"),
        ),
        (
            Provider::Instantly,
            "reply_received",
            include_str!("fixtures/instantly/reply_received.json"),
        ),
        (
            Provider::Instantly,
            "lead_interested",
            include_str!("fixtures/instantly/lead_interested.json"),
        ),
        (
            Provider::Instantly,
            "lead_meeting_booked",
            include_str!("fixtures/instantly/lead_meeting_booked.json"),
        ),
        (
            Provider::Instantly,
            "email_bounced",
            include_str!("fixtures/instantly/email_bounced.json"),
        ),
        (
            Provider::Hubspot,
            "batch",
            include_str!("fixtures/hubspot/batch.json"),
        ),
        (
            Provider::Hubspot,
            "meeting_booked",
            include_str!("fixtures/hubspot/meeting_booked.json"),
        ),
        (
            Provider::Hubspot,
            "object_property_change",
            include_str!("fixtures/hubspot/object_property_change.json"),
        ),
        (
            Provider::Salesloft,
            "email_updated",
            include_str!("fixtures/salesloft/email_updated.json"),
        ),
        (
            Provider::Salesloft,
            "meeting_booked",
            include_str!("fixtures/salesloft/meeting_booked.json"),
        ),
        (
            Provider::Salesloft,
            "person_updated",
            include_str!("fixtures/salesloft/person_updated.json"),
        ),
        (
            Provider::Replyio,
            "email_sent",
            include_str!("fixtures/replyio/email_sent.json"),
        ),
        (
            Provider::Replyio,
            "email_replied",
            include_str!("fixtures/replyio/email_replied.json"),
        ),
        (
            Provider::Replyio,
            "reply_categorized",
            include_str!("fixtures/replyio/reply_categorized.json"),
        ),
        (
            Provider::Replyio,
            "email_bounced",
            include_str!("fixtures/replyio/email_bounced.json"),
        ),
        (
            Provider::Replyio,
            "linkedin_connection_request_accepted",
            include_str!("fixtures/replyio/linkedin_connection_request_accepted.json"),
        ),
        (
            Provider::Heyreach,
            "connection_request_sent",
            include_str!("fixtures/heyreach/connection_request_sent.json"),
        ),
        (
            Provider::Heyreach,
            "connection_request_accepted",
            include_str!("fixtures/heyreach/connection_request_accepted.json"),
        ),
        (
            Provider::Heyreach,
            "message_sent",
            include_str!("fixtures/heyreach/message_sent.json"),
        ),
        (
            Provider::Heyreach,
            "message_reply_received",
            include_str!("fixtures/heyreach/message_reply_received.json"),
        ),
        (
            Provider::Lemlist,
            "emails_sent",
            include_str!("fixtures/lemlist/emails_sent.json"),
        ),
        (
            Provider::Lemlist,
            "emails_opened",
            include_str!("fixtures/lemlist/emails_opened.json"),
        ),
        (
            Provider::Lemlist,
            "emails_bounced",
            include_str!("fixtures/lemlist/emails_bounced.json"),
        ),
        (
            Provider::Lemlist,
            "linkedin_invite_accepted",
            include_str!("fixtures/lemlist/linkedin_invite_accepted.json"),
        ),
        (
            Provider::Outreach,
            "mailing_delivered",
            include_str!("fixtures/outreach/mailing_delivered.json"),
        ),
        (
            Provider::Outreach,
            "mailing_opened",
            include_str!("fixtures/outreach/mailing_opened.json"),
        ),
        (
            Provider::Outreach,
            "mailing_replied",
            include_str!("fixtures/outreach/mailing_replied.json"),
        ),
        (
            Provider::Outreach,
            "mailing_bounced",
            include_str!("fixtures/outreach/mailing_bounced.json"),
        ),
        (
            Provider::Outreach,
            "prospect_updated",
            include_str!("fixtures/outreach/prospect_updated.json"),
        ),
    ];

    #[test]
    fn every_fixture_maps_to_items_the_domain_accepts() {
        let later = now() + chrono::Duration::days(5 * 365);
        for (provider, name, body) in FIXTURES {
            let items = map(provider, body.as_bytes())
                .map_err(|e| format!("{provider:?} {name}: {e}"))
                .expect("every fixture maps");
            for item in items {
                match item {
                    Mapped::Send(send) => {
                        assert_eq!(send.provider, provider.as_str());
                        let email = send.lead.email.clone();
                        let (facts, personal) = send
                            .into_facts(later, |e| format!("lr_{}", &keys_sha(e)[..32]))
                            .map_err(|e| format!("{provider:?} {name}: {e:?}"))
                            .expect("every mapped send is valid");
                        assert_eq!(personal.email, email.map(|e| e.to_lowercase()));
                        assert!(!facts.provider_message_id.contains('@'), "{name}");
                    }
                    Mapped::Outcome(outcome) => {
                        assert_eq!(outcome.provider, provider.as_str());
                        let facts = outcome
                            .into_facts(later)
                            .map_err(|e| format!("{provider:?} {name}: {e:?}"))
                            .expect("every mapped outcome is valid");
                        assert!(!facts.provider_message_id.contains('@'), "{name}");
                    }
                }
            }
        }
    }

    #[test]
    fn truncated_and_corrupted_fixtures_never_panic() {
        let headers = HeaderMap::new();
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for (provider, _, body) in FIXTURES {
            let bytes = body.as_bytes();
            for cut in (0..bytes.len()).step_by(5) {
                let _ = map(provider, &bytes[..cut]);
            }
            for _ in 0..200 {
                let mut corrupted = bytes.to_vec();
                for _ in 0..4 {
                    let at = usize::try_from(next() % bytes.len() as u64).unwrap_or(0);
                    corrupted[at] = (next() % 256) as u8;
                }
                let _ = map(provider, &corrupted);
                let request = WebhookRequest {
                    method: "POST",
                    url: "https://x.test/w?secret=%ZZ&secret",
                    headers: &headers,
                    body: &corrupted,
                };
                let _ = delivery_id(provider, &request);
                let _ = verify(provider, &request, SECRET, now());
                let _ = map_request(provider, &request);
            }
        }
    }

    fn keys_sha(text: &str) -> String {
        crate::keys::sha256_hex(text)
    }

    #[test]
    fn query_secrets_are_percent_decoded() {
        assert_eq!(
            query_param("https://x.test/w?a=1&secret=s%2Fe+c#frag", "secret"),
            Some("s/e c".to_owned())
        );
        assert_eq!(query_param("https://x.test/w", "secret"), None);
    }
}
