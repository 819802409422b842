//! Configuration: flags, else the environment, else defaults that work on a
//! developer machine. Declared once, with clap: every setting's flag, its
//! environment variable and its default are in [`SettingsArgs`], and
//! `--help` lists them all.
//!
//! Every setting has a default except the operator key: without one, nobody
//! can act as operator (a random key is generated and never shown, so an
//! unconfigured install is closed, not open). Nor has the secrets key:
//! without one, no webhook secret can be set, so none is ever stored
//! unsealed, and deliveries are refused. Nor has the mail server: without
//! `SEXTANT_SMTP_HOST`, weekly reports are published but not e-mailed.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, ValueEnum};
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
    /// How long slow clients may hold a connection, and how many may.
    pub http: HttpSettings,
    /// Seals webhook secrets at rest (`SEXTANT_SECRETS_KEY`). `None`: no
    /// webhook secret can be set (503) and every delivery is 401.
    pub secrets_key: Option<crate::secrets::SecretsKey>,
    /// The mail server weekly reports are e-mailed through. `None` when
    /// `SEXTANT_SMTP_HOST` is unset: reports are published, never e-mailed.
    pub smtp: Option<SmtpSettings>,
}

/// How the connection to the mail server is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SmtpTls {
    /// Plain text (a relay on the same host or network only).
    None,
    /// Plain text upgraded by STARTTLS, which is required (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

impl SmtpTls {
    /// The port this mode is usually served on.
    pub fn default_port(self) -> u16 {
        match self {
            Self::None => 25,
            Self::Starttls => 587,
            Self::Tls => 465,
        }
    }
}

/// The mail server weekly reports go through, and who they are from.
#[derive(Clone, Debug)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    /// Never logged, never in an event.
    pub password: Option<SecretString>,
    /// The sender, as an address or `Name <address>`.
    pub from: String,
    /// How long one exchange with the server may take.
    pub timeout: Duration,
}

/// Bounds on what one HTTP client may hold (docs/operations.md): a client
/// that trickles its headers or body, keeps an idle connection, or opens
/// connections by the thousand ties up only what these allow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpSettings {
    /// From a connection's first byte (or its opening) to the end of a
    /// request's headers.
    pub header_timeout: Duration,
    /// From the end of the headers to the end of the body.
    pub body_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// From the end of the headers to the answer, the body included.
    pub request_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_millis(DEFAULT_HEADER_TIMEOUT_MS),
            body_timeout: Duration::from_millis(DEFAULT_BODY_TIMEOUT_MS),
            idle_timeout: Duration::from_millis(DEFAULT_IDLE_TIMEOUT_MS),
            request_timeout: Duration::from_millis(DEFAULT_REQUEST_TIMEOUT_MS),
            max_connections: DEFAULT_MAX_CONNECTIONS as usize,
        }
    }
}

