//! Sends and outcomes over HTTP: batches with per-item results, duplicates
//! under concurrency, outcomes before their sends, suppression and send
//! authorisation, erasure of personal data, replay.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sextant_projections::replay;
use sextant_tests::{Answer, Running, TestEnv, OPERATOR_KEY};
use uuid::Uuid;

fn send(message: &str, email: &str) -> Value {
    json!({
        "provider": "smartlead", "provider_message_id": message,
        "lead": {"email": email, "name": format!("Name of {email}"), "industry": "fintech", "company_size": "11-50",
                 "seniority": "vp", "title": "VP Finance", "region": "AU", "tier": "warm", "score": 72},
        "channel": "email", "campaign_id": "q4-fintech", "step": 1,
        "content": {"subject": format!("{email}, quick question on month-end close?"), "body_words": 84,
                    "personalized": true, "cta": "meeting", "angle": "compliance"},
        "context_version": 7, "agent": "email_strategist", "prompt_version": "2.3",
        "resource": "sam@acme-mail.com", "sent_at": "2026-11-18T09:12:00Z"
    })
}

fn outcome(message: &str, kind: &str) -> Value {
    json!({"provider": "smartlead", "provider_message_id": message, "provider_event_id": format!("evt-{message}-{kind}"),
           "kind": kind, "occurred_at": "2026-11-18T15:40:00Z"})
}

async fn post(app: &Running, client: Uuid, path: &str, body: Value) -> Answer {
    app.command(
        Method::POST,
        &format!("/v1/clients/{client}{path}"),
        Some(OPERATOR_KEY),
        Some(body),
    )
    .await
}

