//! What both service binaries share: the command line (every setting as a
//! flag with its environment variable, `--version`, and a subcommand of the
//! binary's own) and start-up (telemetry, the pool, migrations). Serving is
//! [`crate::http::service`] and [`crate::http::serve`].

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use sqlx::PgPool;

use crate::config::{ignore_blank_variables, Settings, SettingsArgs};
use crate::{db, telemetry};

/// A service binary's command line: the settings, then what to do.
#[derive(Debug, Parser)]
#[command(version)]
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
    db::migrate(&pool).await?;
    Ok(pool)
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
    fn the_version_is_the_workspaces() {
        let version = Cli::<Command>::command().render_version().to_string();
        assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    }
}
