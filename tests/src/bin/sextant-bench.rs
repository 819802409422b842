//! `sextant-bench`: runs the benchmark workloads against the real system on
//! this machine (Postgres and NATS from DATABASE_URL / NATS_URL), writes
//! `target/bench/results.json` and prints a table saying which targets are
//! met.
//!
//! ```text
//! cargo build --release -p sextant-tests --bin sextant-bench \
//!     -p sextant-query-api -p sextant-command-api
//! ./target/release/sextant-bench --quick [--only replay,footprint]
//! ```
//!
//! The replay, growth and footprint workloads run the release service
//! binaries found beside this one.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use sextant_tests::bench::{self, Scale, Workload};

#[derive(Parser)]
#[command(name = "sextant-bench", about = "Sextant's benchmark harness")]
struct Args {
    /// A short run (under 3 minutes) instead of the full one.
    #[arg(long)]
    quick: bool,
    /// Run only these workloads (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Workload>,
    /// Where to write the results.
    #[arg(long, default_value = "target/bench/results.json")]
    out: PathBuf,
}

/// The services' allocator (see `sextant_adapters::memory`).
#[global_allocator]
static GLOBAL: sextant_adapters::memory::Allocator = sextant_adapters::memory::Allocator {};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    sextant_adapters::telemetry::init_tracing(
        &std::env::var("SEXTANT_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        sextant_adapters::config::LogFormat::Pretty,
    )?;
    let scale = if args.quick {
        Scale::quick()
    } else {
        Scale::full()
    };
    let only = if args.only.is_empty() {
        Workload::ALL.to_vec()
    } else {
        args.only
    };
    let started = Instant::now();
    let figures = bench::run(&only, scale).await?;
    let table = bench::report(&figures, &args.out)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{table}")?;
    writeln!(
        out,
        "results written to {} in {:.0} s",
        args.out.display(),
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
}
