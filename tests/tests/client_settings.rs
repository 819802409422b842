//! A client's settings: its time zone (its weeks and days are counted in
//! it) and the maturity windows of its outcomes. Set at registration or by
//! an update, answered by the query API and by
//! `read_model::clients::client_settings` for the suggestion engine;
//! refused with 422 naming the field, writing nothing, when invalid.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sextant_application::read_model::clients::client_settings;
use sextant_domain::inference::Windows;
use sextant_domain::values::Tz;
use sextant_tests::{Answer, Running, TestEnv, OPERATOR_KEY};
use uuid::Uuid;

async fn register(app: &Running, body: Value) -> Answer {
    app.command(Method::POST, "/v1/clients", Some(OPERATOR_KEY), Some(body))
        .await
}

fn acme(settings: Value) -> Value {
    let mut body = json!({
        "name": "Acme", "industry": "fintech", "company_size": "11-50", "region": "AU"
    });
    if let (Value::Object(body), Value::Object(settings)) = (&mut body, settings) {
        body.extend(settings);
    }
    body
}

async fn update(app: &Running, client: Uuid, body: Value) -> Answer {
    app.command(
        Method::PATCH,
        &format!("/v1/clients/{client}"),
        Some(OPERATOR_KEY),
        Some(body),
    )
    .await
}

/// The client as the query API answers it once it has reached `position`.
async fn read(app: &Running, client: Uuid, position: i64) -> Value {
    let answer = app
        .query(
            &format!("/v1/clients/{client}?min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer.body
}

fn client_id(answer: &Answer) -> Uuid {
    answer.body["client_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no client id: {answer:?}"))
}

fn refused_field(answer: &Answer) -> String {
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{answer:?}"
    );
    assert_eq!(
        answer.content_type(),
        "application/problem+json",
        "{answer:?}"
    );
    answer.body["errors"][0]["field"]
        .as_str()
        .unwrap_or_else(|| panic!("no field named: {answer:?}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_time_zone_and_windows_are_set_and_read_back() {
    let env = TestEnv::new().await;
    let app = env.start().await;

    // Registered without settings: UTC and the default windows.
    let plain = register(&app, acme(json!({}))).await;
    assert_eq!(plain.status, StatusCode::CREATED, "{plain:?}");
    let plain_client = client_id(&plain);
    let body = read(&app, plain_client, plain.position()).await;
    assert_eq!(body["timezone"], "UTC", "{body}");
    assert_eq!(
        body["maturity"],
        json!({ "reply_days": 14, "meeting_days": 30, "conversion_days": 60 })
    );

    // Registered with both.
    let registered = register(
        &app,
        acme(json!({ "timezone": "Australia/Sydney",
            "maturity": { "reply_days": 10, "meeting_days": 21, "conversion_days": 90 } })),
    )
    .await;
    assert_eq!(registered.status, StatusCode::CREATED, "{registered:?}");
    let client = client_id(&registered);
    let body = read(&app, client, registered.position()).await;
    assert_eq!(body["timezone"], "Australia/Sydney", "{body}");
    assert_eq!(
        body["maturity"],
        json!({ "reply_days": 10, "meeting_days": 21, "conversion_days": 90 })
    );

    // Updated in part: the windows left out stay as they are.
    let updated = update(
        &app,
        client,
        json!({ "timezone": "America/New_York", "maturity": { "meeting_days": 45 } }),
    )
    .await;
    assert_eq!(updated.status, StatusCode::OK, "{updated:?}");
    let body = read(&app, client, updated.position()).await;
    assert_eq!(body["timezone"], "America/New_York", "{body}");
    assert_eq!(
        body["maturity"],
        json!({ "reply_days": 10, "meeting_days": 45, "conversion_days": 90 })
    );
    let list = app.query("/v1/clients", Some(OPERATOR_KEY)).await;
    let listed = list.body["items"]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .find(|item| item["client_id"] == client.to_string())
        })
        .unwrap_or_else(|| panic!("the client is listed: {list:?}"));
    assert_eq!(listed["timezone"], "America/New_York");
    assert_eq!(listed["maturity"]["meeting_days"], 45);

    // The same settings again record nothing.
    let head = env.head().await;
    let again = update(
        &app,
        client,
        json!({ "timezone": "America/New_York", "maturity": { "reply_days": 10 } }),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(env.head().await, head, "an update that changes nothing");

    // What the suggestion engine reads.
    assert_eq!(
        client_settings(&env.pool, client)
            .await
            .expect("the settings are read"),
        Some((Tz::America__New_York, Windows::from_days(10, 45, 90)))
    );
    assert_eq!(
        client_settings(&env.pool, plain_client)
            .await
            .expect("the settings are read"),
        Some((Tz::UTC, Windows::default()))
    );
    assert_eq!(
        client_settings(&env.pool, Uuid::new_v4())
            .await
            .expect("the settings are read"),
        None
    );

    env.caught_up(Duration::from_secs(20)).await;
    env.assert_projections_equal_replay().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_time_zone_or_a_window_outside_a_year_is_refused_naming_it_and_writes_nothing() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    let head = env.head().await;

    let bad_settings = [
        (json!({ "timezone": "Mars/Olympus_Mons" }), "timezone"),
        (json!({ "timezone": "+10:00" }), "timezone"),
        (
            json!({ "maturity": { "reply_days": 0 } }),
            "maturity.reply_days",
        ),
        (
            json!({ "maturity": { "meeting_days": 366 } }),
            "maturity.meeting_days",
        ),
        (
            json!({ "maturity": { "conversion_days": -1 } }),
            "maturity.conversion_days",
        ),
        (
            json!({ "maturity": { "reply_days": 10, "close_days": 5 } }),
            "maturity.close_days",
        ),
    ];
    for (settings, field) in &bad_settings {
        // With a valid change beside it, so that a partial write would show.
        let mut body = settings.clone();
        body["region"] = json!("NZ");
        let answer = update(&app, client, body).await;
        assert_eq!(refused_field(&answer), *field, "update {settings}");
        let answer = register(&app, acme(settings.clone())).await;
        assert_eq!(refused_field(&answer), *field, "registration {settings}");
    }
    assert_eq!(env.head().await, head, "a refused request wrote an event");

    env.caught_up(Duration::from_secs(20)).await;
    let body = read(&app, client, head).await;
    assert_eq!(body["region"], "AU");
    assert_eq!(body["timezone"], "UTC");
    assert_eq!(body["maturity"]["reply_days"], 14);
    app.stop().await;
}
