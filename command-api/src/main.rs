//! `sextant-command`: the command API, the outbox relay, and the schedules
//! of the suggestion engine, the alert detector and the report publisher.

use std::process::ExitCode;

use clap::Subcommand;
use sextant_adapters::service::{self, Cli};
use sextant_adapters::{memory, relay, stream, telemetry};
use sextant_application::alerts::Detector;
use sextant_application::delivery::Publisher;
use sextant_application::learning::{Engine, Thresholds};
use sextant_domain::alert::Thresholds as AlertThresholds;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the command API and run the relay (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
}

/// mimalloc, with a reclaimer (see `sextant_adapters::memory`).
#[global_allocator]
static GLOBAL: memory::Allocator = memory::Allocator {};

/// How often the suggestion engine looks at every client's patterns.
const SUGGEST_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// How often the alert detector looks at every client's conditions.
const DETECT_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// How often the report publisher looks for weeks due (Monday 08:00 in each
/// client's zone) and deliveries due.
const PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

#[tokio::main]
async fn main() -> ExitCode {
    service::exit_on_error(run().await)
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::<Command>::parse_as(
        "sextant-command",
        "Sextant's command API, outbox relay and suggestion engine",
    );
    let settings = cli.settings.resolve();
    let pool = service::start(&settings).await?;
    if let Some(Command::Migrate) = cli.command {
        tracing::info!("migrations applied");
        return Ok(());
    }

    let shutdown = CancellationToken::new();
    let reclaimer = tokio::spawn(memory::reclaim(memory::RECLAIM_EVERY, shutdown.clone()));
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
    let state = sextant_command_api::AppState::new(&settings, pool)?;
    let suggestions = tokio::spawn(
        Engine::new(&state.app, Thresholds::default()).run(SUGGEST_EVERY, shutdown.clone()),
    );
    let alerts = tokio::spawn(
        Detector::new(&state.app, AlertThresholds::default()).run(DETECT_EVERY, shutdown.clone()),
    );
    let reports = tokio::spawn(Publisher::new(&state.app).run(PUBLISH_EVERY, shutdown.clone()));
    let stop = shutdown.clone();
    sextant_command_api::run(listener, state, async move {
        telemetry::shutdown_signal().await;
        stop.cancel();
    })
    .await?;
    shutdown.cancel();
    relay.await?;
    suggestions.await?;
    alerts.await?;
    reports.await?;
    reclaimer.await?;
    Ok(())
}
