//! Replay: `sextant-query replay` rebuilding every projection from a large
//! event log, as an operator runs it (its own process, so its peak memory
//! is its own), against a plain sequential read of the same log.
//!
//! The log is seeded with a few thousand real events made through the API
//! (clients, profiles, resources, context updates and approvals,
//! experiments, sends, outcomes), then copied in SQL until it holds the
//! size wanted. Each copy rewrites every UUID (aggregate ids, client ids,
//! send ids, update ids, …) with a copy-specific first group, so a copy is
//! a history of other clients with the same shape and valid payloads.

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::ingest::{outcomes_body, post_batch, sends_body};
use super::load::send_json;
use super::process::{service, watch_peak_rss, Binary, BUILD_HINT, MIB};
use super::{Figure, Scale, Target};
use crate::{Parts, Running, TestEnv, OPERATOR_KEY};

/// Clients in the seeded history, and the sends (each with an outcome)
/// each of them records: about 3,300 events in all.
const SEED_CLIENTS: usize = 4;
const SEED_SENDS: usize = 400;

/// One replay run: how many events it rebuilt from, how long the process
/// took, its peak resident memory in bytes.
#[derive(Debug, Clone, Copy)]
pub struct ReplayRun {
    pub events: usize,
    pub elapsed: Duration,
    pub peak_rss: u64,
}

impl ReplayRun {
    fn seconds_per_million(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1e6 / self.events as f64
    }
}

/// The replay figures on a log of `replay_events`; with `growth`, also the
/// growth figures (after a replay of a log of `replay_events_small`, which
/// the same log is first grown to).
pub async fn figures(
    scale: Scale,
    growth: bool,
) -> anyhow::Result<(Vec<Figure>, Option<Vec<Figure>>)> {
    let sizes: &[usize] = if growth {
        &[scale.replay_events_small, scale.replay_events]
    } else {
        &[scale.replay_events]
    };
    let (runs, sequential) = series(sizes, true).await?;
    let (Some(run), Some(sequential)) = (runs.last(), sequential) else {
        anyhow::bail!("no replay run");
    };
    let figures = vec![
        Figure::new("replay", "events", run.events as f64, "events"),
        Figure::new("replay", "seconds", run.elapsed.as_secs_f64(), "s"),
        Figure::new(
            "replay",
            "events_per_second",
            run.events as f64 / run.elapsed.as_secs_f64(),
            "events/s",
        )
        .against("sequential_read", sequential)
        .target(Target::RatioAtLeast(0.25)),
        Figure::new("replay", "peak_rss", run.peak_rss as f64 / MIB, "MiB")
            .target(Target::Below(512.0)),
    ];
    let growth = if growth {
        Some(growth_of(&runs)?)
    } else {
        None
    };
    Ok((figures, growth))
}

/// Replay time on a log of `replay_events_small` and of `replay_events`.
pub async fn growth_figures(scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let (runs, _) = series(&[scale.replay_events_small, scale.replay_events], false).await?;
    growth_of(&runs)
}

fn growth_of(runs: &[ReplayRun]) -> anyhow::Result<Vec<Figure>> {
    let [small, big] = runs else {
        anyhow::bail!("growth needs two replay runs, not {}", runs.len());
    };
    let seconds = |run: &ReplayRun| {
        Figure::new(
            "growth",
            &format!("replay_seconds_at_{}_events", short(run.events)),
            run.elapsed.as_secs_f64(),
            "s",
        )
    };
    Ok(vec![
        seconds(small),
        seconds(big),
        Figure::new(
            "growth",
            &format!("replay_seconds_per_million_events_at_{}", short(big.events)),
            big.seconds_per_million(),
            "s/M events",
        )
        .against(
            &format!("replay_per_million_at_{}", short(small.events)),
            small.seconds_per_million(),
        )
        .target(Target::RatioAtMost(1.25, "linear")),
    ])
}

/// 20k, 1M, 10M, …
fn short(n: usize) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