/// Generous for an API client on a slow link; short enough that a
/// slowloris needs a connection every few seconds.
const DEFAULT_HEADER_TIMEOUT_MS: u64 = 10_000;
/// A 4 MiB batch or document at about 1 Mbit/s.
const DEFAULT_BODY_TIMEOUT_MS: u64 = 30_000;
/// Long enough for a client's pool to reuse its connections between
/// batches; pools retry a request that meets a connection closed idle.
const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;
/// A document's three LLM attempts at the default 20 s each, with backoff.
const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 90_000;
/// Well below the usual 1024 open files per process, leaving room for the
/// pool, NATS and the logs.
const DEFAULT_MAX_CONNECTIONS: u32 = 512;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSettings {
    /// JetStream stream name (`SEXTANT_STREAM`).
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {name}: {message}")]
pub struct ConfigError {
    /// The environment variable (or flag) of the failing setting.
    pub name: String,
    pub message: String,
}

/// Every setting as a flag with its environment variable; both services
/// flatten it into their command line. [`SettingsArgs::resolve`] turns it
/// into [`Settings`].
#[derive(Clone, Debug, Args)]
pub struct SettingsArgs {
    /// Postgres URL (a role that may create tables).
    #[arg(
        long,
        env = "DATABASE_URL",
        value_name = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/sextant",
        hide_env_values = true
    )]
    database_url: String,
    /// Most connections in the pool (at least 2).
    #[arg(long, env = "SEXTANT_DATABASE_MAX_CONNECTIONS", value_name = "SEXTANT_DATABASE_MAX_CONNECTIONS",
          default_value_t = 16, value_parser = clap::value_parser!(u32).range(2..))]
    database_max_connections: u32,
    /// NATS server URL (JetStream enabled).
    #[arg(
        long,
        env = "NATS_URL",
        value_name = "NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: String,
    /// The operator's bearer key, at least 16 characters (unset: a random
    /// key nobody knows, so nobody is operator).
    #[arg(long, env = "SEXTANT_OPERATOR_KEY", value_name = "SEXTANT_OPERATOR_KEY",
          hide_env_values = true, value_parser = operator_key)]
    operator_key: Option<String>,
    /// Where the command API listens.
    #[arg(
        long,
        env = "SEXTANT_COMMAND_ADDR",
        value_name = "SEXTANT_COMMAND_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    command_addr: SocketAddr,
    /// Where the query API listens.
    #[arg(
        long,
        env = "SEXTANT_QUERY_ADDR",
        value_name = "SEXTANT_QUERY_ADDR",
        default_value = "127.0.0.1:8081"
    )]
    query_addr: SocketAddr,
    /// Log filter, in `tracing`'s EnvFilter syntax.
    #[arg(
        long = "log",
        env = "SEXTANT_LOG",
        value_name = "SEXTANT_LOG",
        default_value = "info"
    )]
    log_filter: String,
    /// Log format: pretty for people, json in production.
    #[arg(
        long,
        env = "SEXTANT_LOG_FORMAT",
        value_name = "SEXTANT_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    log_format: LogFormat,
    /// JetStream stream the events are published on.
    #[arg(
        long = "stream",
        env = "SEXTANT_STREAM",
        value_name = "SEXTANT_STREAM",
        default_value = "SEXTANT_EVENTS"
    )]
    stream_name: String,
    /// Subject prefix: subjects are `<prefix>.<client>.<aggregate>.<event>`.
    #[arg(
        long,
        env = "SEXTANT_SUBJECT_PREFIX",
        value_name = "SEXTANT_SUBJECT_PREFIX",
        default_value = "sextant.events"
    )]
    subject_prefix: String,
    /// Base URL of an OpenAI-compatible API for reading documents (unset:
    /// the deterministic extractor, offline).
    #[arg(long, env = "SEXTANT_LLM_URL", value_name = "SEXTANT_LLM_URL")]
    llm_url: Option<String>,
    /// The LLM's model.
    #[arg(
        long,
        env = "SEXTANT_LLM_MODEL",
        value_name = "SEXTANT_LLM_MODEL",
        default_value = "gpt-4o-mini"
    )]
    llm_model: String,
    /// The LLM API's bearer key.
    #[arg(
        long,
        env = "SEXTANT_LLM_API_KEY",
        value_name = "SEXTANT_LLM_API_KEY",
        hide_env_values = true,
        default_value = ""
    )]
    llm_api_key: String,
    /// Most a client's documents may cost a day, in US dollars.
    #[arg(long, env = "SEXTANT_LLM_DAILY_LIMIT_USD", value_name = "SEXTANT_LLM_DAILY_LIMIT_USD",
          default_value_t = 5.0, value_parser = non_negative)]
    llm_daily_limit_usd: f64,
    /// What 1,000 tokens cost, in US dollars.
    #[arg(long, env = "SEXTANT_LLM_USD_PER_1K_TOKENS", value_name = "SEXTANT_LLM_USD_PER_1K_TOKENS",
          default_value_t = 0.002, value_parser = non_negative)]
    llm_usd_per_1k_tokens: f64,
    /// How long one LLM call may take, in milliseconds.
    #[arg(long, env = "SEXTANT_LLM_TIMEOUT_MS", value_name = "SEXTANT_LLM_TIMEOUT_MS",
          default_value_t = 20_000.0, value_parser = non_negative)]
    llm_timeout_ms: f64,
    /// How long a client may take to send a request's headers, in
    /// milliseconds, from its first byte (or the connection's opening).
    #[arg(long, env = "SEXTANT_HTTP_HEADER_TIMEOUT_MS", value_name = "SEXTANT_HTTP_HEADER_TIMEOUT_MS",
          default_value_t = DEFAULT_HEADER_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(1..))]
    http_header_timeout_ms: u64,
    /// How long a client may take to send a request's body, in
    /// milliseconds, from the end of its headers (then 408).
    #[arg(long, env = "SEXTANT_HTTP_BODY_TIMEOUT_MS", value_name = "SEXTANT_HTTP_BODY_TIMEOUT_MS",
          default_value_t = DEFAULT_BODY_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(1..))]
    http_body_timeout_ms: u64,
    /// How long a keep-alive connection may wait for its next request, in
    /// milliseconds, before it is closed.
    #[arg(long, env = "SEXTANT_HTTP_IDLE_TIMEOUT_MS", value_name = "SEXTANT_HTTP_IDLE_TIMEOUT_MS",
          default_value_t = DEFAULT_IDLE_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(1..))]
    http_idle_timeout_ms: u64,
    /// How long a request may take from the end of its headers to its
    /// answer, in milliseconds (then 408 while the body is still coming,
    /// else 503).
    #[arg(long, env = "SEXTANT_HTTP_REQUEST_TIMEOUT_MS", value_name = "SEXTANT_HTTP_REQUEST_TIMEOUT_MS",
          default_value_t = DEFAULT_REQUEST_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(1..))]
    http_request_timeout_ms: u64,
    /// Most connections served at once; further ones wait, unaccepted,
    /// until one closes.
    #[arg(long, env = "SEXTANT_HTTP_MAX_CONNECTIONS", value_name = "SEXTANT_HTTP_MAX_CONNECTIONS",
          default_value_t = DEFAULT_MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..))]
    http_max_connections: u32,
    /// 32 bytes, as 64 hex digits or base64, that seal webhook secrets at
    /// rest (unset: webhook secrets cannot be set and deliveries are 401).
    #[arg(long, env = "SEXTANT_SECRETS_KEY", value_name = "SEXTANT_SECRETS_KEY",
          hide_env_values = true, value_parser = crate::secrets::SecretsKey::parse)]
    secrets_key: Option<crate::secrets::SecretsKey>,
    /// The mail server weekly reports are e-mailed through (unset: they
    /// are published as events, never e-mailed).
    #[arg(long, env = "SEXTANT_SMTP_HOST", value_name = "SEXTANT_SMTP_HOST")]
    smtp_host: Option<String>,
    /// Its port (default: 25, 587 or 465 by the TLS mode).
    #[arg(long, env = "SEXTANT_SMTP_PORT", value_name = "SEXTANT_SMTP_PORT",
          value_parser = clap::value_parser!(u16).range(1..))]
    smtp_port: Option<u16>,
    /// How the connection is secured: none, starttls (required) or tls.
    #[arg(
        long,
        env = "SEXTANT_SMTP_TLS",
        value_name = "SEXTANT_SMTP_TLS",
        value_enum,
        default_value = "starttls"
    )]
    smtp_tls: SmtpTls,
    /// The user the mail server authenticates (unset: no authentication).
    #[arg(
        long,
        env = "SEXTANT_SMTP_USERNAME",
        value_name = "SEXTANT_SMTP_USERNAME"
    )]
    smtp_username: Option<String>,
    /// That user's password.
    #[arg(
        long,
        env = "SEXTANT_SMTP_PASSWORD",
        value_name = "SEXTANT_SMTP_PASSWORD",
        hide_env_values = true
    )]
    smtp_password: Option<String>,
    /// Who the reports are from, as an address or `Name <address>`.
    #[arg(
        long,
        env = "SEXTANT_SMTP_FROM",
        value_name = "SEXTANT_SMTP_FROM",
        default_value = "Sextant <sextant@localhost>"
    )]
    smtp_from: String,
}

