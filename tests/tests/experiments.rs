//! Experiments over HTTP: bad definitions refused, deterministic
//! assignment, results per variant with a sequential-safe decision, the
//! sample-ratio-mismatch check, and a concluded winner proposed as a
//! context update.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sextant_domain::experiment::{assign, Variant};
use sextant_tests::simulator::Rng;
use sextant_tests::{Running, TestEnv, OPERATOR_KEY};
use uuid::Uuid;

async fn create(app: &Running, client: Uuid, body: Value) -> sextant_tests::Answer {
    app.command(
        Method::POST,
        &format!("/v1/clients/{client}/experiments"),
        Some(OPERATOR_KEY),
        Some(body),
    )
    .await
}

/// Sends for `leads` leads assigned as the experiment assigns them (or as
/// `force` says), replying at each variant's rate.
async fn run_traffic(
    app: &Running,
    client: Uuid,
    experiment: Uuid,
    leads: usize,
    rates: &[(&str, f64)],
    force: Option<&dyn Fn(usize) -> &'static str>,
) -> i64 {
    let variants: Vec<Variant> = rates
        .iter()
        .map(|(id, _)| Variant {
            id: (*id).into(),
            weight: 1.0,
        })
        .collect();
    let mut rng = Rng::new(experiment.as_u128() as u64);
    let (mut sends, mut outcomes) = (Vec::new(), Vec::new());
    for i in 0..leads {
        let lead = format!("lead-{experiment}-{i}");
        let variant = match force {
            Some(f) => f(i).to_owned(),
            None => assign(experiment, &lead, &variants)
                .map(|v| v.id.clone())
                .expect("every lead is assigned a variant"),
        };
        let rate = rates
            .iter()
            .find(|(id, _)| *id == variant)
            .map(|(_, r)| *r)
            .unwrap_or(0.0);
        let message = format!("exp-{experiment}-{i}");
        sends.push(json!({ "provider": "sim", "provider_message_id": message, "lead_ref": lead, "channel": "email",
            "experiment_id": experiment, "variant": variant, "sent_at": "2026-11-18T09:00:00Z" }));
        if rng.next_f64() < rate {
            outcomes.push(
                json!({ "provider": "sim", "provider_message_id": message, "kind": "replied",
                "intent": "interested", "occurred_at": "2026-11-18T12:00:00Z" }),
            );
        }
    }
    let sent = app.ingest(client, "sends", &sends).await;
    sent.max(app.ingest(client, "outcomes", &outcomes).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_experiment_definitions_are_refused_and_write_nothing() {
    let env = TestEnv::new().await;
    let app = env.start_with(sextant_tests::Parts::apis_only()).await;
    let (client, _) = app.register_client("Acme").await;
    let before = env.event_ids().await.len();
    for (body, field) in [
        (
            json!({ "name": "x", "variants": [{ "id": "a", "weight": 1 }], "metric": "reply" }),
            "variants",
        ),
        (
            json!({ "name": "x", "variants": [{ "id": "a", "weight": 0 }, { "id": "b", "weight": 0 }], "metric": "reply" }),
            "variants",
        ),
        (
            json!({ "name": "x", "variants": [{ "id": "a", "weight": -1 }, { "id": "b", "weight": 2 }], "metric": "reply" }),
            "variants",
        ),
        (
            json!({ "name": "x", "variants": [{ "id": "a", "weight": 1 }, { "id": "a", "weight": 1 }], "metric": "reply" }),
            "variants",
        ),
        (
            json!({ "name": "x", "variants": [{ "id": "a", "weight": 1 }, { "id": "b", "weight": 1 }], "metric": "opens" }),
            "metric",
        ),
        (
            json!({ "name": " ", "variants": [{ "id": "a", "weight": 1 }, { "id": "b", "weight": 1 }], "metric": "reply" }),
            "name",
        ),
    ] {
        let answer = create(&app, client, body.clone()).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {answer:?}"
        );
        assert_eq!(
            answer.body["errors"][0]["field"], field,
            "{body}: {answer:?}"
        );
    }
    assert_eq!(env.event_ids().await.len(), before);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_experiment_assigns_deterministically_decides_on_results_and_proposes_its_winner() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    let created = create(
        &app,
        client,
        json!({ "name": "subject length", "metric": "reply",
        "variants": [{ "id": "short", "weight": 1 }, { "id": "long", "weight": 1 }] }),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let experiment: Uuid = created.body["experiment_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("id");

    // Assignment: the same lead, the same variant, every time.
    let path = format!(
        "/v1/clients/{client}/experiments/{experiment}/assignment?lead_ref=lead-00000001&min_position={}",
        created.position()
    );
    let first = app.query(&path, Some(OPERATOR_KEY)).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    for _ in 0..3 {
        assert_eq!(
            app.query(&path, Some(OPERATOR_KEY)).await.body["variant"],
            first.body["variant"]
        );
    }
    let missing = app
        .query(
            &format!(
                "/v1/clients/{client}/experiments/{}/assignment?lead_ref=lead-00000001",
                Uuid::new_v4()
            ),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let (other, _) = app.register_client("Other").await;
    let foreign = app
        .query(
            &format!(
                "/v1/clients/{other}/experiments/{experiment}?min_position={}",
                created.position()
            ),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(
        foreign.status,
        StatusCode::NOT_FOUND,
        "another client's experiment"
    );

    // Early on, no call; with enough traffic, short wins.
    let position = run_traffic(
        &app,
        client,
        experiment,
        200,
        &[("short", 0.16), ("long", 0.08)],
        None,
    )
    .await;
    let early = app
        .query(
            &format!("/v1/clients/{client}/experiments/{experiment}?min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(early.status, StatusCode::OK, "{early:?}");
    assert_eq!(
        early.body["results"]["decision"], "keep_running",
        "{early:?}"
    );
    let position = run_traffic(
        &app,
        client,
        experiment,
        6000,
        &[("short", 0.16), ("long", 0.08)],
        None,
    )
    .await;
    let later = app
        .query(
            &format!("/v1/clients/{client}/experiments/{experiment}?min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    let results = &later.body["results"];
    assert_eq!(results["decision"], "winner", "{later:?}");
    assert_eq!(results["winner"], "short");
    assert!(
        results["sample_ratio_p"].as_f64().unwrap_or(0.0) > 0.001,
        "a fair split is no mismatch"
    );
    for v in results["variants"]
        .as_array()
        .cloned()
        .expect("a variants array")
    {
        assert!(
            v["ci_low"].as_f64() <= v["rate"].as_f64()
                && v["rate"].as_f64() <= v["ci_high"].as_f64()
        );
        assert!(v["sends"].as_u64().unwrap_or(0) > 2500);
    }
    assert!(results["rule"].as_str().unwrap_or("").contains("mSPRT"));

    // Concluding records the decision and proposes the winner for review.
    let concluded = app
        .command(
            Method::POST,
            &format!("/v1/clients/{client}/experiments/{experiment}/conclude"),
            Some(OPERATOR_KEY),
            None,
        )
        .await;
    assert_eq!(concluded.status, StatusCode::OK, "{concluded:?}");
    assert_eq!(concluded.body["winner"], "short");
    let queue = app
        .query(
            &format!(
                "/v1/clients/{client}/approvals?min_position={}",
                concluded.position()
            ),
            Some(OPERATOR_KEY),
        )
        .await;
    let proposal = queue.body["items"]
        .as_array()
        .and_then(|items| items.first().cloned())
        .expect("the winner is proposed");
    assert_eq!(
        proposal["patch"],
        json!({ "playbook": { "experiments": { "subject length": { "winner": "short" } } } })
    );
    assert_eq!(proposal["evidence"]["results"]["winner"], "short");
    let again = app
        .command(
            Method::POST,
            &format!("/v1/clients/{client}/experiments/{experiment}/conclude"),
            Some(OPERATOR_KEY),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{again:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skewed_split_is_called_a_sample_ratio_mismatch_not_a_winner() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    let created = create(
        &app,
        client,
        json!({ "name": "cta", "metric": "reply",
        "variants": [{ "id": "a", "weight": 1 }, { "id": "b", "weight": 1 }] }),
    )
    .await;
    let experiment: Uuid = created.body["experiment_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("id");
    // A broken integration sends 60% of traffic to a.
    let skew: &dyn Fn(usize) -> &'static str = &|i| if i % 5 < 3 { "a" } else { "b" };
    let position = run_traffic(
        &app,
        client,
        experiment,
        5000,
        &[("a", 0.16), ("b", 0.08)],
        Some(skew),
    )
    .await;
    let answer = app
        .query(
            &format!("/v1/clients/{client}/experiments/{experiment}?min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(
        answer.body["results"]["decision"], "sample_ratio_mismatch",
        "{answer:?}"
    );
    assert_eq!(answer.body["results"]["winner"], Value::Null);
    app.stop().await;
}