async fn client_with_resources(app: &Running) -> Uuid {
    let (client, _) = app.register_client("Acme").await;
    for (kind, address) in [
        ("mailbox", "sam@acme-mail.com"),
        ("linkedin_seat", "seat-1"),
    ] {
        let answer = post(
            app,
            client,
            "/resources",
            json!({ "kind": kind, "address": address }),
        )
        .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    }
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_records_valid_items_and_reports_invalid_ones_without_losing_any() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    let mut bad_channel = send("m-3", "c@example.com");
    bad_channel["channel"] = json!("pigeon");
    let mut future = send("m-4", "d@example.com");
    future["sent_at"] = json!("2031-01-01T00:00:00Z");
    let mut no_lead = send("m-5", "e@example.com");
    no_lead["lead"] = json!({"industry": "fintech"});
    let batch = json!({ "sends": [send("m-1", "a@example.com"), send("m-2", "b@example.com"), bad_channel, future, no_lead, send("m-1", "a@example.com")] });
    let answer = post(&app, client, "/sends", batch).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let statuses: Vec<&str> = answer.body["results"]
        .as_array()
        .map(|r| r.iter().filter_map(|i| i["status"].as_str()).collect())
        .expect("a results array");
    assert_eq!(
        statuses,
        vec![
            "recorded",
            "recorded",
            "error",
            "error",
            "error",
            "duplicate"
        ]
    );
    assert_eq!(answer.body["results"][2]["field"], "channel");
    assert_eq!(answer.body["results"][3]["field"], "sent_at");
    assert_eq!(answer.body["results"][4]["field"], "lead");
    assert_eq!(
        (
            answer.body["recorded"].as_u64(),
            answer.body["errors"].as_u64()
        ),
        (Some(2), Some(3))
    );

    // Outcomes: kinds unknown, intents misplaced, and a message id another
    // client also uses, which is this client's own early outcome (not a
    // refusal that would tell the other client has it).
    let (other, _) = app.register_client("Other").await;
    let theirs = post(&app, other, "/sends", send("theirs", "z@example.com")).await;
    let mut bad_intent = outcome("m-1", "opened");
    bad_intent["intent"] = json!("interested");
    let outcomes = json!({ "outcomes": [outcome("m-1", "opened"), outcome("m-1", "teleported"), bad_intent, outcome("theirs", "opened"), outcome("m-1", "opened")] });
    let answer = post(&app, client, "/outcomes", outcomes).await;
    let statuses: Vec<&str> = answer.body["results"]
        .as_array()
        .map(|r| r.iter().filter_map(|i| i["status"].as_str()).collect())
        .expect("a results array");
    assert_eq!(
        statuses,
        vec!["recorded", "error", "error", "recorded", "duplicate"],
        "{answer:?}"
    );
    assert_eq!(answer.body["results"][1]["field"], "kind");
    assert_eq!(answer.body["results"][2]["field"], "intent");
    assert!(theirs.body["send_id"].is_string(), "{theirs:?}");
    assert_ne!(
        answer.body["results"][3]["send_id"], theirs.body["send_id"],
        "the outcome is this client's, not a mark on the other client's send: {answer:?}"
    );

    // A single item answers like a command.
    let single = post(&app, client, "/sends", send("m-9", "f@example.com")).await;
    assert_eq!(single.status, StatusCode::CREATED, "{single:?}");
    assert_eq!(single.body["status"], "recorded");
    let again = post(&app, client, "/sends", send("m-9", "f@example.com")).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["status"], "duplicate");
    let invalid = post(&app, client, "/sends", json!({"provider": "smartlead"})).await;
    assert_eq!(
        invalid.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{invalid:?}"
    );
    let too_many = json!({ "sends": (0..1001).map(|i| send(&format!("x{i}"), "g@example.com")).collect::<Vec<_>>() });
    let answer = post(&app, client, "/sends", too_many).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{answer:?}");
    let sends: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'send_recorded'")
            .fetch_one(&env.pool)
            .await
            .expect("count");
    assert_eq!(
        sends, 4,
        "two from the batch, one single, one of the other client"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_sends_and_outcomes_arriving_concurrently_are_recorded_once() {
    let env = TestEnv::new().await;
    let app = Arc::new(env.start().await);
    let (client, _) = app.register_client("Acme").await;
    let mut racers = Vec::new();
    for racer in 0..8 {
        let app = app.clone();
        racers.push(tokio::spawn(async move {
            // Every racer sends the same 50 sends (in a different order) and
            // the same outcomes.
            let mut sends: Vec<Value> = (0..50)
                .map(|i| send(&format!("m-{i}"), &format!("lead{i}@example.com")))
                .collect();
            sends.rotate_left(racer * 6);
            let a = post(&app, client, "/sends", json!({ "sends": sends })).await;
            let outcomes: Vec<Value> = (0..50)
                .map(|i| outcome(&format!("m-{i}"), "replied"))
                .collect();
            let b = post(&app, client, "/outcomes", json!({ "outcomes": outcomes })).await;
            (a, b)
        }));
    }
    let mut recorded: HashMap<String, usize> = HashMap::new();
    for racer in racers {
        let (a, b) = racer.await.expect("racer");
        assert_eq!(a.status, StatusCode::OK, "{a:?}");
        assert_eq!(b.status, StatusCode::OK, "{b:?}");
        for (kind, answer) in [("send", &a), ("outcome", &b)] {
            for item in answer.body["results"]
                .as_array()
                .cloned()
                .expect("a results array")
            {
                if item["status"] == "recorded" {
                    *recorded
                        .entry(format!("{kind}:{}", item["send_id"]))
                        .or_default() += 1;
                }
            }
        }
    }
    assert_eq!(recorded.len(), 100);
    assert!(recorded.values().all(|n| *n == 1), "{recorded:?}");
    let per_send: Vec<(String, i64)> = sqlx::query_as(
        "SELECT aggregate_id, count(*) FROM events WHERE aggregate_type = 'send' GROUP BY aggregate_id",
    )
    .fetch_all(&env.pool).await.expect("count");
    assert_eq!(per_send.len(), 50);
    assert!(per_send.iter().all(|(_, n)| *n == 2), "{per_send:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_before_its_send_is_kept_attached_and_suppresses_the_lead() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let client = client_with_resources(&app).await;
    let early = post(&app, client, "/outcomes", outcome("m-1", "unsubscribed")).await;
    assert_eq!(early.status, StatusCode::CREATED, "{early:?}");
    let late = post(&app, client, "/sends", send("m-1", "ana@example.com")).await;
    assert_eq!(late.status, StatusCode::CREATED, "{late:?}");
    let send_id = late.body["send_id"].as_str().expect("send id").to_owned();
    assert_eq!(early.body["send_id"], late.body["send_id"]);

    let suppressed = app
        .query(
            &format!(
                "/v1/clients/{client}/suppression?min_position={}",
                late.position()
            ),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(suppressed.status, StatusCode::OK, "{suppressed:?}");
    let lead_ref = suppressed.body["items"][0]["lead_ref"]
        .as_str()
        .expect("a suppressed lead_ref")
        .to_owned();
    assert!(lead_ref.starts_with("lr_"), "{suppressed:?}");
    assert_eq!(suppressed.body["items"][0]["reason"], "unsubscribed");
    assert_eq!(suppressed.body["items"][0]["send_id"], send_id.as_str());

    // The unsubscribe is acknowledged: no later authorisation permits the lead.
    let answer = post(&app, client, "/sends/authorize", json!({
        "lead_ref": lead_ref, "channel": "email", "resource": "sam@acme-mail.com", "lead_tier": "warm" })).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.body["permit"], false);
    assert_eq!(answer.body["reasons"], json!(["suppressed"]));
    let outcomes: i64 =
        sqlx::query_scalar("SELECT count(*) FROM send_outcomes WHERE send_id = $1::uuid")
            .bind(&send_id)
            .fetch_one(&env.pool)
            .await
            .expect("count");
    assert_eq!(outcomes, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsubscribe_acknowledged_refuses_the_very_next_authorisation() {
    let env = TestEnv::new().await;
    // No projectors: the refusal must not wait for any read model.
    let app = env.start_with(sextant_tests::Parts::apis_only()).await;
    let client = client_with_resources(&app).await;
    let recorded = post(
        &app,
        client,
        "/sends",
        json!({ "sends": [send("m-1", "ana@example.com")] }),
    )
    .await;
    assert_eq!(recorded.status, StatusCode::OK);
    let lead_ref: String = sqlx::query_scalar("SELECT lead_ref FROM send_state LIMIT 1")
        .fetch_one(&env.pool)
        .await
        .expect("lead");
    let ask = || {
        post(
            &app,
            client,
            "/sends/authorize",
            json!({
        "lead_ref": lead_ref, "channel": "email", "resource": "sam@acme-mail.com", "lead_tier": "cold" }),
        )
    };
    assert_eq!(ask().await.body["permit"], true);
    let mut reply = outcome("m-1", "replied");
    reply["intent"] = json!("unsubscribe");
    assert_eq!(
        post(&app, client, "/outcomes", reply).await.status,
        StatusCode::CREATED
    );
    let refused = ask().await;
    assert_eq!(refused.body["permit"], false, "{refused:?}");
    assert_eq!(refused.body["reasons"], json!(["suppressed"]));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seats_cap_is_counted_once_under_fifty_concurrent_authorisations() {
    let env = TestEnv::new().await;
    let app = Arc::new(env.start_with(sextant_tests::Parts::apis_only()).await);
    let client = client_with_resources(&app).await;
    let mut askers = Vec::new();
    for i in 0..50 {
        let app = app.clone();
        askers.push(tokio::spawn(async move {
            post(&app, client, "/sends/authorize", json!({
                "lead_ref": format!("lead-ref-{i:04}"), "channel": "linkedin", "resource": "seat-1", "lead_tier": "hot" })).await
        }));
    }
    let mut permits = 0;
    let mut capped = 0;
    for asker in askers {
        let answer = asker.await.expect("asker");
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        if answer.body["permit"] == true {
            permits += 1;
        } else {
            assert_eq!(
                answer.body["reasons"],
                json!(["daily_cap_reached"]),
                "{answer:?}"
            );
            capped += 1;
        }
    }
    assert_eq!(
        (permits, capped),
        (17, 33),
        "LinkedIn seats default to 17 actions a day"
    );
    let used: i32 = sqlx::query_scalar("SELECT used FROM resource_usage WHERE resource = 'seat-1'")
        .fetch_one(&env.pool)
        .await
        .expect("usage");
    assert_eq!(used, 17);
    let decided: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'authorization_decided'",
    )
    .fetch_one(&env.pool)
    .await
    .expect("count");
    assert_eq!(decided, 50, "every decision is an event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_gives_every_reason() {
    let env = TestEnv::new().await;
    let app = env.start_with(sextant_tests::Parts::apis_only()).await;
    let client = client_with_resources(&app).await;
    let ask = |channel: &str, resource: &str, tier: &str| {
        post(
            &app,
            client,
            "/sends/authorize",
            json!({
            "lead_ref": "lr_0123456789abcdef", "channel": channel, "resource": resource, "lead_tier": tier }),
        )
    };
    assert_eq!(
        ask("sms", "sam@acme-mail.com", "cold").await.body["reasons"],
        json!(["channel_not_allowed_for_tier", "unknown_resource"])
    );
    assert_eq!(
        ask("linkedin", "seat-1", "cold").await.body["reasons"],
        json!(["channel_not_allowed_for_tier"])
    );
    let suspended = post(&app, client, "/suspend", json!({ "reason": "unpaid" })).await;
    assert_eq!(suspended.status, StatusCode::OK);
    assert_eq!(
        ask("email", "sam@acme-mail.com", "cold").await.body["reasons"],
        json!(["client_suspended"])
    );
    let bad = ask("email", "sam@acme-mail.com", "boiling").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad = post(
        &app,
        client,
        "/sends/authorize",
        json!({
        "lead_ref": "ana@example.com", "channel": "email", "resource": "x", "lead_tier": "cold" }),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    app.stop().await;
}

/// Every text-like column of every table, and every message on the stream,
/// searched for `needle`.
async fn places_holding(env: &TestEnv, needle: &str) -> Vec<String> {
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_schema, table_name, column_name FROM information_schema.columns \
         WHERE table_schema NOT IN ('pg_catalog', 'information_schema') \
         AND data_type IN ('text', 'character varying', 'jsonb', 'json', 'ARRAY', 'bytea')",
    )
    .fetch_all(&env.pool)
    .await
    .expect("columns");
    let mut found = Vec::new();
    for (schema, table, column) in columns {
        let hits: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM \"{schema}\".\"{table}\" WHERE \"{column}\"::text ILIKE $1"
        ))
        .bind(format!("%{needle}%"))
        .fetch_one(&env.pool)
        .await
        .expect("search");
        if hits > 0 {
            found.push(format!("{schema}.{table}.{column}"));
        }
    }
    for event in env.stream_events().await {
        if serde_json::to_string(&event)
            .expect("a stream event serializes")
            .to_lowercase()
            .contains(&needle.to_lowercase())
        {
            found.push(format!("stream:{}", event.id));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_a_lead_leaves_no_personal_field_in_postgres_or_on_the_stream() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let client = client_with_resources(&app).await;
    let recorded = post(
        &app,
        client,
        "/sends",
        json!({ "sends": [send("m-1", "ana.lima@example.com"), send("m-2", "bo@example.com")] }),
    )
    .await;
    let lead_ref = {
        let key = sextant_application::sends::ingest::lead_key(&env.pool, client)
            .await
            .expect("key");
        sextant_application::sends::ingest::lead_ref(&key, "ana.lima@example.com")
    };
    post(&app, client, "/outcomes", outcome("m-1", "replied")).await;
    // Something a provider sent that could not be mapped, naming the lead.
    sqlx::query("INSERT INTO webhook_dead_letters (client_id, provider, reason, payload) VALUES ($1, 'smartlead', 'unknown event', $2)")
        .bind(client)
        .bind(r#"{"event_type": "LEAD_CATEGORY_UPDATED", "to_email": "ana.lima@example.com"}"#)
        .execute(&env.pool).await.expect("dead letter");
    env.eventually(
        "the stream holds the sends",
        Duration::from_secs(10),
        || async { env.outbox_depth().await == 0 },
    )
    .await;
    assert!(
        !places_holding(&env, "ana.lima@example.com")
            .await
            .is_empty(),
        "the personal data was stored somewhere"
    );
    assert!(recorded.position() > 0);

    let erased = app
        .command(
            Method::POST,
            &format!("/v1/clients/{client}/leads/{lead_ref}/erase"),
            Some(OPERATOR_KEY),
            None,
        )
        .await;
    assert_eq!(erased.status, StatusCode::OK, "{erased:?}");
    assert_eq!(erased.body["erased"]["identities"], 1);
    assert_eq!(erased.body["erased"]["dead_letters"], 1);
    env.eventually(
        "the erasure reaches the stream",
        Duration::from_secs(10),
        || async { env.outbox_depth().await == 0 },
    )
    .await;
    // A provider repeating the send afterwards brings nothing back.
    let repeated = post(&app, client, "/sends", send("m-1", "ana.lima@example.com")).await;
    assert_eq!(repeated.body["status"], "duplicate", "{repeated:?}");
    for needle in ["ana.lima@example.com", "ana.lima", "Name of ana"] {
        assert_eq!(
            places_holding(&env, needle).await,
            Vec::<String>::new(),
            "{needle} survived erasure"
        );
    }
    // The other lead keeps its data; the events and projections stay valid.
    assert!(!places_holding(&env, "bo@example.com").await.is_empty());
    let sends = app
        .query(
            &format!(
                "/v1/clients/{client}/audit?min_position={}",
                erased.position()
            ),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(sends.body["items"][0]["event_type"], "lead_erased");
    let still: i64 = sqlx::query_scalar("SELECT count(*) FROM sends_view WHERE lead_ref = $1")
        .bind(&lead_ref)
        .fetch_one(&env.pool)
        .await
        .expect("count");
    assert_eq!(still, 1, "the send stays, pseudonymous");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_sends_projection_reproduces_it_exactly() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let client = client_with_resources(&app).await;
    // Outcomes before, after and among their sends, several suppressing.
    post(
        &app,
        client,
        "/outcomes",
        json!({ "outcomes": [outcome("m-1", "unsubscribed"), outcome("m-2", "delivered")] }),
    )
    .await;
    post(&app, client, "/sends", json!({ "sends": (0..20).map(|i| send(&format!("m-{i}"), &format!("l{}@example.com", i % 7))).collect::<Vec<_>>() })).await;
    let mut hard = outcome("m-5", "bounced");
    hard["bounce_type"] = json!("hard");
    let last = post(&app, client, "/outcomes", json!({ "outcomes": [outcome("m-3", "opened"), hard, outcome("m-9", "complained"), outcome("m-8", "meeting_booked")] })).await;
    env.eventually(
        "the sends projection catches up",
        Duration::from_secs(10),
        || async { env.checkpoint("sends").await >= last.position() },
    )
    .await;
    let projection = sextant_projections::by_name("sends").expect("sends");
    let live = replay::checksum(&env.pool, projection.as_ref())
        .await
        .expect("checksum");
    let suppressed: i64 = sqlx::query_scalar("SELECT count(*) FROM suppression_view")
        .fetch_one(&env.pool)
        .await
        .expect("count");
    assert_eq!(suppressed, 3);
    sqlx::query("DELETE FROM suppression_view")
        .execute(&env.pool)
        .await
        .expect("damage");
    replay::rebuild(&env.pool, projection.clone(), false)
        .await
        .expect("rebuild");
    assert_eq!(
        replay::checksum(&env.pool, projection.as_ref())
            .await
            .expect("checksum"),
        live
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_batch_may_suppress_the_same_lead_twice() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    post(
        &app,
        client,
        "/sends",
        json!({ "sends": [send("m-1", "ana@example.com"), send("m-2", "ana@example.com")] }),
    )
    .await;
    let mut bounce = outcome("m-2", "bounced");
    bounce["bounce_type"] = json!("hard");
    let answer = post(
        &app,
        client,
        "/outcomes",
        json!({ "outcomes": [outcome("m-1", "unsubscribed"), bounce] }),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.body["recorded"], 2);
    let listed: i64 = sqlx::query_scalar("SELECT count(*) FROM suppression_list")
        .fetch_one(&env.pool)
        .await
        .expect("count");
    assert_eq!(listed, 1);
    app.stop().await;
}