fn operator_key(text: &str) -> Result<String, String> {
    if text.trim().len() < 16 {
        Err("must be at least 16 characters".into())
    } else {
        Ok(text.trim().to_owned())
    }
}

fn non_negative(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| format!("expected a non-negative number, got {text:?}"))
}

/// The settings alone as a command line, for [`Settings::from_lookup`]
/// and the tests of `--help`.
#[derive(Debug, Parser)]
#[command(name = "sextant")]
struct SettingsOnly {
    #[command(flatten)]
    settings: SettingsArgs,
}

impl SettingsArgs {
    /// The settings these arguments describe.
    pub fn resolve(self) -> Settings {
        let defaults = StreamSettings::default();
        let llm =
            self.llm_url
                .filter(|u| !u.trim().is_empty())
                .map(|url| crate::llm::LlmSettings {
                    url,
                    model: self.llm_model,
                    api_key: self.llm_api_key.into(),
                    daily_limit_usd: self.llm_daily_limit_usd,
                    usd_per_1k_tokens: self.llm_usd_per_1k_tokens,
                    timeout: Duration::from_millis(self.llm_timeout_ms as u64),
                    attempts: 3,
                    breaker_threshold: 5,
                    breaker_cooldown: Duration::from_secs(30),
                });
        Settings {
            database_url: self.database_url.into(),
            database_max_connections: self.database_max_connections,
            nats_url: self.nats_url,
            operator_key: self
                .operator_key
                .unwrap_or_else(crate::keys::random_secret)
                .into(),
            command_addr: self.command_addr,
            query_addr: self.query_addr,
            log_filter: self.log_filter,
            log_format: self.log_format,
            stream: StreamSettings {
                name: self.stream_name,
                subject_prefix: self.subject_prefix,
                duplicate_window: defaults.duplicate_window,
            },
            min_position_wait: Duration::from_secs(5),
            llm,
            http: HttpSettings {
                header_timeout: Duration::from_millis(self.http_header_timeout_ms),
                body_timeout: Duration::from_millis(self.http_body_timeout_ms),
                idle_timeout: Duration::from_millis(self.http_idle_timeout_ms),
                request_timeout: Duration::from_millis(self.http_request_timeout_ms),
                max_connections: self.http_max_connections as usize,
            },
            secrets_key: self.secrets_key,
            smtp: self
                .smtp_host
                .filter(|host| !host.trim().is_empty())
                .map(|host| SmtpSettings {
                    host: host.trim().to_owned(),
                    port: self.smtp_port.unwrap_or(self.smtp_tls.default_port()),
                    tls: self.smtp_tls,
                    username: self.smtp_username.filter(|u| !u.is_empty()),
                    password: self.smtp_password.map(SecretString::from),
                    from: self.smtp_from,
                    timeout: Duration::from_secs(30),
                }),
        }
    }
}

