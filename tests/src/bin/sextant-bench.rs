//! `sextant-bench`: runs the benchmark workloads against the real system on
//! this machine (Postgres and NATS from DATABASE_URL / NATS_URL) and writes
//! `target/bench/results.json`.
//!
//! `cargo run --release -p sextant-tests --bin sextant-bench -- --quick`

use std::io::Write;
use std::path::PathBuf;

use clap::Parser;
use sextant_tests::bench::{self, Figure, Scale};

#[derive(Parser)]
#[command(name = "sextant-bench", about = "Sextant's benchmark harness")]
struct Args {
    /// A short run (under 3 minutes) instead of the full one.
    #[arg(long)]
    quick: bool,
    /// Where to write the results.
    #[arg(long, default_value = "target/bench/results.json")]
    out: PathBuf,
}

/// mimalloc: the services allocate many small JSON values per event, and
/// glibc's allocator showed as a third of their CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scale = if args.quick {
        Scale::quick()
    } else {
        Scale::full()
    };
    let mut figures = Vec::new();

    let raw = bench::raw_insert(scale.ingest_events.min(200_000)).await?;
    // The documented way: one execute per event, one after the other.
    let naive = bench::naive_cqrs_es(scale.naive_events, 1).await?;
    let (e2e, committed) = bench::ingest_end_to_end(scale).await?;
    figures.push(
        Figure::new(
            "batch_ingest",
            "events_per_second_end_to_end",
            e2e,
            "events/s",
        )
        .against("raw_insert", raw),
    );
    figures.push(
        Figure::new(
            "batch_ingest",
            "events_per_second_end_to_end",
            e2e,
            "events/s",
        )
        .against("naive_cqrs_es", naive),
    );
    figures.push(
        Figure::new(
            "batch_ingest",
            "events_per_second_committed",
            committed,
            "events/s",
        )
        .against("naive_cqrs_es", naive),
    );

    let alone = bench::ingest_commit_only(scale).await?;
    figures.push(
        Figure::new(
            "batch_ingest_write_path_alone",
            "events_per_second_committed",
            alone,
            "events/s",
        )
        .against("raw_insert", raw),
    );

    let table = bench::report(&figures, &args.out)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{table}")?;
    writeln!(out, "results written to {}", args.out.display())?;
    Ok(())
}
