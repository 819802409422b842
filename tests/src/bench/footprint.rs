//! Footprint: the resident memory of each service idle, as the release
//! binaries run as their own processes against a fresh database and stream.
//! What a small deployment pays per service before any traffic.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::process::Child;

use super::process::{free_addr, service, status_bytes, Binary, BUILD_HINT, MIB};
use super::{Figure, Target};
use crate::TestEnv;

/// How long the services sit idle once ready before their memory is read.
const IDLE: Duration = Duration::from_secs(5);
const READY_WITHIN: Duration = Duration::from_secs(60);

pub async fn figures() -> anyhow::Result<Vec<Figure>> {
    let env = TestEnv::new().await;
    let mut running: Vec<(&str, SocketAddr, Child)> = Vec::new();
    for binary in [Binary::Command, Binary::Query] {
        let addr = free_addr()?;
        let child = service(binary, &env)
            .env(binary.addr_var(), addr.to_string())
            .spawn()?;
        running.push((binary.name(), addr, child));
    }
    let http = reqwest::Client::new();
    for (name, addr, child) in running.iter_mut() {
        ready(&http, name, *addr, child).await?;
    }
    tokio::time::sleep(IDLE).await;
    let mut figures = Vec::new();
    for (name, _, mut child) in running {
        let pid = child
            .id()
            .ok_or_else(|| anyhow::anyhow!("{name} has exited"))?;
        let rss = status_bytes(pid, "VmRSS")
            .ok_or_else(|| anyhow::anyhow!("no VmRSS for {name} (pid {pid})"))?;
        child.kill().await?;
        figures.push(
            Figure::new(
                "footprint",
                &format!("idle_rss_{}", name.replace('-', "_")),
                rss as f64 / MIB,
                "MiB",
            )
            .target(Target::Below(64.0)),
        );
    }
    Ok(figures)
}

/// Waits until the service at `addr` answers `/readyz` with 200.
async fn ready(
    http: &reqwest::Client,
    name: &str,
    addr: SocketAddr,
    child: &mut Child,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("{name} exited before it was ready ({status}); if stale, {BUILD_HINT}");
        }
        let answer = http.get(format!("http://{addr}/readyz")).send().await;
        if answer.is_ok_and(|a| a.status().is_success()) {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < READY_WITHIN,
            "{name} was not ready within {READY_WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
