//! The HTTP contract: authentication and roles, tenant isolation, bad input
//! answered with problem+json and nothing written, 503 when Postgres is
//! down.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sextant_tests::{Answer, Parts, Running, TcpCut, TestEnv, OPERATOR_KEY};
use uuid::Uuid;

async fn event_count(env: &TestEnv) -> usize {
    env.event_ids().await.len()
}

fn assert_problem(answer: &Answer, status: StatusCode) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(
        answer.content_type(),
        "application/problem+json",
        "{answer:?}"
    );
    assert_eq!(answer.body["status"], status.as_u16(), "{answer:?}");
    assert!(
        answer.body["title"].is_string() && answer.body["detail"].is_string(),
        "{answer:?}"
    );
    assert!(answer.body["type"]
        .as_str()
        .unwrap_or("")
        .starts_with("urn:sextant:problem:"));
}

/// Every client-scoped endpoint, for `client`.
fn client_endpoints(client: Uuid) -> Vec<(Method, String, Option<Value>, bool)> {
    let c = |rest: &str| format!("/v1/clients/{client}{rest}");
    vec![
        (Method::PATCH, c(""), Some(json!({ "region": "NZ" })), true),
        (
            Method::POST,
            c("/api-keys"),
            Some(json!({ "role": "reader", "label": "x" })),
            true,
        ),
        (
            Method::DELETE,
            c(&format!("/api-keys/{}", Uuid::new_v4())),
            None,
            true,
        ),
        (
            Method::PUT,
            c("/webhooks/smartlead"),
            Some(json!({ "secret": "0123456789abcdef0123" })),
            true,
        ),
        (
            Method::POST,
            c("/resources"),
            Some(json!({ "kind": "mailbox", "address": "a@b.c" })),
            true,
        ),
        (
            Method::POST,
            c("/suspend"),
            Some(json!({ "reason": "x" })),
            true,
        ),
        (Method::POST, c("/reactivate"), None, true),
        (Method::GET, c(""), None, false),
        (Method::GET, c("/audit"), None, false),
    ]
}

