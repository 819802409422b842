//! The edges a new user and a hostile one reach first: every time at the
//! edge bounded (`sent_at`, `occurred_at`, `captured_at`, `?at=`), control
//! characters in query strings, error details that name the real field and
//! say what a missing body must hold, reads sent to the command API told
//! where reads live, unknown webhook providers told the known ones, PATCH
//! taking the names GET answers, rollback to version 0, sends naming an
//! experiment or variant the client does not have, and platform practices
//! only from a platform row that passes the rules.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sextant_tests::{Answer, Parts, Running, TestEnv, OPERATOR_KEY};
use uuid::Uuid;

async fn post(app: &Running, client: Uuid, path: &str, body: Value) -> Answer {
    app.command(
        Method::POST,
        &format!("/v1/clients/{client}{path}"),
        Some(OPERATOR_KEY),
        Some(body),
    )
    .await
}

fn send(message: &str, sent_at: &str) -> Value {
    json!({ "provider": "smartlead", "provider_message_id": message, "lead_ref": format!("lead-{message}"),
            "channel": "email", "sent_at": sent_at })
}

fn outcome(message: &str, kind: &str, occurred_at: &str) -> Value {
    json!({ "provider": "smartlead", "provider_message_id": message, "kind": kind, "occurred_at": occurred_at })
}

