//! The service binaries (`sextant-command`, `sextant-query`) run as child
//! processes, configured by environment as an operator would, so their
//! memory is theirs alone and not the harness's.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::procs::service_env;
pub use crate::procs::Binary;
use crate::TestEnv;

/// How to (re)build them: the bench's own build line (`--bin
/// sextant-bench`) builds none of them, and a stale one refuses a database
/// migrated by a newer schema.
pub const BUILD_HINT: &str =
    "build them with `cargo build --release -p sextant-query-api -p sextant-command-api`";

/// Fails, saying how to build them, unless both service binaries are there.
pub fn check_binaries() -> anyhow::Result<()> {
    for binary in [Binary::Command, Binary::Query] {
        let path = binary.built_path();
        anyhow::ensure!(
            path.is_file(),
            "{} is missing; {BUILD_HINT}",
            path.display()
        );
    }
    Ok(())
}

/// A command running `binary` as built against `env`'s database and
/// stream ([`service_env`]), killed if the harness drops it.
pub fn service(binary: Binary, env: &TestEnv) -> Command {
    let mut command = Command::new(binary.built_path());
    command
        .envs(service_env(env))
        .stdin(std::process::Stdio::null())
        // The services log to stdout, which is the harness's table.
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    command
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