async fn call(
    app: &Running,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
    command: bool,
) -> Answer {
    if command {
        app.command(method, path, Some(key), body).await
    } else {
        app.query(path, Some(key)).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_one_client_gets_404_on_every_path_of_another_and_writes_nothing() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (mine, _) = app.register_client("Mine").await;
    let (theirs, _) = app.register_client("Theirs").await;
    let admin = app.issue_key(mine, "admin").await;
    let before = event_count(&env).await;
    for (method, path, body, command) in client_endpoints(theirs) {
        let answer = call(&app, method.clone(), &path, &admin, body, command).await;
        assert_problem(&answer, StatusCode::NOT_FOUND);
        assert_eq!(answer.body["detail"], "no such client", "{method} {path}");
    }
    assert_eq!(event_count(&env).await, before);
    // The same as for a client that does not exist at all.
    let answer = app
        .query(&format!("/v1/clients/{}", Uuid::new_v4()), Some(&admin))
        .await;
    assert_problem(&answer, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_key_are_401_and_roles_are_enforced_with_403() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, registered) = app.register_client("Acme").await;
    let reader = app.issue_key(client, "reader").await;
    let before = event_count(&env).await;
    let patch = format!("/v1/clients/{client}");
    let body = Some(json!({ "region": "NZ" }));

    let none = app.command(Method::PATCH, &patch, None, body.clone()).await;
    assert_problem(&none, StatusCode::UNAUTHORIZED);
    let forged = format!("sxk_{}_{}", Uuid::new_v4().simple(), "0".repeat(64));
    for key in ["wrong", forged.as_str(), &reader[..reader.len() - 1]] {
        let answer = app
            .command(Method::PATCH, &patch, Some(key), body.clone())
            .await;
        assert_problem(&answer, StatusCode::UNAUTHORIZED);
    }
    let answer = app
        .command(Method::PATCH, &patch, Some(&reader), body.clone())
        .await;
    assert_problem(&answer, StatusCode::FORBIDDEN);
    let answer = app.query("/v1/clients", Some(&reader)).await;
    assert_problem(&answer, StatusCode::FORBIDDEN);
    let answer = app
        .command(
            Method::POST,
            "/v1/clients",
            Some(&reader),
            Some(json!({
            "name": "X", "industry": "y", "company_size": "1-10", "region": "AU" })),
        )
        .await;
    assert_problem(&answer, StatusCode::FORBIDDEN);
    assert_eq!(event_count(&env).await, before);

    // A reader may read its own client.
    let answer = app
        .query(
            &format!("/v1/clients/{client}?min_position={registered}"),
            Some(&reader),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_stops_working_at_once() {
    let env = TestEnv::new().await;
    // No projectors: only the command API's own after-commit write can make
    // the key work and then stop working.
    let app = env.start_with(Parts::apis_only()).await;
    let (client, _) = app.register_client("Acme").await;
    let issued = app
        .command(
            Method::POST,
            &format!("/v1/clients/{client}/api-keys"),
            Some(OPERATOR_KEY),
            Some(json!({ "role": "admin", "label": "ops" })),
        )
        .await;
    let key = issued.body["key"].as_str().expect("key").to_owned();
    let key_id = issued.body["key_id"].as_str().expect("key id").to_owned();
    let patch = format!("/v1/clients/{client}");
    let ok = app
        .command(
            Method::PATCH,
            &patch,
            Some(&key),
            Some(json!({ "region": "NZ" })),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
    let revoked = app
        .command(
            Method::DELETE,
            &format!("/v1/clients/{client}/api-keys/{key_id}"),
            Some(OPERATOR_KEY),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{revoked:?}");
    let after = app
        .command(
            Method::PATCH,
            &patch,
            Some(&key),
            Some(json!({ "region": "AU" })),
        )
        .await;
    assert_problem(&after, StatusCode::UNAUTHORIZED);
    let again = app
        .command(
            Method::DELETE,
            &format!("/v1/clients/{client}/api-keys/{key_id}"),
            Some(OPERATOR_KEY),
            None,
        )
        .await;
    assert_problem(&again, StatusCode::CONFLICT);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_problem_and_writes_nothing() {
    let env = TestEnv::new().await;
    let app = env.start_with(Parts::apis_only()).await;
    let (client, _) = app.register_client("Acme").await;
    let before = event_count(&env).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", app.command_url);
    let raw = |path: &str, content_type: &str, body: Vec<u8>| {
        http.post(url(path))
            .bearer_auth(OPERATOR_KEY)
            .header("content-type", content_type.to_owned())
            .body(body)
    };
    let answer_of = |response: reqwest::Response| async move {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    };

    // Malformed JSON.
    let answer = answer_of(
        raw("/v1/clients", "application/json", b"{\"name\": ".to_vec())
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_problem(&answer, StatusCode::BAD_REQUEST);
    assert!(answer.body["detail"]
        .as_str()
        .unwrap_or("")
        .contains("malformed JSON"));
    // Not JSON at all.
    let answer = answer_of(
        raw("/v1/clients", "text/plain", b"name=x".to_vec())
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_problem(&answer, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Oversized, just over the limit (see documents.rs: with megabytes
    // left unread the client can hit the closed connection first).
    let huge = format!(
        "{{\"name\": \"{}\"}}",
        "x".repeat(sextant_adapters::http::BODY_LIMIT + 1024)
    );
    let answer = answer_of(
        raw("/v1/clients", "application/json", huge.into_bytes())
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_problem(&answer, StatusCode::PAYLOAD_TOO_LARGE);

    let valid =
        json!({ "name": "X", "industry": "fintech", "company_size": "11-50", "region": "AU" });
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        ("unknown field", with("colour", json!("blue")), "colour"),
        ("wrong type", with("name", json!(42)), "name"),
        ("empty name", with("name", json!("  ")), "name"),
        (
            "unknown size bucket",
            with("company_size", json!("huge")),
            "company_size",
        ),
        (
            "unknown permission mode",
            with("permission_mode", json!("yolo")),
            "permission_mode",
        ),
        ("missing field", json!({ "name": "X" }), "industry"),
    ];
    for (what, body, field) in cases {
        let answer = app
            .command(Method::POST, "/v1/clients", Some(OPERATOR_KEY), Some(body))
            .await;
        assert_problem(&answer, StatusCode::UNPROCESSABLE_ENTITY);
        let named = answer.body["errors"][0]["field"].as_str().unwrap_or("");
        assert_eq!(named, field, "{what}: {answer:?}");
    }
    let client_path = |rest: &str| format!("/v1/clients/{client}{rest}");
    let out_of_range: Vec<(Method, String, Value, &str)> = vec![
        (
            Method::PATCH,
            client_path(""),
            json!({ "autopilot_confidence_threshold": 1.5 }),
            "autopilot_confidence_threshold",
        ),
        (
            Method::POST,
            client_path("/resources"),
            json!({ "kind": "mailbox", "address": "a@b.c", "daily_cap": 0 }),
            "daily_cap",
        ),
        (
            Method::POST,
            client_path("/resources"),
            json!({ "kind": "pigeon", "address": "a@b.c" }),
            "kind",
        ),
        (
            Method::POST,
            client_path("/api-keys"),
            json!({ "role": "god", "label": "x" }),
            "role",
        ),
        (
            Method::PUT,
            client_path("/webhooks/smartlead"),
            json!({ "secret": "short" }),
            "secret",
        ),
    ];
    for (method, path, body, field) in out_of_range {
        let answer = app
            .command(method, &path, Some(OPERATOR_KEY), Some(body))
            .await;
        assert_problem(&answer, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(answer.body["errors"][0]["field"], field, "{answer:?}");
    }
    // Unknown things.
    let answer = app
        .command(
            Method::PUT,
            &client_path("/webhooks/carrier-pigeon"),
            Some(OPERATOR_KEY),
            Some(json!({ "secret": "0123456789abcdef0123" })),
        )
        .await;
    assert_problem(&answer, StatusCode::NOT_FOUND);
    let answer = app
        .command(
            Method::PATCH,
            "/v1/clients/not-a-uuid",
            Some(OPERATOR_KEY),
            Some(json!({ "region": "NZ" })),
        )
        .await;
    assert_problem(&answer, StatusCode::NOT_FOUND);
    let answer = app
        .command(
            Method::PATCH,
            &format!("/v1/clients/{}", Uuid::new_v4()),
            Some(OPERATOR_KEY),
            Some(json!({ "region": "NZ" })),
        )
        .await;
    assert_problem(&answer, StatusCode::NOT_FOUND);
    let answer = app
        .command(Method::GET, "/v1/nowhere", Some(OPERATOR_KEY), None)
        .await;
    assert_problem(&answer, StatusCode::NOT_FOUND);
    // Bad query parameters.
    let answer = app
        .query(
            &format!("/v1/clients/{client}/audit?limit=100000"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_problem(&answer, StatusCode::UNPROCESSABLE_ENTITY);
    let answer = app
        .query(
            &format!("/v1/clients/{client}?min_position=soon"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_problem(&answer, StatusCode::UNPROCESSABLE_ENTITY);
    // Refused by the aggregate: revoking a key that does not exist.
    let answer = app
        .command(
            Method::DELETE,
            &client_path(&format!("/api-keys/{}", Uuid::new_v4())),
            Some(OPERATOR_KEY),
            None,
        )
        .await;
    assert_problem(&answer, StatusCode::NOT_FOUND);

    assert_eq!(event_count(&env).await, before, "bad input wrote events");
    let outbox = env.outbox_depth().await;
    assert_eq!(outbox as usize, before, "bad input wrote outbox rows");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgres_down_commands_fail_fast_with_503_and_nothing_is_half_written() {
    let env = TestEnv::new().await;
    let upstream = {
        let url = reqwest::Url::parse(&env.database_url).expect("url");
        format!(
            "{}:{}",
            url.host_str().unwrap_or("127.0.0.1"),
            url.port().unwrap_or(5432)
        )
    };
    let proxy = TcpCut::start(upstream).await;
    let mut settings = env.settings();
    let proxied = {
        let mut url = reqwest::Url::parse(&env.database_url).expect("url");
        let _ = url.set_port(Some(proxy.port));
        url.to_string()
    };
    settings.database_url = proxied.into();
    let app = env.start_against(&settings, Parts::apis_only()).await;
    let (client, _) = app.register_client("Acme").await;
    let before = event_count(&env).await;

    proxy.cut();
    let started = std::time::Instant::now();
    let answer = app
        .command(
            Method::PATCH,
            &format!("/v1/clients/{client}"),
            Some(OPERATOR_KEY),
            Some(json!({ "region": "NZ" })),
        )
        .await;
    assert_problem(&answer, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let answer = app
        .command(
            Method::POST,
            "/v1/clients",
            Some(OPERATOR_KEY),
            Some(json!({
            "name": "X", "industry": "fintech", "company_size": "11-50", "region": "AU" })),
        )
        .await;
    assert_problem(&answer, StatusCode::SERVICE_UNAVAILABLE);
    let ready = app.command(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        event_count(&env).await,
        before,
        "a failed command left events behind"
    );

    proxy.restore();
    let answer = app
        .command(
            Method::PATCH,
            &format!("/v1/clients/{client}"),
            Some(OPERATOR_KEY),
            Some(json!({ "region": "NZ" })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(event_count(&env).await, before + 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_become_due_for_the_relay_at_their_commit_and_never_before() {
    let env = TestEnv::new().await;
    let mut tx = env.pool.begin().await.expect("begin");
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('probe', 'a', 1, 'probed', '1', '{}', '{}'), ('probe', 'a', 2, 'probed', '1', '{}', '{}')",
    )
    .execute(&mut *tx)
    .await
    .expect("insert");
    let inside: i64 = sqlx::query_scalar("SELECT count(*) FROM event_outbox")
        .fetch_one(&mut *tx)
        .await
        .expect("count");
    assert_eq!(inside, 2, "the writer sees its events as due for the relay");
    assert_eq!(
        env.outbox_depth().await,
        0,
        "nothing is visible before commit"
    );
    assert_eq!(event_count(&env).await, 0);
    tx.rollback().await.expect("rollback");
    assert_eq!(env.outbox_depth().await, 0);
    assert_eq!(event_count(&env).await, 0);

    // The log refuses to be rewritten.
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('probe', 'b', 1, 'probed', '1', '{}', '{}')",
    )
    .execute(&env.pool)
    .await
    .expect("insert");
    assert!(sqlx::query("UPDATE events SET payload = '{\"x\": 1}'")
        .execute(&env.pool)
        .await
        .is_err());
    assert!(sqlx::query("DELETE FROM events")
        .execute(&env.pool)
        .await
        .is_err());
    assert_eq!(env.outbox_depth().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_openapi_answer_without_a_key() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    app.register_client("Acme").await;
    for base in [&app.command_url, &app.query_url] {
        for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
            let answer = app
                .send(Method::GET, format!("{base}{path}"), None, None)
                .await;
            assert_eq!(answer.status, StatusCode::OK, "{base}{path}: {answer:?}");
            assert!(answer.headers.contains_key("x-request-id"));
        }
    }
    let metrics = app
        .http
        .get(format!("{}/metrics", app.command_url))
        .send()
        .await
        .expect("metrics");
    let text = metrics.text().await.expect("a metrics body");
    assert!(text.contains("sextant_http_requests_total"), "{text}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_methods_missing_keys_and_foreign_bodies_get_the_right_problem() {
    let env = TestEnv::new().await;
    let app = env.start_with(Parts::apis_only()).await;
    let (mine, _) = app.register_client("Mine").await;
    let (theirs, _) = app.register_client("Theirs").await;
    let admin = app.issue_key(mine, "admin").await;

    let answer = app
        .command(Method::GET, "/v1/clients", Some(OPERATOR_KEY), None)
        .await;
    assert_problem(&answer, StatusCode::METHOD_NOT_ALLOWED);
    let answer = app
        .command(
            Method::PATCH,
            &format!("/v1/clients/{mine}"),
            None,
            Some(json!({})),
        )
        .await;
    assert_problem(&answer, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    // Another client's path is 404 even when the body is bad: nothing about
    // it is revealed, not even what it would accept.
    let answer = app
        .command(
            Method::PATCH,
            &format!("/v1/clients/{theirs}"),
            Some(&admin),
            Some(json!({ "region": 42 })),
        )
        .await;
    assert_problem(&answer, StatusCode::NOT_FOUND);
    // Suspension is the operator's: an admin of the client is told so.
    let answer = app
        .command(
            Method::POST,
            &format!("/v1/clients/{mine}/suspend"),
            Some(&admin),
            Some(json!({ "reason": "x" })),
        )
        .await;
    assert_problem(&answer, StatusCode::FORBIDDEN);
    assert_eq!(answer.body["detail"], "only the operator may do this");
    app.stop().await;
}
