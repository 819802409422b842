//! Configuration, environment first (API.md, "Operating contract").
//!
//! Every setting has a default that works on a developer machine, except the
//! operator key: without one, nobody can act as operator (a random key is
//! generated and never shown, so an unconfigured install is closed, not open).

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

#[derive(Clone, Debug)]
pub struct Settings {
    pub database_url: SecretString,
    pub database_max_connections: u32,
    pub nats_url: String,
    pub operator_key: SecretString,
    pub command_addr: SocketAddr,
    pub query_addr: SocketAddr,
    pub log_filter: String,
    pub log_format: LogFormat,
    pub stream: StreamSettings,
    /// How long a query with `min_position` waits for its read model.
    pub min_position_wait: Duration,
    /// `None` when `SEXTANT_LLM_URL` is unset: documents are then read by
    /// the deterministic extractor, offline.
    pub llm: Option<crate::llm::LlmSettings>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSettings {
    /// JetStream stream name (`SEXTANT_EVENTS`).
    pub name: String,
    /// Subject prefix; subjects are `<prefix>.<client>.<aggregate>.<event>`.
    pub subject_prefix: String,
    /// JetStream's duplicate-suppression window, kept well above the relay's
    /// worst retry time (see `relay::MAX_BACKOFF`).
    pub duplicate_window: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            name: "SEXTANT_EVENTS".into(),
            subject_prefix: "sextant.events".into(),
            duplicate_window: Duration::from_secs(10 * 60),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {name}: {message}")]
pub struct ConfigError {
    pub name: &'static str,
    pub message: String,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process
    /// environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str, default: &str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let addr = |name: &'static str, default: &str| {
            get(name, default)
                .parse::<SocketAddr>()
                .map_err(|e| ConfigError {
                    name,
                    message: format!("not a socket address: {e}"),
                })
        };
        let log_format = match get("SEXTANT_LOG_FORMAT", "pretty").as_str() {
            "json" => LogFormat::Json,
            "pretty" => LogFormat::Pretty,
            other => {
                return Err(ConfigError {
                    name: "SEXTANT_LOG_FORMAT",
                    message: format!("expected json or pretty, got {other:?}"),
                })
            }
        };
        let operator_key = lookup("SEXTANT_OPERATOR_KEY")
            .filter(|k| !k.trim().is_empty())
            .unwrap_or_else(crate::keys::random_secret);
        if operator_key.len() < 16 {
            return Err(ConfigError {
                name: "SEXTANT_OPERATOR_KEY",
                message: "must be at least 16 characters".into(),
            });
        }
        let max_connections = get("SEXTANT_DATABASE_MAX_CONNECTIONS", "16")
            .parse::<u32>()
            .map_err(|e| ConfigError {
                name: "SEXTANT_DATABASE_MAX_CONNECTIONS",
                message: e.to_string(),
            })?;
        let defaults = StreamSettings::default();
        Ok(Self {
            database_url: get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/sextant").into(),
            database_max_connections: max_connections.max(2),
            nats_url: get("NATS_URL", "nats://127.0.0.1:4222"),
            operator_key: operator_key.into(),
            command_addr: addr("SEXTANT_COMMAND_ADDR", "127.0.0.1:8080")?,
            query_addr: addr("SEXTANT_QUERY_ADDR", "127.0.0.1:8081")?,
            log_filter: get("SEXTANT_LOG", "info"),
            log_format,
            stream: StreamSettings {
                name: get("SEXTANT_STREAM", &defaults.name),
                subject_prefix: get("SEXTANT_SUBJECT_PREFIX", &defaults.subject_prefix),
                duplicate_window: defaults.duplicate_window,
            },
            min_position_wait: Duration::from_secs(5),
            llm: llm_settings(&lookup)?,
        })
    }

    pub fn database_url(&self) -> &str {
        self.database_url.expose_secret()
    }
}

fn llm_settings(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Option<crate::llm::LlmSettings>, ConfigError> {
    let Some(url) = lookup("SEXTANT_LLM_URL").filter(|u| !u.trim().is_empty()) else {
        return Ok(None);
    };
    let number = |name: &'static str, default: f64| -> Result<f64, ConfigError> {
        match lookup(name).filter(|v| !v.trim().is_empty()) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| ConfigError {
                    name,
                    message: format!("expected a non-negative number, got {v:?}"),
                }),
        }
    };
    Ok(Some(crate::llm::LlmSettings {
        url,
        model: lookup("SEXTANT_LLM_MODEL")
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| "gpt-4o-mini".into()),
        api_key: lookup("SEXTANT_LLM_API_KEY").unwrap_or_default().into(),
        daily_limit_usd: number("SEXTANT_LLM_DAILY_LIMIT_USD", 5.0)?,
        usd_per_1k_tokens: number("SEXTANT_LLM_USD_PER_1K_TOKENS", 0.002)?,
        timeout: Duration::from_millis(number("SEXTANT_LLM_TIMEOUT_MS", 20_000.0)? as u64),
        attempts: 3,
        breaker_threshold: 5,
        breaker_cooldown: Duration::from_secs(30),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_match_the_operating_contract() {
        let s = settings(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.command_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.query_addr.to_string(), "127.0.0.1:8081");
        assert_eq!(s.stream.name, "SEXTANT_EVENTS");
        assert_eq!(s.stream.subject_prefix, "sextant.events");
        assert_eq!(s.log_format, LogFormat::Pretty);
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let s = settings(&[
            ("SEXTANT_OPERATOR_KEY", "operator-key-0123456789"),
            ("DATABASE_URL", "postgres://u:hunter2@db/sextant"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let shown = format!("{s:?}");
        assert!(!shown.contains("operator-key-0123456789"));
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = settings(&[("SEXTANT_COMMAND_ADDR", "not-an-addr")]).err();
        assert_eq!(err.map(|e| e.name), Some("SEXTANT_COMMAND_ADDR"));
        let err = settings(&[("SEXTANT_LOG_FORMAT", "xml")]).err();
        assert_eq!(err.map(|e| e.name), Some("SEXTANT_LOG_FORMAT"));
        let err = settings(&[("SEXTANT_OPERATOR_KEY", "short")]).err();
        assert_eq!(err.map(|e| e.name), Some("SEXTANT_OPERATOR_KEY"));
    }
}
