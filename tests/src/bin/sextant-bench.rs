//! `sextant-bench`: runs the benchmark workloads against the real system on
//! this machine (Postgres and NATS from DATABASE_URL / NATS_URL), writes
//! `target/bench/results.json` and prints a table saying which targets are
//! met.
//!
//! ```text
//! cargo build --release -p sextant-tests --bin sextant-bench \
//!     -p sextant-query-api -p sextant-command-api
//! ./target/release/sextant-bench --quick [--only replay,footprint]
//! ./target/release/sextant-bench --only webhook_timing
//! ./target/release/sextant-bench --learning 40
//! ```
//!
//! The replay, growth and footprint workloads run the release service
//! binaries found beside this one. `--learning <N>` runs only the
//! suggestion engine's live worlds (`sextant_tests::live`) for seeds 1..=N,
//! without database or services.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use sextant_domain::inference::Method;
use sextant_domain::learning::{Family, Verdict};
use sextant_tests::bench::{self, Figure, Scale, Target, Workload};
use sextant_tests::live::{LiveWorld, Run, Scenario, GOOD_SLOTS};

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
    /// Run only the suggestion engine's live worlds, for seeds 1..=N (0:
    /// skip them and run the workloads).
    #[arg(long, value_name = "N", default_value_t = 0)]
    learning: u64,
    /// Run only the weekly report's rows (1,000,000 sends over 26 weeks,
    /// 500 clients; batch ingest with and without the `reports`
    /// projection, at the `--quick` or full size; see
    /// `sextant_tests::bench::reports`).
    #[arg(long)]
    reports: bool,
    /// Run only the review console's row (page server time p99 of the
    /// queue, context and history pages at 20 people, and page weight).
    #[arg(long)]
    console: bool,
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
    if args.reports {
        let mut figures = bench::reports::weekly_reports().await?;
        figures.extend(bench::reports::ingest_alongside(scale).await?);
        let table = bench::report(&figures, &args.out)?;
        writeln!(std::io::stdout().lock(), "{table}")?;
        return Ok(());
    }
    if args.console {
        let figures = bench::console::figures().await?;
        let table = bench::report(&figures, &args.out)?;
        writeln!(std::io::stdout().lock(), "{table}")?;
        return Ok(());
    }
    if args.learning > 0 {
        let started = Instant::now();
        let figures = learning(args.learning);
        let table = bench::report(&figures, &args.out)?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{table}")?;
        writeln!(
            out,
            "results written to {} in {:.0} s",
            args.out.display(),
            started.elapsed().as_secs_f64()
        )?;
        return Ok(());
    }
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

/// The engine looks every six simulated hours, as production runs it.
const EVERY_MINUTES: i64 = 6 * 60;

/// One seed's three worlds: null with a Monday burst, planted, confounded.
struct Seeded {
    null: Run,
    planted: Run,
    confounded: Run,
}

fn seeded(seed: u64) -> Seeded {
    let method = Method::default();
    Seeded {
        null: LiveWorld::new(seed, Scenario::Null, 10_000, 56)
            .with_burst(seed, 49, 4_000)
            .run(EVERY_MINUTES, &method, false),
        planted: LiveWorld::new(seed, Scenario::Planted, 20_000, 56).run(
            EVERY_MINUTES,
            &method,
            false,
        ),
        confounded: LiveWorld::new(seed, Scenario::Confounded, 20_000, 56).run(
            EVERY_MINUTES,
            &method,
            false,
        ),
    }
}

/// The live worlds of seeds 1..=`seeds`, two at a time, as figures.
fn learning(seeds: u64) -> Vec<Figure> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(2)) as u64;
    let worlds: Vec<Seeded> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (1..=seeds)
                        .filter(|seed| seed % threads == t)
                        .map(seeded)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a live world's thread finishes"))
            .collect()
    });
    let n = worlds.len() as f64;
    let share = |count: usize| 100.0 * count as f64 / n;
    let w = "learning";

    let null_clients = worlds
        .iter()
        .filter(|s| s.null.false_proposals(Scenario::Null) > 0)
        .count();
    let null_false: usize = worlds
        .iter()
        .map(|s| s.null.false_proposals(Scenario::Null))
        .sum();
    let null_months: f64 = worlds.iter().map(|s| s.null.months).sum();

    let planted_false: usize = worlds
        .iter()
        .map(|s| s.planted.false_proposals(Scenario::Planted))
        .sum();
    let found = |run: &Run, key: &str| {
        run.proposed(Family::What, &format!("{key}=true"), Verdict::Prefer)
            || run.proposed(Family::What, &format!("{key}=false"), Verdict::Avoid)
    };
    let fifth = worlds
        .iter()
        .filter(|s| found(&s.planted, "personalized"))
        .count();
    let half = worlds
        .iter()
        .filter(|s| found(&s.planted, "question"))
        .count();

    let trapped = worlds
        .iter()
        .filter(|s| {
            s.confounded
                .proposed(Family::What, "angle=roi", Verdict::Prefer)
        })
        .count();
    let slots: usize = worlds
        .iter()
        .map(|s| {
            GOOD_SLOTS
                .iter()
                .filter(|slot| s.confounded.proposed(Family::When, slot, Verdict::Prefer))
                .count()
        })
        .sum();
    let confounded_false: usize = worlds
        .iter()
        .map(|s| s.confounded.false_proposals(Scenario::Confounded))
        .sum();

    let runs = || {
        worlds
            .iter()
            .flat_map(|s| [&s.null, &s.planted, &s.confounded])
    };
    let withdrawals: usize = runs().map(|r| r.withdrawn.len()).sum();
    let with_evidence: usize = runs()
        .map(|r| r.withdrawn.iter().filter(|w| w.with_evidence).count())
        .sum();

    let mut figures = vec![
        Figure::new(
            w,
            "null clients with a false proposal (10k sends + 4k Monday burst, 8 weeks)",
            null_clients as f64,
            "clients",
        )
        .against("null clients", n)
        .target(Target::RatioAtMost(0.05, "at most 5% of clients")),
        Figure::new(
            w,
            "null: false proposals per client-month",
            null_false as f64 / null_months,
            "per client-month",
        ),
        Figure::new(
            w,
            "planted x1.3 on 20% of sends (personalized) found",
            share(fifth),
            "% of worlds",
        )
        .target(Target::AtLeast(80.0)),
        Figure::new(
            w,
            "planted x1.3 on 50% of sends (question) found",
            share(half),
            "% of worlds",
        )
        .target(Target::AtLeast(80.0)),
        Figure::new(
            w,
            "planted: false proposals",
            planted_false as f64,
            "proposals",
        ),
        Figure::new(
            w,
            "confounded feature (angle=roi prefer) proposed",
            trapped as f64,
            "worlds",
        )
        .against("confounded worlds", n)
        .target(Target::RatioAtMost(0.05, "at most 5% of worlds")),
        Figure::new(
            w,
            "confounded: good slots proposed",
            100.0 * slots as f64 / (n * GOOD_SLOTS.len() as f64),
            "% of good slots",
        ),
        Figure::new(
            w,
            "confounded: false proposals",
            confounded_false as f64,
            "proposals",
        ),
    ];
    let carried = Figure::new(
        w,
        "withdrawals carrying their evidence",
        with_evidence as f64,
        "withdrawals",
    );
    figures.push(if withdrawals > 0 {
        carried
            .against("withdrawals", withdrawals as f64)
            .target(Target::RatioAtLeast(1.0))
    } else {
        carried
    });
    figures
}
