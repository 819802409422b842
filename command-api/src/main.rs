//! `sextant-command`: the command API and the outbox relay.

use clap::{Parser, Subcommand};
use sextant_adapters::config::Settings;
use sextant_adapters::{db, relay, stream, telemetry};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "sextant-command",
    about = "Sextant's command API and outbox relay"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the command API and run the relay (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
}

/// mimalloc: the services allocate many small JSON values per event, and
/// glibc's allocator showed as a third of their CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::from_env()?;
    telemetry::init_tracing(&settings.log_filter, settings.log_format);
    let pool = db::pool(&settings)?;
    db::migrate(&pool).await?;
    if let Some(Command::Migrate) = cli.command {
        tracing::info!("migrations applied");
        return Ok(());
    }

    let shutdown = CancellationToken::new();
    let nats = stream::connect(&settings.nats_url).await?;
    let relay = relay::Relay::new(
        pool.clone(),
        settings.database_url(),
        stream::jetstream(nats),
        settings.stream.clone(),
    );
    let relay = tokio::spawn(relay.run(shutdown.clone()));

    let listener = tokio::net::TcpListener::bind(settings.command_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "command API listening");
    let state = sextant_command_api::AppState::new(&settings, pool);
    let suggestions = tokio::spawn(
        sextant_command_api::suggestions::engine(&state)
            .run(std::time::Duration::from_secs(60), shutdown.clone()),
    );
    let stop = shutdown.clone();
    sextant_command_api::run(listener, state, async move {
        sextant_adapters::telemetry::shutdown_signal().await;
        stop.cancel();
    })
    .await?;
    shutdown.cancel();
    relay.await?;
    suggestions.await?;
    Ok(())
}
