//! The benchmark harness: workloads against the real system on this
//! machine, each paired with a baseline measured in the same run where one
//! exists, written to `target/bench/results.json` (its shape is in
//! docs/benchmarks.md) and to a markdown table that says whether each target is met.
//!
//! - [`ingest`]: batch ingest end to end and write path alone, against raw
//!   inserts and naive cqrs-es.
//! - [`commands`]: single commands over HTTP from concurrent clients, and
//!   how a context command's latency grows with the context's history.
//! - [`freshness`]: command answer to query visibility under load.
//! - [`context_read`]: an agent reading its context view, open loop.
//! - [`replay`]: rebuilding every projection from a large seeded log, as
//!   the operator would (`sextant-query replay`), against a plain read of
//!   the log.
//! - [`footprint`]: idle memory of each service binary.
//! - [`console`]: the review console's page server time and page weight
//!   (`sextant-bench --console`).
//! - [`webhook_timing`]: whether a webhook 401's time tells a client with a
//!   secret from one without and from no client, against the time's
//!   difference from itself.
//! - [`load`]: the load generators and latency percentiles they share;
//!   [`process`]: the service binaries run as child processes.
//!
//! Targets are what docs/benchmarks.md promises; the harness measures and reports
//! them, it never asserts them.

pub mod commands;
pub mod console;
pub mod context_read;
pub mod floor;
pub mod footprint;
pub mod freshness;
pub mod import;
pub mod ingest;
pub mod load;
pub mod process;
pub mod replay;
pub mod reports;
pub mod webhook_timing;

use serde::Serialize;

pub use ingest::{ingest_commit_only, ingest_end_to_end, naive_cqrs_es, raw_insert};

/// One figure, beside the baseline it is judged against.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub workload: String,
    pub metric: String,
    pub value: f64,
    pub unit: String,
    pub baseline: Option<String>,
    pub baseline_value: Option<f64>,
    pub ratio: Option<f64>,
    /// What docs/benchmarks.md promises for it. Not written to `results.json`,
    /// whose fields are fixed by the operating contract; shown in the table.
    #[serde(skip)]
    pub target: Option<Target>,
}

impl Figure {
    pub fn new(workload: &str, metric: &str, value: f64, unit: &str) -> Self {
        Self {
            workload: workload.into(),
            metric: metric.into(),
            value,
            unit: unit.into(),
            baseline: None,
            baseline_value: None,
            ratio: None,
            target: None,
        }
    }

    pub fn against(mut self, baseline: &str, baseline_value: f64) -> Self {
        self.baseline = Some(baseline.into());
        self.baseline_value = Some(baseline_value);
        self.ratio = (baseline_value > 0.0).then(|| self.value / baseline_value);
        self
    }

    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    /// Whether the figure meets its target, in words (`None` without one).
    pub fn verdict(&self) -> Option<String> {
        self.target.map(|t| t.verdict(self))
    }
}

/// A promise a figure is judged by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// The ratio to the baseline is at least this.
    RatioAtLeast(f64),
    /// The ratio to the baseline is at most this; the name says what shape
    /// of growth that stands for ("flat", "linear").
    RatioAtMost(f64, &'static str),
    /// The value is below this, in the figure's unit.
    Below(f64),
    /// The value is at least this, in the figure's unit.
    AtLeast(f64),
    /// The ratio to the baseline lies within 1 ± this: the two cannot be
    /// told apart.
    Indistinguishable(f64),
}

impl Target {
    pub fn met(&self, figure: &Figure) -> bool {
        match *self {
            Target::RatioAtLeast(limit) => figure.ratio.is_some_and(|r| r >= limit),
            Target::RatioAtMost(limit, _) => figure.ratio.is_some_and(|r| r <= limit),
            Target::Below(limit) => figure.value < limit,
            Target::AtLeast(limit) => figure.value >= limit,
            Target::Indistinguishable(within) => {
                figure.ratio.is_some_and(|r| (r - 1.0).abs() <= within)
            }
        }
    }

