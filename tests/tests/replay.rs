//! Replay equals live: rebuilding a projection from the event log gives the
//! read model the live path built, and queries keep serving meanwhile.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use sextant_projections::replay;
use sextant_tests::{Running, TestEnv, OPERATOR_KEY};
use uuid::Uuid;

/// Every kind of client event, over a few clients.
async fn a_varied_history(app: &Running) -> Vec<Uuid> {
    let mut clients = Vec::new();
    for i in 0..3 {
        let (client, _) = app.register_client(&format!("Client {i}")).await;
        let path = |rest: &str| format!("/v1/clients/{client}{rest}");
        let key = app.issue_key(client, "reviewer").await;
        let key_id = key
            .split('_')
            .nth(1)
            .map(str::to_owned)
            .expect("a key has an id part");
        let calls = [
            (
                Method::PATCH,
                path(""),
                Some(json!({ "industry": "saas", "permission_mode": "autopilot",
                "autopilot_confidence_threshold": 0.8, "data_sharing_consent": true })),
            ),
            (
                Method::POST,
                path("/resources"),
                Some(json!({ "kind": "mailbox", "address": "sam@acme-mail.com" })),
            ),
            (
                Method::POST,
                path("/resources"),
                Some(json!({ "kind": "mailbox", "address": "sam@acme-mail.com", "daily_cap": 30 })),
            ),
            (
                Method::PUT,
                path("/webhooks/smartlead"),
                Some(json!({ "secret": "a-webhook-secret-of-some-length" })),
            ),
            (Method::DELETE, path(&format!("/api-keys/{key_id}")), None),
            (
                Method::POST,
                path("/suspend"),
                Some(json!({ "reason": "unpaid invoice" })),
            ),
            (Method::POST, path("/reactivate"), None),
            (
                Method::POST,
                path("/context/updates"),
                Some(json!({ "source": "manual",
                "patch": { "icp": { "industries": ["fintech"] } }, "rationale": "kick-off notes" })),
            ),
            (
                Method::POST,
                path("/context/updates"),
                Some(json!({ "source": "agent_suggestion",
                "patch": { "messaging": { "tone": "plain" } }, "rationale": "replies were warmer" })),
            ),
            (
                Method::POST,
                path("/sends"),
                Some(
                    json!({ "sends": [{ "provider": "smartlead", "provider_message_id": "m-1",
                "lead": { "email": "ana@example.com", "tier": "warm" }, "channel": "email",
                "sent_at": "2026-11-18T09:12:00Z" }] }),
                ),
            ),
            (
                Method::POST,
                path("/experiments"),
                Some(json!({ "name": "subject length", "metric": "reply",
                "variants": [{ "id": "short", "weight": 1 }, { "id": "long", "weight": 1 }] })),
            ),
            (
                Method::POST,
                path("/outcomes"),
                Some(
                    json!({ "provider": "smartlead", "provider_message_id": "m-1",
                "kind": "unsubscribed", "occurred_at": "2026-11-18T10:00:00Z" }),
                ),
            ),
        ];
        for (method, path, body) in calls {
            let answer = app.command(method, &path, Some(OPERATOR_KEY), body).await;
            assert!(answer.status.is_success(), "{path}: {answer:?}");
        }
        clients.push(client);
    }
    // The command side's own writers: the alert detector (the sends are
    // weeks old, so every client is silent for over 48 hours) and the
    // weekly publication, as of a fortnight from now.
    let detected = app
        .command(Method::POST, "/v1/alerts/detect", Some(OPERATOR_KEY), None)
        .await;
    assert!(detected.status.is_success(), "{detected:?}");
    let at = chrono::Utc::now() + chrono::Duration::days(14);
    let published = app
        .command(
            Method::POST,
            "/v1/reports/publish",
            Some(OPERATOR_KEY),
            Some(json!({ "at": at.to_rfc3339() })),
        )
        .await;
    assert!(published.status.is_success(), "{published:?}");
    clients
}

