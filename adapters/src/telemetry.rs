//! One place for telemetry: tracing subscribers (pretty for people, JSON in
//! production; on stdout) and the process-wide Prometheus recorder.

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{ConfigError, LogFormat};

/// Installs the global tracing subscriber. Safe to call more than once (tests
/// start several apps in one process): later calls do nothing. A filter that
/// does not parse is an error naming `SEXTANT_LOG`, so a typo fails the
/// start instead of logging at a level nobody chose. Colours only on a
/// terminal, and not there either when `NO_COLOR` is set: a log piped to a
/// file or a collector holds no escape codes.
pub fn init_tracing(filter: &str, format: LogFormat) -> Result<(), ConfigError> {
    let filter = log_filter(filter)?;
    let ansi = colours(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
    Ok(())
}

/// What every binary's `--help` says of the variable the logs read beside
/// its settings.
pub const NO_COLOR_HELP: &str = "Also read from the environment:
  NO_COLOR  Set and not empty: logs without colours (unset: coloured on a terminal only)
            [env: NO_COLOR]";

/// Whether logs are coloured: on a terminal, unless `NO_COLOR` is set to
/// anything but the empty string (<https://no-color.org>).
fn colours(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|value| value.is_empty())
}

/// Parses a log filter (`tracing` `EnvFilter` syntax), as `SEXTANT_LOG`.
pub fn log_filter(filter: &str) -> Result<EnvFilter, ConfigError> {
    EnvFilter::builder().parse(filter).map_err(|e| ConfigError {
        name: "SEXTANT_LOG".into(),
        message: format!("not a log filter ({e}): {filter:?}"),
    })
}

/// The process-wide Prometheus handle, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a host process of
            // ours embedding the library): then ours renders nothing, which
            // is visible on /metrics rather than fatal.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_filters_in_env_filter_syntax_parse() {
        for filter in [
            "info",
            "warn,sextant_adapters=debug",
            "sextant_projections[projector]=trace",
        ] {
            log_filter(filter).expect("a valid filter");
        }
    }

    #[test]
    fn logs_are_coloured_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(colours(true, None));
        assert!(colours(true, Some(OsStr::new(""))));
        assert!(!colours(true, Some(OsStr::new("1"))));
        assert!(
            !colours(false, None),
            "a pipe or a file gets no escape codes"
        );
    }

    #[test]
    fn a_log_filter_that_does_not_parse_is_an_error_naming_sextant_log() {
        for filter in ["info,sextant_adapters=loud", "[unclosed", "=info"] {
            let err = log_filter(filter).expect_err("an invalid filter is refused");
            assert_eq!(err.name, "SEXTANT_LOG", "{filter}");
        }
        let err = init_tracing("info,sextant=loud", LogFormat::Pretty)
            .expect_err("init_tracing refuses an invalid filter");
        assert_eq!(err.name, "SEXTANT_LOG");
    }
}