    /// "≥ 4× naive_cqrs_es: met", "< 25 ms: missed by 3.1 ms", …
    pub fn verdict(&self, figure: &Figure) -> String {
        let met = self.met(figure);
        let ratio = figure.ratio.map(|r| format!("{r:.2}×")).unwrap_or_default();
        let baseline = figure.baseline.as_deref().unwrap_or("baseline");
        match *self {
            Target::RatioAtLeast(limit) if met => format!("≥ {limit}× {baseline}: met"),
            Target::RatioAtLeast(limit) => format!("≥ {limit}× {baseline}: missed ({ratio})"),
            Target::RatioAtMost(limit, shape) if met => format!("{shape} (≤ {limit}×): met"),
            Target::RatioAtMost(limit, shape) => format!("{shape} (≤ {limit}×): missed ({ratio})"),
            Target::Below(limit) if met => format!("< {limit} {}: met", figure.unit),
            Target::Below(limit) => format!(
                "< {limit} {unit}: missed by {} {unit}",
                number(figure.value - limit),
                unit = figure.unit
            ),
            Target::AtLeast(limit) if met => format!("≥ {limit} {}: met", figure.unit),
            Target::AtLeast(limit) => format!(
                "≥ {limit} {unit}: missed by {} {unit}",
                number(limit - figure.value),
                unit = figure.unit
            ),
            Target::Indistinguishable(within) if met => {
                format!("indistinguishable (1 ± {within:.2}): met")
            }
            Target::Indistinguishable(within) => {
                format!("distinguishable (1 ± {within:.2}): missed ({ratio})")
            }
        }
    }
}

/// Small values keep two decimals (latencies in ms), large ones one.
fn number(v: f64) -> String {
    if v.abs() < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

/// The workloads, by the names `--only` takes and figures carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Workload {
    /// Batch ingest end to end and write path alone.
    BatchIngest,
    /// Single sends over HTTP, 16 concurrent clients.
    SingleCommands,
    /// Command answer to query visibility under a background load.
    Freshness,
    /// `sextant-query replay` over a large seeded log.
    Replay,
    /// An agent's context view at a fixed request rate.
    ContextRead,
    /// Context command latency and replay time as history grows.
    Growth,
    /// Idle memory of each service.
    Footprint,
    /// `sextant import sends` of a CSV export against batch ingest.
    Import,
    /// A webhook 401's time for a client with a secret, one without, and
    /// no client.
    WebhookTiming,
}

impl Workload {
    pub const ALL: [Workload; 9] = [
        Workload::BatchIngest,
        Workload::SingleCommands,
        Workload::Freshness,
        Workload::Replay,
        Workload::ContextRead,
        Workload::Growth,
        Workload::Footprint,
        Workload::Import,
        Workload::WebhookTiming,
    ];

    /// Whether it runs the release service binaries as child processes.
    pub fn needs_binaries(&self) -> bool {
        matches!(
            self,
            Workload::Replay | Workload::Growth | Workload::Footprint
        )
    }
}

/// How big a run is.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Events the end-to-end ingest pushes.
    pub ingest_events: usize,
    /// Events the naive baseline executes.
    pub naive_events: usize,
    pub posters: usize,
    /// Concurrent clients posting single commands, each its own client.
    pub command_clients: usize,
    /// Single commands each of them posts.
    pub commands_per_client: usize,
    /// Freshness probes, one after another.
    pub freshness_probes: usize,
    /// Events per second the freshness background load offers.
    pub background_events_per_second: f64,
    /// Requests per second the context read offers.
    pub context_read_rate: f64,
    /// How long each context read path is driven.
    pub context_read_seconds: u64,
    /// Context versions the growth workload compares against 10.
    pub growth_versions: usize,
    /// Events in the log the replay rebuilds from.
    pub replay_events: usize,
    /// The smaller log the growth workload compares replay time against.
    pub replay_events_small: usize,
    /// Timed rounds of the webhook timing (one delivery to each of its four
    /// targets per round).
    pub webhook_rounds: usize,
}

impl Scale {
    /// Under 3 minutes for every workload together.
    pub fn quick() -> Self {
        Self {
            ingest_events: 60_000,
            naive_events: 2_000,
            posters: 2,
            command_clients: 16,
            commands_per_client: 150,
            freshness_probes: 200,
            background_events_per_second: 5_000.0,
            context_read_rate: 2_000.0,
            context_read_seconds: 3,
            growth_versions: 1_000,
            replay_events: 200_000,
            replay_events_small: 20_000,
            webhook_rounds: 2_000,
        }
    }

    /// Sized so the ingest runs at least 60 s at the target rate, and the
    /// replay log is ten million events.
    pub fn full() -> Self {
        Self {
            ingest_events: 1_600_000,
            naive_events: 10_000,
            posters: 2,
            command_clients: 16,
            commands_per_client: 2_000,
            freshness_probes: 2_000,
            background_events_per_second: 5_000.0,
            context_read_rate: 2_000.0,
            context_read_seconds: 30,
            growth_versions: 10_000,
            replay_events: 10_000_000,
            replay_events_small: 1_000_000,
            webhook_rounds: 10_000,
        }
    }
}

