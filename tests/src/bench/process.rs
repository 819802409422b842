//! The service binaries (`sextant-command`, `sextant-query`) run as child
//! processes, configured by environment as an operator would, so their
//! memory is theirs alone and not the harness's.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::{TestEnv, OPERATOR_KEY};

pub const COMMAND_BINARY: &str = "sextant-command";
pub const QUERY_BINARY: &str = "sextant-query";
/// How to (re)build them: the bench's own build line (`--bin
/// sextant-bench`) builds none of them, and a stale one refuses a database
/// migrated by a newer schema.
pub const BUILD_HINT: &str =
    "build them with `cargo build --release -p sextant-query-api -p sextant-command-api`";

/// Where a release binary of the workspace is: beside this one.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow::anyhow!("{} has no directory", exe.display()))?;
    Ok(dir.join(name))
}

/// Fails, saying how to build them, unless both service binaries are there.
pub fn check_binaries() -> anyhow::Result<()> {
    for name in [COMMAND_BINARY, QUERY_BINARY] {
        let path = binary(name)?;
        anyhow::ensure!(
            path.is_file(),
            "{} is missing; {BUILD_HINT}",
            path.display()
        );
    }
    Ok(())
}

/// A command running binary `name` against `env`'s database and stream
/// (its own stream name and subject prefix), quiet but for warnings, and
/// killed if the harness drops it.
pub fn service(name: &str, env: &TestEnv) -> anyhow::Result<Command> {
    let mut command = Command::new(binary(name)?);
    command
        .env("DATABASE_URL", &env.database_url)
        .env("NATS_URL", &env.nats_url)
        .env("SEXTANT_OPERATOR_KEY", OPERATOR_KEY)
        .env("SEXTANT_STREAM", &env.stream.name)
        .env("SEXTANT_SUBJECT_PREFIX", &env.stream.subject_prefix)
        .env("SEXTANT_LOG", "warn")
        .stdin(std::process::Stdio::null())
        // The services log to stdout, which is the harness's table.
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    Ok(command)
}

/// A loopback address no one listens on right now.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// A `kB` field (`VmRSS`, `VmHWM`, …) of `/proc/<pid>/status`, in bytes;
/// `None` once the process is gone.
pub fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Polls the peak resident set (`VmHWM`) of `pid` until `stop`; answers the
/// highest seen. The kernel keeps the peak, so polling misses at most the
/// growth of the last interval before exit.
pub async fn watch_peak_rss(pid: u32, stop: CancellationToken) -> u64 {
    let mut peak = 0;
    loop {
        if let Some(hwm) = status_bytes(pid, "VmHWM") {
            peak = peak.max(hwm);
        }
        tokio::select! {
            _ = stop.cancelled() => return peak,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

pub const MIB: f64 = 1024.0 * 1024.0;
