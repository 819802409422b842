//! The two HTTP APIs as `sextant` calls them: `Authorization: Bearer <key>`,
//! JSON in and out, problems turned into [`CliError`]s, and the
//! `Sextant-Position` of every command kept so the reads that follow wait
//! for it (`min_position`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::config::{Key, Settings};
use crate::error::{CliError, Result};

/// Which service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Command,
    Query,
}

/// An answer that was a success.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub position: Option<i64>,
    pub content_type: String,
    pub body: Value,
    pub bytes: Vec<u8>,
}

pub struct Api {
    http: reqwest::Client,
    command_url: String,
    query_url: String,
    key: Option<Key>,
    /// The highest position a command of this run answered; every read
    /// after it passes it as `min_position`.
    position: AtomicI64,
}

impl Api {
    pub fn new(settings: &Settings, min_position: Option<i64>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("sextant-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::failed(format!("cannot set up HTTP: {e}")))?;
        Ok(Self {
            http,
            command_url: settings.command_url.clone(),
            query_url: settings.query_url.clone(),
            key: settings.key.clone(),
            position: AtomicI64::new(min_position.unwrap_or(0)),
        })
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn url(&self, service: Service, path: &str) -> String {
        match service {
            Service::Command => format!("{}{path}", self.command_url),
            Service::Query => format!("{}{path}", self.query_url),
        }
    }

    pub fn key(&self) -> Option<&Key> {
        self.key.as_ref()
    }

    /// The position reads wait for (0: none yet).
    pub fn position(&self) -> i64 {
        self.position.load(Ordering::Relaxed)
    }

    pub fn saw(&self, position: i64) {
        self.position.fetch_max(position, Ordering::Relaxed);
    }

    /// A request to the command API; its position is kept.
    pub async fn command(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer> {
        let answer = self
            .send(Service::Command, method, path, &[], body, None)
            .await?;
        if let Some(p) = answer.position.or_else(|| answer.body["position"].as_i64()) {
            self.saw(p);
        }
        Ok(answer)
    }

    /// A read from the query API, waiting for this run's writes.
    pub async fn query(&self, path: &str, params: &[(&str, String)]) -> Result<Answer> {
        self.query_accepting(path, params, None).await
    }

    /// As [`Api::query`], asking for a media type (`text/csv`, ...).
    pub async fn query_accepting(
        &self,
        path: &str,
        params: &[(&str, String)],
        accept: Option<&str>,
    ) -> Result<Answer> {
        let mut params: Vec<(&str, String)> = params.to_vec();
        let position = self.position();
        if position > 0 {
            params.push(("min_position", position.to_string()));
        }
        self.send(Service::Query, Method::GET, path, &params, None, accept)
            .await
    }

    pub async fn send(
        &self,
        service: Service,
        method: Method,
        path: &str,
        params: &[(&str, String)],
        body: Option<&Value>,
        accept: Option<&str>,
    ) -> Result<Answer> {
        let url = self.url(service, path);
        let mut request = self.http.request(method, &url);
        if !params.is_empty() {
            request = request.query(params);
        }
        if let Some(key) = &self.key {
            request = request.bearer_auth(key.expose());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(accept) = accept {
            request = request.header(reqwest::header::ACCEPT, accept);
        }
        let response = request
            .send()
            .await
            .map_err(|e| unreachable(service, &url, &e))?;
        read(response).await
    }
}

/// Reads a response: a success as an [`Answer`], anything else as the
/// problem it carries.
pub async fn read(response: reqwest::Response) -> Result<Answer> {
    let status = response.status().as_u16();
    let position = response
        .headers()
        .get("sextant-position")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| CliError::failed(format!("the answer was cut off: {e}")))?
        .to_vec();
    let body: Value = if content_type.contains("json") {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    if !(200..300).contains(&status) {
        let text = String::from_utf8_lossy(&bytes);
        return Err(CliError::from_answer(status, &body, &text));
    }
    Ok(Answer {
        status,
        position,
        content_type,
        body,
        bytes,
    })
}

/// A request that got no answer at all.
pub fn unreachable(service: Service, url: &str, e: &reqwest::Error) -> CliError {
    let what = match service {
        Service::Command => "the command API",
        Service::Query => "the query API",
    };
    let reason = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection refused or no route".to_owned()
    } else {
        // reqwest's Display names the URL and the cause; its source chain
        // has the OS error.
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            reason = format!("{reason}: {cause}");
            source = cause.source();
        }
        reason
    };
    let base = url.split("/v1/").next().unwrap_or(url).to_owned();
    CliError::Unreachable {
        what,
        url: base,
        reason,
    }
}

/// `segment` escaped for a URL path.
pub fn seg(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
