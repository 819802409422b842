//! The service binaries as an operator meets them: `--version`; `--help`
//! listing every environment variable they read; a usage error before any
//! connection is tried; an error as one plain line (no backtrace, no Rust
//! `Debug` form, no colours); and `replay`'s progress as JSON lines on a
//! pipe. Each runs the real binary with a clean environment, its output
//! piped, as a script or a log collector would.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser};
use serde_json::Value;
use sextant_adapters::config::SettingsArgs;
use sextant_tests::nats::free_port;
use sextant_tests::procs::Binary;
use sextant_tests::TestEnv;

/// The settings as both binaries flatten them into their command line.
#[derive(Parser)]
struct Settings {
    #[command(flatten)]
    settings: SettingsArgs,
}

/// Every environment variable the binaries read.
fn variables() -> Vec<String> {
    Settings::command()
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .collect()
}

/// Runs `binary` with only `vars` in its environment, its output piped.
fn run(binary: Binary, args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(binary.path())
        .args(args)
        .env_clear()
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A Postgres URL on a port nothing listens on, and where it points.
fn closed_database() -> (String, String) {
    let place = format!("127.0.0.1:{}/nowhere", free_port());
    (format!("postgres://postgres:secret@{place}"), place)
}

/// How long the pool waits for a connection before it gives up
/// (`db::pool`): a binary that tried to connect took at least this long.
const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(1500);

#[test]
fn both_binaries_answer_their_version_and_list_every_variable_they_read_in_their_help() {
    let variables = variables();
    assert!(
        variables.len() >= 10,
        "the settings name their variables: {variables:?}"
    );
    for binary in Binary::ALL {
        let version = run(binary, &["--version"], &[]);
        assert!(version.status.success(), "{version:?}");
        assert_eq!(
            text(&version.stdout).trim(),
            format!("{} {}", binary.name(), env!("CARGO_PKG_VERSION")),
        );

        let help = run(binary, &["--help"], &[]);
        assert!(help.status.success(), "{help:?}");
        let help = text(&help.stdout);
        // The settings' variables, and the one the logs read beside them.
        for variable in variables.iter().map(String::as_str).chain(["NO_COLOR"]) {
            assert!(
                help.contains(&format!("[env: {variable}")),
                "{} --help does not list {variable}:\n{help}",
                binary.name()
            );
        }
        for subcommand in ["serve", "migrate"] {
            assert!(help.contains(subcommand), "{help}");
        }
    }

    let replay = run(Binary::Query, &["replay", "--help"], &[]);
    assert!(replay.status.success(), "{replay:?}");
    let replay = text(&replay.stdout);
    for projection in sextant_projections::all() {
        assert!(
            replay.contains(projection.name()),
            "replay --help does not name {}:\n{replay}",
            projection.name()
        );
    }
}

#[test]
fn the_console_answers_its_version_and_lists_its_environment_in_help() {
    // Built (or found fresh) with the workspace's other binaries.
    let console = sextant_tests::procs::built("sextant-console");
    let run = |args: &[&str]| {
        Command::new(&console)
            .args(args)
            .env_clear()
            .stdin(Stdio::null())
            .output()
            .expect("the console runs")
    };
    let version = run(&["--version"]);
    assert!(version.status.success(), "{version:?}");
    assert_eq!(
        text(&version.stdout).trim(),
        format!("sextant-console {}", env!("CARGO_PKG_VERSION")),
    );

    let mut variables: Vec<String> = sextant_console::Settings::command()
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .collect();
    for named in [
        "SEXTANT_CONSOLE_BIND",
        "SEXTANT_COMMAND_URL",
        "SEXTANT_QUERY_URL",
        "SEXTANT_CONSOLE_SECURE_COOKIES",
        "SEXTANT_CONSOLE_SESSION_MINUTES",
        "SEXTANT_LOG",
        "SEXTANT_LOG_FORMAT",
    ] {
        assert!(
            variables.iter().any(|v| v == named),
            "the settings name {named}: {variables:?}"
        );
    }
    // Read by the logs (`telemetry::init_tracing`), not a setting.
    variables.push("NO_COLOR".into());
    for args in [&["--help"][..], &["-h"][..]] {
        let help = run(args);
        assert!(help.status.success(), "{help:?}");
        let help = text(&help.stdout);
        for variable in &variables {
            assert!(
                help.contains(&format!("[env: {variable}")),
                "sextant-console {} does not list {variable}:\n{help}",
                args[0]
            );
        }
        assert!(help.contains("serve"), "{help}");
    }

    let refused = run(&["--no-such-flag"]);
    assert_eq!(refused.status.code(), Some(2), "a usage error: {refused:?}");
}

#[test]
fn replay_refuses_an_unknown_projection_before_it_touches_the_database() {
    let (database_url, _) = closed_database();
    // Built (or found fresh) before the clock starts.
    Binary::Query.path();
    let started = Instant::now();
    let refused = run(
        Binary::Query,
        &["replay", "bogus"],
        &[("DATABASE_URL", database_url.as_str())],
    );
    let took = started.elapsed();
    assert_eq!(refused.status.code(), Some(2), "a usage error: {refused:?}");
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("'bogus'"), "{stderr}");
    for projection in sextant_projections::all() {
        assert!(
            stderr.contains(projection.name()),
            "the error names the projection {}:\n{stderr}",
            projection.name()
        );
    }
    for sign_of_a_connection in ["DATABASE_URL", "timed out", "connect", "migrations"] {
        assert!(
            !stderr.contains(sign_of_a_connection),
            "no connection is tried: {stderr}"
        );
    }
    assert!(
        took < ACQUIRE_TIMEOUT,
        "refused in {took:?}, not after waiting for the database"
    );
}

