//! The benchmark harness: workloads against the real system on this
//! machine, each paired with a baseline measured in the same run, written
//! to `target/bench/results.json` (API.md's operating contract).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{Parts, TestEnv, OPERATOR_KEY};

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
        }
    }

    pub fn against(mut self, baseline: &str, baseline_value: f64) -> Self {
        self.baseline = Some(baseline.into());
        self.baseline_value = Some(baseline_value);
        self.ratio = (baseline_value > 0.0).then(|| self.value / baseline_value);
        self
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
}

impl Scale {
    pub fn quick() -> Self {
        Self {
            ingest_events: 100_000,
            naive_events: 2_000,
            posters: 2,
        }
    }

    /// Sized so the ingest runs at least 60 s at the target rate.
    pub fn full() -> Self {
        Self {
            ingest_events: 1_600_000,
            naive_events: 10_000,
            posters: 2,
        }
    }
}

const BATCH: usize = 1000;

fn send_item(i: usize) -> Value {
    json!({
        "provider": "bench", "provider_message_id": format!("m-{i}"),
        "lead": {"email": format!("lead{}@example.com", i % 50_000), "industry": (["fintech", "saas", "health"][i % 3]),
                 "company_size": "11-50", "seniority": (["vp", "director", "c_level"][i % 3]), "region": "AU",
                 "tier": "warm", "score": (i % 100) as u8},
        "channel": "email", "campaign_id": "bench", "step": 1 + (i % 3) as u32,
        "content": {"subject": format!("Quick question {i}?"), "body_words": 60 + (i % 80) as u32,
                    "personalized": i.is_multiple_of(2), "cta": "meeting", "angle": (["compliance", "speed"][i % 2])},
        "context_version": 1, "agent": "email_strategist", "prompt_version": "1",
        "resource": "sam@acme-mail.com", "sent_at": "2026-11-18T09:12:00Z"
    })
}

fn outcome_item(i: usize) -> Value {
    json!({"provider": "bench", "provider_message_id": format!("m-{i}"), "kind": (["delivered", "opened", "replied"][i % 3]),
           "occurred_at": "2026-11-18T15:40:00Z"})
}

/// A batch of `BATCH` items: sends `from..from+BATCH/2` and outcomes of the
/// sends of the previous batch.
fn batch_body(n: usize) -> (Vec<u8>, Vec<u8>) {
    let half = BATCH / 2;
    let sends: Vec<Value> = (n * half..(n + 1) * half).map(send_item).collect();
    let outcomes: Vec<Value> = (n.saturating_sub(1) * half..n.saturating_sub(1) * half + half)
        .map(outcome_item)
        .collect();
    (
        serde_json::to_vec(&json!({ "sends": sends })).unwrap_or_default(),
        serde_json::to_vec(&json!({ "outcomes": outcomes })).unwrap_or_default(),
    )
}

/// Batch ingest end to end: posted over HTTP, committed, relayed to
/// JetStream, applied by every projection. Answers events/s.
pub async fn ingest_end_to_end(scale: Scale) -> anyhow::Result<(f64, f64)> {
    ingest(scale, Parts::all()).await
}

/// The write path alone: no relay, no projectors competing for the CPU.
/// Answers committed events/s.
pub async fn ingest_commit_only(scale: Scale) -> anyhow::Result<f64> {
    Ok(ingest(scale, Parts::apis_only()).await?.1)
}

