//! Provider webhooks: a delivery to `POST /v1/webhooks/{provider}/{client_id}`.
//!
//! Authenticated by the provider's signature with the client's secret (or,
//! for providers that sign nothing, the secret itself accompanying the
//! call); a bad, missing or stale signature is 401 and writes nothing, and
//! so is a delivery for a client that does not exist or has no secret for
//! the provider, with the same answer ([`UNAUTHORIZED`]) after the same
//! work. Secrets are kept sealed (`sextant_adapters::secrets`) and opened
//! per delivery.
//! Deliveries are deduplicated by the provider's delivery id (or a hash of
//! the body). What maps becomes canonical sends and outcomes through the
//! same batched write path as the ingest API; what does not is kept in the
//! dead-letter table with the reason and answered 2xx, so the provider does
//! not retry forever and nothing is dropped silently.

use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use sextant_adapters::http::Problem;
use sextant_adapters::webhooks::{self, Mapped, WebhookRequest};
use sextant_domain::metadata::Actor;
use sextant_domain::send::input::{Invalid, PersonalParts};
use sextant_domain::send::SendFacts;
use sextant_domain::values::Provider;

use crate::sends::ingest::{self, ItemResult};
use crate::{App, Caller, Result};

/// What became of a delivery.
#[derive(Debug)]
pub enum Received {
    /// Seen before: nothing written again.
    Duplicate { position: i64 },
    /// Nothing in it could be mapped: kept whole as one dead letter
    /// (`dead_lettered` 1, with the reason).
    DeadLettered(Counts),
    /// Mapped and recorded, item by item.
    Recorded(Counts),
}

/// A delivery's items, by what became of them. One shape whatever became
/// of the delivery: every count a number, the reason a text.
#[derive(Debug, Default, Serialize)]
pub struct Counts {
    pub sends: u64,
    pub outcomes: u64,
    pub duplicates: u64,
    /// Items kept in the dead-letter table (1 for a delivery that could not
    /// be mapped at all: the delivery itself).
    pub dead_lettered: u64,
    /// Why they were dead-lettered; absent when nothing was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub position: i64,
}

async fn dead_letter(
    app: &App,
    client_id: Uuid,
    provider: Provider,
    reason: &str,
    payload: &str,
) -> Result<()> {
    tracing::warn!(%client_id, provider = provider.as_str(), reason, "webhook dead-lettered");
    metrics::counter!("sextant_webhook_dead_letters_total", "provider" => provider.as_str())
        .increment(1);
    sqlx::query("INSERT INTO webhook_dead_letters (client_id, provider, reason, payload) VALUES ($1, $2, $3, $4)")
        .bind(client_id)
        .bind(provider.as_str())
        .bind(reason)
        .bind(payload)
        .execute(&app.pool)
        .await?;
    Ok(())
}

/// The one answer to a delivery that does not verify, whatever the reason.
pub const UNAUTHORIZED: &str = "the webhook's signature or secret does not match a secret \
     of this client for this provider";

/// The client's secret for `provider`, opened; `None` without one, without
/// a secrets key, or when it was sealed under another key (then it must be
/// set again) or is damaged.
fn opened(
    app: &App,
    client_id: Uuid,
    provider: Provider,
    stored: Option<(Vec<u8>, String)>,
) -> Option<String> {
    let Some((sealed, key_id)) = stored else {
        // No secret stored: open the key's decoy all the same, so that a
        // refusal takes as long whether or not the client has a secret.
        if let Some(key) = &app.secrets_key {
            std::hint::black_box(key.open_decoy().and_then(|b| String::from_utf8(b).ok()));
        }
        return None;
    };
    let Some(key) = &app.secrets_key else {
        tracing::warn!(%client_id, provider = provider.as_str(),
            "a webhook secret is stored but SEXTANT_SECRETS_KEY is unset: the delivery is refused");
        return None;
    };
    if key_id != key.id() {
        tracing::warn!(%client_id, provider = provider.as_str(), sealed_under = %key_id,
            "the webhook secret was sealed under another SEXTANT_SECRETS_KEY: set it again");
        return None;
    }
    let opened = key.open(
        &sealed,
        &crate::clients::webhook_secret_context(client_id, provider),
    );
    if opened.is_none() {
        tracing::warn!(%client_id, provider = provider.as_str(),
            "the stored webhook secret does not open (damaged, or copied from another client): set it again");
    }
    opened.and_then(|bytes| String::from_utf8(bytes).ok())
}

