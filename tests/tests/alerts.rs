//! Alerts as events: the detector raises an alert once per condition and
//! resolves it once when it clears, with hysteresis; a reply-rate drop is
//! judged on matured cohorts only; suggestions waiting for review raise
//! their alerts; a person acknowledges an alert by a command; two command
//! processes raise one alert; the read model a replay rebuilds equals the
//! live one.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sextant_application::alerts::Detector;
use sextant_application::App;
use sextant_domain::alert::Thresholds;
use sextant_tests::procs::{Binary, Service};
use sextant_tests::{Answer, Running, TestEnv, OPERATOR_KEY};
use uuid::Uuid;

const RESOURCE: &str = "sdr1@acme.example";

fn send(message: &str, resource: &str, sent_at: DateTime<Utc>) -> Value {
    json!({
        "provider": "sim", "provider_message_id": message,
        "lead_ref": format!("lead-ref-{message}"),
        "channel": "email", "campaign_id": "alerts", "step": 1,
        "resource": resource,
        "sent_at": sent_at.to_rfc3339(),
    })
}

fn outcome(message: &str, kind: &str, at: DateTime<Utc>) -> Value {
    let mut outcome = json!({
        "provider": "sim", "provider_message_id": message, "kind": kind,
        "occurred_at": at.to_rfc3339(),
    });
    if kind == "bounced" {
        outcome["bounce_type"] = json!("hard");
    }
    if kind == "replied" {
        outcome["intent"] = json!("interested");
    }
    outcome
}

async fn ingest(app: &Running, client: Uuid, path: &str, items: &[Value]) -> i64 {
    app.ingest(client, path, items).await
}

/// Ingests, then waits until the read models the detector reads have it.
async fn ingest_and_wait(
    env: &TestEnv,
    app: &Running,
    client: Uuid,
    sends: &[Value],
    outcomes: &[Value],
) {
    let mut position = ingest(app, client, "sends", sends).await;
    if !outcomes.is_empty() {
        position = position.max(ingest(app, client, "outcomes", outcomes).await);
    }
    env.eventually(
        "the sends and patterns read models catch up",
        Duration::from_secs(60),
        || async {
            env.checkpoint("sends").await >= position
                && env.checkpoint("patterns").await >= position
                && env.checkpoint("clients").await >= position
        },
    )
    .await;
}

async fn detect(app: &Running) -> Answer {
    let answer = app
        .command(Method::POST, "/v1/alerts/detect", Some(OPERATOR_KEY), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer
}

/// How many events of `event_type` the log holds for the condition `key`.
async fn alert_events(env: &TestEnv, event_type: &str, key: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM events e WHERE e.aggregate_type = 'alert' AND e.event_type = $1 \
         AND e.aggregate_id IN (SELECT aggregate_id FROM events \
           WHERE aggregate_type = 'alert' AND event_type = 'alert_raised' AND payload ->> 'key' = $2)",
    )
    .bind(event_type)
    .bind(key)
    .fetch_one(&env.pool)
    .await
    .expect("count alert events")
}

