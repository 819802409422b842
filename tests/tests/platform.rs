//! Cross-client learning: only consenting clients are pooled, a platform
//! row needs at least five of them with fifty sends each, no client
//! identifier is ever shown, consent gates access, new clients start from
//! priors (industry → platform → published benchmarks) that say their
//! level, and approved platform practices reach consenting clients'
//! best practices.

use chrono::TimeZone;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sextant_tests::simulator::{world, Planted};
use sextant_tests::{Running, TestEnv, OPERATOR_KEY};
use uuid::Uuid;

const PLANTED: [Planted; 1] = [Planted {
    family: "what",
    feature: "cta",
    value: "meeting",
    multiplier: 1.8,
}];

async fn consent(app: &Running, client: Uuid, given: bool) -> i64 {
    let answer = app
        .command(
            Method::PATCH,
            &format!("/v1/clients/{client}"),
            Some(OPERATOR_KEY),
            Some(json!({ "data_sharing_consent": given })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer.position()
}

async fn traffic(app: &Running, client: Uuid, seed: u64) -> i64 {
    let (sends, outcomes) = world(seed, 800, &PLANTED);
    let mut position = 0;
    for (path, items) in [("sends", sends), ("outcomes", outcomes)] {
        let answer = app
            .command(
                Method::POST,
                &format!("/v1/clients/{client}/{path}"),
                Some(OPERATOR_KEY),
                Some(json!({ path: items })),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        position = position.max(answer.position());
    }
    position
}

/// Traffic where `cta=meeting` replies exactly as often as the rest: 100
/// sends with a meeting ask and 100 with a call ask, one in ten of each
/// replied to.
async fn level_traffic(app: &Running, client: Uuid, tag: usize) -> i64 {
    let start = chrono::Utc
        .with_ymd_and_hms(2026, 10, 5, 0, 0, 0)
        .single()
        .expect("an unambiguous time");
    let mut sends = Vec::new();
    let mut outcomes = Vec::new();
    for i in 0..200_i64 {
        let cta = if i % 2 == 0 { "meeting" } else { "call" };
        let message = format!("level-{tag}-{i}");
        let sent_at = start + chrono::Duration::hours(i);
        sends.push(json!({
            "provider": "sim", "provider_message_id": message,
            "lead_ref": format!("level-lead-{tag}-{i:06}"),
            "lead": {"industry": "fintech", "company_size": "11-50", "seniority": "vp", "tier": "cold", "region": "AU"},
            "channel": "email", "campaign_id": "level", "step": 1,
            "content": {"subject_words": 5, "subject_question": false, "personalized": true,
                        "body_words": 80, "cta": cta, "angle": "speed"},
            "context_version": 1, "agent": "email_strategist", "prompt_version": "1",
            "sent_at": sent_at.to_rfc3339(),
        }));
        if (i / 2) % 10 == 0 {
            outcomes.push(json!({
                "provider": "sim", "provider_message_id": message, "kind": "replied", "intent": "interested",
                "occurred_at": (sent_at + chrono::Duration::hours(5)).to_rfc3339(),
            }));
        }
    }
    let sent = app.ingest(client, "sends", &sends).await;
    let replied = app.ingest(client, "outcomes", &outcomes).await;
    sent.max(replied)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_patterns_pool_only_consenting_clients_and_name_none_of_them() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let mut clients = Vec::new();
    let mut position = 0;
    for i in 0..6 {
        let (client, _) = app.register_client(&format!("Fintech {i}")).await;
        if i < 5 {
            consent(&app, client, true).await;
        }
        position = position.max(traffic(&app, client, 100 + i).await);
        clients.push(client);
    }
    let read = |path: String, key: String| {
        let app = &app;
        async move { app.query(&path, Some(&key)).await }
    };
    let table = read(
        format!("/v1/patterns/platform/what?min_position={position}"),
        OPERATOR_KEY.into(),
    )
    .await;
    assert_eq!(table.status, StatusCode::OK, "{table:?}");
    assert_eq!(
        table.body["contributing_clients"], 5,
        "the client without consent is not pooled"
    );
    assert_eq!(table.body["baseline_sends"], 4000);
    assert_eq!(table.body["rows"][0]["key"], "cta=meeting", "{table:?}");
    assert_eq!(table.body["rows"][0]["clients"], 5);
    let text = table.body.to_string();
    for client in &clients {
        assert!(
            !text.contains(&client.to_string()),
            "a client id leaked into platform patterns"
        );
    }
    assert!(!text.contains("Fintech"), "a client name leaked");

    // Consent gates access for client keys.
    let sharing_key = app.issue_key(clients[0], "reader").await;
    let private_key = app.issue_key(clients[5], "reader").await;
    let allowed = read(
        format!("/v1/patterns/platform/who?min_position={position}"),
        sharing_key,
    )
    .await;
    assert_eq!(allowed.status, StatusCode::OK, "{allowed:?}");
    let refused = read(
        format!("/v1/patterns/platform/who?min_position={position}"),
        private_key,
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    assert!(refused.body["detail"]
        .as_str()
        .unwrap_or("")
        .contains("consent"));

    // Four contributors are not enough.
    let withdrawn = consent(&app, clients[4], false).await;
    let thin = read(
        format!("/v1/patterns/platform/what?min_position={withdrawn}"),
        OPERATOR_KEY.into(),
    )
    .await;
    assert_eq!(thin.body["rows"], json!([]), "{thin:?}");
    // Withheld, not zero: no count is drawn from fewer than five.
    assert_eq!(thin.body["contributing_clients"], Value::Null, "{thin:?}");
    app.stop().await;
}

fn levels(answer: &Value) -> Vec<(String, String)> {
    answer["suggestions"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|x| {
                    (
                        x["level"].as_str().unwrap_or("").to_owned(),
                        x["outcome"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .expect("an answer lists its suggestions")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_clients_start_from_priors_that_say_their_level_and_practices_reach_consenting_clients()
{
    let env = TestEnv::new().await;
    let app = env.start().await;
    let mut position = 0;
    for i in 0..5 {
        let (client, _) = app.register_client(&format!("Fintech {i}")).await;
        consent(&app, client, true).await;
        position = position.max(traffic(&app, client, 200 + i).await);
    }
    env.eventually(
        "the patterns catch up",
        std::time::Duration::from_secs(30),
        || async {
            env.checkpoint("patterns").await >= position
                && env.checkpoint("clients").await >= position
        },
    )
    .await;

    // A new fintech client that shares: its industry's patterns.
    let (sharing, _) = app.register_client("New sharing fintech").await;
    consent(&app, sharing, true).await;
    let run = app
        .command(
            Method::POST,
            &format!("/v1/clients/{sharing}/suggestions/run"),
            Some(OPERATOR_KEY),
            None,
        )
        .await;
    assert_eq!(run.status, StatusCode::OK, "{run:?}");
    let got = levels(&run.body);
    assert!(
        !got.is_empty()
            && got
                .iter()
                .all(|(level, outcome)| level == "industry" && outcome == "proposed"),
        "{got:?}"
    );
    let queue = app
        .query(
            &format!(
                "/v1/clients/{sharing}/approvals?min_position={}",
                run.position()
            ),
            Some(OPERATOR_KEY),
        )
        .await;
    let first = queue.body["items"][0].clone();
    assert_eq!(first["source"], "cross_client_patterns", "{queue:?}");
    assert_eq!(first["evidence"]["level"], "industry");
    assert_eq!(
        first["patch"],
        json!({ "playbook": { "priors": { "what": { "cta=meeting": "prefer" } } } })
    );

    // A new client that does not share: published benchmarks, applied as
    // best practices.
    let (private, _) = app.register_client("New private").await;
    let run = app
        .command(
            Method::POST,
            &format!("/v1/clients/{private}/suggestions/run"),
            Some(OPERATOR_KEY),
            None,
        )
        .await;
    let got = levels(&run.body);
    assert!(
        !got.is_empty() && got.iter().all(|(level, _)| level == "benchmark"),
        "{got:?}"
    );
    let context = app
        .query(
            &format!(
                "/v1/clients/{private}/context?min_position={}",
                run.position()
            ),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(
        context.body["document"]["best_practices"]["benchmarks"]["what:subject_words=1-3"],
        "prefer",
        "{context:?}"
    );

    // A platform practice the operator approves reaches every consenting
    // client's best practices, and no other.
    let answer = app
        .command(Method::POST, "/v1/patterns/platform/practices", Some(OPERATOR_KEY),
            Some(json!({ "family": "what", "key": "cta=meeting", "verdict": "prefer", "note": "meeting asks win across fintech" })))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.body["applied"], 6, "{answer:?}");
    let shared = app
        .query(
            &format!(
                "/v1/clients/{sharing}/context?min_position={}",
                answer.position()
            ),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(
        shared.body["document"]["best_practices"]["platform"]["what:cta=meeting"],
        "prefer"
    );
    let kept_out = app
        .query(
            &format!(
                "/v1/clients/{private}/context?min_position={}",
                answer.position()
            ),
            Some(OPERATOR_KEY),
        )
        .await;
    assert!(
        kept_out.body["document"]["best_practices"]
            .get("platform")
            .is_none(),
        "{kept_out:?}"
    );
    let bad = app
        .command(
            Method::POST,
            "/v1/patterns/platform/practices",
            Some(OPERATOR_KEY),
            Some(
                json!({ "family": "why", "key": "cta=meeting", "verdict": "prefer", "note": "x" }),
            ),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Only what a platform row supports: not a key no row has, not the
    // opposite of what the row says.
    for (key, verdict, field) in [
        ("cta=pigeon", "prefer", "key"),
        ("cta=meeting", "avoid", "verdict"),
    ] {
        let refused = app
            .command(
                Method::POST,
                "/v1/patterns/platform/practices",
                Some(OPERATOR_KEY),
                Some(json!({ "family": "what", "key": key, "verdict": verdict, "note": "the operator's hunch" })),
            )
            .await;
        assert_eq!(
            (refused.status, refused.body["errors"][0]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{key} {verdict}: {refused:?}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_practice_from_a_row_shown_but_not_significant_is_refused_naming_key_and_writes_nothing(
) {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let mut position = 0;
    for i in 0..5 {
        let (client, _) = app.register_client(&format!("Level fintech {i}")).await;
        consent(&app, client, true).await;
        position = position.max(level_traffic(&app, client, i).await);
    }

    // The table shows the row: five consenting clients with 100 sends of
    // the key each, 500 in all against 500 for the rest, at the same rate.
    let table = app
        .query(
            &format!("/v1/patterns/platform/what?metric=reply&min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(table.status, StatusCode::OK, "{table:?}");
    assert_eq!(table.body["contributing_clients"], 5, "{table:?}");
    assert_eq!(table.body["baseline_sends"], 1000, "{table:?}");
    let row = table.body["rows"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["key"] == "cta=meeting"))
        .cloned()
        .unwrap_or_else(|| panic!("the table shows a cta=meeting row: {table:?}"));
    assert_eq!(
        (
            row["clients"].as_i64(),
            row["sends"].as_u64(),
            row["events"].as_u64()
        ),
        (Some(5), Some(500), Some(50)),
        "{row:?}"
    );
    assert_eq!(row["lift"].as_f64(), Some(1.0), "{row:?}");

    let events_before = env.event_ids().await.len();
    let context_events = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM events WHERE aggregate_type = 'client_context'",
        )
        .fetch_one(&env.pool)
        .await
        .expect("count context events")
    };
    let contexts_before = context_events().await;
    let refused = app
        .command(
            Method::POST,
            "/v1/patterns/platform/practices",
            Some(OPERATOR_KEY),
            Some(
                json!({ "family": "what", "key": "cta=meeting", "verdict": "prefer",
                "note": "meeting asks win, says the operator" }),
            ),
        )
        .await;
    assert_eq!(
        (refused.status, refused.body["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("key")),
        "{refused:?}"
    );
    let detail = refused.body["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("not significant") && detail.contains("lift 1.00"),
        "{refused:?}"
    );
    assert_eq!(
        context_events().await,
        contexts_before,
        "no context update was proposed"
    );
    assert_eq!(
        env.event_ids().await.len(),
        events_before,
        "nothing was written"
    );
    app.stop().await;
}