/// A secret nobody knows, to verify against when there is none: a fresh
/// random one per process.
fn decoy_secret() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(sextant_adapters::keys::random_secret)
}

/// Receives one delivery of `provider` for `client_id`.
pub async fn receive(
    app: &App,
    provider: Provider,
    client_id: Uuid,
    request: &WebhookRequest<'_>,
    correlation_id: &str,
) -> Result<Received> {
    let stored: Option<(Vec<u8>, String)> = sqlx::query_as(
        "SELECT sealed, key_id FROM webhook_secrets WHERE client_id = $1 AND provider = $2",
    )
    .bind(client_id)
    .bind(provider.as_str())
    .fetch_optional(&app.pool)
    .await?;
    let secret = opened(app, client_id, provider, stored);
    // An unknown client, a client without a secret for this provider and a
    // wrong signature must not be told apart, by the answer or by its time:
    // without a secret the delivery is verified all the same, against a
    // decoy nobody knows, and every refusal says the same.
    let against = match &secret {
        Some(secret) => secret.as_str(),
        None => decoy_secret(),
    };
    let verified = webhooks::verify(provider, request, against, Utc::now());
    if secret.is_none() || verified.is_err() {
        if let Err(reason) = &verified {
            tracing::debug!(%client_id, provider = provider.as_str(), %reason, "webhook refused");
        }
        return Err(Problem::unauthorized(UNAUTHORIZED).into());
    }
    app.registered_client(client_id).await?;

    // The hash is of the raw bytes, not of their lossy UTF-8 reading: two
    // different bodies that differ only in invalid bytes read the same, and
    // the second would be answered as a duplicate and dropped without being
    // dead-lettered. (For valid UTF-8 the two hashes are the same, so the
    // ids remembered before stay valid.)
    let delivery = webhooks::delivery_id(provider, request)
        .unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(request.body))));
    let seen: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE client_id = $1 AND provider = $2 AND delivery_id = $3)",
    )
    .bind(client_id)
    .bind(provider.as_str())
    .bind(&delivery)
    .fetch_one(&app.pool)
    .await?;
    if seen {
        let position = sextant_adapters::db::head_position(&app.pool).await?;
        return Ok(Received::Duplicate { position });
    }

    // Kept as text for the dead-letter table, which cannot hold NUL bytes,
    // and without the secrets some providers put in the body.
    let text = redact_secrets(&String::from_utf8_lossy(request.body).replace('\0', "\u{fffd}"));
    let mapped = match webhooks::map_request(provider, request) {
        Ok(mapped) => mapped,
        Err(unmappable) => {
            let reason = unmappable.to_string();
            dead_letter(app, client_id, provider, &reason, &text).await?;
            remember(app, client_id, provider, &delivery).await?;
            let position = sextant_adapters::db::head_position(&app.pool).await?;
            return Ok(Received::DeadLettered(Counts {
                dead_lettered: 1,
                reason: Some(reason),
                position,
                ..Counts::default()
            }));
        }
    };

    let now = Utc::now();
    let key = ingest::lead_key(&app.pool, client_id).await?;
    let mut sends = Vec::new();
    let mut outcomes = Vec::new();
    for item in mapped {
        match item {
            Mapped::Send(input) => sends.push(
                input
                    .into_facts(now, |email| ingest::lead_ref(&key, email))
                    .and_then(printable_email),
            ),
            Mapped::Outcome(input) => outcomes.push(input.into_facts(now)),
        }
    }
    let writer = Caller::new(Actor::Webhook(provider), correlation_id).writer(client_id);
    let mut counts = Counts::default();
    let mut invalid: Vec<String> = Vec::new();
    for (kind, result) in [
        (
            Batch::Sends,
            ingest::record_sends(&app.pool, &writer, sends).await,
        ),
        (
            Batch::Outcomes,
            ingest::record_outcomes(&app.pool, &writer, outcomes).await,
        ),
    ] {
        let result = result.map_err(crate::sends::ingest_error)?;
        counts.position = counts.position.max(result.position);
        for item in result.items {
            match item {
                ItemResult::Recorded { .. } => match kind {
                    Batch::Sends => counts.sends += 1,
                    Batch::Outcomes => counts.outcomes += 1,
                },
                ItemResult::Duplicate { .. } => counts.duplicates += 1,
                ItemResult::Error { field, message } => {
                    invalid.push(format!("{} item: {field}: {message}", kind.as_str()));
                    counts.dead_lettered += 1;
                }
            }
        }
    }
    // The invalid items of one delivery are kept in one dead letter, with
    // every reason: one per item, each with the whole payload, grew with
    // the square of the body (a 480 KB HubSpot batch of 3,000 future-dated
    // events wrote 1.5 GB and took a minute, long past the provider's
    // timeout, so it retried and wrote it all again).
    if !invalid.is_empty() {
        let reason = reasons(&invalid);
        dead_letter(app, client_id, provider, &reason, &text).await?;
        counts.reason = Some(reason);
    }
    remember(app, client_id, provider, &delivery).await?;
    Ok(Received::Recorded(counts))
}

