//! Provider webhooks: `POST /v1/webhooks/{provider}/{client_id}`.
//!
//! Authenticated by the provider's signature with the client's secret (or,
//! for providers that sign nothing, the secret itself accompanying the
//! call); a bad, missing or stale signature is 401 and writes nothing.
//! Deliveries are deduplicated by the provider's delivery id (or a hash of
//! the body). What maps becomes canonical sends and outcomes through the
//! same batched write path as the ingest API; what does not is kept in the
//! dead-letter table with the reason and answered 2xx, so the provider does
//! not retry forever and nothing is dropped silently.

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use chrono::Utc;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use sextant_adapters::http::{positioned, Problem, RequestIds};
use sextant_adapters::ingest::{self, ItemResult, Writer};
use sextant_adapters::webhooks::{self, Mapped, WebhookRequest};
use sextant_domain::send::input::{Invalid, PersonalParts};
use sextant_domain::send::SendFacts;
use sextant_domain::values::Provider;

use crate::error::ApiError;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/webhooks/{provider}/{client_id}", post(receive))
}

/// The URL the provider called, as it signed it: behind a proxy, the
/// forwarded scheme and host.
fn called_url(headers: &HeaderMap, uri: &axum::http::Uri) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let scheme = header("x-forwarded-proto").unwrap_or_else(|| "http".into());
    let host = header("x-forwarded-host")
        .or_else(|| header("host"))
        .unwrap_or_else(|| "localhost".into());
    format!("{scheme}://{host}{uri}")
}

async fn dead_letter(
    state: &AppState,
    client_id: Uuid,
    provider: Provider,
    reason: &str,
    payload: &str,
) -> Result<(), ApiError> {
    tracing::warn!(%client_id, provider = provider.as_str(), reason, "webhook dead-lettered");
    metrics::counter!("sextant_webhook_dead_letters_total", "provider" => provider.as_str())
        .increment(1);
    sqlx::query("INSERT INTO webhook_dead_letters (client_id, provider, reason, payload) VALUES ($1, $2, $3, $4)")
        .bind(client_id)
        .bind(provider.as_str())
        .bind(reason)
        .bind(payload)
        .execute(&state.pool)
        .await?;
    Ok(())
}

async fn receive(
    State(state): State<AppState>,
    Path((provider, client_id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    method: Method,
    headers: HeaderMap,
    ids: RequestIds,
    body: Bytes,
) -> Result<Response, ApiError> {
    let provider =
        Provider::parse(&provider).ok_or_else(|| Problem::not_found("unknown provider"))?;
    let client_id = Uuid::try_parse(&client_id).map_err(|_| Problem::client_not_found())?;
    let secret: Option<String> = sqlx::query_scalar(
        "SELECT secret FROM webhook_secrets WHERE client_id = $1 AND provider = $2",
    )
    .bind(client_id)
    .bind(provider.as_str())
    .fetch_optional(&state.pool)
    .await?;
    // An unknown client and a client without a secret for this provider
    // look the same from outside: unauthorised.
    let secret = secret
        .ok_or_else(|| Problem::unauthorized("no webhook secret is set for this provider"))?;
    let url = called_url(&headers, &uri);
    let request = WebhookRequest {
        method: method.as_str(),
        url: &url,
        headers: &headers,
        body: &body,
    };
    webhooks::verify(provider, &request, &secret, Utc::now())
        .map_err(|e| Problem::unauthorized(format!("webhook signature: {e}")))?;
    state.registered_client(client_id).await?;

    // The hash is of the raw bytes, not of their lossy UTF-8 reading: two
    // different bodies that differ only in invalid bytes read the same, and
    // the second would be answered as a duplicate and dropped without being
    // dead-lettered. (For valid UTF-8 the two hashes are the same, so the
    // ids remembered before stay valid.)
    let delivery = webhooks::delivery_id(provider, &request)
        .unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(&body))));
    let seen: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE client_id = $1 AND provider = $2 AND delivery_id = $3)",
    )
    .bind(client_id)
    .bind(provider.as_str())
    .bind(&delivery)
    .fetch_one(&state.pool)
    .await?;
    if seen {
        let position = sextant_adapters::db::head_position(&state.pool).await?;
        return Ok(positioned(
            StatusCode::OK,
            &json!({ "duplicate": true, "position": position }),
            position,
        ));
    }

    // Kept as text for the dead-letter table, which cannot hold NUL bytes,
    // and without the secrets some providers put in the body.
    let text = redact_secrets(&String::from_utf8_lossy(&body).replace('\0', "\u{fffd}"));
    let mapped = match webhooks::map_request(provider, &request) {
        Ok(mapped) => mapped,
        Err(unmappable) => {
            dead_letter(&state, client_id, provider, &unmappable.to_string(), &text).await?;
            remember(&state, client_id, provider, &delivery).await?;
            let position = sextant_adapters::db::head_position(&state.pool).await?;
            return Ok(positioned(
                StatusCode::ACCEPTED,
                &json!({ "dead_lettered": true, "reason": unmappable.to_string(), "position": position }),
                position,
            ));
        }
    };

    let now = Utc::now();
    let key = ingest::lead_key(&state.pool, client_id).await?;
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
    let writer = Writer {
        client_id,
        actor: format!("webhook:{}", provider.as_str()),
        correlation_id: ids.correlation_id.clone(),
    };
    let mut position = 0;
    let mut counts = json!({ "sends": 0, "outcomes": 0, "duplicates": 0, "dead_lettered": 0 });
    let mut invalid: Vec<String> = Vec::new();
    for (kind, result) in [
        (
            "sends",
            ingest::record_sends(&state.pool, &writer, sends).await,
        ),
        (
            "outcomes",
            ingest::record_outcomes(&state.pool, &writer, outcomes).await,
        ),
    ] {
        let result = result.map_err(|e| {
            if e.is_unavailable() {
                ApiError::Unavailable
            } else {
                ApiError::Internal(e.into())
            }
        })?;
        position = position.max(result.position);
        for item in result.items {
            match item {
                ItemResult::Recorded { .. } => bump(&mut counts, kind),
                ItemResult::Duplicate { .. } => bump(&mut counts, "duplicates"),
                ItemResult::Error { field, message } => {
                    invalid.push(format!("{kind} item: {field}: {message}"));
                    bump(&mut counts, "dead_lettered");
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
        dead_letter(&state, client_id, provider, &reasons(&invalid), &text).await?;
    }
    remember(&state, client_id, provider, &delivery).await?;
    counts["position"] = json!(position);
    Ok(positioned(StatusCode::OK, &counts, position))
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

fn bump(counts: &mut serde_json::Value, key: &str) {
    counts[key] = json!(counts[key].as_u64().unwrap_or(0) + 1);
}

/// Recorded after the items: should we fail in between, the provider's
/// retry is deduplicated by the items' own identities instead.
async fn remember(
    state: &AppState,
    client_id: Uuid,
    provider: Provider,
    delivery: &str,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (client_id, provider, delivery_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(client_id)
    .bind(provider.as_str())
    .bind(delivery)
    .execute(&state.pool)
    .await?;
    Ok(())
}

/// A payload with the values of secret-bearing fields (Smartlead's
/// `secret_key`, tokens) replaced, for storage.
fn redact_secrets(text: &str) -> String {
    fn redact(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    let k = key.to_ascii_lowercase();
                    if k.contains("secret") || k.contains("token") || k == "signature" {
                        *v = json!("[redacted]");
                    } else {
                        redact(v);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
            _ => {}
        }
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(mut value) => {
            redact(&mut value);
            value.to_string()
        }
        Err(_) => text.to_owned(),
    }
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
