//! `sextant-console`: the review console.

use std::process::ExitCode;

use sextant_adapters::{service, telemetry};
use sextant_console::Settings;

#[tokio::main]
async fn main() -> ExitCode {
    service::exit_on_error(run().await)
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env();
    telemetry::init_tracing(&settings.log_filter, settings.log_format)?;
    let listener = tokio::net::TcpListener::bind(settings.bind).await?;
    tracing::info!(
        addr = %listener.local_addr()?,
        command_url = %settings.command_url,
        query_url = %settings.query_url,
        "console listening"
    );
    sextant_console::run(listener, settings, telemetry::shutdown_signal()).await?;
    Ok(())
}