/// Each item's status, and the field of each error.
fn results(answer: &Answer) -> Vec<(String, Option<String>)> {
    answer.body["results"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    (
                        i["status"].as_str().unwrap_or("").to_owned(),
                        i["field"].as_str().map(str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn item(status: &str, field: Option<&str>) -> (String, Option<String>) {
    (status.to_owned(), field.map(str::to_owned))
}

/// The problem's first field, and its detail.
fn named(answer: &Answer) -> (StatusCode, &str, &str) {
    (
        answer.status,
        answer.body["errors"][0]["field"].as_str().unwrap_or(""),
        answer.body["detail"].as_str().unwrap_or(""),
    )
}

async fn head(env: &TestEnv) -> i64 {
    env.event_ids().await.last().map(|(p, _)| *p).unwrap_or(0)
}

/// Every projection reached the head of the log, and none parked an event.
async fn projected_without_parking(env: &TestEnv) {
    let head = head(env).await;
    env.eventually(
        "the projections reach the head of the log",
        Duration::from_secs(30),
        || async {
            let mut all = true;
            for projection in ["sends", "context", "clients", "audit"] {
                all &= env.checkpoint(projection).await >= head;
            }
            all
        },
    )
    .await;
    let parked: Vec<(String, String)> =
        sqlx::query_as("SELECT projection, reason FROM projection_parked")
            .fetch_all(&env.pool)
            .await
            .expect("the parked events");
    assert!(parked.is_empty(), "parked: {parked:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_and_outcomes_dated_outside_the_window_fail_alone_and_nothing_parks_a_projection() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    let in_two_hours = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let batch = json!({ "sends": [
        send("m-1", "2026-11-18T09:12:00Z"),
        // Before what Postgres `timestamptz` holds.
        send("m-2", "-5000-01-01T00:00:00Z"),
        send("m-3", "0001-01-01T00:00:00Z"),
        send("m-4", "1999-12-31T23:59:59Z"),
        send("m-5", &in_two_hours),
        send("m-6", "2000-01-01T00:00:00Z"),
    ] });
    let answer = post(&app, client, "/sends", batch).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let error = item("error", Some("sent_at"));
    assert_eq!(
        results(&answer),
        vec![
            item("recorded", None),
            error.clone(),
            error.clone(),
            error.clone(),
            error,
            item("recorded", None),
        ],
        "{answer:?}"
    );
    assert!(
        answer.body["results"][1]["message"]
            .as_str()
            .is_some_and(|m| m.contains("2000-01-01")),
        "the window is named: {answer:?}"
    );

    // An unsubscribe dated before Postgres' time failed the suppression's
    // write, and with it the whole batch.
    let batch = json!({ "outcomes": [
        outcome("m-1", "unsubscribed", "-5000-01-01T00:00:00Z"),
        outcome("m-1", "opened", "2026-11-18T10:00:00Z"),
    ] });
    let answer = post(&app, client, "/outcomes", batch).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(
        results(&answer),
        vec![item("error", Some("occurred_at")), item("recorded", None)],
        "{answer:?}"
    );
    // Alone, an item's error is the request's 422.
    let answer = post(
        &app,
        client,
        "/outcomes",
        outcome("m-6", "opened", "1970-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(
        (answer.status, answer.body["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("occurred_at")),
        "{answer:?}"
    );
    projected_without_parking(&env).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_captured_outside_the_window_is_a_422_naming_captured_at() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    let before = env.event_ids().await.len();
    let document = |captured_at: &str| {
        json!({ "key": "notes", "title": "Kick-off", "source": "meeting_notes",
                "content": "Tone: plain", "captured_at": captured_at })
    };
    for captured_at in [
        "-5000-01-01T00:00:00Z",
        "0001-01-01T00:00:00Z",
        "1999-12-31T23:59:59Z",
        "2999-01-01T00:00:00Z",
    ] {
        let answer = post(&app, client, "/documents", document(captured_at)).await;
        let (status, field, _) = named(&answer);
        assert_eq!(
            (status, field),
            (StatusCode::UNPROCESSABLE_ENTITY, "captured_at"),
            "{captured_at}: {answer:?}"
        );
    }
    assert_eq!(env.event_ids().await.len(), before, "nothing was written");
    let answer = post(&app, client, "/documents", document("2026-11-18T10:00:00Z")).await;
    assert!(answer.status.is_success(), "{answer:?}");
    projected_without_parking(&env).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_outside_what_postgres_holds_and_control_characters_in_a_query_are_422_naming_them() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, registered) = app.register_client("Acme").await;
    let context =
        |query: &str| format!("/v1/clients/{client}/context?min_position={registered}&{query}");
    for at in [
        "-5000-01-01T00:00:00Z",
        "%2B275000-01-01T00:00:00Z",
        "yesterday",
    ] {
        let answer = app
            .query(&context(&format!("at={at}")), Some(OPERATOR_KEY))
            .await;
        let (status, field, _) = named(&answer);
        assert_eq!(
            (status, field),
            (StatusCode::UNPROCESSABLE_ENTITY, "at"),
            "{at}: {answer:?}"
        );
    }
    for at in [
        "0000-01-01T00:00:00Z",
        "2026-11-18T10:00:00Z",
        "9999-12-31T23:59:59Z",
    ] {
        let answer = app
            .query(&context(&format!("at={at}")), Some(OPERATOR_KEY))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{at}: {answer:?}");
    }

    // Decoded, these reached Postgres, which cannot hold NUL: a 500.
    for (path, field) in [
        (
            "/v1/patterns/platform/what?industry=fin%00tech".to_owned(),
            "industry",
        ),
        (
            format!("/v1/clients/{client}/suppression?min_position={registered}&after=lr%00x"),
            "after",
        ),
        (
            format!("/v1/clients/{client}/suppression?min_position={registered}&after=lr%07x"),
            "after",
        ),
        (
            format!("/v1/clients/{client}/approvals?status=pending%00"),
            "status",
        ),
    ] {
        let answer = app.query(&path, Some(OPERATOR_KEY)).await;
        let (status, named_field, detail) = named(&answer);
        assert_eq!(
            (status, named_field),
            (StatusCode::UNPROCESSABLE_ENTITY, field),
            "{path}: {answer:?}"
        );
        assert!(detail.contains("control characters"), "{path}: {answer:?}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_details_name_the_missing_field_and_a_missing_body_says_what_it_must_hold() {
    let env = TestEnv::new().await;
    let app = env.start_with(Parts::apis_only()).await;
    let (client, _) = app.register_client("Acme").await;
    let path = |rest: &str| format!("/v1/clients/{client}{rest}");

    // A missing field is named, not `.`.
    let answer = post(
        &app,
        client,
        "/context/updates",
        json!({ "source": "manual", "patch": { "messaging": { "tone": "plain" } } }),
    )
    .await;
    assert_eq!(
        named(&answer),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "rationale",
            "rationale: missing field `rationale`"
        ),
        "{answer:?}"
    );
    // So is one of a batch's items.
    let answer = post(
        &app,
        client,
        "/sends",
        json!({ "sends": [{ "provider": "smartlead", "provider_message_id": "m-1",
            "lead_ref": "lead-m-1", "sent_at": "2026-11-18T09:12:00Z" }] }),
    )
    .await;
    assert_eq!(
        results(&answer),
        vec![item("error", Some("channel"))],
        "{answer:?}"
    );

    // No body at all: what it must hold.
    let reject = path(&format!("/context/updates/{}/reject", Uuid::new_v4()));
    let cases = [
        (
            Method::POST,
            reject.clone(),
            vec!["reason"],
            "the body must be JSON with `reason`",
        ),
        (
            Method::POST,
            path("/context/rollback"),
            vec!["to_version", "reason"],
            "the body must be JSON with `to_version` and `reason`",
        ),
        (
            Method::POST,
            "/v1/clients".to_owned(),
            vec!["name", "industry", "company_size", "region"],
            "the body must be JSON with `name`, `industry`, `company_size` and `region`",
        ),
        (
            Method::POST,
            path("/context/updates"),
            vec!["source", "patch", "rationale"],
            "the body must be JSON with `source`, `patch` and `rationale`",
        ),
    ];
    for (method, path, fields, detail) in cases {
        let answer = app
            .command(method.clone(), &path, Some(OPERATOR_KEY), None)
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {path}: {answer:?}"
        );
        assert_eq!(answer.body["detail"], detail, "{method} {path}: {answer:?}");
        let named: Vec<&str> = answer.body["errors"]
            .as_array()
            .map(|e| e.iter().filter_map(|e| e["field"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(named, fields, "{method} {path}: {answer:?}");
    }
    // A body that is all optional fields still needs to be there.
    let answer = app
        .command(Method::PATCH, &path(""), Some(OPERATOR_KEY), None)
        .await;
    assert_eq!(
        named(&answer),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            ".",
            ".: the body must be a JSON object"
        ),
        "{answer:?}"
    );
    // A body of another type is told the same fields.
    let answer = app
        .http
        .post(format!("{}{reject}", app.command_url))
        .bearer_auth(OPERATOR_KEY)
        .header("content-type", "text/plain")
        .body("not today")
        .send()
        .await
        .expect("the request is answered");
    assert_eq!(answer.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let problem: Value = answer.json().await.expect("a problem");
    assert_eq!(
        problem["detail"],
        "send the body as application/json: an object with `reason`"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_sent_to_the_command_api_is_told_reads_live_on_the_query_api() {
    let env = TestEnv::new().await;
    let app = env.start_with(Parts::apis_only()).await;
    let (client, _) = app.register_client("Acme").await;
    let reads_elsewhere = "reads live on the query API (SEXTANT_QUERY_ADDR";
    for (method, path, status) in [
        // A command path.
        (
            Method::GET,
            format!("/v1/clients/{client}"),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::DELETE,
            "/v1/clients".to_owned(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        // A path only the query API has.
        (
            Method::GET,
            format!("/v1/clients/{client}/context"),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let answer = app
            .command(method.clone(), &path, Some(OPERATOR_KEY), None)
            .await;
        assert_eq!(answer.status, status, "{method} {path}: {answer:?}");
        let detail = answer.body["detail"].as_str().unwrap_or("");
        assert!(
            detail.contains(reads_elsewhere),
            "{method} {path}: {answer:?}"
        );
    }
    // A command to a path that is nowhere is just that.
    let answer = app
        .command(Method::POST, "/v1/nowhere", Some(OPERATOR_KEY), None)
        .await;
    assert_eq!(
        (answer.status, answer.body["detail"].as_str()),
        (StatusCode::NOT_FOUND, Some("no such endpoint")),
        "{answer:?}"
    );
    // The query API keeps its own wording.
    let answer = app
        .send(
            Method::POST,
            format!("{}/v1/clients/{client}/context", app.query_url),
            Some(OPERATOR_KEY),
            None,
        )
        .await;
    assert_eq!(
        (answer.status, answer.body["detail"].as_str()),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            Some("this endpoint does not accept that method")
        ),
        "{answer:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_webhook_provider_is_told_the_eight_known_ones() {
    let env = TestEnv::new().await;
    let app = env.start_with(Parts::apis_only()).await;
    let answer = app
        .command(
            Method::POST,
            &format!("/v1/webhooks/mailchimp/{}", Uuid::new_v4()),
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    let detail = answer.body["detail"].as_str().unwrap_or("");
    for provider in sextant_domain::values::Provider::ALL {
        assert!(
            detail.contains(provider.as_str()),
            "{}: {answer:?}",
            provider.as_str()
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_takes_the_threshold_by_the_name_get_answers_and_by_its_first_name() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    let path = format!("/v1/clients/{client}");
    for (field, value) in [
        ("autopilot_threshold", 0.7),
        ("autopilot_confidence_threshold", 0.6),
    ] {
        let answer = app
            .command(
                Method::PATCH,
                &path,
                Some(OPERATOR_KEY),
                Some(json!({ field: value })),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{field}: {answer:?}");
        let read = app
            .query(
                &format!("{path}?min_position={}", answer.position()),
                Some(OPERATOR_KEY),
            )
            .await;
        assert_eq!(read.body["autopilot_threshold"], value, "{field}: {read:?}");
    }
    let both = app
        .command(
            Method::PATCH,
            &path,
            Some(OPERATOR_KEY),
            Some(json!({ "autopilot_threshold": 0.5, "autopilot_confidence_threshold": 0.5 })),
        )
        .await;
    assert_eq!(both.status, StatusCode::UNPROCESSABLE_ENTITY, "{both:?}");
    let out_of_range = app
        .command(
            Method::PATCH,
            &path,
            Some(OPERATOR_KEY),
            Some(json!({ "autopilot_threshold": 1.5 })),
        )
        .await;
    assert_eq!(
        named(&out_of_range).1,
        "autopilot_threshold",
        "{out_of_range:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_reaches_version_0_the_empty_document_the_query_side_shows() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, registered) = app.register_client("Acme").await;
    let empty = app
        .query(
            &format!("/v1/clients/{client}/context?version=0&min_position={registered}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(
        (empty.status, &empty.body["document"]),
        (StatusCode::OK, &json!({})),
        "{empty:?}"
    );
    let proposed = post(
        &app,
        client,
        "/context/updates",
        json!({ "source": "manual", "patch": { "messaging": { "tone": "plain" } },
                "rationale": "the client asked for plain words" }),
    )
    .await;
    assert_eq!(proposed.body["version"], 1, "{proposed:?}");
    let rolled = post(
        &app,
        client,
        "/context/rollback",
        json!({ "to_version": 0, "reason": "start over" }),
    )
    .await;
    assert_eq!(
        (rolled.status, &rolled.body["version"]),
        (StatusCode::OK, &json!(2)),
        "{rolled:?}"
    );
    let now = app
        .query(
            &format!(
                "/v1/clients/{client}/context?min_position={}",
                rolled.position()
            ),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(
        (&now.body["version"], &now.body["document"]),
        (&json!(2), &json!({})),
        "{now:?}"
    );
    // And forward again: version 1 is as reachable from an emptied document.
    let again = post(
        &app,
        client,
        "/context/rollback",
        json!({ "to_version": 1, "reason": "plain words after all" }),
    )
    .await;
    assert_eq!(
        (again.status, &again.body["version"]),
        (StatusCode::OK, &json!(3)),
        "{again:?}"
    );
    projected_without_parking(&env).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_naming_an_experiment_or_variant_its_client_lacks_is_that_items_422() {
    let env = TestEnv::new().await;
    let app = env.start_with(Parts::apis_only()).await;
    let (client, _) = app.register_client("Acme").await;
    let (other, _) = app.register_client("Other").await;
    let experiment = |client: Uuid| {
        let app = &app;
        async move {
            let created = post(
                app,
                client,
                "/experiments",
                json!({ "name": "subject length", "metric": "reply",
                    "variants": [{ "id": "short", "weight": 1 }, { "id": "long", "weight": 1 }] }),
            )
            .await;
            assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
            created.body["experiment_id"]
                .as_str()
                .and_then(|s| s.parse::<Uuid>().ok())
                .expect("the experiment's id")
        }
    };
    let mine = experiment(client).await;
    let theirs = experiment(other).await;
    let in_experiment = |message: &str, experiment: Uuid, variant: Option<&str>| {
        let mut item = send(message, "2026-11-18T09:12:00Z");
        item["experiment_id"] = json!(experiment);
        item["variant"] = json!(variant);
        item
    };
    let mut own_variant = send("m-6", "2026-11-18T09:12:00Z");
    own_variant["variant"] = json!("b");
    let batch = json!({ "sends": [
        in_experiment("m-1", mine, Some("short")),
        in_experiment("m-2", mine, Some("medium")),
        in_experiment("m-3", theirs, Some("short")),
        in_experiment("m-4", Uuid::new_v4(), Some("short")),
        in_experiment("m-5", mine, None),
        // A variant of no experiment: any content variant a provider reports.
        own_variant,
    ] });
    let answer = post(&app, client, "/sends", batch).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(
        results(&answer),
        vec![
            item("recorded", None),
            item("error", Some("variant")),
            item("error", Some("experiment_id")),
            item("error", Some("experiment_id")),
            item("recorded", None),
            item("recorded", None),
        ],
        "{answer:?}"
    );
    assert!(
        answer.body["results"][1]["message"]
            .as_str()
            .is_some_and(|m| m.contains("long") && m.contains("short")),
        "the experiment's variants are named: {answer:?}"
    );
    let alone = post(
        &app,
        client,
        "/sends",
        in_experiment("m-7", mine, Some("tall")),
    )
    .await;
    assert_eq!(
        (alone.status, alone.body["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("variant")),
        "{alone:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_practice_without_a_platform_row_is_refused_naming_key() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let mut position = 0;
    for name in ["Sharing A", "Sharing B"] {
        let (client, _) = app.register_client(name).await;
        let consent = app
            .command(
                Method::PATCH,
                &format!("/v1/clients/{client}"),
                Some(OPERATOR_KEY),
                Some(json!({ "data_sharing_consent": true })),
            )
            .await;
        assert_eq!(consent.status, StatusCode::OK, "{consent:?}");
        position = consent.position();
    }
    env.eventually(
        "the clients read model sees the consent",
        Duration::from_secs(20),
        || async { env.checkpoint("clients").await >= position },
    )
    .await;
    let before = env.event_ids().await.len();
    let answer = app
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
    let (status, field, _) = named(&answer);
    assert_eq!(
        (status, field),
        (StatusCode::UNPROCESSABLE_ENTITY, "key"),
        "{answer:?}"
    );
    assert_eq!(env.event_ids().await.len(), before, "nothing was written");
    app.stop().await;
}
