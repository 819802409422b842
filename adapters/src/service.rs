//! What both service binaries share: the command line (every setting as a
//! flag with its environment variable, `--version`, and a subcommand of the
//! binary's own), start-up (telemetry, the pool, migrations) and how a
//! binary ends on an error ([`exit_on_error`]). Serving is
//! [`crate::http::service`] and [`crate::http::serve`].

use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use sqlx::PgPool;

use crate::config::{ignore_blank_variables, Settings, SettingsArgs};
use crate::{db, telemetry};

/// A service binary's command line: the settings, then what to do.
#[derive(Debug, Parser)]
#[command(version, after_help = crate::telemetry::NO_COLOR_HELP)]
pub struct Cli<C: Subcommand> {
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(subcommand)]
    pub command: Option<C>,
}

impl<C: Subcommand> Cli<C> {
    /// Parses the process's command line as binary `name`. `--help`,
    /// `--version` and usage errors print clap's message and exit (2 for a
    /// usage error), before anything is started.
    pub fn parse_as(name: &'static str, about: &'static str) -> Self {
        let matches = ignore_blank_variables(Self::command())
            .name(name)
            .bin_name(name)
            .about(about)
            .get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|err| err.exit())
    }
}

/// Telemetry, the pool and the migrations: what every subcommand of both
/// binaries needs first.
pub async fn start(settings: &Settings) -> anyhow::Result<PgPool> {
    telemetry::init_tracing(&settings.log_filter, settings.log_format)?;
    let pool = db::pool(settings)?;
    db::migrate(&pool).await.with_context(|| {
        format!(
            "applying the migrations to the database at DATABASE_URL ({})",
            database_place(settings.database_url())
        )
    })?;
    Ok(pool)
}

/// Host, port and database of a Postgres URL, without its credentials.
fn database_place(url: &str) -> String {
    match db::connect_options(url) {
        Ok(options) => format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default()
        ),
        Err(_) => "a URL that does not parse".into(),
    }
}

/// How a binary ends: 0 on success; on an error, one line on stderr,
/// `error: ` and the error with its causes (`{err:#}`), and exit code 1.
/// Returning the error from `main` instead would print its `Debug` form
/// (a Rust struct, with a backtrace when `RUST_BACKTRACE` is set).
pub fn exit_on_error(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{}", error_line(&err));
            ExitCode::FAILURE
        }
    }
}

fn error_line(err: &anyhow::Error) -> String {
    format!("error: {err:#}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Subcommand, PartialEq)]
    enum Command {
        Serve,
        Migrate,
    }

    #[test]
    fn flags_come_before_the_binarys_own_subcommand_and_every_setting_has_one() {
        let cli = Cli::<Command>::try_parse_from([
            "sextant-command",
            "--command-addr",
            "127.0.0.1:9999",
            "migrate",
        ])
        .expect("a command line");
        assert_eq!(cli.command, Some(Command::Migrate));
        assert_eq!(
            cli.settings.resolve().command_addr.to_string(),
            "127.0.0.1:9999"
        );
        let refused = Cli::<Command>::try_parse_from(["sextant-command", "--no-such-flag"]);
        assert!(refused.is_err());
    }

    #[test]
    fn an_error_is_one_line_with_its_causes_and_no_debug_form() {
        let err = anyhow::Error::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ))
        .context("cannot reach the database");
        assert_eq!(
            error_line(&err),
            "error: cannot reach the database: connection refused"
        );
    }

    #[test]
    fn the_database_is_named_without_its_password() {
        let place = database_place("postgres://sextant:hunter2@db.internal:6432/sextant");
        assert_eq!(place, "db.internal:6432/sextant");
    }

    #[test]
    fn the_version_is_the_workspaces() {
        let version = Cli::<Command>::command().render_version().to_string();
        assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    }
}