async fn caught_up(env: &TestEnv) {
    let head = env.event_ids().await.last().map(|(p, _)| *p).unwrap_or(0);
    env.eventually(
        "every projection reaches the head",
        Duration::from_secs(20),
        || async {
            env.checkpoint("clients").await == head && env.checkpoint("audit").await == head
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilding_every_projection_from_the_log_reproduces_the_live_read_models() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let clients = a_varied_history(&app).await;
    caught_up(&env).await;

    for projection in sextant_projections::all() {
        let live = replay::checksum(&env.pool, projection.as_ref())
            .await
            .expect("checksum");
        // Damage the live read model: a rebuild must not just keep it.
        for table in projection.tables() {
            sqlx::query(&format!("DELETE FROM {table}"))
                .execute(&env.pool)
                .await
                .expect("damage");
        }
        assert_ne!(
            replay::checksum(&env.pool, projection.as_ref())
                .await
                .expect("checksum"),
            live
        );
        let report = replay::rebuild(&env.pool, projection.clone(), false)
            .await
            .expect("rebuild");
        assert!(report.events > 0);
        let rebuilt = replay::checksum(&env.pool, projection.as_ref())
            .await
            .expect("checksum");
        assert_eq!(
            rebuilt,
            live,
            "replay of {} differs from live",
            projection.name()
        );
    }

    // The live path goes on after a rebuild, from where the rebuild got.
    let answer = app
        .command(
            Method::PATCH,
            &format!("/v1/clients/{}", clients[0]),
            Some(OPERATOR_KEY),
            Some(json!({ "name": "Renamed" })),
        )
        .await;
    let read = app
        .query(
            &format!(
                "/v1/clients/{}?min_position={}",
                clients[0],
                answer.position()
            ),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(read.body["name"], "Renamed", "{read:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_keep_serving_while_a_projection_is_rebuilt() {
    let env = TestEnv::new().await;
    let app = std::sync::Arc::new(env.start().await);
    let clients = a_varied_history(&app).await;
    caught_up(&env).await;

    let reader = app.clone();
    let client = clients[1];
    let reads = tokio::spawn(async move {
        let mut answers = Vec::new();
        for _ in 0..40 {
            answers.push(
                reader
                    .query(&format!("/v1/clients/{client}"), Some(OPERATOR_KEY))
                    .await
                    .status,
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        answers
    });
    for _ in 0..3 {
        let clients_projection =
            sextant_projections::by_name("clients").expect("clients projection");
        replay::rebuild(&env.pool, clients_projection, false)
            .await
            .expect("rebuild");
    }
    let answers = reads.await.expect("reader");
    assert!(answers.iter().all(|s| *s == StatusCode::OK), "{answers:?}");
}

/// What Postgres's statistics say of `table`: analysed by hand, and the
/// row count the planner assumes (`-1`: never measured).
async fn statistics_of(env: &TestEnv, table: &str) -> (bool, f32) {
    sqlx::query_as(
        "SELECT s.last_analyze IS NOT NULL, c.reltuples FROM pg_stat_user_tables s \
         JOIN pg_class c ON c.oid = s.relid WHERE s.schemaname = 'public' AND s.relname = $1",
    )
    .bind(table)
    .fetch_one(&env.pool)
    .await
    .expect("the table's statistics")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_analyses_the_log_without_statistics_and_swaps_in_analysed_tables() {
    let env = TestEnv::new().await;
    // A freshly loaded log: autovacuum must not analyse it behind the test.
    sqlx::query("ALTER TABLE events SET (autovacuum_enabled = false)")
        .execute(&env.pool)
        .await
        .expect("autovacuum off for events");
    let app = env.start().await;
    a_varied_history(&app).await;
    caught_up(&env).await;
    let never: (bool, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(
        "SELECT last_analyze IS NULL, last_autoanalyze FROM pg_stat_user_tables \
         WHERE schemaname = 'public' AND relname = 'events'",
    )
    .fetch_one(&env.pool)
    .await
    .expect("the log's statistics");
    assert_eq!(never, (true, None), "the log starts without statistics");

    let projection = sextant_projections::by_name("clients").expect("clients projection");
    replay::rebuild(&env.pool, projection.clone(), false)
        .await
        .expect("rebuild");

    let (analysed, rows) = statistics_of(&env, "events").await;
    assert!(analysed, "the replay analysed the log");
    assert!(rows > 0.0, "the planner knows the log's size: {rows}");
    for table in projection.tables() {
        let (analysed, rows) = statistics_of(&env, table).await;
        assert!(analysed, "{table} was swapped in without statistics");
        assert!(rows >= 0.0, "{table} was swapped in never measured");
    }
    let (_, clients) = statistics_of(&env, "clients_view").await;
    assert!(clients >= 3.0, "three clients: {clients}");

    // Fresh statistics are left alone: a second replay does not analyse
    // the log again.
    let before: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "SELECT last_analyze FROM pg_stat_user_tables WHERE schemaname = 'public' AND relname = 'events'",
    )
    .fetch_one(&env.pool)
    .await
    .expect("when the log was analysed");
    replay::rebuild(&env.pool, projection, false)
        .await
        .expect("rebuild again");
    let after: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "SELECT last_analyze FROM pg_stat_user_tables WHERE schemaname = 'public' AND relname = 'events'",
    )
    .fetch_one(&env.pool)
    .await
    .expect("when the log was analysed");
    assert_eq!(before, after, "fresh statistics are kept");

    // Statistics gone stale (more rows changed since they were gathered
    // than 1,000 and a fifth of the table) are gathered anew.
    let (client, _) = app.register_client("Stale").await;
    let sends: Vec<serde_json::Value> = (0..3_000)
        .map(|i| {
            json!({
                "provider": "smartlead", "provider_message_id": format!("stale-{i}"),
                "lead": {"email": format!("lead{i}@example.com"), "tier": "warm"},
                "channel": "email", "sent_at": "2026-11-18T09:12:00Z"
            })
        })
        .collect();
    app.ingest(client, "sends", &sends).await;
    env.eventually(
        "the log's statistics to go stale",
        Duration::from_secs(30),
        || async {
            sqlx::query_scalar::<_, bool>(
                "SELECT n_mod_since_analyze > 1000 + n_live_tup / 5 FROM pg_stat_user_tables \
             WHERE schemaname = 'public' AND relname = 'events'",
            )
            .fetch_one(&env.pool)
            .await
            .unwrap_or(false)
        },
    )
    .await;
    let projection = sextant_projections::by_name("clients").expect("clients projection");
    replay::rebuild(&env.pool, projection, false)
        .await
        .expect("rebuild once more");
    let again: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "SELECT last_analyze FROM pg_stat_user_tables WHERE schemaname = 'public' AND relname = 'events'",
    )
    .fetch_one(&env.pool)
    .await
    .expect("when the log was analysed");
    assert!(
        again > after,
        "stale statistics are gathered anew: {after} then {again}"
    );
    app.stop().await;
}
