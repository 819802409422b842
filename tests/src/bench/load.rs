//! Load generators and the latency percentiles they answer, shared by every
//! workload so each measures the same way.
//!
//! - [`closed_loop`]: a fixed number of tasks, each issuing its next call
//!   when the last one answered: throughput under full concurrency.
//! - [`open_loop`]: calls started on a clock at a fixed rate whatever the
//!   answers do, so a slow answer does not hold the next call back (no
//!   coordinated omission): latency at a given offered load.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Figure, Target};

/// Latencies of calls, for percentiles.
#[derive(Debug, Clone, Default)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    pub fn extend(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The nearest-rank percentile (`p` in 0..=100); zero when empty.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    pub fn percentile_ms(&self, p: f64) -> f64 {
        self.percentile(p).as_secs_f64() * 1000.0
    }

    /// p50 and p99 figures named `<what>_p50_ms` / `<what>_p99_ms`; the p99
    /// judged against `p99_below_ms` when given.
    pub fn figures(&self, workload: &str, what: &str, p99_below_ms: Option<f64>) -> Vec<Figure> {
        let p50 = Figure::new(
            workload,
            &format!("{what}_p50_ms"),
            self.percentile_ms(50.0),
            "ms",
        );
        let mut p99 = Figure::new(
            workload,
            &format!("{what}_p99_ms"),
            self.percentile_ms(99.0),
            "ms",
        );
        if let Some(limit) = p99_below_ms {
            p99 = p99.target(Target::Below(limit));
        }
        vec![p50, p99]
    }
}

/// What a load run did: each call's latency, the sum of what the calls
/// answered (events recorded, say), the calls that failed, and how long it
/// ran.
#[derive(Debug, Default)]
pub struct Load {
    pub latencies: Latencies,
    pub done: u64,
    pub errors: u64,
    pub elapsed: Duration,
}

impl Load {
    /// Counts one open-loop call's answer.
    fn record(&mut self, answer: Result<(Duration, anyhow::Result<u64>), tokio::task::JoinError>) {
        match answer {
            Ok((latency, Ok(done))) => {
                self.latencies.push(latency);
                self.done += done;
            }
            Ok((_, Err(error))) => {
                if self.errors == 0 {
                    tracing::warn!(%error, "open-loop call failed");
                }
                self.errors += 1;
            }
            Err(error) => {
                tracing::warn!(%error, "open-loop task failed");
                self.errors += 1;
            }
        }
    }

    /// `done` per second of the run.
    pub fn per_second(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// `tasks` tasks share `total` calls, numbered `0..total`; each task issues
/// its next call once the last answered. `call(task, n)` answers how much
/// it did. The first failure ends the run with that error.
pub async fn closed_loop<F, Fut>(tasks: usize, total: usize, call: F) -> anyhow::Result<Load>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<u64>> + Send + 'static,
{
    let call = Arc::new(call);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for task in 0..tasks {
        let (call, next) = (call.clone(), next.clone());
        workers.spawn(async move {
            let mut latencies = Latencies::default();
            let mut done = 0;
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= total {
                    return Ok::<_, anyhow::Error>((latencies, done));
                }
                let at = Instant::now();
                done += call(task, n).await?;
                latencies.push(at.elapsed());
            }
        });
    }
    let mut load = Load::default();
    while let Some(worker) = workers.join_next().await {
        let (latencies, done) = worker??;
        load.latencies.extend(latencies);
        load.done += done;
    }
    load.elapsed = started.elapsed();
    Ok(load)
}

/// Starts `call(n)` for n = 0, 1, … at `rate` per second until `stop`, each
/// on its own task, then waits for those still answering. A call's latency
/// runs from its start to its answer; failures are counted, not fatal (an
/// overloaded system is what an open loop is there to show).
pub async fn open_loop<F, Fut>(rate: f64, stop: CancellationToken, call: F) -> Load
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = anyhow::Result<u64>> + Send + 'static,
{
    let started = Instant::now();
    // The clock ticks every millisecond and starts whatever is due by then:
    // rates above 1,000/s need several calls per tick.
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut issued = 0u64;
    let mut running = JoinSet::new();
    let mut load = Load::default();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let due = (started.elapsed().as_secs_f64() * rate) as u64;
        while issued < due {
            let answer = call(issued);
            running.spawn(async move {
                let at = Instant::now();
                let result = answer.await;
                (at.elapsed(), result)
            });
            issued += 1;
        }
        while let Some(answer) = running.try_join_next() {
            load.record(answer);
        }
    }
    while let Some(answer) = running.join_next().await {
        load.record(answer);
    }
    load.elapsed = started.elapsed();
    load
}

/// An [`open_loop`] that stops by itself after `duration`.
pub async fn open_loop_for<F, Fut>(rate: f64, duration: Duration, call: F) -> Load
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = anyhow::Result<u64>> + Send + 'static,
{
    let stop = CancellationToken::new();
    let timer = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(duration).await;
        timer.cancel();
    });
    open_loop(rate, stop, call).await
}

/// An HTTP answer that must be a success: its headers and JSON body (Null
/// when the body is empty or not JSON).
pub async fn expect_success(
    request: reqwest::RequestBuilder,
) -> anyhow::Result<(HeaderMap, Value)> {
    let response = request.send().await?;
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await?;
    anyhow::ensure!(status.is_success(), "answered {status}: {text}");
    Ok((headers, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// POSTs (or PATCHes…) a JSON body as `key`; answers the JSON answer.
pub async fn send_json(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    key: &str,
    body: Vec<u8>,
) -> anyhow::Result<Value> {
    let request = http
        .request(method, url)
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body);
    Ok(expect_success(request).await?.1)
}

/// The `Sextant-Position` header of an answer.
pub fn position_header(headers: &HeaderMap) -> anyhow::Result<i64> {
    headers
        .get("sextant-position")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no Sextant-Position header"))
}

/// The `position` field of a command's answer.
pub fn position_field(answer: &Value) -> anyhow::Result<i64> {
    answer["position"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no position in {answer}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut l = Latencies::default();
        for ms in 1..=100 {
            l.push(Duration::from_millis(ms));
        }
        assert_eq!(l.percentile(50.0), Duration::from_millis(50));
        assert_eq!(l.percentile(99.0), Duration::from_millis(99));
        assert_eq!(l.percentile(100.0), Duration::from_millis(100));
        assert_eq!(Latencies::default().percentile(99.0), Duration::ZERO);
    }
}