/// Seeds one log, grows it to each of `sizes` in turn and replays it at
/// each; with `sequential`, also reads the largest log sequentially first.
/// Answers the runs and the sequential read's rows/s.
async fn series(
    sizes: &[usize],
    sequential: bool,
) -> anyhow::Result<(Vec<ReplayRun>, Option<f64>)> {
    let env = TestEnv::new().await;
    let mut log = SeededLog::new(&env).await?;
    let mut runs = Vec::new();
    let mut read = None;
    for (i, &size) in sizes.iter().enumerate() {
        log.grow_to(size).await?;
        if sequential && i + 1 == sizes.len() {
            read = Some(sequential_read(&env.pool).await?);
        }
        runs.push(replay(&env, log.events).await?);
        tracing::info!(?runs, "replayed");
    }
    Ok((runs, read))
}

/// The log being grown: the real history it copies and how far it is.
struct SeededLog<'a> {
    pool: &'a PgPool,
    /// The last position of the real history.
    seed_head: i64,
    seed_events: usize,
    events: usize,
    next_copy: i32,
}

impl<'a> SeededLog<'a> {
    /// Makes the real history through the API.
    async fn new(env: &'a TestEnv) -> anyhow::Result<Self> {
        let app = env.start_with(Parts::apis_only()).await;
        for c in 0..SEED_CLIENTS {
            seed_client(&app, c).await?;
        }
        app.stop().await;
        let seed_head = sextant_adapters::db::head_position(&env.pool).await?;
        let seed_events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&env.pool)
            .await?;
        tracing::info!(seed_events, seed_head, "seeded a real history");
        Ok(Self {
            pool: &env.pool,
            seed_head,
            seed_events: seed_events as usize,
            events: seed_events as usize,
            next_copy: 1,
        })
    }

    /// Copies the real history (the last copy cut short) until the log
    /// holds `target` events. The log's triggers are off meanwhile (this is
    /// the only writer, and nothing is to be relayed), and the copies are
    /// marked as relayed after.
    async fn grow_to(&mut self, target: usize) -> anyhow::Result<()> {
        let started = Instant::now();
        sqlx::query("ALTER TABLE events DISABLE TRIGGER USER")
            .execute(self.pool)
            .await?;
        while self.events < target {
            let rows = self.seed_events.min(target - self.events);
            let copied = sqlx::query(COPY_HISTORY)
                .bind(self.next_copy)
                .bind(UUID_PATTERN)
                .bind(self.seed_head)
                .bind(rows as i64)
                .execute(self.pool)
                .await?
                .rows_affected();
            anyhow::ensure!(copied == rows as u64, "copied {copied} of {rows} events");
            self.events += rows;
            self.next_copy += 1;
        }
        for statement in [
            "ALTER TABLE events ENABLE TRIGGER USER",
            MARK_RELAYED,
            // Both readers then find hint bits set and statistics fresh.
            "VACUUM (ANALYZE) events",
        ] {
            sqlx::query(statement).execute(self.pool).await?;
        }
        tracing::info!(events = self.events, elapsed = ?started.elapsed(), "log grown");
        Ok(())
    }
}

/// Nothing left for a relay: its cursor at the head.
const MARK_RELAYED: &str =
    "UPDATE relay_cursor SET position = (SELECT COALESCE(max(global_position), 0) FROM events)";

/// A UUID, its first group apart.
const UUID_PATTERN: &str = "[0-9a-f]{8}(-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})";

/// Copy `$1` of the real history (positions up to `$3`, the first `$4`
/// events), every UUID's first group replaced by the copy number. Events
/// are inserted in position order, so each copy is a valid history.
const COPY_HISTORY: &str = r"
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT aggregate_type,
       regexp_replace(aggregate_id, $2, lpad(to_hex($1::int), 8, '0') || '\1', 'g'),
       sequence, event_type, event_version,
       regexp_replace(payload::text, $2, lpad(to_hex($1::int), 8, '0') || '\1', 'g')::jsonb,
       regexp_replace(metadata::text, $2, lpad(to_hex($1::int), 8, '0') || '\1', 'g')::jsonb
