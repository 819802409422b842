//! The event backbone end to end: HTTP command → event row → outbox →
//! JetStream (CloudEvents, subject) → projection → query.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use sextant_tests::{TestEnv, OPERATOR_KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_client_travels_from_command_to_stream_to_query() {
    let env = TestEnv::new().await;
    let app = env.start().await;

    let (client, position) = app.register_client("Acme").await;
    assert!(position > 0);

    // The event row, with the columns cqrs-es does not see.
    let (aggregate_type, event_type, row_client, row_position): (String, String, Option<uuid::Uuid>, i64) =
        sqlx::query_as(
            "SELECT aggregate_type, event_type, client_id, global_position FROM events WHERE aggregate_id = $1",
        )
        .bind(client.to_string())
        .fetch_one(&env.pool)
        .await
        .expect("the event row");
    assert_eq!(
        (aggregate_type.as_str(), event_type.as_str()),
        ("client", "client_registered")
    );
    assert_eq!(row_client, Some(client));
    assert_eq!(row_position, position);

    // Read-your-writes: the query waits for the projection to reach the
    // command's position.
    let answer = app
        .query(
            &format!("/v1/clients/{client}?min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.body["name"], "Acme");
    assert_eq!(answer.body["permission_mode"], "co_pilot");
    assert!(answer.position() >= position);

    // One message on the stream, CloudEvents body, documented subject.
    env.eventually(
        "the relay drains the outbox",
        Duration::from_secs(10),
        || async { env.outbox_depth().await == 0 },
    )
    .await;
    let events = env.stream_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event.specversion, "1.0");
    assert_eq!(event.event_type, "sextant.client.client_registered.v1");
    assert_eq!(event.source, format!("/clients/{client}/client/{client}"));
    assert_eq!(event.sextantposition, position);
    assert_eq!(event.sextantsequence, 1);
    assert_eq!(event.sextantclient, Some(client));
    assert_eq!(event.sextantactor.as_deref(), Some("operator"));
    let data = event.data.to_value();
    assert_eq!(data["type"], "client_registered");
    assert_eq!(data["profile"]["name"], "Acme");
    let subjects = env.stream_subjects().await;
    assert_eq!(
        subjects,
        vec![format!(
            "{}.{client}.client.client_registered",
            env.stream.subject_prefix
        )]
    );

    // The audit trail lists it.
    let audit = app
        .query(
            &format!("/v1/clients/{client}/audit?min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(audit.status, StatusCode::OK, "{audit:?}");
    assert_eq!(audit.body["items"][0]["event_type"], "client_registered");
    assert_eq!(audit.body["items"][0]["position"], position);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_that_cannot_reach_its_min_position_answers_503_with_the_current_position() {
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.min_position_wait = Duration::from_millis(300);
    let app = env
        .start_against(&settings, sextant_tests::Parts::apis_only())
        .await;
    let (client, position) = app.register_client("Acme").await;
    let answer = app
        .query(
            &format!("/v1/clients/{client}?min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}");
    assert_eq!(answer.body["position"], 0);
    assert_eq!(answer.position(), 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_answer_carries_its_position_in_body_and_header() {
    let env = TestEnv::new().await;
    let app = env.start_with(sextant_tests::Parts::apis_only()).await;
    let (client, first) = app.register_client("Acme").await;
    let answer = app
        .command(
            Method::PATCH,
            &format!("/v1/clients/{client}"),
            Some(OPERATOR_KEY),
            Some(json!({ "region": "NZ", "permission_mode": "autopilot" })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let position = answer.position();
    assert_eq!(answer.body["position"], position);
    // Two events (profile, permission mode); the answer names the last.
    assert_eq!(position, first + 2);
    app.stop().await;
}

/// Found by fuzzing: a position no event has made every query wait its full
/// bound, then answer 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_min_position_beyond_the_last_committed_event_is_refused_at_once() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, position) = app.register_client("Acme").await;
    let started = std::time::Instant::now();
    let answer = app
        .query(
            &format!("/v1/clients/{client}?min_position={}", position + 1000),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{answer:?}"
    );
    assert_eq!(answer.body["errors"][0]["field"], "min_position");
    assert!(started.elapsed() < Duration::from_secs(2));
    app.stop().await;
}
