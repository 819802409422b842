//! The console's settings: flags, else the environment, else defaults that
//! work on a developer machine next to `deploy/local/up.sh`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sextant_adapters::config::LogFormat;

/// The environment the console reads besides its settings' variables.
const AFTER_HELP: &str = sextant_adapters::telemetry::NO_COLOR_HELP;

/// Every setting as a flag with its environment variable.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "sextant-console",
    version,
    about = "Sextant's review console: the approval queue, the context and its history, in a browser",
    after_help = AFTER_HELP
)]
pub struct Settings {
    #[command(subcommand)]
    pub command: Option<ConsoleCommand>,
    /// Where the console listens.
    #[arg(
        long,
        env = "SEXTANT_CONSOLE_BIND",
        value_name = "SEXTANT_CONSOLE_BIND",
        default_value = "127.0.0.1:8082"
    )]
    pub bind: SocketAddr,
    /// Base URL of the command API.
    #[arg(
        long,
        env = "SEXTANT_COMMAND_URL",
        value_name = "SEXTANT_COMMAND_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub command_url: String,
    /// Base URL of the query API.
    #[arg(
        long,
        env = "SEXTANT_QUERY_URL",
        value_name = "SEXTANT_QUERY_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub query_url: String,
    /// Mark the session cookie `Secure` (set it when the console is served
    /// over TLS, behind a proxy that terminates it).
    #[arg(
        long,
        env = "SEXTANT_CONSOLE_SECURE_COOKIES",
        value_name = "SEXTANT_CONSOLE_SECURE_COOKIES",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub secure_cookies: bool,
    /// How long a session lasts from sign-in, in minutes, whatever is done
    /// in it.
    #[arg(long, env = "SEXTANT_CONSOLE_SESSION_MINUTES", value_name = "SEXTANT_CONSOLE_SESSION_MINUTES",
          default_value_t = 480, value_parser = clap::value_parser!(u64).range(1..=10_080))]
    pub session_minutes: u64,
    /// Log filter, in `tracing`'s EnvFilter syntax.
    #[arg(
        long = "log",
        env = "SEXTANT_LOG",
        value_name = "SEXTANT_LOG",
        default_value = "info"
    )]
    pub log_filter: String,
    /// Log format: pretty for people, json in production.
    #[arg(
        long,
        env = "SEXTANT_LOG_FORMAT",
        value_name = "SEXTANT_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    pub log_format: LogFormat,
}

/// What to do; serving is the default, as for the other services.
#[derive(Clone, Debug, Subcommand)]
pub enum ConsoleCommand {
    /// Serve the console (the default).
    Serve,
}

impl Settings {
    /// The defaults, pointed at the given APIs (tests, embedding).
    pub fn for_apis(command_url: impl Into<String>, query_url: impl Into<String>) -> Self {
        let mut settings = Self::parse_from(["sextant-console"]);
        settings.command_url = command_url.into();
        settings.query_url = query_url.into();
        settings
    }

    /// Reads flags and the environment, blank variables taken for unset.
    pub fn from_env() -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let command = sextant_adapters::config::ignore_blank_variables(Self::command());
        let matches = command.get_matches();
        match Self::from_arg_matches(&matches) {
            Ok(settings) => settings,
            Err(err) => err.exit(),
        }
    }

    pub fn session_lifetime(&self) -> Duration {
        Duration::from_secs(self.session_minutes * 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_serve_next_to_the_local_apis_with_plain_cookies() {
        let settings = Settings::for_apis("http://a", "http://b");
        assert_eq!(settings.bind.to_string(), "127.0.0.1:8082");
        assert!(!settings.secure_cookies);
        assert_eq!(settings.session_lifetime(), Duration::from_secs(8 * 3600));
        assert_eq!(
            (settings.command_url.as_str(), settings.query_url.as_str()),
            ("http://a", "http://b")
        );
    }

    #[test]
    fn the_version_is_the_workspaces_and_the_help_names_no_color() {
        use clap::CommandFactory;
        let version = Settings::command().render_version().to_string();
        assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
        let help = Settings::command().render_long_help().to_string();
        assert!(help.contains("[env: NO_COLOR]"), "{help}");
    }
}
