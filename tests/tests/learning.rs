//! The learning loop on simulated data with known truth: planted effects
//! surface as evidence-backed suggestions in the approval queue, null
//! features stay within the false-discovery target, nothing is proposed
//! twice, and the pattern tables relearn identically from replay.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sextant_projections::replay;
use sextant_tests::simulator::{world, Planted};
use sextant_tests::{Parts, Running, TestEnv, OPERATOR_KEY};
use uuid::Uuid;

const PLANTED: [Planted; 2] = [
    Planted {
        family: "what",
        feature: "cta",
        value: "meeting",
        multiplier: 1.6,
    },
    Planted {
        family: "who",
        feature: "seniority",
        value: "c_level",
        multiplier: 1.5,
    },
];

async fn ingest(app: &Running, client: Uuid, sends: Vec<Value>, outcomes: Vec<Value>) -> i64 {
    let sent = app.ingest(client, "sends", &sends).await;
    sent.max(app.ingest(client, "outcomes", &outcomes).await)
}

struct Found {
    true_positives: usize,
    false_positives: usize,
    /// Discoveries on the siblings of a planted value (`cta=call` when
    /// `cta=meeting` is planted): each key is tested against the rest of
    /// the sends, and the rest of a sibling holds the planted value, so
    /// these differences are real, in the direction `avoid`.
    siblings: usize,
}

