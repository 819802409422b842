//! The document pathway and the LLM adapter: unchanged documents make no
//! version, changed ones apply their insights, bodies stay out of the log,
//! and every LLM failure falls back to the deterministic extractor without
//! losing the document.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sextant_adapters::llm::{LlmClient, LlmError, LlmSettings};
use sextant_tests::fake_llm::{Behaviour, FakeLlm};
use sextant_tests::{Answer, Parts, Running, TestEnv, OPERATOR_KEY};
use uuid::Uuid;

const NOTES: &str =
    "Kick-off with the client team.\nTarget industries: fintech, insurtech\nTone: plain, no hype\n";

fn llm_settings(url: &str) -> LlmSettings {
    LlmSettings {
        url: url.to_owned(),
        model: "gpt-test".into(),
        api_key: "sk-test".to_owned().into(),
        daily_limit_usd: 5.0,
        usd_per_1k_tokens: 0.01,
        timeout: Duration::from_millis(500),
        attempts: 3,
        breaker_threshold: 3,
        breaker_cooldown: Duration::from_secs(60),
    }
}

async fn upload(app: &Running, client: Uuid, key: &str, content: &str) -> Answer {
    app.command(
        Method::POST,
        &format!("/v1/clients/{client}/documents"),
        Some(OPERATOR_KEY),
        Some(
            json!({ "key": key, "title": "Kick-off notes", "source": "meeting_notes",
                     "content": content, "captured_at": "2026-11-18T10:00:00Z" }),
        ),
    )
    .await
}

