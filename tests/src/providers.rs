//! The eight providers' webhooks as the tests send them: their documented
//! example payloads (the adapter's fixtures), signed or accompanied by the
//! secret as each provider does, and delivered to the command API.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sextant_adapters::webhooks;
use sextant_domain::values::Provider;
use uuid::Uuid;

use crate::{Answer, Running, OPERATOR_KEY};

/// The provider's documented example payloads, `(name, body)` by name: the
/// fixtures under `adapters/src/webhooks/fixtures/<provider>/`.
pub fn fixtures(provider: Provider) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../adapters/src/webhooks/fixtures")
        .join(provider.as_str());
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok())
        .map(|entry| {
            let name = entry
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".json")
                .to_owned();
            (name, std::fs::read(entry.path()).unwrap_or_default())
        })
        .collect();
    files.sort();
    files
}

/// What differs by provider in how a delivery is authenticated and labelled.
/// An exhaustive match, so a new provider is described here before the
/// tests compile.
pub struct Scheme {
    /// The header naming the event, when the provider sends one (its value
    /// is the fixture's file name).
    pub event_header: Option<&'static str>,
    /// The signature covers the body, so a body changed after signing is
    /// refused (a secret sent along covers nothing).
    pub signs_body: bool,
    /// The signature covers a timestamp, so a replay ten minutes later is
    /// stale.
    pub signs_time: bool,
}

pub fn scheme(provider: Provider) -> Scheme {
    let (event_header, signs_body, signs_time) = match provider {
        Provider::Hubspot => (None, true, true),
        Provider::Salesloft => (Some("x-salesloft-event"), true, false),
        Provider::Outreach | Provider::Smartlead => (None, true, false),
        Provider::Instantly | Provider::Replyio | Provider::Heyreach | Provider::Lemlist => {
            (None, false, false)
        }
    };
    Scheme {
        event_header,
        signs_body,
        signs_time,
    }
}

/// The event-naming header a provider sends with the fixture `name`, if any.
pub fn event_headers(provider: Provider, name: &str) -> Vec<(String, String)> {
    scheme(provider)
        .event_header
        .map(|header| (header.to_owned(), name.to_owned()))
        .into_iter()
        .collect()
}

/// Headers a provider would send with `body` to `url`: its signature under
/// `secret` (or the secret itself, for those that sign nothing) and its
/// event header (the fixture's name).
pub fn headers_for(
    provider: Provider,
    secret: &str,
    name: &str,
    url: &str,
    body: &[u8],
    at: DateTime<Utc>,
) -> Vec<(String, String)> {
    let mut headers = webhooks::sign_for_test(provider, secret, "POST", url, body, at);
    headers.extend(event_headers(provider, name));
    headers
}

/// Where `provider` delivers `client`'s webhooks.
pub fn webhook_url(app: &Running, provider: Provider, client: Uuid) -> String {
    format!(
        "{}/v1/webhooks/{}/{client}",
        app.command_url,
        provider.as_str()
    )
}

/// Posts `body` with `headers` as `provider` would for `client`.
pub async fn deliver(
    app: &Running,
    provider: Provider,
    client: Uuid,
    headers: &[(String, String)],
    body: &[u8],
) -> Answer {
    let mut request = app
        .http
        .post(webhook_url(app, provider, client))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = request.send().await.expect("deliver");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

/// Posts `body` signed as `provider` signs it under `secret` (`name`: the
/// event, for providers that name it in a header).
pub async fn deliver_signed(
    app: &Running,
    provider: Provider,
    secret: &str,
    client: Uuid,
    name: &str,
    body: &[u8],
) -> Answer {
    let url = webhook_url(app, provider, client);
    let headers = headers_for(provider, secret, name, &url, body, Utc::now());
    deliver(app, provider, client, &headers, body).await
}

/// Posts `body` with the signature `provider` puts on it under `secret`,
/// or with none.
pub async fn deliver_signed_by(
    app: &Running,
    provider: Provider,
    client: Uuid,
    secret: Option<&str>,
    body: &[u8],
) -> Answer {
    let url = webhook_url(app, provider, client);
    let headers = secret
        .map(|secret| webhooks::sign_for_test(provider, secret, "POST", &url, body, Utc::now()))
        .unwrap_or_default();
    deliver(app, provider, client, &headers, body).await
}

/// Sets `client`'s webhook secret for `provider`, as the operator.
pub async fn set_secret(app: &Running, client: Uuid, provider: Provider, secret: &str) {
    let answer = app
        .command(
            Method::PUT,
            &format!("/v1/clients/{client}/webhooks/{}", provider.as_str()),
            Some(OPERATOR_KEY),
            Some(json!({ "secret": secret })),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{provider:?} secret: {answer:?}"
    );
}