async fn learn(env: &TestEnv, app: &Running, seed: u64) -> (Uuid, Found, i64) {
    let (client, _) = app.register_client(&format!("Sim {seed}")).await;
    let (sends, outcomes) = world(seed, 10_000, &PLANTED);
    let position = ingest(app, client, sends, outcomes).await;
    let (suggestions, position) = run_engine(env, app, client, position).await;
    let mut found = Found {
        true_positives: 0,
        false_positives: 0,
        siblings: 0,
    };
    for s in suggestions {
        assert_eq!(s["outcome"], "proposed", "{s}");
        let real = PLANTED
            .iter()
            .any(|p| s["family"] == p.family && s["key"] == p.key() && s["verdict"] == "prefer");
        let sibling = PLANTED.iter().any(|p| {
            s["family"] == p.family
                && s["key"]
                    .as_str()
                    .is_some_and(|k| k.starts_with(&format!("{}=", p.feature)) && k != p.key())
                && s["verdict"] == "avoid"
        });
        if real {
            found.true_positives += 1;
        } else if sibling {
            println!("seed {seed}: sibling discovery {s}");
            found.siblings += 1;
        } else {
            println!("seed {seed}: false discovery {s}");
            found.false_positives += 1;
        }
    }
    (client, found, position)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_effects_surface_as_suggestions_and_null_features_stay_within_the_fdr_target() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    // Three worlds in CI; SEXTANT_SIM_SEEDS=N runs N for docs/learning.md's figure.
    let count: u64 = std::env::var("SEXTANT_SIM_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    let seeds: Vec<u64> = (0..count).map(|i| 11 + 12 * i).collect();
    let (mut tp, mut fp, mut siblings) = (0, 0, 0);
    let mut last = None;
    for &seed in &seeds {
        let (client, found, position) = learn(&env, &app, seed).await;
        tp += found.true_positives;
        fp += found.false_positives;
        siblings += found.siblings;
        last = Some((client, position));
    }
    let recall = tp as f64 / (PLANTED.len() * seeds.len()) as f64;
    // False: a discovery on a feature with no planted effect at all, or in
    // the wrong direction.
    let fdp = fp as f64 / (tp + fp + siblings).max(1) as f64;
    println!(
        "learning quality over {} seeds: recall {recall:.2}, false-discovery proportion {fdp:.3} \
         ({tp} planted found, {siblings} sibling differences, {fp} false)",
        seeds.len()
    );
    assert!(recall >= 0.99, "recall {recall}");
    assert!(fdp <= 0.1, "false-discovery proportion {fdp}");

    // The suggestions wait in the queue with their evidence.
    let (client, position) = last.expect("seeded clients");
    let queue = app
        .query(
            &format!("/v1/clients/{client}/approvals?min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    let items = queue.body["items"]
        .as_array()
        .cloned()
        .expect("an items array");
    let cta = items
        .iter()
        .find(|u| u["evidence"]["key"] == "cta=meeting")
        .ok_or_else(|| format!("no cta suggestion in {queue:?}"))
        .expect("a cta=meeting suggestion");
    assert_eq!(cta["source"], "email_performance");
    assert_eq!(
        cta["patch"],
        json!({ "playbook": { "learned": { "what": { "cta=meeting": "prefer" } } } })
    );
    let p = cta["evidence"]["always_valid_p"].as_f64().unwrap_or(1.0);
    assert!(p <= cta["evidence"]["bar"].as_f64().unwrap_or(0.0), "{cta}");
    assert_eq!(
        cta["evidence"]["adjusted_for"]
            .as_array()
            .map(Vec::is_empty),
        Some(false)
    );
    assert!(cta["evidence"]["sends"].as_u64().unwrap_or(0) >= 100);
    assert!(cta["evidence"]["query"]
        .as_str()
        .unwrap_or("")
        .contains("/patterns/what"));
    assert!(cta["rationale"]
        .as_str()
        .unwrap_or("")
        .contains("cta = meeting"));

    // Running again proposes nothing new: they are pending already.
    let again = app
        .command(
            Method::POST,
            &format!("/v1/clients/{client}/suggestions/run"),
            Some(OPERATOR_KEY),
            None,
        )
        .await;
    for s in again.body["suggestions"]
        .as_array()
        .cloned()
        .expect("a suggestions array")
    {
        assert_ne!(s["outcome"], "proposed", "{s}");
    }

    // The pattern table serves the same numbers.
    let table = app
        .query(
            &format!("/v1/clients/{client}/patterns/what?min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(table.status, StatusCode::OK, "{table:?}");
    assert_eq!(table.body["rows"][0]["key"], "cta=meeting");
    assert_eq!(table.body["baseline"]["sends"], 10_000);

    // Relearning from the log gives exactly the live tables.
    let patterns = sextant_projections::by_name("patterns").expect("patterns");
    let live = replay::checksum(&env.pool, patterns.as_ref())
        .await
        .expect("checksum");
    replay::rebuild(&env.pool, patterns.clone(), false)
        .await
        .expect("rebuild");
    assert_eq!(
        replay::checksum(&env.pool, patterns.as_ref())
            .await
            .expect("checksum"),
        live
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_tables_refuse_unknown_families_metrics_and_scopes() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, position) = app.register_client("Acme").await;
    for (path, status) in [
        ("/patterns/why", StatusCode::NOT_FOUND),
        (
            "/patterns/what?metric=opens",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/patterns/what?scope=galaxy",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let answer = app
            .query(&format!("/v1/clients/{client}{path}"), Some(OPERATOR_KEY))
            .await;
        assert_eq!(answer.status, status, "{path}: {answer:?}");
    }
    let empty = app
        .query(
            &format!("/v1/clients/{client}/patterns/who?min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.body["rows"], json!([]));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_version_that_does_significantly_worse_yields_a_proposed_rollback() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    let updates = format!("/v1/clients/{client}/context/updates");
    for tone in ["plain", "hype!!!"] {
        let answer = app
            .command(Method::POST, &updates, Some(OPERATOR_KEY),
                Some(json!({ "source": "manual", "patch": { "messaging": { "tone": tone } }, "rationale": "kick-off" })))
            .await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{answer:?}");
    }
    // Version 1 replied at 12%, version 2 at 5%.
    let mut rng = sextant_tests::simulator::Rng::new(7);
    let (mut sends, mut outcomes) = (Vec::new(), Vec::new());
    for i in 0..3000 {
        let version = if i % 2 == 0 { 1 } else { 2 };
        let message = format!("v-{i}");
        sends.push(json!({ "provider": "sim", "provider_message_id": message, "lead_ref": format!("lead-{i:06}"),
            "channel": "email", "context_version": version, "sent_at": "2026-11-18T09:00:00Z" }));
        if rng.next_f64() < if version == 1 { 0.12 } else { 0.05 } {
            outcomes.push(
                json!({ "provider": "sim", "provider_message_id": message, "kind": "replied",
                "occurred_at": "2026-11-18T12:00:00Z" }),
            );
        }
    }
    let position = ingest(&app, client, sends, outcomes).await;
    env.eventually("the patterns catch up", Duration::from_secs(30), || async {
        env.checkpoint("patterns").await >= position && env.checkpoint("context").await >= position
    })
    .await;
    let run = app
        .command(
            Method::POST,
            &format!("/v1/clients/{client}/suggestions/run"),
            Some(OPERATOR_KEY),
            None,
        )
        .await;
    let rollback = run.body["suggestions"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["verdict"] == "roll_back").cloned())
        .ok_or_else(|| format!("no rollback proposed: {run:?}"))
        .expect("a roll-back suggestion");
    let update = rollback["update_id"].as_str().expect("proposed").to_owned();
    let queue = app
        .query(
            &format!(
                "/v1/clients/{client}/approvals?min_position={}",
                run.position()
            ),
            Some(OPERATOR_KEY),
        )
        .await;
    let item = queue.body["items"]
        .as_array()
        .and_then(|i| {
            i.iter()
                .find(|u| u["update_id"] == update.as_str())
                .cloned()
        })
        .expect("the roll-back is queued");
    assert_eq!(item["source"], "context_regression", "{queue:?}");
    assert_eq!(item["evidence"]["back_to_version"], 1);
    // Approving it brings the document back to version 1's.
    let approved = app
        .command(
            Method::POST,
            &format!("/v1/clients/{client}/context/updates/{update}/approve"),
            Some(OPERATOR_KEY),
            None,
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{approved:?}");
    let now = app
        .query(
            &format!(
                "/v1/clients/{client}/context?min_position={}",
                approved.position()
            ),
            Some(OPERATOR_KEY),
        )
        .await;
    let v1 = app
        .query(
            &format!(
                "/v1/clients/{client}/context?version=1&min_position={}",
                approved.position()
            ),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(now.body["document"], v1.body["document"]);
    app.stop().await;
}

/// A reply and another outcome of the same message reach Sextant before
/// the message's send. With `one_batch` the projectors start only once all
/// three are on the stream, so the patterns projection sees them together
/// (the case a race used to lose); otherwise each is projected on its own.
async fn early_replies_count_once_their_send_arrives(one_batch: bool) {
    let env = TestEnv::new().await;
    let first = env
        .start_with(Parts {
            relay: true,
            projectors: !one_batch,
        })
        .await;
    let (client, _) = first.register_client("Acme").await;
    let post = |path: &'static str, body: Value| {
        let app = &first;
        async move {
            let answer = app
                .command(
                    Method::POST,
                    &format!("/v1/clients/{client}/{path}"),
                    Some(OPERATOR_KEY),
                    Some(body),
                )
                .await;
            assert!(answer.status.is_success(), "{answer:?}");
            answer.position()
        }
    };
    post(
        "outcomes",
        json!({ "provider": "sim", "provider_message_id": "m-1", "kind": "replied",
        "intent": "interested", "occurred_at": "2026-11-18T12:00:00Z" }),
    )
    .await;
    post(
        "outcomes",
        json!({ "provider": "sim", "provider_message_id": "m-1", "kind": "delivered",
        "occurred_at": "2026-11-18T09:01:00Z" }),
    )
    .await;
    let position = post(
        "sends",
        json!({ "provider": "sim", "provider_message_id": "m-1", "lead_ref": "lead-000001",
        "channel": "email", "content": { "cta": "meeting" }, "sent_at": "2026-11-18T09:00:00Z" }),
    )
    .await;
    let app = if one_batch {
        env.eventually(
            "every event on the stream",
            Duration::from_secs(10),
            || async { env.outbox_depth().await == 0 },
        )
        .await;
        first.stop().await;
        env.start().await
    } else {
        first
    };
    let table = app
        .query(
            &format!("/v1/clients/{client}/patterns/what?min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(table.body["baseline"]["events"], 1, "{table:?}");
    assert_eq!(table.body["rows"][0]["key"], "cta=meeting");
    assert_eq!(table.body["rows"][0]["events"], 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_that_arrive_before_their_send_count_once_the_send_arrives() {
    early_replies_count_once_their_send_arrives(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_projected_in_one_batch_with_their_later_send_count_once() {
    early_replies_count_once_their_send_arrives(true).await;
}

/// Runs the engine once the patterns have `position`: its suggestions and
/// the log's head after it.
async fn run_engine(
    env: &TestEnv,
    app: &Running,
    client: Uuid,
    position: i64,
) -> (Vec<Value>, i64) {
    env.eventually("the patterns catch up", Duration::from_secs(60), || async {
        env.checkpoint("patterns").await >= position
    })
    .await;
    let run = app
        .command(
            Method::POST,
            &format!("/v1/clients/{client}/suggestions/run"),
            Some(OPERATOR_KEY),
            None,
        )
        .await;
    assert_eq!(run.status, StatusCode::OK, "{run:?}");
    let suggestions = run.body["suggestions"]
        .as_array()
        .cloned()
        .expect("a suggestions array");
    (suggestions, run.position())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_sends_whose_replies_have_not_come_are_maturing_not_failed() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Fresh Monday").await;
    // A null world, matured long ago, and 4,000 sends of yesterday whose
    // replies have not come yet.
    let (mut sends, outcomes) = world(5, 10_000, &[]);
    let (fresh, _) = world(6, 4_000, &[]);
    let yesterday = chrono::Utc::now() - chrono::Duration::days(1);
    for (i, mut send) in fresh.into_iter().enumerate() {
        send["sent_at"] = json!((yesterday + chrono::Duration::seconds(i as i64)).to_rfc3339());
        sends.push(send);
    }
    let position = ingest(&app, client, sends, outcomes).await;
    let (suggestions, _) = run_engine(&env, &app, client, position).await;
    assert!(
        suggestions.iter().all(|s| s["level"] != "client"),
        "nothing of the client's own is proposed: {suggestions:?}"
    );
    let table = app
        .query(
            &format!("/v1/clients/{client}/patterns/when?min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(table.status, StatusCode::OK, "{table:?}");
    assert_eq!(
        table.body["baseline"]["sends"], 10_000,
        "matured: {table:?}"
    );
    assert_eq!(table.body["baseline"]["maturing_sends"], 4_000);
    assert_eq!(table.body["window_days"], 14);
    let rows = table.body["rows"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        rows.iter()
            .map(|r| r["maturing_sends"].as_u64().unwrap_or(0))
            .sum::<u64>(),
        4_000,
        "each maturing send beside its slot's row"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_suggestion_is_withdrawn_with_the_evidence_once_it_no_longer_holds() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Fading").await;
    let (sends, outcomes) = world(41, 10_000, &PLANTED);
    let position = ingest(&app, client, sends, outcomes).await;
    let (first, _) = run_engine(&env, &app, client, position).await;
    let proposed = first
        .iter()
        .find(|s| s["key"] == "cta=meeting" && s["outcome"] == "proposed")
        .cloned()
        .unwrap_or_else(|| panic!("cta=meeting proposed: {first:?}"));
    // More matured sends in which meeting asks do worse than the rest.
    let reverse = [Planted {
        family: "what",
        feature: "cta",
        value: "meeting",
        multiplier: 0.3,
    }];
    let (sends, outcomes) = world(42, 10_000, &reverse);
    let position = ingest(&app, client, sends, outcomes).await;
    let (second, position) = run_engine(&env, &app, client, position).await;
    let withdrawn = second
        .iter()
        .find(|s| s["key"] == "cta=meeting" && s["outcome"] == "withdrawn")
        .unwrap_or_else(|| panic!("cta=meeting withdrawn: {second:?}"));
    assert_eq!(withdrawn["update_id"], proposed["update_id"]);
    let list = app
        .query(
            &format!("/v1/clients/{client}/approvals?status=withdrawn&min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    let item = list.body["items"]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .find(|u| u["update_id"] == proposed["update_id"])
                .cloned()
        })
        .unwrap_or_else(|| panic!("the withdrawn update is listed: {list:?}"));
    let evidence = &item["withdrawal_evidence"];
    assert_eq!(evidence["key"], "cta=meeting");
    assert_eq!(
        evidence["sends"].as_u64().map(|n| n > 3_000),
        Some(true),
        "{evidence}"
    );
    assert!(
        evidence["withdrawn_because"].as_str().is_some(),
        "{evidence}"
    );
    assert!(evidence["lift"].as_f64().is_some());
    env.caught_up(Duration::from_secs(60)).await;
    env.assert_projections_equal_replay().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_best_practice_the_clients_own_data_contradicts_is_proposed_for_removal() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Contrarian").await;
    // New and without data: the published benchmarks apply, among them
    // "prefer interest-based calls to action" (`cta=question`).
    let (priors, _) = run_engine(&env, &app, client, 0).await;
    assert!(
        priors
            .iter()
            .any(|s| s["key"] == "cta=question" && s["level"] == "benchmark"),
        "{priors:?}"
    );
    let contrary = [Planted {
        family: "what",
        feature: "cta",
        value: "question",
        multiplier: 0.5,
    }];
    let (sends, outcomes) = world(43, 10_000, &contrary);
    let position = ingest(&app, client, sends, outcomes).await;
    let (suggestions, position) = run_engine(&env, &app, client, position).await;
    let proposed: Vec<&Value> = suggestions
        .iter()
        .filter(|s| {
            s["key"] == "cta=question" && s["outcome"] == "proposed" && s["level"] == "client"
        })
        .collect();
    let current = app
        .query(
            &format!("/v1/clients/{client}/context?min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    let queue = app
        .query(
            &format!("/v1/clients/{client}/approvals?status=all&min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    let removal = json!({ "best_practices": { "benchmarks": { "what:cta=question": null } } });
    let update = queue.body["items"]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .find(|u| {
                    u["patch"] == removal
                        && proposed.iter().any(|s| s["update_id"] == u["update_id"])
                })
                .cloned()
        })
        .unwrap_or_else(|| {
            panic!("the removal is recorded: {suggestions:?} {queue:?} {current:?}")
        });
    assert_eq!(update["evidence"]["check"], "prior_against_evidence");
    assert!(
        update["evidence"]["lift_interval_95"][1]
            .as_f64()
            .unwrap_or(1.0)
            < 1.0
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_own_reply_window_decides_which_sends_have_matured() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Quick replies").await;
    let changed = app
        .command(
            Method::PATCH,
            &format!("/v1/clients/{client}"),
            Some(OPERATOR_KEY),
            Some(json!({ "maturity": { "reply_days": 3 } })),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
    // Sends of five days ago: matured under a three-day window, maturing
    // under the default fourteen.
    let (mut sends, _) = world(8, 300, &[]);
    let five_days_ago = chrono::Utc::now() - chrono::Duration::days(5);
    for (i, send) in sends.iter_mut().enumerate() {
        send["sent_at"] = json!((five_days_ago + chrono::Duration::seconds(i as i64)).to_rfc3339());
    }
    let position = ingest(&app, client, sends, Vec::new()).await;
    let table = app
        .query(
            &format!("/v1/clients/{client}/patterns/when?min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(table.status, StatusCode::OK, "{table:?}");
    assert_eq!(table.body["window_days"], 3);
    assert_eq!(table.body["baseline"]["sends"], 300, "{table:?}");
    assert_eq!(table.body["baseline"]["maturing_sends"], 0);
    app.stop().await;
}

/// Waits until the patterns and the context read models have `position`:
/// the engine reads both (the matured sends, and what the context holds).
async fn projected(env: &TestEnv, position: i64) {
    env.eventually(
        "the patterns and the context catch up",
        Duration::from_secs(60),
        || async {
            env.checkpoint("patterns").await >= position
                && env.checkpoint("context").await >= position
        },
    )
    .await;
}

/// The sends of a world, each made under context version `version`.
fn under_version(mut sends: Vec<Value>, version: i64) -> Vec<Value> {
    for send in &mut sends {
        send["context_version"] = json!(version);
    }
    sends
}

/// `cta=meeting` replying `multiplier` times as often as other calls to
/// action.
fn meeting_asks(multiplier: f64) -> [Planted; 1] {
    [Planted {
        family: "what",
        feature: "cta",
        value: "meeting",
        multiplier,
    }]
}

/// The run's suggestion that proposed `cta=meeting` as preferred.
fn meeting_asks_proposed(suggestions: &[Value]) -> &Value {
    suggestions
        .iter()
        .find(|s| {
            s["key"] == "cta=meeting" && s["verdict"] == "prefer" && s["outcome"] == "proposed"
        })
        .unwrap_or_else(|| panic!("cta=meeting proposed: {suggestions:?}"))
}

/// Every update of a client, whatever its status, once the log has
/// `position`.
async fn all_updates(app: &Running, client: Uuid, position: i64) -> Vec<Value> {
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = app
            .query(
                &format!(
                    "/v1/clients/{client}/approvals?status=all&min_position={position}{}",
                    after
                        .as_ref()
                        .map(|a| format!("&after={a}"))
                        .unwrap_or_default()
                ),
                Some(OPERATOR_KEY),
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        items.extend(page.body["items"].as_array().cloned().unwrap_or_default());
        match page.body["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return items,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learned_pattern_that_stops_holding_after_it_was_applied_is_proposed_for_removal_with_its_evidence(
) {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Faded pattern").await;
    let kickoff = app
        .command(
            Method::POST,
            &format!("/v1/clients/{client}/context/updates"),
            Some(OPERATOR_KEY),
            Some(
                json!({ "source": "manual", "patch": { "messaging": { "tone": "plain" } },
                         "rationale": "kick-off" }),
            ),
        )
        .await;
    assert_eq!(kickoff.status, StatusCode::ACCEPTED, "{kickoff:?}");
    // Under version 1, meeting asks reply 1.6 times as often: the engine
    // learns `cta=meeting` and a reviewer approves it.
    let good = meeting_asks(1.6);
    let (sends, outcomes) = world(51, 10_000, &good);
    let position = ingest(&app, client, under_version(sends, 1), outcomes).await;
    projected(&env, position).await;
    let (learned, _) = run_engine(&env, &app, client, position).await;
    let suggestion = meeting_asks_proposed(&learned);
    let update = suggestion["update_id"].as_str().expect("an update id");
    let approved = app
        .command(
            Method::POST,
            &format!("/v1/clients/{client}/context/updates/{update}/approve"),
            Some(OPERATOR_KEY),
            None,
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{approved:?}");
    let applied_in = approved.body["version"]
        .as_i64()
        .unwrap_or_else(|| panic!("the approval made a version: {approved:?}"));
    assert!(applied_in > 1, "applied after the sends of version 1");
    let removal = json!({ "playbook": { "learned": { "what": { "cta=meeting": null } } } });

    // Applied, and nothing sent since: nothing to remove.
    projected(&env, approved.position()).await;
    let (before, position) = run_engine(&env, &app, client, approved.position()).await;
    let held = app
        .query(
            &format!("/v1/clients/{client}/context?min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(
        held.body["document"]["playbook"]["learned"]["what"]["cta=meeting"], "prefer",
        "{held:?}"
    );
    assert!(
        all_updates(&app, client, position)
            .await
            .iter()
            .all(|u| u["patch"] != removal),
        "no removal before the sends since version {applied_in}: {before:?}"
    );

    // Since it was applied, meeting asks do worse than the rest, on 20,000
    // matured sends made under the version that applied it. Over all the
    // client's sends (the 10,000 good ones included) the key still reads
    // above 1.
    let bad = meeting_asks(0.8);
    let (sends, outcomes) = world(52, 20_000, &bad);
    let position = ingest(&app, client, under_version(sends, applied_in), outcomes).await;
    projected(&env, position).await;
    let (after, position) = run_engine(&env, &app, client, position).await;
    let proposed: Vec<&Value> = after
        .iter()
        .filter(|s| s["key"] == "cta=meeting" && s["outcome"] == "proposed")
        .collect();
    let updates = all_updates(&app, client, position).await;
    let item = updates
        .iter()
        .find(|u| {
            u["patch"] == removal && proposed.iter().any(|s| s["update_id"] == u["update_id"])
        })
        .unwrap_or_else(|| panic!("the removal is proposed: {after:?} {updates:?}"));
    assert_eq!(item["status"], "pending", "{item}");
    assert_eq!(item["source"], "email_performance", "{item}");
    let evidence = &item["evidence"];
    assert_eq!(evidence["check"], "pattern_health", "{evidence}");
    assert_eq!(evidence["key"], "cta=meeting", "{evidence}");
    assert_eq!(evidence["held_verdict"], "prefer", "{evidence}");
    assert_eq!(evidence["since_version"], applied_in, "{evidence}");
    assert!(
        evidence["stopped_holding_because"]
            .as_str()
            .is_some_and(|why| !why.trim().is_empty()),
        "{evidence}"
    );
    // Judged on the sends since it was applied only: the key's arm and the
    // rest hold the 20,000 sends of version `applied_in`, none of before.
    assert_eq!(
        evidence["sends"].as_u64().unwrap_or(0) + evidence["rest_sends"].as_u64().unwrap_or(0),
        20_000,
        "{evidence}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learned_suggestion_under_autopilot_carries_its_confidence_and_applies_itself() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Autopilot").await;
    let changed = app
        .command(
            Method::PATCH,
            &format!("/v1/clients/{client}"),
            Some(OPERATOR_KEY),
            Some(json!({ "permission_mode": "autopilot", "autopilot_threshold": 0.9 })),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
    let strong = meeting_asks(2.0);
    let (sends, outcomes) = world(61, 10_000, &strong);
    let position = ingest(&app, client, sends, outcomes).await;
    projected(&env, position.max(changed.position())).await;
    let (suggestions, position) = run_engine(&env, &app, client, position).await;
    let suggestion = meeting_asks_proposed(&suggestions);
    let update_id = suggestion["update_id"].as_str().expect("an update id");
    let update = app
        .query(
            &format!("/v1/clients/{client}/context/updates/{update_id}?min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(update.status, StatusCode::OK, "{update:?}");
    // Its confidence is 1 − the always-valid p: near 1 on an effect this
    // strong, above the client's threshold.
    let confidence = update.body["confidence"]
        .as_f64()
        .unwrap_or_else(|| panic!("the suggestion carries a confidence: {}", update.body));
    assert!(confidence > 0.9, "confidence {confidence}: {}", update.body);
    let p = update.body["evidence"]["always_valid_p"]
        .as_f64()
        .expect("an always-valid p");
    assert!(
        (confidence - (1.0 - p)).abs() < 1e-6,
        "confidence {confidence} is 1 - always-valid p {p}"
    );
    // So autopilot applied it at once.
    assert_eq!(update.body["status"], "applied", "{}", update.body);
    assert_eq!(update.body["via"], "autopilot", "{}", update.body);
    assert!(update.body["version"].is_u64(), "{}", update.body);
    let context = app
        .query(
            &format!("/v1/clients/{client}/context?min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(
        context.body["document"]["playbook"]["learned"]["what"]["cta=meeting"], "prefer",
        "{context:?}"
    );
    app.stop().await;
}