FROM events
WHERE global_position <= $3
ORDER BY global_position
LIMIT $4";

/// One client's real history: profile, resource, webhook, context updates
/// (applied, pending then approved), an experiment, sends and outcomes.
async fn seed_client(app: &Running, c: usize) -> anyhow::Result<()> {
    let (client, _) = app.register_client(&format!("Seed {c}")).await;
    let calls: [(Method, &str, Value); 5] = [
        (
            Method::PATCH,
            "",
            json!({ "industry": "saas", "permission_mode": "co_pilot", "data_sharing_consent": true }),
        ),
        (
            Method::POST,
            "/resources",
            json!({ "kind": "mailbox", "address": "sam@acme-mail.com", "daily_cap": 50 }),
        ),
        (
            Method::PUT,
            "/webhooks/smartlead",
            json!({ "secret": "a-webhook-secret-of-some-length" }),
        ),
        (
            Method::POST,
            "/context/updates",
            json!({ "source": "manual", "rationale": "kick-off notes",
                    "patch": { "icp": { "industries": ["fintech"] }, "messaging": { "tone": "plain" } } }),
        ),
        (
            Method::POST,
            "/experiments",
            json!({ "name": "subject length", "metric": "reply",
                    "variants": [{ "id": "short", "weight": 1 }, { "id": "long", "weight": 1 }] }),
        ),
    ];
    let url = |rest: &str| format!("{}/v1/clients/{client}{rest}", app.command_url);
    for (method, path, body) in calls {
        send_json(
            &app.http,
            method,
            url(path),
            OPERATOR_KEY,
            serde_json::to_vec(&body)?,
        )
        .await?;
    }
    let suggestion = json!({ "source": "agent_suggestion", "rationale": "replies were warmer",
                             "patch": { "playbook": { "subject_patterns": ["question"] } }, "confidence": 0.5 });
    let proposed = send_json(
        &app.http,
        Method::POST,
        url("/context/updates"),
        OPERATOR_KEY,
        serde_json::to_vec(&suggestion)?,
    )
    .await?;
    let update: Uuid = serde_json::from_value(proposed["update_id"].clone())?;
    send_json(
        &app.http,
        Method::POST,
        url(&format!("/context/updates/{update}/approve")),
        OPERATOR_KEY,
        serde_json::to_vec(&json!({ "note": "good" }))?,
    )
    .await?;
    let from = c * SEED_SENDS;
    post_batch(app, client, "sends", sends_body(from, SEED_SENDS)).await?;
    post_batch(app, client, "outcomes", outcomes_body(from, SEED_SENDS)).await?;
    Ok(())
}

/// The baseline: every payload of the log, in position order, streamed to
/// this process (rows received, not parsed: the least any replay pays).
/// Answers rows/s.
async fn sequential_read(pool: &PgPool) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut rows = sqlx::query("SELECT payload FROM events ORDER BY global_position").fetch(pool);
    let mut n = 0u64;
    while rows.try_next().await?.is_some() {
        n += 1;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    tracing::info!(rows = n, rate, "sequential read");
    Ok(rate)
}

/// Runs `sextant-query replay` (every projection) against `env`'s
/// database, watching its peak memory.
async fn replay(env: &TestEnv, events: usize) -> anyhow::Result<ReplayRun> {
    let mut command = service(Binary::Query, env);
    command.arg("replay").stderr(std::process::Stdio::piped());
    let started = Instant::now();
    let child = command.spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| anyhow::anyhow!("replay exited at once"))?;
    let stop = CancellationToken::new();
    let watcher = tokio::spawn(watch_peak_rss(pid, stop.clone()));
    let output = child.wait_with_output().await?;
    let elapsed = started.elapsed();
    stop.cancel();
    let peak_rss = watcher.await?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        anyhow::bail!(
            "sextant-query replay failed ({}; if stale, {BUILD_HINT}):\n{}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(ReplayRun {
        events,
        elapsed,
        peak_rss,
    })
}
