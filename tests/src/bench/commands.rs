//! Single commands over HTTP: what an integrator posting one send at a time
//! gets, from many clients at once; and whether a context command slows as
//! the context's history grows (it should not: the aggregate is
//! snapshotted).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use super::ingest::{naive_cqrs_es, send_item};
use super::load::{closed_loop, send_json, Latencies};
use super::{Figure, Scale, Target};
use crate::{Running, TestEnv, OPERATOR_KEY};

/// `command_clients` tasks, each with a client of its own, post single
/// sends (one item per POST) against the full system (relay and projectors
/// running); cqrs-es executing the same sends from as many tasks is the
/// baseline.
pub async fn single_figures(scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let tasks = scale.command_clients;
    let naive = naive_cqrs_es(scale.naive_events, tasks).await?;
    let env = TestEnv::new().await;
    let app = Arc::new(env.start().await);
    let mut clients = Vec::with_capacity(tasks);
    for i in 0..tasks {
        clients.push(app.register_client(&format!("Bench {i}")).await.0);
    }
    let clients = Arc::new(clients);
    let posting = app.clone();
    let load = closed_loop(tasks, tasks * scale.commands_per_client, move |task, n| {
        let (app, clients) = (posting.clone(), clients.clone());
        async move {
            let url = format!("{}/v1/clients/{}/sends", app.command_url, clients[task]);
            let body = serde_json::to_vec(&send_item(n))?;
            send_json(&app.http, Method::POST, url, OPERATOR_KEY, body).await?;
            Ok(1)
        }
    })
    .await?;
    if let Ok(app) = Arc::try_unwrap(app) {
        app.stop().await;
    }
    let workload = "single_commands";
    let mut figures = vec![Figure::new(
        workload,
        "commands_per_second",
        load.per_second(),
        "commands/s",
    )
    .against(&format!("naive_cqrs_es_{tasks}_tasks"), naive)
    .target(Target::RatioAtLeast(4.0))];
    figures.extend(load.latencies.figures(workload, "command", Some(25.0)));
    Ok(figures)
}

/// Commands timed at each history length, for a median.
const GROWTH_SAMPLE: usize = 20;

/// Context command latency (a `manual` update, applied at once: one
/// command, one new version) with 10 versions behind it and with
/// `growth_versions` behind it.
pub async fn growth_figures(scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Growth").await;
    let small = 10;
    let mut version = 0;
    while version < small {
        context_command(&app, client, version).await?;
        version += 1;
    }
    let at_small = sample(&app, client, version).await?;
    version += GROWTH_SAMPLE;
    while version < scale.growth_versions {
        context_command(&app, client, version).await?;
        version += 1;
    }
    let at_big = sample(&app, client, version).await?;
    app.stop().await;
    let (small_ms, big_ms) = (at_small.percentile_ms(50.0), at_big.percentile_ms(50.0));
    let big = scale.growth_versions;
    Ok(vec![
        Figure::new(
            "growth",
            &format!("context_command_p50_ms_at_{small}_versions"),
            small_ms,
            "ms",
        ),
        Figure::new(
            "growth",
            &format!("context_command_p50_ms_at_{big}_versions"),
            big_ms,
            "ms",
        )
        .against(&format!("context_command_at_{small}_versions"), small_ms)
        .target(Target::RatioAtMost(1.5, "flat")),
    ])
}

/// `GROWTH_SAMPLE` context commands from row `from` on, timed.
async fn sample(app: &Running, client: Uuid, from: usize) -> anyhow::Result<Latencies> {
    let mut latencies = Latencies::default();
    for n in from..from + GROWTH_SAMPLE {
        latencies.push(context_command(app, client, n).await?);
    }
    Ok(latencies)
}

/// One context command: a manual update setting the same playbook row to
/// `n`, so the document stays the same size while its history grows.
async fn context_command(app: &Running, client: Uuid, n: usize) -> anyhow::Result<Duration> {
    let url = format!("{}/v1/clients/{client}/context/updates", app.command_url);
    let body = serde_json::to_vec(&json!({
        "source": "manual", "patch": { "playbook": { "bench_row": n } },
        "rationale": "growth benchmark"
    }))?;
    let at = Instant::now();
    let answer = send_json(&app.http, Method::POST, url, OPERATOR_KEY, body).await?;
    let took = at.elapsed();
    anyhow::ensure!(answer["status"] == "applied", "not applied: {answer}");
    Ok(took)
}