async fn versions(env: &TestEnv) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type IN ('update_applied', 'rolled_back')",
    )
    .fetch_one(&env.pool)
    .await
    .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_upload_makes_no_version_and_a_changed_one_applies_its_insights() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;

    let first = upload(&app, client, "kickoff", NOTES).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    assert_eq!(first.body["changed"], true);
    assert_eq!(first.body["extractor"], "deterministic");
    assert_eq!(first.body["update"]["version"], 1);

    let again = upload(&app, client, "kickoff", NOTES).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(again.body["changed"], false);
    assert_eq!(
        versions(&env).await,
        1,
        "an unchanged document made a version"
    );

    let changed = upload(
        &app,
        client,
        "kickoff",
        &format!("{NOTES}Regions: AU, NZ\n"),
    )
    .await;
    assert_eq!(changed.body["changed"], true, "{changed:?}");
    assert_eq!(changed.body["update"]["version"], 2);
    let context = app
        .query(
            &format!(
                "/v1/clients/{client}/context?min_position={}",
                changed.position()
            ),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(
        context.body["document"]["icp"]["industries"],
        json!(["fintech", "insurtech"])
    );
    assert_eq!(
        context.body["document"]["icp"]["regions"],
        json!(["AU", "NZ"])
    );
    assert_eq!(
        context.body["document"]["messaging"]["tone"],
        "plain, no hype"
    );
    let versions = app
        .query(
            &format!(
                "/v1/clients/{client}/context/versions?min_position={}",
                changed.position()
            ),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(versions.body["items"][0]["source"], "document");

    // The body is kept, out of the log.
    let bodies: i64 =
        sqlx::query_scalar("SELECT count(*) FROM document_bodies WHERE client_id = $1")
            .bind(client)
            .fetch_one(&env.pool)
            .await
            .expect("count");
    assert_eq!(bodies, 2);
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE payload::text LIKE '%Kick-off with%'",
    )
    .fetch_one(&env.pool)
    .await
    .expect("count");
    assert_eq!(leaked, 0, "document text reached the event log");

    // Prose with nothing to extract is captured, with no update.
    let prose = upload(&app, client, "chat", "We talked about the weather.").await;
    assert_eq!(prose.body["changed"], true);
    assert_eq!(prose.body["update"], Value::Null);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_oversized_and_malformed_documents_are_refused_and_write_nothing() {
    let env = TestEnv::new().await;
    let app = env.start_with(Parts::apis_only()).await;
    let (client, _) = app.register_client("Acme").await;
    let before = env.event_ids().await.len();
    let path = format!("/v1/clients/{client}/documents");
    let base = json!({ "key": "k", "title": "t", "source": "meeting_notes", "content": "Tone: x", "captured_at": "2026-11-18T10:00:00Z" });
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    for (body, status) in [
        (
            with("content", json!("   ")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            with("content", json!("x".repeat(1_000_001))),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        // Just over the body limit: the server reads up to the limit and
        // answers 413 with the rest unread. With megabytes left to write,
        // the client could hit the closed connection before it read the
        // answer (CI saw a broken pipe once).
        (
            with(
                "content",
                json!("x".repeat(sextant_command_api::context::DOCUMENT_BODY_LIMIT + 1024)),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            with("source", json!("rumour")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            with("captured_at", json!("yesterday")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            with("captured_at", json!("2999-01-01T00:00:00Z")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (with("key", json!("")), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let answer = app
            .command(Method::POST, &path, Some(OPERATOR_KEY), Some(body))
            .await;
        assert_eq!(answer.status, status, "{answer:?}");
    }
    assert_eq!(env.event_ids().await.len(), before);
    let unknown = app
        .command(
            Method::POST,
            &format!("/v1/clients/{}/documents", Uuid::new_v4()),
            Some(OPERATOR_KEY),
            Some(base),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_llm_configured_its_insights_are_applied_and_its_spend_recorded() {
    let llm = FakeLlm::start(Behaviour::Answer(
        r#"{"icp": {"industries": ["payments"]}, "messaging": {"tone": "direct"}, "people": {"ana": "ana@x.com"}}"#.into(),
    ))
    .await;
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.llm = Some(llm_settings(&llm.url));
    let app = env.start_against(&settings, Parts::all()).await;
    let (client, _) = app.register_client("Acme").await;
    let answer = upload(&app, client, "kickoff", NOTES).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    assert_eq!(answer.body["extractor"], "llm:gpt-test");
    let request = llm.last_request();
    assert_eq!(request["model"], "gpt-test");
    assert_eq!(request["messages"][1]["content"], NOTES);
    let context = app
        .query(
            &format!(
                "/v1/clients/{client}/context?min_position={}",
                answer.position()
            ),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(
        context.body["document"],
        json!({ "icp": { "industries": ["payments"] }, "messaging": { "tone": "direct" } })
    );
    let (calls, tokens, cost): (i32, i64, f64) =
        sqlx::query_as("SELECT calls, tokens, cost_usd FROM llm_spend WHERE client_id = $1")
            .bind(client)
            .fetch_one(&env.pool)
            .await
            .expect("spend");
    assert_eq!((calls, tokens), (1, 1000));
    assert!((cost - 0.01).abs() < 1e-9);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_llm_fails_the_document_is_kept_and_read_deterministically() {
    let llm = FakeLlm::start(Behaviour::Fail(500)).await;
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.llm = Some(llm_settings(&llm.url));
    let app = env.start_against(&settings, Parts::all()).await;
    let (client, _) = app.register_client("Acme").await;
    let answer = upload(&app, client, "kickoff", NOTES).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    assert!(
        answer.body["extractor"]
            .as_str()
            .unwrap_or("")
            .starts_with("deterministic (llm failed"),
        "{answer:?}"
    );
    assert_eq!(answer.body["update"]["version"], 1);
    assert_eq!(llm.requests(), 3, "three attempts");
    let context = app
        .query(
            &format!(
                "/v1/clients/{client}/context?min_position={}",
                answer.position()
            ),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(
        context.body["document"]["icp"]["industries"],
        json!(["fintech", "insurtech"])
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_llm_adapter_retries_times_out_opens_its_breaker_and_keeps_to_the_budget() {
    let env = TestEnv::new().await;
    let client = Uuid::new_v4();

    // 429 twice, then an answer: retried to success.
    let llm = FakeLlm::start(Behaviour::FailThen(
        2,
        429,
        r#"{"icp": {"titles": ["CFO"]}}"#.into(),
    ))
    .await;
    let adapter = LlmClient::new(llm_settings(&llm.url)).expect("an LLM client");
    let extraction = adapter
        .extract(&env.pool, client, NOTES)
        .await
        .expect("retried to success");
    assert_eq!(extraction.patch, Some(json!({"icp": {"titles": ["CFO"]}})));
    assert_eq!(llm.requests(), 3);

    // A 400 is not retried.
    llm.set(Behaviour::Fail(400));
    let before = llm.requests();
    assert!(matches!(
        adapter.extract(&env.pool, client, NOTES).await,
        Err(LlmError::Status(400))
    ));
    assert_eq!(llm.requests(), before + 1);

    // Too slow: a timeout, retried, then given up.
    llm.set(Behaviour::Slow(Duration::from_secs(2), "{}".into()));
    let slow = LlmClient::new(llm_settings(&llm.url)).expect("an LLM client");
    assert!(matches!(
        slow.extract(&env.pool, client, NOTES).await,
        Err(LlmError::Timeout)
    ));

    // Failures open the breaker: then no call reaches the service.
    llm.set(Behaviour::Fail(503));
    let fragile = LlmClient::new(LlmSettings {
        attempts: 1,
        ..llm_settings(&llm.url)
    })
    .expect("an LLM client");
    for _ in 0..3 {
        assert!(matches!(
            fragile.extract(&env.pool, client, NOTES).await,
            Err(LlmError::Status(503))
        ));
    }
    let before = llm.requests();
    assert!(matches!(
        fragile.extract(&env.pool, client, NOTES).await,
        Err(LlmError::CircuitOpen)
    ));
    assert_eq!(llm.requests(), before, "an open breaker calls nothing");

    // A spent budget calls nothing either.
    llm.set(Behaviour::Answer(r#"{"icp": {"regions": ["AU"]}}"#.into()));
    let thrifty = LlmClient::new(LlmSettings {
        daily_limit_usd: 0.005,
        ..llm_settings(&llm.url)
    })
    .expect("an LLM client");
    let other = Uuid::new_v4();
    thrifty
        .extract(&env.pool, other, NOTES)
        .await
        .expect("first call within budget");
    let before = llm.requests();
    assert!(matches!(
        thrifty.extract(&env.pool, other, NOTES).await,
        Err(LlmError::BudgetExhausted)
    ));
    assert_eq!(llm.requests(), before);

    // A malformed answer is an error, not a patch.
    llm.set(Behaviour::Answer(
        "Sure! Here is the JSON you asked for".into(),
    ));
    assert!(matches!(
        adapter.extract(&env.pool, client, NOTES).await,
        Err(LlmError::Malformed(_))
    ));
}
