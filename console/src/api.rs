//! The console's only way to the system: the command API and the query
//! API over HTTP, with the signed-in user's key as the bearer. Failures come
//! back as [`ApiFailure`]: the API's problem (status, detail, field errors)
//! or the console's own account of an API it could not reach.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::session::ApiKey;

const POSITION_HEADER: &str = "sextant-position";

/// Both APIs' base URLs and one connection pool.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    command_url: String,
    query_url: String,
}

/// One field an API refused, as its problem's `errors[]` names it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// An API's refusal, or the console's failure to reach it.
#[derive(Debug, Clone)]
pub struct ApiFailure {
    pub status: u16,
    pub title: String,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// The API's request id, to find its log lines.
    pub request_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ProblemBody {
    #[serde(default)]
    title: String,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    errors: Vec<FieldError>,
}

/// What a command answered: its body and the position of its write.
#[derive(Debug, Clone)]
pub struct Written {
    pub body: Value,
    pub position: Option<i64>,
}

impl ApiFailure {
    fn unreachable(which: &str, err: &reqwest::Error) -> Self {
        tracing::warn!(api = which, error = %err, "an API could not be reached");
        Self {
            status: 502,
            title: "The API could not be reached".into(),
            detail: format!("the {which} API did not answer; try again shortly"),
            errors: Vec::new(),
            request_id: None,
        }
    }

    fn unreadable(which: &str, err: &dyn std::fmt::Display) -> Self {
        tracing::error!(api = which, error = %err, "an API answered what the console cannot read");
        Self {
            status: 502,
            title: "Unexpected answer".into(),
            detail: format!("the {which} API answered something the console cannot read"),
            errors: Vec::new(),
            request_id: None,
        }
    }

    /// The message for `field` (exactly), if the API named it.
    pub fn for_field(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }
}

impl Api {
    pub fn new(command_url: &str, query_url: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            http,
            command_url: command_url.trim_end_matches('/').to_owned(),
            query_url: query_url.trim_end_matches('/').to_owned(),
        }
    }

    /// The command API's base URL, where providers send their webhooks.
    pub fn command_url(&self) -> &str {
        &self.command_url
    }

    /// A read of the query API: `path` with `params`, and `min_position`
    /// when given, so that a page shows the write that led to it.
    pub async fn query<T: DeserializeOwned>(
        &self,
        key: &ApiKey,
        path: &str,
        params: &[(&str, String)],
        min_position: Option<i64>,
    ) -> Result<T, ApiFailure> {
        let mut query: Vec<(&str, String)> = params.to_vec();
        if let Some(position) = min_position {
            query.push(("min_position", position.to_string()));
        }
        let response = self
            .http
            .get(format!("{}{path}", self.query_url))
            .bearer_auth(key.expose())
            .query(&query)
            .send()
            .await
            .map_err(|err| ApiFailure::unreachable("query", &err))?;
        let status = response.status();
        let request_id = request_id(&response);
        let bytes = response
            .bytes()
            .await
            .map_err(|err| ApiFailure::unreachable("query", &err))?;
        if !status.is_success() {
            return Err(failure(status, &bytes, request_id));
        }
        serde_json::from_slice(&bytes).map_err(|err| ApiFailure::unreadable("query", &err))
    }

    /// A read of the query API passed on as it came (a download): the
    /// content type and the bytes of a successful answer.
    pub async fn query_raw(
        &self,
        key: &ApiKey,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<(String, Vec<u8>), ApiFailure> {
        let response = self
            .http
            .get(format!("{}{path}", self.query_url))
            .bearer_auth(key.expose())
            .query(params)
            .send()
            .await
            .map_err(|err| ApiFailure::unreachable("query", &err))?;
        let status = response.status();
        let request_id = request_id(&response);
        let kind = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_owned();
        let bytes = response
            .bytes()
            .await
            .map_err(|err| ApiFailure::unreachable("query", &err))?;
        if !status.is_success() {
            return Err(failure(status, &bytes, request_id));
        }
        Ok((kind, bytes.to_vec()))
    }

    /// Whether the query API answers its `/healthz`.
    pub async fn query_is_up(&self) -> bool {
        self.http
            .get(format!("{}/healthz", self.query_url))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// A command: `body` as JSON (none for an empty body).
    pub async fn command(
        &self,
        key: &ApiKey,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Written, ApiFailure> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.command_url))
            .bearer_auth(key.expose());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|err| ApiFailure::unreachable("command", &err))?;
        let status = response.status();
        let request_id = request_id(&response);
        let position = response
            .headers()
            .get(POSITION_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let bytes = response
            .bytes()
            .await
            .map_err(|err| ApiFailure::unreachable("command", &err))?;
        if !status.is_success() {
            return Err(failure(status, &bytes, request_id));
        }
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Written { body, position })
    }
}

fn request_id(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn failure(status: StatusCode, bytes: &[u8], request_id: Option<String>) -> ApiFailure {
    let problem: Option<ProblemBody> = serde_json::from_slice(bytes).ok();
    let (title, detail, errors) = match problem {
        Some(p) => (p.title, p.detail, p.errors),
        None => (String::new(), String::new(), Vec::new()),
    };
    ApiFailure {
        status: status.as_u16(),
        title: if title.is_empty() {
            status.canonical_reason().unwrap_or("Error").to_owned()
        } else {
            title
        },
        detail,
        errors,
        request_id,
    }
}