/// Runs the chosen workloads in a fixed order; answers every figure.
pub async fn run(only: &[Workload], scale: Scale) -> anyhow::Result<Vec<Figure>> {
    if only.iter().any(Workload::needs_binaries) {
        process::check_binaries()?;
    }
    let mut figures = Vec::new();
    // Growth's replay half, when the replay workload measured it on its
    // own seeded log: shown with the rest of growth.
    let mut replay_growth = None;
    for workload in Workload::ALL {
        if !only.contains(&workload) {
            continue;
        }
        tracing::info!(?workload, "running");
        let started = std::time::Instant::now();
        match workload {
            Workload::BatchIngest => figures.extend(ingest::figures(scale).await?),
            Workload::SingleCommands => figures.extend(commands::single_figures(scale).await?),
            Workload::Freshness => figures.extend(freshness::figures(scale).await?),
            Workload::Replay => {
                let growth = only.contains(&Workload::Growth);
                let (replay, growth) = replay::figures(scale, growth).await?;
                figures.extend(replay);
                replay_growth = growth;
            }
            Workload::ContextRead => figures.extend(context_read::figures(scale).await?),
            Workload::Growth => {
                figures.extend(commands::growth_figures(scale).await?);
                figures.extend(match replay_growth.take() {
                    Some(growth) => growth,
                    None => replay::growth_figures(scale).await?,
                });
            }
            Workload::Footprint => figures.extend(footprint::figures().await?),
            Workload::Import => figures.extend(import::figures(scale).await?),
            Workload::WebhookTiming => figures.extend(webhook_timing::figures(scale).await?),
        }
        tracing::info!(?workload, elapsed = ?started.elapsed(), "done");
    }
    Ok(figures)
}

/// Writes the figures to `path` (the JSON array of the operating contract)
/// and answers a markdown table of them with a target column, and a line
/// counting the targets met.
pub fn report(figures: &[Figure], path: &std::path::Path) -> anyhow::Result<String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(figures)?)?;
    let dash = || "—".to_owned();
    let mut table = String::from(
        "| workload | metric | value | unit | baseline | baseline value | ratio | target |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for f in figures {
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            f.workload,
            f.metric,
            number(f.value),
            f.unit,
            f.baseline.clone().unwrap_or_else(dash),
            f.baseline_value.map(number).unwrap_or_else(dash),
            f.ratio.map(|r| format!("{r:.2}")).unwrap_or_else(dash),
            f.verdict().unwrap_or_else(dash),
        ));
    }
    let judged: Vec<&Figure> = figures.iter().filter(|f| f.target.is_some()).collect();
    let met = judged
        .iter()
        .filter(|f| f.target.is_some_and(|t| t.met(f)))
        .count();
    table.push_str(&format!("\ntargets met: {met} of {}\n", judged.len()));
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_say_met_or_by_how_much_missed() {
        let p99 = Figure::new("w", "p99", 28.1, "ms").target(Target::Below(25.0));
        assert_eq!(p99.verdict().as_deref(), Some("< 25 ms: missed by 3.10 ms"));
        let rate = Figure::new("w", "rate", 50.0, "events/s")
            .against("naive", 10.0)
            .target(Target::RatioAtLeast(4.0));
        assert_eq!(rate.verdict().as_deref(), Some("≥ 4× naive: met"));
        let flat = Figure::new("w", "ms", 3.0, "ms")
            .against("at_10", 1.0)
            .target(Target::RatioAtMost(1.5, "flat"));
        assert_eq!(
            flat.verdict().as_deref(),
            Some("flat (≤ 1.5×): missed (3.00×)")
        );
        let floor =
            Figure::new("w", "rate", 10_400.0, "events/s").target(Target::AtLeast(25_000.0));
        assert_eq!(
            floor.verdict().as_deref(),
            Some("≥ 25000 events/s: missed by 14600.0 events/s")
        );
        let same = Figure::new("w", "median", 104.0, "µs")
            .against("a", 100.0)
            .target(Target::Indistinguishable(0.12));
        assert_eq!(
            same.verdict().as_deref(),
            Some("indistinguishable (1 ± 0.12): met")
        );
        let apart = Figure::new("w", "median", 130.0, "µs")
            .against("a", 100.0)
            .target(Target::Indistinguishable(0.12));
        assert_eq!(
            apart.verdict().as_deref(),
            Some("distinguishable (1 ± 0.12): missed (1.30×)")
        );
    }
}
