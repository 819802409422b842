//! Weekly report delivery: `report_published` once per client-week at
//! Monday 08:00 in the client's zone, whatever the number of command
//! processes, reruns or clock jumps; after downtime only the last complete
//! week; e-mail through a local SMTP server that is down, then up
//! (`report_delivery_failed`, then `report_delivered`, HTML inline and CSV
//! attached); recipients validated; replay equals live.

use std::time::Duration;

use chrono::{DateTime, Datelike, Duration as Days, NaiveTime, TimeZone, Utc, Weekday};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sextant_adapters::mail::Mailer;
use sextant_application::delivery::{publish_due, Published};
use sextant_application::App;
use sextant_tests::procs::{Binary, Service};
use sextant_tests::smtp::SmtpServer;
use sextant_tests::{Answer, Running, TestEnv, OPERATOR_KEY};
use uuid::Uuid;

/// The first `weekday` strictly after today (UTC), at `hour:minute` UTC.
fn next(weekday: Weekday, hour: u32, minute: u32) -> DateTime<Utc> {
    let mut day = Utc::now().date_naive() + Days::days(1);
    while day.weekday() != weekday {
        day += Days::days(1);
    }
    let time = NaiveTime::from_hms_opt(hour, minute, 0).expect("a valid time");
    Utc.from_utc_datetime(&day.and_time(time))
}

/// The ISO week `at` falls in, in UTC, shifted by `weeks`.
fn week_of(at: DateTime<Utc>, weeks: i64) -> String {
    let week = (at + Days::weeks(weeks)).iso_week();
    format!("{}-W{:02}", week.year(), week.week())
}

