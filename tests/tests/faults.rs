//! The fault suite: load runs, something breaks on purpose, and the test
//! proves by counting that nothing was lost or duplicated — every accepted
//! send and outcome is in the log once, every committed event is on the
//! stream once, every projection equals a replay of the log. Each test
//! writes its figures to `target/faults/<name>.json`
//! (`deploy/local/faults.sh` tabulates them for docs/operations.md).
//!
//! The process faults (`kill -9`) run the real binaries as child
//! processes; the Postgres and NATS faults run private servers so the
//! shared ones are left alone.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use sextant_tests::checks::FaultFigures;
use sextant_tests::load::{self, Background};
use sextant_tests::procs::{Binary, Service};
use sextant_tests::simulator::Rng;
use sextant_tests::{Parts, PrivateNats, PrivatePostgres, Running, TestEnv, OPERATOR_KEY};

/// How long the load runs between two faults.
const BETWEEN_FAULTS: Duration = Duration::from_millis(1500);

/// The end of every fault test: everything caught up, then counted.
async fn assert_nothing_lost_or_duplicated(
    env: &TestEnv,
    client: uuid::Uuid,
    ledger: &load::Ledger,
    figures: &FaultFigures,
) {
    assert!(
        ledger.batches > 2,
        "too little load to mean anything: {ledger:?}"
    );
    assert_eq!(figures.events_lost, 0, "{figures:?} {ledger:?}");
    assert_eq!(figures.duplicates, 0, "{figures:?} {ledger:?}");
    env.assert_stream_matches_log().await;
    env.caught_up(Duration::from_secs(60)).await;
    env.assert_ledger_landed(client, ledger).await;
    env.assert_projections_equal_replay().await;
}