async fn ingest(scale: Scale, parts: Parts) -> anyhow::Result<(f64, f64)> {
    let env = TestEnv::new().await;
    let app = Arc::new(env.start_with(parts).await);
    let (client, _) = app.register_client("Bench").await;
    let batches = scale.ingest_events / BATCH;
    // Bodies are made before the clock starts: the load generator shares
    // the machine, and its JSON-making is not what is measured.
    let bodies: Arc<Vec<(Vec<u8>, Vec<u8>)>> = Arc::new((0..batches).map(batch_body).collect());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut posters = Vec::new();
    for _ in 0..scale.posters {
        let (app, next, bodies) = (app.clone(), next.clone(), bodies.clone());
        posters.push(tokio::spawn(async move {
            let mut events = 0usize;
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n >= batches {
                    return Ok::<usize, anyhow::Error>(events);
                }
                let (sends, outcomes) = bodies[n].clone();
                for (path, body) in [("sends", sends), ("outcomes", outcomes)] {
                    if n == 0 && path == "outcomes" {
                        continue;
                    }
                    let response = app
                        .http
                        .post(format!("{}/v1/clients/{client}/{path}", app.command_url))
                        .bearer_auth(OPERATOR_KEY)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await?;
                    anyhow::ensure!(
                        response.status().is_success(),
                        "ingest answered {}",
                        response.status()
                    );
                    let answer: Value = response.json().await?;
                    events += answer["recorded"].as_u64().unwrap_or(0) as usize;
                }
            }
        }));
    }
    let mut events = 0;
    for poster in posters {
        events += poster.await??;
    }
    let committed = started.elapsed();
    if !parts.relay {
        return Ok((0.0, events as f64 / committed.as_secs_f64()));
    }
    let head = env.event_ids().await.last().map(|(p, _)| *p).unwrap_or(0);
    loop {
        let mut done = env.outbox_depth().await == 0;
        for projection in sextant_projections::all() {
            done &= env.checkpoint(projection.name()).await >= head;
        }
        if done {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "the projections never caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let projected = started.elapsed();
    tracing::info!(events, ?committed, ?projected, "ingest end to end");
    Ok((
        events as f64 / projected.as_secs_f64(),
        events as f64 / committed.as_secs_f64(),
    ))
}

/// The same rows, multi-row INSERTed into a bare table: what Postgres
/// alone can take on this machine.
pub async fn raw_insert(events: usize) -> anyhow::Result<f64> {
    let env = TestEnv::new().await;
    sqlx::query("CREATE TABLE bench_raw (id bigserial PRIMARY KEY, aggregate_id text NOT NULL, payload jsonb NOT NULL)")
        .execute(&env.pool)
        .await?;
    let started = Instant::now();
    let mut i = 0;
    while i < events {
        let ids: Vec<String> = (i..i + BATCH)
            .map(|n| Uuid::from_u128(n as u128).to_string())
            .collect();
        let payloads: Vec<Value> = (i..i + BATCH).map(send_item).collect();
        sqlx::query("INSERT INTO bench_raw (aggregate_id, payload) SELECT * FROM UNNEST($1::text[], $2::jsonb[])")
            .bind(&ids)
            .bind(&payloads)
            .execute(&env.pool)
            .await?;
        i += BATCH;
    }
    Ok(events as f64 / started.elapsed().as_secs_f64())
}

/// cqrs-es with postgres-es used the documented way: the documented
/// schema, one `execute` per event, through the same Send aggregate.
pub async fn naive_cqrs_es(events: usize, tasks: usize) -> anyhow::Result<f64> {
    use sextant_domain::send::{input::SendInput, Send, SendCommand};
    let env = TestEnv::new().await;
    for statement in [
        "CREATE TABLE naive_events (aggregate_type text NOT NULL, aggregate_id text NOT NULL, \
         sequence bigint CHECK (sequence >= 0) NOT NULL, event_type text NOT NULL, event_version text NOT NULL, \
         payload json NOT NULL, metadata json NOT NULL, PRIMARY KEY (aggregate_type, aggregate_id, sequence))",
        "CREATE TABLE naive_snapshots (aggregate_type text NOT NULL, aggregate_id text NOT NULL, \
         last_sequence bigint NOT NULL, current_snapshot bigint NOT NULL, payload json NOT NULL, \
         PRIMARY KEY (aggregate_type, aggregate_id, last_sequence))",
    ] {
        sqlx::query(statement).execute(&env.pool).await?;
    }
    let repo = postgres_es::PostgresEventRepository::new(env.pool.clone())
        .with_tables("naive_events", "naive_snapshots");
    let store = cqrs_es::persist::PersistedEventStore::new_event_store(repo);
    let cqrs = Arc::new(cqrs_es::CqrsFramework::<Send, _>::new(store, vec![], ()));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let now = chrono::Utc::now();
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..tasks {
        let (cqrs, next) = (cqrs.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= events {
                    return Ok::<(), anyhow::Error>(());
                }
                let input: SendInput = serde_json::from_value(send_item(i))?;
                let (facts, _) = input
                    .into_facts(now, |email| format!("lr_{email}"))
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                cqrs.execute(
                    &format!("send-{i}"),
                    SendCommand::RecordSend(Box::new(facts)),
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    Ok(events as f64 / started.elapsed().as_secs_f64())
}

/// Writes the figures to `target/bench/results.json` and a table to stdout.
pub fn report(figures: &[Figure], path: &std::path::Path) -> anyhow::Result<String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(figures)?)?;
    let mut table = String::from(
        "| workload | metric | value | unit | baseline | baseline value | ratio |\n|---|---|---|---|---|---|---|\n",
    );
    for f in figures {
        table.push_str(&format!(
            "| {} | {} | {:.1} | {} | {} | {} | {} |\n",
            f.workload,
            f.metric,
            f.value,
            f.unit,
            f.baseline.clone().unwrap_or_else(|| "—".into()),
            f.baseline_value
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "—".into()),
            f.ratio
                .map(|r| format!("{r:.2}"))
                .unwrap_or_else(|| "—".into()),
        ));
    }
    Ok(table)
}
