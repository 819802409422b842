//! `sextant-query`: the query API and the projections behind it.

use std::process::ExitCode;

use clap::Subcommand;
use sextant_adapters::service::{self, Cli};
use sextant_adapters::{memory, stream, telemetry};
use sextant_projections::{replay, ProjectionName, Projector};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the query API and run the projections (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Rebuild projections from the event log into shadow tables and swap
    /// them in, while a running query API keeps serving. Progress goes to
    /// stderr: a bar on a terminal, else one JSON object per line.
    Replay {
        /// Projection names (default: every projection).
        #[arg(value_enum)]
        projections: Vec<ProjectionName>,
    },
}

/// mimalloc, with a reclaimer (see `sextant_adapters::memory`).
#[global_allocator]
static GLOBAL: memory::Allocator = memory::Allocator {};

#[tokio::main]
async fn main() -> ExitCode {
    service::exit_on_error(run().await)
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::<Command>::parse_as("sextant-query", "Sextant's query API and projections");
    let settings = cli.settings.resolve();
    let pool = service::start(&settings).await?;
    match cli.command {
        Some(Command::Migrate) => {
            tracing::info!("migrations applied");
            return Ok(());
        }
        Some(Command::Replay { projections }) => {
            let chosen = if projections.is_empty() {
                sextant_projections::all()
            } else {
                projections
                    .into_iter()
                    .map(sextant_projections::projection)
                    .collect()
            };
            for projection in chosen {
                replay::rebuild(&pool, projection, replay::Progress::for_stderr()).await?;
            }
            return Ok(());
        }
        Some(Command::Serve) | None => {}
    }

    let shutdown = CancellationToken::new();
    let reclaimer = tokio::spawn(memory::reclaim(memory::RECLAIM_EVERY, shutdown.clone()));
    let nats = stream::connect(&settings.nats_url).await?;
    let js = stream::jetstream(nats);
    let mut workers = Vec::new();
    for projector in Projector::for_all(&pool, &js, &settings.stream, sextant_projections::all()) {
        workers.push(tokio::spawn(projector.run(shutdown.clone())));
    }

    let listener = tokio::net::TcpListener::bind(settings.query_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "query API listening");
    let state = sextant_query_api::AppState::new(&settings, pool);
    let stop = shutdown.clone();
    sextant_query_api::run(listener, state, async move {
        telemetry::shutdown_signal().await;
        stop.cancel();
    })
    .await?;
    shutdown.cancel();
    for worker in workers {
        worker.await?;
    }
    reclaimer.await?;
    Ok(())
}