impl Settings {
    /// Reads settings through `lookup` instead of the process environment,
    /// so tests need not touch it. Blank values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let command = SettingsOnly::command().mut_args(|arg| arg.env(None::<&str>));
        let mut args: Vec<OsString> = vec!["sextant".into()];
        for arg in SettingsOnly::command().get_arguments() {
            let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) else {
                continue;
            };
            let Some(value) = env.to_str().and_then(&lookup) else {
                continue;
            };
            if !value.trim().is_empty() {
                args.push(format!("--{long}={value}").into());
            }
        }
        let matches = command
            .try_get_matches_from(args)
            .map_err(|e| config_error(&e))?;
        Self::from_matches(&matches)
    }

    fn from_matches(matches: &clap::ArgMatches) -> Result<Self, ConfigError> {
        SettingsOnly::from_arg_matches(matches)
            .map(|only| only.settings.resolve())
            .map_err(|e| config_error(&e))
    }

    pub fn database_url(&self) -> &str {
        self.database_url.expose_secret()
    }
}

/// `command` with every variable that is set but blank taken for unset, as
/// deployment files that export `NAME=` mean it (clap would parse the blank).
pub fn ignore_blank_variables(command: clap::Command) -> clap::Command {
    command.mut_args(|arg| {
        let blank = arg
            .get_env()
            .and_then(std::env::var_os)
            .is_some_and(|value| value.to_string_lossy().trim().is_empty());
        if blank {
            arg.env(None::<&str>)
        } else {
            arg
        }
    })
}