/// Which ingest batch an item was part of.
#[derive(Debug, Clone, Copy)]
enum Batch {
    Sends,
    Outcomes,
}

impl Batch {
    /// As the dead letter's reasons name it.
    fn as_str(self) -> &'static str {
        match self {
            Self::Sends => "sends",
            Self::Outcomes => "outcomes",
        }
    }
}

/// The domain's email check lets control characters through, and Postgres
/// text cannot hold NUL: such an email failed the whole delivery's write
/// with a 500 (retried forever, never recorded nor dead-lettered). Invalid
/// here instead, like control characters in every other text field, so the
/// item is dead-lettered.
fn printable_email(
    (facts, personal): (SendFacts, PersonalParts),
) -> Result<(SendFacts, PersonalParts), Invalid> {
    if personal
        .email
        .as_deref()
        .is_some_and(|email| email.chars().any(char::is_control))
    {
        return Err(Invalid {
            field: "lead.email".into(),
            message: "must not contain control characters".into(),
        });
    }
    Ok((facts, personal))
}

/// Distinct reasons in order of appearance, each with how many items gave
/// it when more than one did.
fn reasons(all: &[String]) -> String {
    let mut distinct: Vec<(&str, usize)> = Vec::new();
    for reason in all {
        match distinct.iter_mut().find(|(r, _)| r == reason) {
            Some((_, n)) => *n += 1,
            None => distinct.push((reason, 1)),
        }
    }
    distinct
        .iter()
        .map(|(reason, n)| match n {
            1 => (*reason).to_owned(),
            n => format!("{reason} ({n} items)"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Recorded after the items: should we fail in between, the provider's
/// retry is deduplicated by the items' own identities instead.
async fn remember(app: &App, client_id: Uuid, provider: Provider, delivery: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (client_id, provider, delivery_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(client_id)
    .bind(provider.as_str())
    .bind(delivery)
    .execute(&app.pool)
    .await?;
    Ok(())
}

/// A payload with the values of secret-bearing fields (Smartlead's
/// `secret_key`, tokens, signatures) and of secret-bearing query parameters
/// in any URL it holds (`?secret=`, `token=`, `key=`, `signature=`)
/// replaced, for storage. A payload that is not JSON has its query
/// parameters redacted all the same.
fn redact_secrets(text: &str) -> String {
    fn redact(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    if secret_field(key) {
                        *v = json!(REDACTED);
                    } else {
                        redact(v);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
            serde_json::Value::String(text) => {
                if let std::borrow::Cow::Owned(redacted) = redact_parameters(text) {
                    *text = redacted;
                }
            }
            _ => {}
        }
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(mut value) => {
            redact(&mut value);
            value.to_string()
        }
        Err(_) => redact_parameters(text).into_owned(),
    }
}

const REDACTED: &str = "[redacted]";

/// A JSON field that holds a secret, by its name.
fn secret_field(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.contains("secret")
        || name.contains("token")
        || name.contains("password")
        || name == "signature"
        || name == "apikey"
        || name.ends_with("api_key")
        || name == "authorization"
}

/// A query (or form) parameter that holds a secret, by its name: `secret`,
/// `token`, `key`, `signature` and names ending in one of them
/// (`api_key`, `access_token`, `hapikey`), and `sig`.
fn secret_parameter(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "sig"
        || name.contains("secret")
        || name.contains("password")
        || ["token", "key", "signature"]
            .iter()
            .any(|end| name.ends_with(end))
}

/// `text` with the value of every `name=value` whose name is a
/// [`secret_parameter`] replaced; a value runs to the next `&`, `#`, `;`,
/// quote, angle bracket or white space.
fn redact_parameters(text: &str) -> std::borrow::Cow<'_, str> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    let ends_value =
        |c: char| matches!(c, '&' | '#' | ';' | '"' | '\'' | '<' | '>') || c.is_whitespace();
    let mut out = String::new();
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = text[from..].find('=') {
        let eq = from + found;
        let start = text[..eq]
            .char_indices()
            .rev()
            .find(|(_, c)| !is_name(*c))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let value_end = text[eq + 1..]
            .find(ends_value)
            .map_or(text.len(), |end| eq + 1 + end);
        if value_end > eq + 1 && start < eq && secret_parameter(&text[start..eq]) {
            out.push_str(&text[copied..=eq]);
            out.push_str(REDACTED);
            copied = value_end;
        }
        from = value_end.max(eq + 1);
    }
    if copied == 0 {
        return std::borrow::Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_payloads_are_redacted_before_storage() {
        let out = redact_secrets(
            r#"{"secret_key": "s3cr3t", "nested": [{"api_token": "t"}], "to_email": "a@b.c"}"#,
        );
        assert!(!out.contains("s3cr3t") && !out.contains("\"t\""), "{out}");
        assert!(out.contains("a@b.c"));
        assert_eq!(redact_secrets("not json"), "not json");
    }

    #[test]
    fn secrets_in_urls_of_a_payload_are_redacted_before_storage() {
        let out = redact_secrets(
            r#"{"webhook_url": "https://sextant.example/v1/webhooks/lemlist/c?secret=s3cr3t-value&x=1",
                "links": ["https://crm.example/a?api_key=k3y-value#top", "https://x.example/?token=t0k3n-value"],
                "note": "signature=s1gn-value; hapikey=h4p1-value", "to_email": "a@b.c",
                "page": "https://site.example/?utm_source=mail&monkey_business=1"}"#,
        );
        for secret in [
            "s3cr3t-value",
            "k3y-value",
            "t0k3n-value",
            "s1gn-value",
            "h4p1-value",
        ] {
            assert!(!out.contains(secret), "{secret} left in {out}");
        }
        assert!(out.contains("secret=[redacted]&x=1"), "{out}");
        assert!(out.contains("#top") && out.contains("a@b.c"), "{out}");
        assert!(out.contains("utm_source=mail"), "{out}");
        let form = redact_secrets("event=reply&secret=s3cr3t-value&lead=ana");
        assert_eq!(form, "event=reply&secret=[redacted]&lead=ana");
        assert_eq!(redact_secrets("a=b==c, key="), "a=b==c, key=");
        assert_eq!(redact_secrets("é=ü&key=ñ"), "é=ü&key=[redacted]");
    }

    #[test]
    fn a_deliverys_invalid_items_share_one_reason_line() {
        let all = ["a", "b", "a", "a"].map(String::from);
        assert_eq!(reasons(&all), "a (3 items); b");
        assert_eq!(reasons(&all[1..2]), "b");
    }

    #[test]
    fn an_email_with_control_characters_is_invalid() {
        let with = |email: &str| {
            let send: sextant_domain::send::input::SendInput = serde_json::from_value(json!({
                "provider": "lemlist", "provider_message_id": "m1", "channel": "email",
                "lead": { "email": email }, "sent_at": "2025-01-01T00:00:00Z",
            }))
            .expect("a send");
            send.into_facts(Utc::now(), |_| "lr_0123456789abcdef".into())
                .and_then(printable_email)
        };
        assert!(with("olivia@agency.example").is_ok());
        let invalid = with("olivia\0@agency.example").expect_err("a NUL in the email");
        assert_eq!(invalid.field, "lead.email");
        assert!(with("olivia\u{7}@agency.example").is_err());
    }
}