#[test]
fn an_error_ends_a_binary_with_one_plain_line_and_exit_code_1() {
    let (database_url, place) = closed_database();
    for (binary, args) in [
        (Binary::Command, &["migrate"][..]),
        (Binary::Query, &["replay", "clients"][..]),
    ] {
        let failed = run(
            binary,
            args,
            &[
                ("DATABASE_URL", database_url.as_str()),
                ("RUST_BACKTRACE", "1"),
                ("RUST_LIB_BACKTRACE", "1"),
            ],
        );
        assert_eq!(failed.status.code(), Some(1), "{failed:?}");
        let stderr = text(&failed.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line, no backtrace:\n{stderr}");
        assert!(
            lines[0].starts_with(&format!(
                "error: applying the migrations to the database at DATABASE_URL ({place}): "
            )),
            "the error says what failed and where:\n{stderr}"
        );
        // A Debug form, a backtrace, a panic, the database password.
        for not_shown in [
            "Error {",
            "Os {",
            "kind:",
            "backtrace",
            "panicked",
            "secret",
        ] {
            assert!(!stderr.contains(not_shown), "{not_shown} in:\n{stderr}");
        }
        for output in [&failed.stdout, &failed.stderr] {
            assert!(!output.contains(&0x1b), "no escape codes on a pipe");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_piped_replay_reports_its_progress_as_json_lines_and_logs_without_colour() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    for name in ["Acme", "Globex"] {
        app.register_client(name).await;
    }
    app.stop().await;

    let database_url = env.database_url.clone();
    let replayed = tokio::task::spawn_blocking(move || {
        run(
            Binary::Query,
            &["replay", "clients", "audit"],
            &[
                ("DATABASE_URL", database_url.as_str()),
                ("SEXTANT_LOG", "info"),
            ],
        )
    })
    .await
    .expect("the replay ran");
    assert!(replayed.status.success(), "{replayed:?}");

    let stderr = text(&replayed.stderr);
    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).expect("every progress line is a JSON object"))
        .collect();
    for projection in ["clients", "audit"] {
        let last = lines
            .iter()
            .rfind(|line| line["projection"] == projection)
            .expect("a progress line for each projection");
        assert_eq!(last["done"], true, "{last}");
        assert_eq!(last["eta_seconds"], 0, "{last}");
        assert!(last["events_applied"].as_u64() >= Some(2), "{last}");
        assert!(last["position"].as_u64() >= Some(2), "{last}");
        assert_eq!(last["total"], last["position"], "{last}");
        assert!(last["rate"].is_number(), "{last}");
    }

    let stdout = text(&replayed.stdout);
    assert!(stdout.contains("projection rebuilt"), "{stdout}");
    for output in [&replayed.stdout, &replayed.stderr] {
        assert!(!output.contains(&0x1b), "no escape codes on a pipe");
    }
}