/// A clap error as a [`ConfigError`] naming the environment variable of
/// the argument that failed.
fn config_error(err: &clap::Error) -> ConfigError {
    let command = SettingsOnly::command();
    let failed = err
        .get(clap::error::ContextKind::InvalidArg)
        .map(|value| value.to_string())
        .unwrap_or_default();
    let name = command
        .get_arguments()
        .find(|arg| {
            arg.get_long().is_some_and(|long| {
                failed.starts_with(&format!("--{long} ")) || failed == format!("--{long}")
            })
        })
        .and_then(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .unwrap_or_else(|| "configuration".into());
    let message = err
        .get(clap::error::ContextKind::InvalidValue)
        .map(|value| format!("invalid value {value}"))
        .unwrap_or_else(|| err.kind().to_string());
    ConfigError { name, message }
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
        let s = settings(&[]).expect("the defaults are valid settings");
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
        .expect("valid settings");
        let shown = format!("{s:?}");
        assert!(!shown.contains("operator-key-0123456789"));
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = settings(&[("SEXTANT_COMMAND_ADDR", "not-an-addr")]).err();
        assert_eq!(err.map(|e| e.name).as_deref(), Some("SEXTANT_COMMAND_ADDR"));
        let err = settings(&[("SEXTANT_LOG_FORMAT", "xml")]).err();
        assert_eq!(err.map(|e| e.name).as_deref(), Some("SEXTANT_LOG_FORMAT"));
        let err = settings(&[("SEXTANT_OPERATOR_KEY", "short")]).err();
        assert_eq!(err.map(|e| e.name).as_deref(), Some("SEXTANT_OPERATOR_KEY"));
    }

    #[test]
    fn the_help_lists_every_environment_variable_and_hides_secret_values() {
        let help = SettingsOnly::command().render_long_help().to_string();
        for name in [
            "DATABASE_URL",
            "NATS_URL",
            "SEXTANT_OPERATOR_KEY",
            "SEXTANT_COMMAND_ADDR",
            "SEXTANT_QUERY_ADDR",
            "SEXTANT_LOG",
            "SEXTANT_LOG_FORMAT",
            "SEXTANT_LLM_URL",
        ] {
            assert!(
                help.contains(&format!("[env: {name}")),
                "{name} missing from:\n{help}"
            );
        }
        for arg in SettingsOnly::command().get_arguments() {
            if arg.get_id() == "help" {
                continue;
            }
            assert!(arg.get_env().is_some(), "{} has no variable", arg.get_id());
        }
    }

    #[test]
    fn too_small_a_pool_and_a_negative_llm_budget_are_refused_by_name() {
        let err = settings(&[("SEXTANT_DATABASE_MAX_CONNECTIONS", "1")]).err();
        assert_eq!(
            err.map(|e| e.name).as_deref(),
            Some("SEXTANT_DATABASE_MAX_CONNECTIONS")
        );
        let err = settings(&[
            ("SEXTANT_LLM_URL", "http://127.0.0.1:9"),
            ("SEXTANT_LLM_DAILY_LIMIT_USD", "-1"),
        ])
        .err();
        assert_eq!(
            err.map(|e| e.name).as_deref(),
            Some("SEXTANT_LLM_DAILY_LIMIT_USD")
        );
    }

    #[test]
    fn the_llm_is_configured_only_with_a_url() {
        assert!(settings(&[]).expect("defaults").llm.is_none());
        let llm = settings(&[("SEXTANT_LLM_URL", "http://127.0.0.1:9")])
            .expect("an LLM URL")
            .llm
            .expect("LLM settings");
        assert_eq!(llm.model, "gpt-4o-mini");
        assert_eq!(llm.timeout, Duration::from_secs(20));
    }

    #[test]
    fn the_secrets_key_is_32_bytes_in_hex_or_base64_and_never_shown() {
        assert!(settings(&[]).expect("defaults").secrets_key.is_none());
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let s = settings(&[("SEXTANT_SECRETS_KEY", hex)]).expect("a hex key");
        assert!(s.secrets_key.is_some());
        assert!(!format!("{s:?}").contains(hex));
        let base64 = "ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7v8=";
        let from_base64 = settings(&[("SEXTANT_SECRETS_KEY", base64)])
            .expect("a base64 key")
            .secrets_key
            .map(|k| k.id().to_owned());
        assert_eq!(from_base64, s.secrets_key.map(|k| k.id().to_owned()));
        for bad in ["too-short", &hex[..60]] {
            let err = settings(&[("SEXTANT_SECRETS_KEY", bad)]).err();
            assert_eq!(err.map(|e| e.name).as_deref(), Some("SEXTANT_SECRETS_KEY"));
        }
        let help = SettingsOnly::command().render_long_help().to_string();
        assert!(help.contains("[env: SEXTANT_SECRETS_KEY"), "{help}");
    }

    #[test]
    fn smtp_is_off_without_a_host_and_its_password_is_never_shown() {
        assert!(settings(&[]).expect("defaults").smtp.is_none());
        let s = settings(&[
            ("SEXTANT_SMTP_HOST", "mail.example"),
            ("SEXTANT_SMTP_TLS", "tls"),
            ("SEXTANT_SMTP_USERNAME", "reports"),
            ("SEXTANT_SMTP_PASSWORD", "hunter2-smtp-password"),
            ("SEXTANT_SMTP_FROM", "reports@agency.example"),
        ])
        .expect("SMTP settings");
        let smtp = s.smtp.clone().expect("SMTP is configured");
        assert_eq!((smtp.host.as_str(), smtp.port), ("mail.example", 465));
        assert_eq!(smtp.tls, SmtpTls::Tls);
        assert_eq!(smtp.from, "reports@agency.example");
        assert!(!format!("{s:?}").contains("hunter2-smtp-password"));
        let plain = settings(&[
            ("SEXTANT_SMTP_HOST", "127.0.0.1"),
            ("SEXTANT_SMTP_TLS", "none"),
            ("SEXTANT_SMTP_PORT", "2525"),
        ])
        .expect("plain SMTP")
        .smtp
        .expect("SMTP is configured");
        assert_eq!((plain.port, plain.tls), (2525, SmtpTls::None));
        for (name, bad) in [("SEXTANT_SMTP_TLS", "ssl"), ("SEXTANT_SMTP_PORT", "0")] {
            let err = settings(&[("SEXTANT_SMTP_HOST", "mail.example"), (name, bad)]).err();
            assert_eq!(err.map(|e| e.name).as_deref(), Some(name));
        }
    }

    #[test]
    fn http_bounds_have_defaults_and_refuse_zero_by_name() {
        assert_eq!(
            settings(&[]).expect("defaults").http,
            HttpSettings::default()
        );
        let http = settings(&[
            ("SEXTANT_HTTP_HEADER_TIMEOUT_MS", "250"),
            ("SEXTANT_HTTP_MAX_CONNECTIONS", "3"),
        ])
        .expect("small bounds")
        .http;
        assert_eq!(http.header_timeout, Duration::from_millis(250));
        assert_eq!(http.max_connections, 3);
        for name in [
            "SEXTANT_HTTP_HEADER_TIMEOUT_MS",
            "SEXTANT_HTTP_BODY_TIMEOUT_MS",
            "SEXTANT_HTTP_IDLE_TIMEOUT_MS",
            "SEXTANT_HTTP_REQUEST_TIMEOUT_MS",
            "SEXTANT_HTTP_MAX_CONNECTIONS",
        ] {
            let err = settings(&[(name, "0")]).err();
            assert_eq!(err.map(|e| e.name).as_deref(), Some(name));
        }
    }
}
