//! An experiment's decision over its daily looks: a winner reached on one
//! day stands when the next day's sends dilute it, with the running-minimum
//! always-valid p that reached it.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sextant_domain::experiment::{decide, Variant, Verdict, MIXTURE_VARIANCE};
use sextant_domain::stats::always_valid_p;
use sextant_tests::{Running, TestEnv, OPERATOR_KEY};
use uuid::Uuid;

/// One day's sends of `experiment`: per variant, `sends` sends on `day` of
/// which the first `replies` are replied to the same day.
async fn post_day(
    app: &Running,
    client: Uuid,
    experiment: Uuid,
    day: &str,
    arms: &[(&str, usize, usize)],
) -> i64 {
    let (mut sends, mut outcomes) = (Vec::new(), Vec::new());
    for (variant, count, replies) in arms {
        for i in 0..*count {
            let message = format!("exp-{experiment}-{day}-{variant}-{i}");
            sends.push(json!({ "provider": "sim", "provider_message_id": message,
                "lead_ref": format!("lead-{experiment}-{day}-{variant}-{i}"), "channel": "email",
                "experiment_id": experiment, "variant": variant, "sent_at": format!("{day}T09:00:00Z") }));
            if i < *replies {
                outcomes.push(json!({ "provider": "sim", "provider_message_id": message,
                    "kind": "replied", "intent": "interested", "occurred_at": format!("{day}T15:00:00Z") }));
            }
        }
    }
    let sent = app.ingest(client, "sends", &sends).await;
    sent.max(app.ingest(client, "outcomes", &outcomes).await)
}

fn p_of(results: &Value, id: &str) -> Option<f64> {
    results["variants"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["id"] == id))
        .and_then(|v| v["always_valid_p"].as_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_winner_reached_on_one_day_stands_when_the_next_day_dilutes_it() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    let created = app
        .command(
            Method::POST,
            &format!("/v1/clients/{client}/experiments"),
            Some(OPERATOR_KEY),
            Some(json!({ "name": "opening line", "metric": "reply",
                "variants": [{ "id": "a", "weight": 1 }, { "id": "b", "weight": 1 }] })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let experiment: Uuid = created.body["experiment_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("an experiment id");

    // Given: on 16 November a replies at 20% and b at 10% on 1000 sends
    // each (an always-valid p of about 0.004); on 17 November the gap
    // reverses (9% against 17%), so the totals are 14.5% against 13.5%.
    post_day(
        &app,
        client,
        experiment,
        "2026-11-16",
        &[("a", 1000, 200), ("b", 1000, 100)],
    )
    .await;
    let position = post_day(
        &app,
        client,
        experiment,
        "2026-11-17",
        &[("a", 1000, 90), ("b", 1000, 170)],
    )
    .await;
    let day_one = always_valid_p(200, 1000, 100, 1000, MIXTURE_VARIANCE);
    assert!(day_one < 0.05, "{day_one}");
    // The totals alone are no call.
    let arm = |id: &str| Variant {
        id: id.into(),
        weight: 1.0,
    };
    let totals = decide(&[(arm("a"), 2000, 290), (arm("b"), 2000, 270)]);
    assert_eq!(totals.decision, Verdict::KeepRunning);

    // When: the results are read.
    let answer = app
        .query(
            &format!("/v1/clients/{client}/experiments/{experiment}?min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let results = &answer.body["results"];

    // Then: a won on the first day and still has, with that day's p.
    assert_eq!(results["decision"], "winner", "{answer:?}");
    assert_eq!(results["winner"], "a");
    assert_eq!(results["decided_on"], "2026-11-16");
    assert_eq!(results["looks"], 3, "two days with data and today");
    let p = p_of(results, "b").expect("b's p against the winner");
    assert!(
        ((p - day_one) / day_one).abs() < 1e-12,
        "{p} against {day_one}"
    );
    assert_eq!(p_of(results, "a"), None);
    let sends: Vec<(u64, u64)> = results["variants"]
        .as_array()
        .expect("a variants array")
        .iter()
        .map(|v| {
            (
                v["sends"].as_u64().unwrap_or(0),
                v["events"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(sends, [(2000, 290), (2000, 270)], "the numbers are today's");
    assert!(
        results["rule"]
            .as_str()
            .is_some_and(|r| r.contains("running minimum")),
        "{results}"
    );

    // Concluding records the decision that stood.
    let concluded = app
        .command(
            Method::POST,
            &format!("/v1/clients/{client}/experiments/{experiment}/conclude"),
            Some(OPERATOR_KEY),
            None,
        )
        .await;
    assert_eq!(concluded.status, StatusCode::OK, "{concluded:?}");
    assert_eq!(concluded.body["decision"], "winner");
    assert_eq!(concluded.body["winner"], "a");
    assert_eq!(concluded.body["results"]["decided_on"], "2026-11-16");
    app.stop().await;
}