async fn register(env: &TestEnv, app: &Running, name: &str, timezone: &str) -> Uuid {
    let answer = app
        .command(
            Method::POST,
            "/v1/clients",
            Some(OPERATOR_KEY),
            Some(json!({
                "name": name, "industry": "fintech", "company_size": "11-50",
                "region": "AU", "timezone": timezone,
            })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    let position = answer.position();
    env.eventually(
        "the clients read model has the client",
        Duration::from_secs(30),
        || async { env.checkpoint("clients").await >= position },
    )
    .await;
    answer.body["client_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("a client id")
}

async fn set_recipients(app: &Running, client: Uuid, recipients: Value) -> Answer {
    app.command(
        Method::PATCH,
        &format!("/v1/clients/{client}"),
        Some(OPERATOR_KEY),
        Some(json!({ "report_recipients": recipients })),
    )
    .await
}

/// The weeks published for `client`, in order.
async fn published_weeks(env: &TestEnv, client: Uuid) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT payload ->> 'week' FROM events WHERE aggregate_type = 'report' \
         AND event_type = 'report_published' AND client_id = $1 ORDER BY global_position",
    )
    .bind(client)
    .fetch_all(&env.pool)
    .await
    .expect("published weeks")
}

/// Every report event of `client`, as (type, payload), in order.
async fn report_events(env: &TestEnv, client: Uuid) -> Vec<(String, Value)> {
    sqlx::query_as(
        "SELECT event_type, payload FROM events WHERE aggregate_type = 'report' \
         AND client_id = $1 ORDER BY global_position",
    )
    .bind(client)
    .fetch_all(&env.pool)
    .await
    .expect("report events")
}

fn app_with(env: &TestEnv, smtp: Option<&SmtpServer>) -> App {
    let mailer = smtp.map(|s| Mailer::new(s.settings()).expect("a mailer for the test server"));
    App::new(env.pool.clone(), None).with_mailer(mailer)
}

async fn publish(app: &App, now: DateTime<Utc>) -> Published {
    publish_due(app, now).await.expect("publish_due runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_command_processes_publish_a_client_week_once() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let client = register(&env, &app, "Acme", "UTC").await;
    let first = Service::start(Binary::Command, &env).await;
    let second = Service::start(Binary::Command, &env).await;
    let replicas = [
        Running::at(first.url(), app.query_url.clone()),
        Running::at(second.url(), app.query_url.clone()),
    ];
    let monday = next(Weekday::Mon, 10, 0);
    let body = json!({ "at": monday.to_rfc3339() });
    for _ in 0..3 {
        let (a, b) = tokio::join!(
            replicas[0].command(
                Method::POST,
                "/v1/reports/publish",
                Some(OPERATOR_KEY),
                Some(body.clone())
            ),
            replicas[1].command(
                Method::POST,
                "/v1/reports/publish",
                Some(OPERATOR_KEY),
                Some(body.clone())
            ),
        );
        assert_eq!(a.status, StatusCode::OK, "{a:?}");
        assert_eq!(b.status, StatusCode::OK, "{b:?}");
    }
    assert_eq!(
        published_weeks(&env, client).await,
        [week_of(monday, -1)],
        "one report_published for the client-week"
    );
    let events = report_events(&env, client).await;
    let summary = &events[0].1["summary"];
    assert_eq!(summary["week"], week_of(monday, -1));
    assert!(summary["maturing"].is_boolean(), "{summary}");
    assert!(summary["metrics"].is_array(), "{summary}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sunday_evening_in_utc_publishes_for_sydney_but_not_for_a_utc_client() {
    let env = TestEnv::new().await;
    let running = env.start().await;
    let sydney = register(&env, &running, "Sydney Co", "Australia/Sydney").await;
    let london = register(&env, &running, "UTC Co", "UTC").await;
    let app = app_with(&env, None);
    // Sunday 23:30 UTC is Monday 09:30 or 10:30 in Sydney.
    let sunday = next(Weekday::Sun, 23, 30);
    let sydney_week = week_of(sunday, 0);
    let run = publish(&app, sunday).await;
    assert!(
        run.published
            .iter()
            .any(|p| p.client_id == sydney && p.week == sydney_week),
        "{run:?}"
    );
    assert_eq!(
        published_weeks(&env, sydney).await,
        std::slice::from_ref(&sydney_week)
    );
    assert!(
        !published_weeks(&env, london).await.contains(&sydney_week),
        "the UTC client's week has not ended"
    );
    // At 08:00 on the UTC Monday, the UTC client's week is published too.
    publish(&app, sunday + Days::minutes(510)).await;
    assert!(published_weeks(&env, london).await.contains(&sydney_week));
    assert_eq!(published_weeks(&env, sydney).await, [sydney_week]);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reruns_and_a_clock_that_jumps_back_publish_nothing_new_and_catch_up_publishes_the_last_week_only(
) {
    let env = TestEnv::new().await;
    let running = env.start().await;
    let client = register(&env, &running, "Acme", "UTC").await;
    let app = app_with(&env, None);
    let monday = next(Weekday::Mon, 8, 5);
    assert_eq!(publish(&app, monday).await.published.len(), 1);
    // A restart runs it again; a clock jumps back an hour, then a week.
    for now in [
        monday,
        monday + Days::minutes(1),
        monday - Days::hours(1),
        monday - Days::weeks(1),
    ] {
        assert!(publish(&app, now).await.published.is_empty(), "{now}");
    }
    assert_eq!(published_weeks(&env, client).await, [week_of(monday, -1)]);
    // Three weeks of downtime: only the last complete week is published.
    let later = monday + Days::weeks(3);
    assert_eq!(publish(&app, later).await.published.len(), 1);
    assert_eq!(
        published_weeks(&env, client).await,
        [week_of(monday, -1), week_of(later, -1)]
    );
    env.eventually(
        "the projections catch up",
        Duration::from_secs(30),
        || async {
            let head = sextant_adapters::db::head_position(&env.pool)
                .await
                .expect("head");
            env.checkpoint("report_deliveries").await >= head
        },
    )
    .await;
    let answer = running
        .query(
            &format!("/v1/clients/{client}/reports/deliveries"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let weeks: Vec<&str> = answer.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["week"].as_str())
        .collect();
    assert_eq!(weeks, [week_of(later, -1), week_of(monday, -1)]);
    env.assert_projections_equal_replay().await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_down_then_up_records_the_failure_then_the_delivery_once() {
    let env = TestEnv::new().await;
    let running = env.start().await;
    let client = register(&env, &running, "Acme", "UTC").await;
    let answer = set_recipients(
        &running,
        client,
        json!(["ops@acme.example", "ceo@acme.example"]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let smtp = SmtpServer::down().await;
    let app = app_with(&env, Some(&smtp));
    let monday = next(Weekday::Mon, 8, 0);

    let run = publish(&app, monday).await;
    assert_eq!(run.published.len(), 1, "{run:?}");
    assert_eq!(run.failed.len(), 1, "{run:?}");
    assert!(run.delivered.is_empty(), "{run:?}");
    assert!(smtp.refused() >= 1);

    smtp.set_up();
    // Within the backoff nothing is attempted; after it, the delivery.
    let run = publish(&app, monday + Days::seconds(30)).await;
    assert!(run.delivered.is_empty() && run.failed.is_empty(), "{run:?}");
    let run = publish(&app, monday + Days::minutes(2)).await;
    assert_eq!(run.delivered.len(), 1, "{run:?}");
    assert_eq!(run.delivered[0].attempt, 2);
    // Delivered: never again.
    let run = publish(&app, monday + Days::hours(3)).await;
    assert!(run.delivered.is_empty() && run.failed.is_empty(), "{run:?}");

    let events = report_events(&env, client).await;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "report_published",
            "report_delivery_failed",
            "report_delivered"
        ]
    );
    let failure = &events[1].1;
    assert_eq!(failure["attempt"], 1);
    assert_eq!(failure["recipients"], 2);
    assert!(
        failure["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{failure}"
    );

    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "one message, to both recipients");
    let message = &messages[0];
    let mut to = message.to.clone();
    to.sort();
    assert_eq!(to, ["ceo@acme.example", "ops@acme.example"]);
    assert_eq!(message.from, "reports@sextant.example");
    let week = week_of(monday, -1);
    assert!(
        message.data.contains("Content-Type: text/html"),
        "no HTML part"
    );
    assert!(
        message.data.contains("<svg"),
        "the HTML report with its charts"
    );
    assert!(
        message.data.contains("Content-Disposition: attachment")
            && message.data.contains(&format!("sextant-report-{week}.csv")),
        "no CSV attachment"
    );
    assert!(message.data.contains("Content-Type: text/csv"));

    env.eventually(
        "the projections catch up",
        Duration::from_secs(30),
        || async {
            let head = sextant_adapters::db::head_position(&env.pool)
                .await
                .expect("head");
            env.checkpoint("report_deliveries").await >= head
        },
    )
    .await;
    let answer = running
        .query(
            &format!("/v1/clients/{client}/reports/deliveries"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let item = &answer.body["items"][0];
    assert_eq!(item["status"], "delivered", "{item}");
    assert_eq!(item["attempts"], 2, "{item}");
    env.assert_projections_equal_replay().await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_recipients_only_the_publication_happens() {
    let env = TestEnv::new().await;
    let running = env.start().await;
    let client = register(&env, &running, "Acme", "UTC").await;
    let smtp = SmtpServer::up().await;
    let app = app_with(&env, Some(&smtp));
    let monday = next(Weekday::Mon, 9, 0);
    let run = publish(&app, monday).await;
    assert_eq!(run.published.len(), 1);
    publish(&app, monday + Days::hours(1)).await;
    let events = report_events(&env, client).await;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["report_published"]);
    assert!(smtp.messages().is_empty());
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_recipients_are_refused_naming_the_field() {
    let env = TestEnv::new().await;
    let running = env.start().await;
    let client = register(&env, &running, "Acme", "UTC").await;
    let many: Vec<String> = (0..21).map(|i| format!("r{i}@acme.example")).collect();
    for bad in [
        json!(["ops@acme.example", "not an address"]),
        json!(["ops@"]),
        json!(many),
        json!("ops@acme.example"),
    ] {
        let answer = set_recipients(&running, client, bad.clone()).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {answer:?}"
        );
        let field = answer.body["errors"][0]["field"].as_str().unwrap_or("");
        assert!(field.starts_with("report_recipients"), "{bad}: {answer:?}");
    }
    let answer = set_recipients(&running, client, json!(["ops@acme.example"])).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let position = answer.position();
    env.eventually(
        "the clients read model has the recipients",
        Duration::from_secs(30),
        || async { env.checkpoint("clients").await >= position },
    )
    .await;
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT report_recipients FROM clients_view WHERE client_id = $1")
            .bind(client)
            .fetch_one(&env.pool)
            .await
            .expect("the recipients column");
    assert_eq!(stored, ["ops@acme.example"]);
    let detail = running
        .query(
            &format!("/v1/clients/{client}?min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(detail.status, StatusCode::OK, "{detail:?}");
    assert_eq!(
        detail.body["report_recipients"],
        json!(["ops@acme.example"])
    );
    running.stop().await;
}
