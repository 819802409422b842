//! `sextant`, the operator's command line: a client of the command API, the
//! query API and the event stream (NATS JetStream), never of the database.
//! See docs/cli.md.

pub mod api;
pub mod args;
pub mod commands;
pub mod config;
pub mod diff;
pub mod error;
pub mod import;
pub mod login;
pub mod mapping;
pub mod output;
pub mod review;
pub mod tail;

use clap::{CommandFactory, Parser};

use args::{Cli, Command};
use config::{Given, ProfileFile, Settings};
use error::{CliError, Result};
use output::Out;

/// Parses the command line, runs it and answers the exit code; errors are
/// printed as one `error: …` line on stderr.
pub async fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap's own rendering: help and version are not errors.
            let code = if e.use_stderr() {
                error::USAGE
            } else {
                error::OK
            };
            let _ = e.print();
            return code;
        }
    };
    match run(cli).await {
        Ok(()) => error::OK,
        Err(e) => {
            eprintln!("{}", e.line());
            e.exit_code()
        }
    }
}

pub async fn run(cli: Cli) -> Result<()> {
    let Cli { global, command } = cli;
    let out = Out {
        mode: global.output,
    };
    if let Command::Completions { shell } = command {
        let mut cmd = Cli::command();
        let mut stdout = std::io::stdout();
        clap_complete::generate(shell, &mut cmd, "sextant", &mut stdout);
        return Ok(());
    }
    let given = Given {
        command_url: global.command_url.clone(),
        query_url: global.query_url.clone(),
        key: global.key.clone(),
        nats_url: global.nats_url.clone(),
        stream: global.stream.clone(),
        client: global.client.clone(),
        profile: global.profile.clone(),
    };
    let path = config::config_path()?;
    let file = ProfileFile::load(&path)?;
    if let Command::Login(login) = command {
        return login::run(&out, &given, file, &path, login).await;
    }
    let settings = Settings::resolve(&given, &file)?;
    let api = api::Api::new(&settings, global.min_position)?;
    let ctx = commands::Ctx {
        api: &api,
        out: &out,
        settings: &settings,
    };
    match command {
        Command::Login(_) | Command::Completions { .. } => Ok(()),
        Command::Whoami => commands::whoami(&ctx).await,
        Command::Clients(c) => commands::clients(&ctx, c).await,
        Command::Keys(c) => commands::keys(&ctx, c).await,
        Command::Webhooks(c) => commands::webhooks(&ctx, c).await,
        Command::Context(c) => commands::context(&ctx, c).await,
        Command::Approvals(c) => commands::approvals(&ctx, c).await,
        Command::Patterns(c) => commands::patterns(&ctx, c).await,
        Command::Suggestions(c) => commands::suggestions(&ctx, c).await,
        Command::Experiments(c) => commands::experiments(&ctx, c).await,
        Command::Reports(c) => commands::reports(&ctx, c).await,
        Command::Alerts(c) => commands::alerts(&ctx, c).await,
        Command::Events(args::Events::Tail {
            types,
            since,
            limit,
            subject_prefix,
            all_clients,
        }) => {
            let client = if all_clients {
                None
            } else {
                Some(settings.client()?.to_owned())
            };
            tail::run(
                &settings,
                tail::Tail {
                    client,
                    types,
                    since,
                    limit,
                    subject_prefix,
                },
            )
            .await
        }
        Command::Import(import) => import::run(&ctx, import).await,
    }
}

/// For callers that print a [`CliError`] themselves.
pub fn usage(text: impl Into<String>) -> CliError {
    CliError::Usage(text.into())
}