async fn alerts(app: &Running, client: Uuid, key: &str, status: &str, at: i64) -> Vec<Value> {
    let answer = app
        .query(
            &format!("/v1/clients/{client}/alerts?status={status}&min_position={at}"),
            Some(key),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer.body["items"]
        .as_array()
        .cloned()
        .expect("a list of alerts")
}

fn conditions(items: &[Value]) -> Vec<String> {
    let mut found: Vec<String> = items
        .iter()
        .map(|a| a["condition"].as_str().unwrap_or_default().to_owned())
        .collect();
    found.sort();
    found
}

fn detector(env: &TestEnv) -> Detector {
    Detector::new(&App::new(env.pool.clone(), None), Thresholds::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounce_alert_is_raised_once_and_resolved_once_below_the_lower_threshold() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    let reader = app.issue_key(client, "reader").await;
    let now = Utc::now();
    let key = format!("bounce_rate:{RESOURCE}");

    // 200 sends, 8 of them bounced (4%): above 3%.
    let start = now - chrono::Duration::hours(10);
    let sends: Vec<Value> = (0..200)
        .map(|i| {
            send(
                &format!("m{i:03}"),
                RESOURCE,
                start + chrono::Duration::minutes(i),
            )
        })
        .collect();
    let bounces: Vec<Value> = (0..8)
        .map(|i| {
            let at = start + chrono::Duration::minutes(i * 20 + 1);
            outcome(&format!("m{:03}", i * 20), "bounced", at)
        })
        .collect();
    ingest_and_wait(&env, &app, client, &sends, &bounces).await;

    let first = detect(&app).await;
    let raised = first.body["raised"].as_array().cloned().unwrap_or_default();
    assert_eq!(raised.len(), 1, "{first:?}");
    assert_eq!(raised[0]["condition"], "bounce_rate");
    assert_eq!(raised[0]["subject"], RESOURCE);
    let again = detect(&app).await;
    assert_eq!(again.body["raised"], json!([]), "{again:?}");
    let open = alerts(&app, client, &reader, "open", again.position()).await;
    assert_eq!(conditions(&open), ["bounce_rate"], "{open:?}");
    assert_eq!(open[0]["evidence"]["sends"], 200);
    assert_eq!(open[0]["evidence"]["bounces"], 8);
    assert_eq!(open[0]["episode"], 1);

    // 60 later, clean sends push the 60 oldest out of the window: its 200
    // hold 5 bounces (2.5%), between the thresholds, so the alert stays open.
    let later = now - chrono::Duration::hours(5);
    let clean: Vec<Value> = (0..60)
        .map(|i| {
            send(
                &format!("n{i:03}"),
                RESOURCE,
                later + chrono::Duration::minutes(i),
            )
        })
        .collect();
    ingest_and_wait(&env, &app, client, &clean, &[]).await;
    let between = detect(&app).await;
    assert_eq!(between.body["resolved"], json!([]), "{between:?}");
    assert_eq!(between.body["raised"], json!([]), "{between:?}");

    // 60 more: 2 bounces in the last 200 (1%), below 2%: resolved, once.
    let latest = now - chrono::Duration::hours(2);
    let cleaner: Vec<Value> = (0..60)
        .map(|i| {
            send(
                &format!("o{i:03}"),
                RESOURCE,
                latest + chrono::Duration::minutes(i),
            )
        })
        .collect();
    ingest_and_wait(&env, &app, client, &cleaner, &[]).await;
    let cleared = detect(&app).await;
    let resolved = cleared.body["resolved"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(resolved.len(), 1, "{cleared:?}");
    assert_eq!(resolved[0]["alert_id"], raised[0]["alert_id"]);
    let still = detect(&app).await;
    assert_eq!(still.body["resolved"], json!([]), "{still:?}");
    assert_eq!(still.body["raised"], json!([]), "{still:?}");

    assert_eq!(alert_events(&env, "alert_raised", &key).await, 1);
    assert_eq!(alert_events(&env, "alert_resolved", &key).await, 1);
    let done = alerts(&app, client, &reader, "resolved", still.position()).await;
    assert_eq!(conditions(&done), ["bounce_rate"], "{done:?}");
    assert_eq!(done[0]["resolution_evidence"]["bounces"], 2);
    assert!(done[0]["resolved_at"].is_string(), "{done:?}");
    assert!(alerts(&app, client, &reader, "open", still.position())
        .await
        .is_empty());

    // On the stream, for a downstream service to page or post to chat.
    let stream = env.assert_stream_matches_log().await;
    for event_type in ["alert_raised", "alert_resolved"] {
        assert!(
            stream
                .iter()
                .any(|e| e.event_type == format!("sextant.alert.{event_type}.v1")
                    && e.sextantclient == Some(client)),
            "no {event_type} on the stream"
        );
    }
    env.caught_up(Duration::from_secs(30)).await;
    env.assert_projections_equal_replay().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_rate_drop_is_judged_on_matured_cohorts_only() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    let now = Utc::now();
    let day = chrono::Duration::days(1);
    let mut sends = Vec::new();
    let mut replies = Vec::new();
    // Matured: 1000 sends from 48 to 15 days ago, one in ten replied.
    for i in 0..1000 {
        let sent_at = now - day * 48 + chrono::Duration::minutes(i * 47);
        let message = format!("old{i:04}");
        sends.push(send(&message, RESOURCE, sent_at));
        if i % 10 == 0 {
            replies.push(outcome(
                &message,
                "replied",
                sent_at + chrono::Duration::hours(3),
            ));
        }
    }
    // A fresh week, still inside the reply window: nobody replied yet.
    for i in 0..300 {
        let sent_at = now - day * 6 + chrono::Duration::minutes(i * 20 + 10);
        sends.push(send(&format!("new{i:04}"), RESOURCE, sent_at));
    }
    ingest_and_wait(&env, &app, client, &sends, &replies).await;

    let detector = detector(&env);
    let today = detector.detect(now).await.expect("detection runs");
    assert!(
        !today
            .raised
            .iter()
            .any(|c| c.condition.as_str() == "reply_rate_drop"),
        "a young cohort is not a drop: {today:?}"
    );
    // Fifteen days on, the silent week has matured: now it is one.
    let later = detector
        .detect(now + day * 15)
        .await
        .expect("detection runs");
    let drops: Vec<_> = later
        .raised
        .iter()
        .filter(|c| c.condition.as_str() == "reply_rate_drop")
        .collect();
    assert_eq!(drops.len(), 1, "{later:?}");
    let evidence: Value = sqlx::query_scalar(
        "SELECT payload -> 'evidence' FROM events WHERE aggregate_type = 'alert' \
         AND event_type = 'alert_raised' AND payload ->> 'condition' = 'reply_rate_drop'",
    )
    .fetch_one(&env.pool)
    .await
    .expect("the raised alert");
    assert_eq!(evidence["recent"]["replies"], 0, "{evidence}");
    assert_eq!(evidence["recent"]["sends"], 300, "{evidence}");
    assert!(
        evidence["z"].as_f64().is_some_and(|z| z <= -1.96),
        "{evidence}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggestions_waiting_for_review_raise_their_alerts_and_resolve_them_once_decided() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    let reviewer = app.issue_key(client, "reviewer").await;
    let propose =
        |source: &'static str, patch: Value, evidence: Value| {
            let (app, env) = (&app, &env);
            async move {
                let answer = app
                .command(
                    Method::POST,
                    &format!("/v1/clients/{client}/context/updates"),
                    Some(OPERATOR_KEY),
                    Some(json!({ "source": source, "patch": patch, "rationale": "seen in the data",
                                 "evidence": evidence })),
                )
                .await;
                assert_eq!(answer.status, StatusCode::ACCEPTED, "{answer:?}");
                let position = answer.position();
                env.eventually(
                    "the approval queue has it",
                    Duration::from_secs(20),
                    || async { env.checkpoint("context").await >= position },
                )
                .await;
                answer.body["update_id"]
                    .as_str()
                    .and_then(|id| Uuid::parse_str(id).ok())
                    .expect("an update id")
            }
        };
    let health = propose(
        "email_performance",
        json!({ "playbook": { "learned": { "what": { "cta=meeting": null } } } }),
        json!({ "check": "pattern_health", "family": "what", "key": "cta=meeting", "held_verdict": "prefer" }),
    )
    .await;
    let regression = propose(
        "context_regression",
        json!({ "playbook": { "tone": "formal" } }),
        json!({ "family": "versions", "key": "context_version=3", "regressed_version": 3 }),
    )
    .await;

    let detector = detector(&env);
    let now = Utc::now();
    let first = detector.detect(now).await.expect("detection runs");
    let mut raised: Vec<(String, String)> = first
        .raised
        .iter()
        .map(|c| (c.condition.as_str().to_owned(), c.subject.clone()))
        .collect();
    raised.sort();
    assert_eq!(
        raised,
        [
            (
                "context_regression".to_owned(),
                "context_version=3".to_owned()
            ),
            ("pattern_health".to_owned(), "what|cta=meeting".to_owned()),
        ]
    );
    // Eight days on, both have waited longer than seven.
    let week_on = now + chrono::Duration::days(8);
    let stale = detector.detect(week_on).await.expect("detection runs");
    let mut waiting: Vec<String> = stale
        .raised
        .iter()
        .filter(|c| c.condition.as_str() == "stale_suggestion")
        .map(|c| c.subject.clone())
        .collect();
    waiting.sort();
    let mut expected = vec![health.to_string(), regression.to_string()];
    expected.sort();
    assert_eq!(waiting, expected, "{stale:?}");
    assert!(detector
        .detect(week_on)
        .await
        .expect("runs")
        .raised
        .is_empty());

    let open = alerts(&app, client, &reviewer, "open", stale.position).await;
    assert_eq!(
        conditions(&open),
        [
            "context_regression",
            "pattern_health",
            "stale_suggestion",
            "stale_suggestion"
        ]
    );

    // Decided: every alert they raised resolves, once.
    for update in [health, regression] {
        let rejected = app
            .command(
                Method::POST,
                &format!("/v1/clients/{client}/context/updates/{update}/reject"),
                Some(&reviewer),
                Some(json!({ "reason": "not now" })),
            )
            .await;
        assert_eq!(rejected.status, StatusCode::OK, "{rejected:?}");
    }
    env.eventually(
        "the approval queue is empty",
        Duration::from_secs(20),
        || async {
            let pending: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM context_updates WHERE client_id = $1 AND status = 'pending'",
            )
            .bind(client)
            .fetch_one(&env.pool)
            .await
            .expect("count pending");
            pending == 0
        },
    )
    .await;
    let decided = detector.detect(week_on).await.expect("detection runs");
    assert_eq!(decided.resolved.len(), 4, "{decided:?}");
    assert!(detector
        .detect(week_on)
        .await
        .expect("runs")
        .resolved
        .is_empty());
    assert!(alerts(&app, client, &reviewer, "open", decided.position)
        .await
        .is_empty());
    assert_eq!(
        alerts(&app, client, &reviewer, "all", decided.position)
            .await
            .len(),
        4
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_llm_spend_limit_reached_raises_an_alert_that_the_next_day_resolves() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, registered) = app.register_client("Acme").await;
    env.eventually(
        "the client is in the clients read model",
        Duration::from_secs(20),
        || async { env.checkpoint("clients").await >= registered },
    )
    .await;
    let llm = sextant_adapters::llm::LlmClient::new(sextant_adapters::llm::LlmSettings {
        url: "http://127.0.0.1:9".into(),
        model: "none".into(),
        api_key: secrecy::SecretString::from("unused".to_owned()),
        daily_limit_usd: 1.0,
        usd_per_1k_tokens: 0.01,
        timeout: Duration::from_secs(1),
        attempts: 1,
        breaker_threshold: 3,
        breaker_cooldown: Duration::from_secs(1),
    })
    .expect("an LLM client");
    let sextant = App::new(env.pool.clone(), Some(llm));
    let detector = Detector::new(&sextant, Thresholds::default());
    let now = Utc::now();
    sqlx::query("INSERT INTO llm_spend (client_id, day, calls, tokens, cost_usd) VALUES ($1, $2, 40, 100000, 1.2)")
        .bind(client)
        .bind(now.date_naive())
        .execute(&env.pool)
        .await
        .expect("record spend");
    let spent = detector.detect(now).await.expect("detection runs");
    assert_eq!(spent.raised.len(), 1, "{spent:?}");
    assert_eq!(spent.raised[0].condition.as_str(), "llm_spend_limit");
    let tomorrow = detector
        .detect(now + chrono::Duration::days(1))
        .await
        .expect("detection runs");
    assert_eq!(tomorrow.resolved.len(), 1, "{tomorrow:?}");
    app.stop().await;
}

/// A client whose one send was three days ago: `no_sends` holds.
async fn silent_client(env: &TestEnv, app: &Running) -> Uuid {
    let (client, _) = app.register_client("Quiet").await;
    let sent_at = Utc::now() - chrono::Duration::days(3);
    ingest_and_wait(env, app, client, &[send("q1", RESOURCE, sent_at)], &[]).await;
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_is_acknowledged_by_a_reviewer_once_and_refused_to_others() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let client = silent_client(&env, &app).await;
    let (other, _) = app.register_client("Other").await;
    let reader = app.issue_key(client, "reader").await;
    let reviewer = app.issue_key(client, "reviewer").await;
    let outsider = app.issue_key(other, "reviewer").await;

    let detection = detect(&app).await;
    let raised = detection.body["raised"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(raised.len(), 1, "{detection:?}");
    assert_eq!(raised[0]["condition"], "no_sends");
    let alert = raised[0]["alert_id"]
        .as_str()
        .expect("an alert id")
        .to_owned();
    let path = format!("/v1/clients/{client}/alerts/{alert}/acknowledge");

    let by_reader = app.command(Method::POST, &path, Some(&reader), None).await;
    assert_eq!(by_reader.status, StatusCode::FORBIDDEN, "{by_reader:?}");
    let by_outsider = app
        .command(Method::POST, &path, Some(&outsider), None)
        .await;
    assert_eq!(by_outsider.status, StatusCode::NOT_FOUND, "{by_outsider:?}");
    let unknown = app
        .command(
            Method::POST,
            &format!("/v1/clients/{client}/alerts/{}/acknowledge", Uuid::new_v4()),
            Some(&reviewer),
            None,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{unknown:?}");
    let not_a_uuid = app
        .command(
            Method::POST,
            &format!("/v1/clients/{client}/alerts/nope/acknowledge"),
            Some(&reviewer),
            None,
        )
        .await;
    assert_eq!(not_a_uuid.status, StatusCode::NOT_FOUND, "{not_a_uuid:?}");

    let acknowledged = app
        .command(
            Method::POST,
            &path,
            Some(&reviewer),
            Some(json!({ "note": "campaign paused on purpose" })),
        )
        .await;
    assert_eq!(acknowledged.status, StatusCode::OK, "{acknowledged:?}");
    assert_eq!(acknowledged.body["alert_id"], alert.as_str());
    let twice = app
        .command(Method::POST, &path, Some(&reviewer), None)
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "{twice:?}");

    let listed = alerts(&app, client, &reader, "open", acknowledged.position()).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0]["acknowledged_by"]
        .as_str()
        .is_some_and(|by| by.starts_with("key:")));
    assert_eq!(listed[0]["acknowledgement"], "campaign paused on purpose");
    assert!(listed[0]["acknowledged_at"].is_string());
    assert_eq!(
        listed[0]["status"], "open",
        "acknowledging does not resolve"
    );

    // The operator's list of every client; no key may read it.
    let every = app
        .query(
            &format!(
                "/v1/alerts?status=all&min_position={}",
                acknowledged.position()
            ),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(every.status, StatusCode::OK, "{every:?}");
    assert_eq!(every.body["items"][0]["alert_id"], alert.as_str());
    let by_key = app.query("/v1/alerts", Some(&reviewer)).await;
    assert_eq!(by_key.status, StatusCode::FORBIDDEN, "{by_key:?}");
    let bad = app
        .query(
            &format!("/v1/clients/{client}/alerts?status=closed"),
            Some(&reader),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
    let elsewhere = app
        .query(&format!("/v1/clients/{client}/alerts"), Some(&outsider))
        .await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND, "{elsewhere:?}");
    let detect_by_key = app
        .command(Method::POST, "/v1/alerts/detect", Some(&reviewer), None)
        .await;
    assert_eq!(
        detect_by_key.status,
        StatusCode::FORBIDDEN,
        "{detect_by_key:?}"
    );

    env.caught_up(Duration::from_secs(30)).await;
    env.assert_projections_equal_replay().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_command_processes_raise_one_alert_per_condition() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let client = silent_client(&env, &app).await;
    let first = Service::start(Binary::Command, &env).await;
    let second = Service::start(Binary::Command, &env).await;
    let replicas = [
        Running::at(first.url(), app.query_url.clone()),
        Running::at(second.url(), app.query_url.clone()),
    ];
    for _ in 0..5 {
        let (a, b) = tokio::join!(detect(&replicas[0]), detect(&replicas[1]));
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(b.status, StatusCode::OK);
    }
    assert_eq!(
        alert_events(&env, "alert_raised", "no_sends:client").await,
        1
    );
    let raised_for_client: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'alert' AND event_type = 'alert_raised' \
         AND client_id = $1",
    )
    .bind(client)
    .fetch_one(&env.pool)
    .await
    .expect("count raised alerts");
    assert_eq!(raised_for_client, 1);
    app.stop().await;
}

/// 200 sends from `resource`, `bad` of them drawing an outcome of `kind`.
fn sends_with(
    prefix: &str,
    resource: &str,
    kind: &str,
    bad: i64,
    start: DateTime<Utc>,
) -> (Vec<Value>, Vec<Value>) {
    let sends = (0..200)
        .map(|i| {
            send(
                &format!("{prefix}{i:03}"),
                resource,
                start + chrono::Duration::minutes(i),
            )
        })
        .collect();
    let outcomes = (0..bad)
        .map(|i| {
            let at = start + chrono::Duration::minutes(i * 20 + 1);
            outcome(&format!("{prefix}{:03}", i * 20), kind, at)
        })
        .collect();
    (sends, outcomes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_spam_complaint_in_a_mailboxs_last_200_sends_raises_a_complaint_alert() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    let reader = app.issue_key(client, "reader").await;
    let start = Utc::now() - chrono::Duration::hours(10);
    // One complaint in 200 sends is 0.5%: above the 0.1% limit.
    let (sends, complaints) = sends_with("c", RESOURCE, "complained", 1, start);
    ingest_and_wait(&env, &app, client, &sends, &complaints).await;

    let first = detect(&app).await;
    let raised = first.body["raised"].as_array().cloned().unwrap_or_default();
    assert_eq!(raised.len(), 1, "{first:?}");
    assert_eq!(raised[0]["condition"], "complaint_rate");
    assert_eq!(raised[0]["subject"], RESOURCE);
    let open = alerts(&app, client, &reader, "open", first.position()).await;
    assert_eq!(conditions(&open), ["complaint_rate"], "{open:?}");
    assert_eq!(open[0]["evidence"]["complaints"], 1);
    assert_eq!(open[0]["evidence"]["sends"], 200);
    assert_eq!(open[0]["evidence"]["raise_above"], 0.001);
    let key = format!("complaint_rate:{RESOURCE}");
    assert_eq!(detect(&app).await.body["raised"], json!([]));
    assert_eq!(alert_events(&env, "alert_raised", &key).await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_raised_its_bounce_limit_is_not_alerted_at_four_percent_while_another_is() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (lenient, _) = app.register_client("Lenient").await;
    let (strict, _) = app.register_client("Strict").await;
    let admin = app.issue_key(lenient, "admin").await;
    let changed = app
        .command(
            Method::PATCH,
            &format!("/v1/clients/{lenient}"),
            Some(&admin),
            Some(json!({ "alert_limits": { "bounce_rate": 0.05 } })),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
    let detail = app
        .query(
            &format!("/v1/clients/{lenient}?min_position={}", changed.position()),
            Some(&admin),
        )
        .await;
    assert_eq!(
        detail.body["alert_limits"],
        json!({ "bounce_rate": 0.05, "complaint_rate": 0.001 }),
        "{detail:?}"
    );

    // Both send 200 mails from their own mailbox, 8 of them bounced (4%).
    let start = Utc::now() - chrono::Duration::hours(10);
    let (sends, bounces) = sends_with("l", "sdr@lenient.example", "bounced", 8, start);
    ingest_and_wait(&env, &app, lenient, &sends, &bounces).await;
    let (sends, bounces) = sends_with("s", "sdr@strict.example", "bounced", 8, start);
    ingest_and_wait(&env, &app, strict, &sends, &bounces).await;

    let detection = detect(&app).await;
    let raised = detection.body["raised"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(raised.len(), 1, "{detection:?}");
    assert_eq!(raised[0]["client_id"], json!(strict));
    assert_eq!(raised[0]["subject"], "sdr@strict.example");

    // At 11 bounces (5.5%) the lenient client's own limit is crossed too.
    let more: Vec<Value> = (8..11)
        .map(|i| {
            let at = start + chrono::Duration::minutes(i * 15 + 2);
            outcome(&format!("l{:03}", i * 15 + 1), "bounced", at)
        })
        .collect();
    ingest_and_wait(&env, &app, lenient, &[], &more).await;
    let detection = detect(&app).await;
    let raised = detection.body["raised"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(raised.len(), 1, "{detection:?}");
    assert_eq!(raised[0]["client_id"], json!(lenient));
    let open = alerts(&app, lenient, &admin, "open", detection.position()).await;
    assert_eq!(open[0]["evidence"]["raise_above"], 0.05, "{open:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_limit_outside_what_a_rate_can_be_is_refused_naming_the_field_and_writes_nothing()
{
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    let admin = app.issue_key(client, "admin").await;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&env.pool)
        .await
        .expect("count events");
    for (body, field) in [
        (
            json!({ "alert_limits": { "bounce_rate": 3 } }),
            "alert_limits",
        ),
        (
            json!({ "alert_limits": { "complaint_rate": 0 } }),
            "alert_limits",
        ),
        (
            json!({ "alert_limits": { "spam_rate": 0.01 } }),
            "alert_limits",
        ),
        (json!({ "alert_limits": "strict" }), "alert_limits"),
    ] {
        let answer = app
            .command(
                Method::PATCH,
                &format!("/v1/clients/{client}"),
                Some(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {answer:?}"
        );
        let named = answer.body["errors"][0]["field"].as_str().unwrap_or("");
        assert!(named.starts_with(field), "{body}: {answer:?}");
    }
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&env.pool)
        .await
        .expect("count events");
    assert_eq!(after, before, "a refused change writes nothing");
    app.stop().await;
}
