//! Freshness: how long after a command's answer a query reflects it, while
//! a background load keeps the relay and projectors busy. A probe changes a
//! client's profile, takes the position from the answer, then polls the
//! client's read until its `Sextant-Position` reaches that position.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::ingest::{outcomes_body, post_batch, sends_body};
use super::load::{expect_success, open_loop, position_field, position_header, send_json};
use super::load::{Latencies, Load};
use super::{Figure, Scale};
use crate::{Running, TestEnv, OPERATOR_KEY};

/// Items in one background batch; batches alternate sends and the
/// outcomes of the sends just posted.
const HALF: usize = 500;
/// A probe not visible by then is counted late, at this latency.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Between probes, so they sample the load rather than follow each other.
const PROBE_GAP: Duration = Duration::from_millis(10);
/// Time allowed per probe on average, for all of them together.
const PROBE_BUDGET: Duration = Duration::from_millis(75);
/// The load runs this long before the first probe.
const WARM_UP: Duration = Duration::from_secs(1);

pub async fn figures(scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let env = TestEnv::new().await;
    let app = Arc::new(env.start().await);
    let (load_client, _) = app.register_client("Load").await;
    let (probe_client, registered) = app.register_client("Probe").await;
    anyhow::ensure!(
        visible(&app, probe_client, registered, PROBE_TIMEOUT).await?,
        "the probe client never showed in the query API"
    );

    let stop = CancellationToken::new();
    let background = tokio::spawn(background_load(
        app.clone(),
        load_client,
        scale.background_events_per_second,
        stop.clone(),
    ));
    tokio::time::sleep(WARM_UP).await;
    // Bounded, so a system that cannot keep up still ends the run.
    let budget = PROBE_BUDGET * scale.freshness_probes as u32;
    let started = Instant::now();
    let mut latencies = Latencies::default();
    let mut late = 0;
    for probe in 0..scale.freshness_probes {
        if started.elapsed() > budget {
            tracing::warn!(probe, "freshness probes out of time");
            break;
        }
        let url = format!("{}/v1/clients/{probe_client}", app.command_url);
        let region = if probe % 2 == 0 { "NZ" } else { "AU" };
        let body = serde_json::to_vec(&json!({ "region": region }))?;
        let answer = send_json(&app.http, Method::PATCH, url, OPERATOR_KEY, body).await?;
        let position = position_field(&answer)?;
        let answered = Instant::now();
        if !visible(&app, probe_client, position, PROBE_TIMEOUT).await? {
            late += 1;
        }
        latencies.push(answered.elapsed());
        tokio::time::sleep(PROBE_GAP).await;
    }
    stop.cancel();
    let background = background.await?;
    if let Ok(app) = Arc::try_unwrap(app) {
        app.stop().await;
    }

    let workload = "freshness";
    let mut figures = latencies.figures(workload, "command_to_query", Some(100.0));
    figures.push(Figure::new(
        workload,
        "background_events_per_second",
        background.per_second(),
        "events/s",
    ));
    figures.push(Figure::new(
        workload,
        "probes",
        latencies.len() as f64,
        "probes",
    ));
    figures.push(Figure::new(
        workload,
        &format!("probes_not_visible_within_{}s", PROBE_TIMEOUT.as_secs()),
        late as f64,
        "probes",
    ));
    Ok(figures)
}

/// Sends and outcomes posted on a clock (open loop) at about
/// `events_per_second`, until `stop`; answers the events recorded.
async fn background_load(
    app: Arc<Running>,
    client: Uuid,
    events_per_second: f64,
    stop: CancellationToken,
) -> Load {
    open_loop(events_per_second / HALF as f64, stop, move |n| {
        let app = app.clone();
        async move {
            let from = (n / 2) as usize * HALF;
            if n % 2 == 0 {
                post_batch(&app, client, "sends", sends_body(from, HALF)).await
            } else {
                post_batch(&app, client, "outcomes", outcomes_body(from, HALF)).await
            }
        }
    })
    .await
}

/// Polls the client's read until the read model has reached `position`;
/// answers whether it did within `timeout`.
async fn visible(
    app: &Running,
    client: Uuid,
    position: i64,
    timeout: Duration,
) -> anyhow::Result<bool> {
    let started = Instant::now();
    let url = format!("{}/v1/clients/{client}", app.query_url);
    loop {
        let request = app.http.get(&url).bearer_auth(OPERATOR_KEY);
        if let Ok((headers, _)) = expect_success(request).await {
            if position_header(&headers)? >= position {
                return Ok(true);
            }
        }
        if started.elapsed() > timeout {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