/// Runs both binaries against `env`, registers a client and starts load.
async fn processes_under_load(env: &TestEnv) -> (Service, Service, uuid::Uuid, Background) {
    let command = Service::start(Binary::Command, env).await;
    let query = Service::start(Binary::Query, env).await;
    let handle = Running::at(command.url(), query.url());
    let (client, _) = handle.register_client("Faults").await;
    let load = Background::start(load::target(&command.url()), client);
    (command, query, client, load)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilling_the_command_api_and_its_relay_mid_load_loses_and_duplicates_nothing() {
    let env = TestEnv::new().await;
    let (mut command, _query, client, load) = processes_under_load(&env).await;
    for _ in 0..3 {
        tokio::time::sleep(BETWEEN_FAULTS).await;
        command.kill9().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        command.restart().await;
    }
    tokio::time::sleep(BETWEEN_FAULTS).await;
    let ledger = load.finish().await;
    assert!(
        ledger.failures.get("connection").copied().unwrap_or(0) > 0,
        "the kills were not felt: {ledger:?}"
    );
    let figures = FaultFigures::record(
        &env,
        client,
        "kill9_command_api",
        "kill -9 of sextant-command (command API + relay), restarted",
        command.kills,
        &ledger,
    )
    .await;
    assert_nothing_lost_or_duplicated(&env, client, &ledger, &figures).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilling_the_projectors_mid_load_leaves_every_read_model_equal_to_a_replay() {
    let env = TestEnv::new().await;
    let (_command, mut query, client, load) = processes_under_load(&env).await;
    for _ in 0..3 {
        tokio::time::sleep(BETWEEN_FAULTS).await;
        query.kill9().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        query.restart().await;
    }
    tokio::time::sleep(BETWEEN_FAULTS).await;
    let ledger = load.finish().await;
    let figures = FaultFigures::record(
        &env,
        client,
        "kill9_projectors",
        "kill -9 of sextant-query (query API + every projector), restarted",
        query.kills,
        &ledger,
    )
    .await;
    assert_nothing_lost_or_duplicated(&env, client, &ledger, &figures).await;
}

/// The in-process services against `env`, a client and load on it.
async fn in_process_under_load(env: &TestEnv) -> (Running, uuid::Uuid, Background) {
    let app = env.start_with(Parts::all()).await;
    let (client, _) = app.register_client("Faults").await;
    let load = Background::start(load::target(&app.command_url), client);
    (app, client, load)
}

/// The outage NATS suffers in [`nats_stopped_for_a_while_under_load_then_restarted_loses_nothing`]:
/// 30 s as the fault suite's contract says; `SEXTANT_FAULT_NATS_OUTAGE_SECS`
/// shortens it for a quick local run.
fn nats_outage() -> Duration {
    Duration::from_secs(
        std::env::var("SEXTANT_FAULT_NATS_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_stopped_for_a_while_under_load_then_restarted_loses_nothing() {
    let mut nats = PrivateNats::start().await;
    let env = TestEnv::with_nats(&nats.url()).await;
    let (app, client, load) = in_process_under_load(&env).await;
    tokio::time::sleep(BETWEEN_FAULTS).await;
    nats.stop().await;
    tokio::time::sleep(nats_outage()).await;
    let backlog = env.outbox_depth().await;
    nats.restart().await;
    let restarted = std::time::Instant::now();
    tokio::time::sleep(BETWEEN_FAULTS).await;
    let ledger = load.finish().await;
    env.eventually("the outbox drains", Duration::from_secs(120), || async {
        env.outbox_depth().await == 0
    })
    .await;
    let drained = restarted.elapsed();
    env.caught_up(Duration::from_secs(120)).await;
    tracing::warn!(backlog, ?drained, caught_up = ?restarted.elapsed(), "after the NATS outage");
    assert!(backlog > 0, "commands stopped while NATS was down");
    assert_eq!(ledger.failed_attempts(), 0, "{ledger:?}");
    let figures = FaultFigures::record(
        &env,
        client,
        "nats_outage",
        &format!(
            "NATS stopped {} s under load, restarted",
            nats_outage().as_secs()
        ),
        1,
        &ledger,
    )
    .await;
    assert_nothing_lost_or_duplicated(&env, client, &ledger, &figures).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restarted_with_its_storage_intact_keeps_every_event_once() {
    let mut nats = PrivateNats::start().await;
    let env = TestEnv::with_nats(&nats.url()).await;
    let (app, client, load) = in_process_under_load(&env).await;
    for _ in 0..3 {
        tokio::time::sleep(BETWEEN_FAULTS).await;
        nats.stop().await;
        nats.restart().await;
    }
    tokio::time::sleep(BETWEEN_FAULTS).await;
    let ledger = load.finish().await;
    let figures = FaultFigures::record(
        &env,
        client,
        "nats_restart",
        "NATS killed and restarted on its storage, under load",
        3,
        &ledger,
    )
    .await;
    assert_nothing_lost_or_duplicated(&env, client, &ledger, &figures).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crashed_under_load_fails_commands_fast_with_503_and_half_writes_nothing() {
    let postgres = PrivatePostgres::start().await;
    let env = TestEnv::on(&postgres.admin_url(), &sextant_tests::system_nats_url()).await;
    let (app, client, load) = in_process_under_load(&env).await;
    tokio::time::sleep(BETWEEN_FAULTS).await;
    postgres.crash().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    postgres.start_server().await;
    tokio::time::sleep(BETWEEN_FAULTS * 2).await;
    let ledger = load.finish().await;
    let unavailable = ledger.failures.get("503").copied().unwrap_or(0);
    assert!(unavailable > 0, "no command saw the outage: {ledger:?}");
    assert_eq!(
        unavailable,
        ledger.failed_attempts(),
        "every failure during the outage is a 503: {ledger:?}"
    );
    assert!(
        ledger.slowest_failure < Duration::from_secs(3),
        "a command took {:?} to fail",
        ledger.slowest_failure
    );
    let figures = FaultFigures::record(
        &env,
        client,
        "postgres_crash",
        "Postgres stopped -m immediate for 5 s under load, restarted",
        1,
        &ledger,
    )
    .await;
    assert_nothing_lost_or_duplicated(&env, client, &ledger, &figures).await;
    app.stop().await;
}

/// A Smartlead delivery of `fixture` for message `i`, body and headers as
/// Smartlead would send them.
fn smartlead_delivery(url: &str, fixture: &str, i: usize) -> (Vec<(String, String)>, Vec<u8>) {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../adapters/src/webhooks/fixtures/smartlead")
        .join(format!("{fixture}.json"));
    let mut body: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("fixture JSON");
    body["stats_id"] = json!(format!("storm-{i}"));
    for field in ["to_email", "sl_lead_email"] {
        if body.get(field).is_some() {
            body[field] = json!(format!("lead{i}@prospect.example"));
        }
    }
    let body = serde_json::to_vec(&body).expect("body");
    let headers = sextant_adapters::webhooks::sign_for_test(
        sextant_domain::values::Provider::Smartlead,
        STORM_SECRET,
        "POST",
        url,
        &body,
        chrono::Utc::now(),
    );
    (headers, body)
}

const STORM_SECRET: &str = "a-webhook-secret-of-some-length";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_storm_of_duplicates_out_of_order_lands_each_event_once() {
    const MESSAGES: usize = 300;
    let env = TestEnv::new().await;
    let app = std::sync::Arc::new(env.start().await);
    let (client, _) = app.register_client("Storm").await;
    let secret = app
        .command(
            Method::PUT,
            &format!("/v1/clients/{client}/webhooks/smartlead"),
            Some(OPERATOR_KEY),
            Some(json!({ "secret": STORM_SECRET })),
        )
        .await;
    assert_eq!(secret.status, StatusCode::OK, "{secret:?}");
    let url = format!("{}/v1/webhooks/smartlead/{client}", app.command_url);
    // Each message sent, opened and replied to; a third of the deliveries
    // repeated; all of it shuffled, so outcomes often come before sends.
    let mut rng = Rng::new(7);
    let mut deliveries = Vec::new();
    for i in 0..MESSAGES {
        for fixture in ["email_sent", "email_open", "email_reply"] {
            let delivery = smartlead_delivery(&url, fixture, i);
            if rng.next_f64() < 0.33 {
                deliveries.push(delivery.clone());
            }
            deliveries.push(delivery);
        }
    }
    for i in (1..deliveries.len()).rev() {
        let j = (rng.next_f64() * (i + 1) as f64) as usize;
        deliveries.swap(i, j.min(i));
    }
    let total = deliveries.len();
    let queue = std::sync::Arc::new(tokio::sync::Mutex::new(deliveries));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (queue, app, url) = (queue.clone(), app.clone(), url.clone());
        workers.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            loop {
                let Some((headers, body)) = queue.lock().await.pop() else {
                    return statuses;
                };
                let mut request = app
                    .http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body);
                for (name, value) in &headers {
                    request = request.header(name.as_str(), value.as_str());
                }
                statuses.push(request.send().await.expect("deliver").status());
            }
        }));
    }
    let mut statuses = Vec::new();
    for worker in workers {
        statuses.extend(worker.await.expect("worker"));
    }
    assert_eq!(statuses.len(), total);
    assert!(
        statuses.iter().all(|s| s.is_success()),
        "{:?}",
        statuses
            .iter()
            .filter(|s| !s.is_success())
            .collect::<Vec<_>>()
    );
    let ledger = load::Ledger {
        sends: MESSAGES,
        outcomes: 2 * MESSAGES,
        batches: total,
        ..load::Ledger::default()
    };
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_dead_letters")
        .fetch_one(&env.pool)
        .await
        .expect("dead letters");
    assert_eq!(dead, 0, "a storm delivery was dead-lettered");
    let figures = FaultFigures::record(
        &env,
        client,
        "webhook_storm",
        &format!("{total} Smartlead deliveries for {MESSAGES} messages, a third repeated, shuffled, 16 at once"),
        total - 3 * MESSAGES,
        &ledger,
    )
    .await;
    assert_nothing_lost_or_duplicated(&env, client, &ledger, &figures).await;
    // Every reply found its send, whichever came first.
    env.eventually("the patterns projection counts every reply", Duration::from_secs(30), || async {
        let replies: Option<i64> = sqlx::query_scalar(
            "SELECT replies FROM pattern_counts WHERE client_id = $1 AND scope = 'client' AND family = 'all'",
        )
        .bind(client)
        .fetch_optional(&env.pool)
        .await
        .expect("replies");
        replies == Some(MESSAGES as i64)
    })
    .await;
}

/// A command as the operator sends it, retried as a client would on 503
/// (a rollback to a version the context read model has not reached yet
/// answers 503 "not readable yet; retry shortly").
async fn operator_command(
    app: &Running,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> sextant_tests::Answer {
    let mut tries = 0;
    loop {
        let answer = app
            .command(method.clone(), path, Some(OPERATOR_KEY), body.clone())
            .await;
        tries += 1;
        if answer.status != StatusCode::SERVICE_UNAVAILABLE || tries == 100 {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_proposals_approvals_and_rollbacks_on_one_client_keep_one_gapless_history() {
    const REVIEWERS: usize = 8;
    const ROUNDS: usize = 8;
    let env = TestEnv::new().await;
    let app = std::sync::Arc::new(env.start().await);
    let (client, _) = app.register_client("Contended").await;
    let mode = app
        .command(
            Method::PATCH,
            &format!("/v1/clients/{client}"),
            Some(OPERATOR_KEY),
            Some(json!({ "permission_mode": "co_pilot" })),
        )
        .await;
    assert!(mode.status.is_success(), "{mode:?}");
    let mut workers = Vec::new();
    for reviewer in 0..REVIEWERS {
        let app = app.clone();
        workers.push(tokio::spawn(async move {
            let mut rng = Rng::new(reviewer as u64 + 1);
            let mut answers = Vec::new();
            for round in 0..ROUNDS {
                let context = format!("/v1/clients/{client}/context");
                let answer = if round > 0 && rng.next_f64() < 0.25 {
                    let to = 1 + (rng.next_f64() * 3.0) as u64;
                    operator_command(
                        &app,
                        Method::POST,
                        &format!("{context}/rollback"),
                        Some(json!({ "to_version": to, "reason": "contention" })),
                    )
                    .await
                } else {
                    // Disjoint paths, and one every reviewer fights over.
                    let patch = json!({ "playbook": { format!("r{reviewer}_{round}"): round },
                                        "messaging": { "tone": format!("tone {reviewer}") } });
                    let proposed = operator_command(
                        &app,
                        Method::POST,
                        &format!("{context}/updates"),
                        Some(json!({ "source": "agent_suggestion", "patch": patch,
                                     "rationale": "contention", "confidence": 0.5 })),
                    )
                    .await;
                    if !proposed.status.is_success() {
                        answers.push(proposed);
                        continue;
                    }
                    let id = proposed.body["update_id"]
                        .as_str()
                        .expect("update id")
                        .to_owned();
                    let action = if rng.next_f64() < 0.2 {
                        "reject"
                    } else {
                        "approve"
                    };
                    let body = (action == "reject").then(|| json!({ "reason": "no" }));
                    operator_command(
                        &app,
                        Method::POST,
                        &format!("{context}/updates/{id}/{action}"),
                        body,
                    )
                    .await
                };
                answers.push(answer);
            }
            answers
        }));
    }
    let mut versions = Vec::new();
    let mut refused = std::collections::BTreeMap::new();
    let mut last = 0;
    for worker in workers {
        for answer in worker.await.expect("worker") {
            assert!(!answer.status.is_server_error(), "{answer:?}");
            if answer.status.is_success() {
                last = last.max(answer.position());
                if let Some(v) = answer.body["version"].as_i64() {
                    versions.push(v);
                }
            } else {
                assert!(
                    [StatusCode::CONFLICT, StatusCode::UNPROCESSABLE_ENTITY]
                        .contains(&answer.status),
                    "{answer:?}"
                );
                *refused.entry(answer.status.as_u16()).or_insert(0) += 1;
            }
        }
    }
    // Each version went to exactly one accepted command, with no gap.
    versions.sort_unstable();
    let mut unique = versions.clone();
    unique.dedup();
    let expected: Vec<i64> = (1..=versions.len() as i64).collect();
    let figures = FaultFigures {
        name: "contended_context".into(),
        fault: format!(
            "{REVIEWERS} reviewers proposing, approving, rejecting and rolling back one client's context at once"
        ),
        faults_injected: REVIEWERS,
        events_under_load: versions.len(),
        failed_attempts: refused.values().sum(),
        events_lost: expected.len().saturating_sub(unique.len()),
        duplicates: versions.len() - unique.len(),
    }
    .saved();
    assert_eq!(versions, expected, "refused: {refused:?}, {figures:?}");
    let listed = app
        .query(
            &format!("/v1/clients/{client}/context/versions?min_position={last}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(
        listed.body["items"].as_array().map(Vec::len),
        Some(versions.len()),
        "{listed:?}"
    );
    env.assert_stream_matches_log().await;
    env.caught_up(Duration::from_secs(30)).await;
    env.assert_projections_equal_replay().await;
}
