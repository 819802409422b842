//! Load for the fault suite: batches of sends and outcomes posted the way an
//! integrator would, retried until accepted, with a ledger of what was
//! accepted and how each failure looked, so a test can prove by counting
//! that a fault lost nothing and duplicated nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::OPERATOR_KEY;

/// Where the load is posted: changeable while it runs (a restarted
/// service may come back on another address).
pub type Target = Arc<Mutex<String>>;

/// What a load run did.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    /// Distinct sends the server accepted (recorded, or a duplicate of one
    /// it had recorded before).
    pub sends: usize,
    /// Distinct outcomes it accepted.
    pub outcomes: usize,
    /// Retries that found their batch partly written (some items recorded,
    /// some duplicates): must be 0, a batch commits whole or not at all.
    pub half_written: usize,
    /// Failed attempts by kind (`503`, `connection`, …).
    pub failures: std::collections::BTreeMap<String, usize>,
    /// The slowest failed attempt: failing fast is part of the contract.
    pub slowest_failure: Duration,
    pub batches: usize,
}

impl Ledger {
    pub fn events(&self) -> usize {
        self.sends + self.outcomes
    }

    pub fn failed_attempts(&self) -> usize {
        self.failures.values().sum()
    }
}

/// A send of the load; `i` makes it unique within a client.
pub fn send_item(i: usize) -> Value {
    json!({
        "provider": "load", "provider_message_id": format!("m-{i}"),
        "lead_ref": format!("lead-{:06}", i % 5000),
        "lead": {"industry": (["fintech", "saas"][i % 2]), "seniority": "vp", "tier": "warm"},
        "channel": "email", "campaign_id": "load", "step": 1,
        "content": {"cta": (["meeting", "reply"][i % 2]), "body_words": 60},
        "sent_at": "2026-11-18T09:12:00Z"
    })
}

/// The outcome of send `i`.
pub fn outcome_item(i: usize) -> Value {
    json!({"provider": "load", "provider_message_id": format!("m-{i}"),
           "kind": (["delivered", "replied", "opened"][i % 3]), "occurred_at": "2026-11-18T15:40:00Z"})
}

/// Posts batches of `size` sends (and the outcomes of the previous batch's
/// sends) for `client` to `target` until `stop` is set, one batch per
/// `pace` at most, retrying each batch until the server accepts it.
/// Answers the ledger.
pub async fn run(
    target: Target,
    client: Uuid,
    size: usize,
    pace: Duration,
    stop: Arc<AtomicBool>,
) -> Ledger {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client");
    let mut ledger = Ledger::default();
    let mut n = 0;
    let mut ticker = tokio::time::interval(pace);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::SeqCst) {
        ticker.tick().await;
        let sends: Vec<Value> = (n * size..(n + 1) * size).map(send_item).collect();
        post_until_accepted(&http, &target, client, "sends", sends, &mut ledger).await;
        ledger.sends += size;
        if n > 0 {
            let outcomes: Vec<Value> = ((n - 1) * size..n * size).map(outcome_item).collect();
            post_until_accepted(&http, &target, client, "outcomes", outcomes, &mut ledger).await;
            ledger.outcomes += size;
        }
        ledger.batches += 1;
        n += 1;
    }
    // The last batch's outcomes, so every send has one.
    if n > 0 {
        let outcomes: Vec<Value> = ((n - 1) * size..n * size).map(outcome_item).collect();
        post_until_accepted(&http, &target, client, "outcomes", outcomes, &mut ledger).await;
        ledger.outcomes += size;
    }
    ledger
}

async fn post_until_accepted(
    http: &reqwest::Client,
    target: &Target,
    client: Uuid,
    path: &str,
    items: Vec<Value>,
    ledger: &mut Ledger,
) {
    let body = json!({ path: items });
    let mut failed_before = false;
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "a batch was not accepted within 3 minutes: {ledger:?}"
        );
        let url = format!("{}/v1/clients/{client}/{path}", target.lock().await);
        let attempt = Instant::now();
        let failure = match http
            .post(url)
            .bearer_auth(OPERATOR_KEY)
            .json(&body)
            .send()
            .await
        {
            Ok(response) if response.status().is_success() => {
                match response.json::<Value>().await {
                    Ok(answer) => {
                        let recorded = answer["recorded"].as_u64().unwrap_or(0) as usize;
                        let duplicates = answer["duplicates"].as_u64().unwrap_or(0) as usize;
                        assert_eq!(
                            recorded + duplicates,
                            items.len(),
                            "items refused: {answer}"
                        );
                        if failed_before && recorded > 0 && duplicates > 0 {
                            ledger.half_written += 1;
                        }
                        return;
                    }
                    Err(_) => "body lost".to_owned(),
                }
            }
            Ok(response) => response.status().as_u16().to_string(),
            Err(e) if e.is_timeout() => "timeout".to_owned(),
            Err(_) => "connection".to_owned(),
        };
        // A failure after the commit (the answer lost) is possible; the
        // retry must then find every item a duplicate.
        failed_before = true;
        *ledger.failures.entry(failure).or_default() += 1;
        ledger.slowest_failure = ledger.slowest_failure.max(attempt.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A [`run`] in the background: start it, break things, then finish it.
pub struct Background {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Ledger>,
}

impl Background {
    /// Starts posting a batch of 100 sends and one of 100 outcomes for
    /// `client` to `target` every 100 ms (2,000 events/s at most: enough
    /// to be mid-load whenever a fault strikes, little enough for a debug
    /// build to catch up with in seconds).
    pub fn start(target: Target, client: Uuid) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run(
            target,
            client,
            100,
            Duration::from_millis(100),
            stop.clone(),
        ));
        Self { stop, task }
    }

    /// Stops after the batch in flight is accepted; answers the ledger.
    pub async fn finish(self) -> Ledger {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the load task panicked")
    }
}

/// A target that never changes.
pub fn target(url: &str) -> Target {
    Arc::new(Mutex::new(url.to_owned()))
}
