//! No client learns anything of another: a provider message id means a send
//! only within its client (an outcome naming another client's message is
//! this client's own early outcome, answered exactly as an unknown one, and
//! touches nothing of the other client's); a webhook's 401 says the same
//! whether the client exists, has a secret for the provider, or signed
//! wrongly; and no platform figure (baseline, row or count) is drawn from
//! fewer than 5 consenting clients with at least 50 sends each.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sextant_domain::values::Provider;
use sextant_tests::providers::deliver_signed_by as deliver;
use sextant_tests::{Answer, Running, TestEnv, OPERATOR_KEY};
use uuid::Uuid;

fn send(message: &str, email: &str, cta: &str) -> Value {
    json!({
        "provider": "smartlead", "provider_message_id": message,
        "lead": {"email": email, "industry": "fintech", "company_size": "11-50",
                 "seniority": "vp", "region": "AU", "tier": "warm"},
        "channel": "email", "campaign_id": "q4", "step": 1,
        "content": {"subject": "A question on month-end close", "body_words": 84,
                    "personalized": true, "cta": cta, "angle": "compliance"},
        "context_version": 1, "agent": "email_strategist",
        "sent_at": (Utc::now() - chrono::Duration::hours(3)).to_rfc3339()
    })
}

fn outcome(message: &str, kind: &str) -> Value {
    json!({"provider": "smartlead", "provider_message_id": message,
           "provider_event_id": format!("evt-{message}-{kind}"), "kind": kind,
           "occurred_at": (Utc::now() - chrono::Duration::hours(1)).to_rfc3339()})
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

async fn caught_up(env: &TestEnv, position: i64) {
    env.eventually(
        "the projections reach the writes",
        Duration::from_secs(30),
        || async {
            env.checkpoint("sends").await >= position
                && env.checkpoint("patterns").await >= position
                && env.checkpoint("clients").await >= position
        },
    )
    .await;
}

async fn replies_counted(env: &TestEnv, client: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT COALESCE(sum(replies), 0)::bigint FROM pattern_counts \
         WHERE client_id = $1 AND scope = 'client'",
    )
    .bind(client)
    .fetch_one(&env.pool)
    .await
    .expect("the pattern counts of a client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_naming_another_clients_message_is_kept_as_this_clients_own_like_an_unknown_one()
{
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (owner, _) = app.register_client("Owner").await;
    let (prober, _) = app.register_client("Prober").await;
    let sent = post(
        &app,
        owner,
        "/sends",
        send("m-shared", "ana@owner.example", "meeting"),
    )
    .await;
    assert_eq!(sent.status, StatusCode::CREATED, "{sent:?}");
    let owners_send = sent.body["send_id"].clone();
    assert!(owners_send.is_string(), "{sent:?}");

    // The prober names the owner's message id and one nobody uses: a reply
    // and an unsubscribe each.
    let probe = json!({ "outcomes": [
        outcome("m-shared", "replied"), outcome("m-shared", "unsubscribed"),
        outcome("m-nobodys", "replied"), outcome("m-nobodys", "unsubscribed"),
    ] });
    let answer = post(&app, prober, "/outcomes", probe).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let items = answer.body["results"]
        .as_array()
        .cloned()
        .expect("a results array");
    let shape = |item: &Value| -> Vec<(String, String)> {
        item.as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, _)| !["send_id", "index"].contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    for (named, unknown) in [(0, 2), (1, 3)] {
        assert_eq!(items[named]["status"], "recorded", "{answer:?}");
        assert_eq!(
            shape(&items[named]),
            shape(&items[unknown]),
            "another client's message id is answered as an unknown one: {answer:?}"
        );
        assert_ne!(items[named]["send_id"], owners_send, "{answer:?}");
    }
    caught_up(&env, answer.position()).await;

    // Nothing of the owner's changed: its send has no outcome, its lead is
    // not suppressed, its counts have no reply.
    let owners_outcomes: i64 =
        sqlx::query_scalar("SELECT count(*) FROM send_outcomes WHERE client_id = $1")
            .bind(owner)
            .fetch_one(&env.pool)
            .await
            .expect("the owner's outcomes");
    assert_eq!(
        owners_outcomes, 0,
        "the prober's outcomes reached the owner"
    );
    let suppressed = app
        .query(
            &format!(
                "/v1/clients/{owner}/suppression?min_position={}",
                answer.position()
            ),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(suppressed.status, StatusCode::OK, "{suppressed:?}");
    assert_eq!(suppressed.body["items"], json!([]), "{suppressed:?}");
    let suppression_rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM suppression_list WHERE client_id = $1")
            .bind(owner)
            .fetch_one(&env.pool)
            .await
            .expect("the owner's suppression list");
    assert_eq!(suppression_rows, 0);
    assert_eq!(replies_counted(&env, owner).await, 0);

    // The prober's outcomes wait for the prober's own send of that id.
    let own = post(
        &app,
        prober,
        "/sends",
        send("m-shared", "bo@prober.example", "meeting"),
    )
    .await;
    assert_eq!(own.status, StatusCode::CREATED, "{own:?}");
    assert_eq!(own.body["send_id"], items[0]["send_id"], "{own:?}");
    caught_up(&env, own.position()).await;
    assert!(replies_counted(&env, prober).await > 0);
    assert_eq!(replies_counted(&env, owner).await, 0);
    let owner_outcomes_after: i64 =
        sqlx::query_scalar("SELECT count(*) FROM send_outcomes WHERE client_id = $1")
            .bind(owner)
            .fetch_one(&env.pool)
            .await
            .expect("the owner's outcomes");
    assert_eq!(owner_outcomes_after, 0);
    app.stop().await;
}

fn first_fixture(provider: Provider) -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../adapters/src/webhooks/fixtures")
        .join(provider.as_str());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the provider's fixtures")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    files.sort();
    std::fs::read(files.first().expect("a fixture")).expect("a readable fixture")
}

/// What a refusal says, without what differs by request.
fn refusal(answer: &Answer) -> (StatusCode, Value, Value, Value, Value) {
    (
        answer.status,
        answer.body["type"].clone(),
        answer.body["title"].clone(),
        answer.body["status"].clone(),
        answer.body["detail"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_401_says_the_same_whether_the_client_exists_or_has_a_secret() {
    let env = TestEnv::new().await;
    let app = env.start_with(sextant_tests::Parts::apis_only()).await;
    const SECRET: &str = "the-clients-own-webhook-secret";
    let (bare, _) = app.register_client("No secrets").await;
    for provider in Provider::ALL {
        let other = Provider::ALL
            .into_iter()
            .find(|p| *p != provider)
            .expect("another provider");
        let (with_secret, _) = app.register_client("With a secret").await;
        let (other_provider, _) = app.register_client("Another provider's").await;
        for (client, for_provider) in [(with_secret, provider), (other_provider, other)] {
            let set = app
                .command(
                    Method::PUT,
                    &format!("/v1/clients/{client}/webhooks/{}", for_provider.as_str()),
                    Some(OPERATOR_KEY),
                    Some(json!({ "secret": SECRET })),
                )
                .await;
            assert_eq!(set.status, StatusCode::OK, "{set:?}");
        }
        let body = first_fixture(provider);
        let unknown = Uuid::now_v7();
        let mut refusals = Vec::new();
        for (what, client) in [
            ("an unknown client", unknown),
            ("a client without secrets", bare),
            ("a client with another provider's secret", other_provider),
            ("a client with this provider's secret", with_secret),
        ] {
            for signed in [Some("a-guess-at-the-secret-0000"), None] {
                let answer = deliver(&app, provider, client, signed, &body).await;
                assert_eq!(
                    answer.status,
                    StatusCode::UNAUTHORIZED,
                    "{provider:?}, {what}, signed {signed:?}: {answer:?}"
                );
                refusals.push((what, signed.is_some(), refusal(&answer)));
            }
        }
        let first = refusals[0].2.clone();
        for (what, signed, said) in &refusals {
            assert_eq!(
                *said, first,
                "{provider:?}: {what} (signed: {signed}) is told apart from an unknown client"
            );
        }
        // The right secret still verifies.
        let accepted = deliver(&app, provider, with_secret, Some(SECRET), &body).await;
        assert!(
            accepted.status.is_success(),
            "{provider:?}: the right secret: {accepted:?}"
        );
    }
    app.stop().await;
}

/// Every number anywhere in `value`, with its JSON path.
fn numbers(value: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Number(n) => found.push(format!("{path} = {n}")),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                numbers(item, &format!("{path}[{i}]"), found);
            }
        }
        Value::Object(fields) => {
            for (k, v) in fields {
                numbers(v, &format!("{path}.{k}"), found);
            }
        }
        _ => {}
    }
}

async fn consenting_client(app: &Running, name: &str) -> Uuid {
    let (client, _) = app.register_client(name).await;
    let answer = app
        .command(
            Method::PATCH,
            &format!("/v1/clients/{client}"),
            Some(OPERATOR_KEY),
            Some(json!({ "data_sharing_consent": true })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    client
}

/// `count` sends of `client` with `cta`, a reply to every third; answers
/// the position of the last write.
async fn traffic(app: &Running, client: Uuid, tag: &str, count: usize, cta: &str) -> i64 {
    let sends: Vec<Value> = (0..count)
        .map(|i| {
            send(
                &format!("{tag}-{i}"),
                &format!("lead{i}@{tag}.example"),
                cta,
            )
        })
        .collect();
    let outcomes: Vec<Value> = (0..count)
        .step_by(3)
        .map(|i| outcome(&format!("{tag}-{i}"), "replied"))
        .collect();
    let mut position = 0;
    for (path, items) in [("sends", sends), ("outcomes", outcomes)] {
        let answer = post(app, client, &format!("/{path}"), json!({ path: items })).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert_eq!(answer.body["errors"], 0, "{answer:?}");
        position = position.max(answer.position());
    }
    position
}

const FAMILIES: [&str; 5] = ["what", "when", "how", "who", "versions"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_platform_figure_is_drawn_from_fewer_than_five_qualifying_clients() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let mut position = 0;
    // Four consenting clients with 60 sends each; a fifth that consents
    // with 10; a sixth with 100 that does not consent.
    for i in 0..4 {
        let client = consenting_client(&app, &format!("Qualifying {i}")).await;
        position = position.max(traffic(&app, client, &format!("q{i}"), 60, "meeting").await);
    }
    let fifth = consenting_client(&app, "Thin").await;
    position = position.max(traffic(&app, fifth, "thin", 10, "meeting").await);
    let (private, _) = app.register_client("Private").await;
    position = position.max(traffic(&app, private, "private", 100, "meeting").await);
    caught_up(&env, position).await;

    let table = |family: &str, query: &str| {
        let app = &app;
        let path = format!("/v1/patterns/platform/{family}?min_position={position}{query}");
        async move { app.query(&path, Some(OPERATOR_KEY)).await }
    };
    for family in FAMILIES {
        for query in [
            "",
            "&metric=positive_reply",
            "&metric=meeting",
            "&industry=fintech",
        ] {
            let answer = table(family, query).await;
            assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
            let mut found = Vec::new();
            numbers(&answer.body, "", &mut found);
            assert!(
                found.is_empty(),
                "{family}{query}: four qualifying clients showed {found:?}"
            );
            assert_eq!(answer.body["rows"], json!([]), "{answer:?}");
            for field in ["contributing_clients", "baseline_sends", "baseline_events"] {
                assert_eq!(answer.body[field], Value::Null, "{field}: {answer:?}");
            }
            assert!(
                answer.body["withheld"]
                    .as_str()
                    .is_some_and(|why| why.contains('5')),
                "{answer:?}"
            );
        }
    }
    // A new sharing client learns nothing from the industry or platform.
    let newcomer = consenting_client(&app, "Newcomer").await;
    let run = app
        .command(
            Method::POST,
            &format!("/v1/clients/{newcomer}/suggestions/run"),
            Some(OPERATOR_KEY),
            None,
        )
        .await;
    assert_eq!(run.status, StatusCode::OK, "{run:?}");
    for suggestion in run.body["suggestions"].as_array().into_iter().flatten() {
        assert!(
            !["industry", "platform"].contains(&suggestion["level"].as_str().unwrap_or("")),
            "a suggestion drawn from four clients: {suggestion}"
        );
    }

    // The fifth client qualifies with 60 more sends, of another call to
    // action: the baseline is shown, and the rows that five clients share.
    // `cta=meeting` is not: only four clients have 50 sends of it.
    let position = traffic(&app, fifth, "more", 60, "question").await;
    caught_up(&env, position).await;
    let answer = app
        .query(
            &format!("/v1/patterns/platform/what?min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.body["withheld"], Value::Null, "{answer:?}");
    assert_eq!(answer.body["contributing_clients"], 5, "{answer:?}");
    assert_eq!(answer.body["baseline_sends"], 4 * 60 + 70, "{answer:?}");
    assert!(
        answer.body["baseline_events"].as_u64().is_some(),
        "{answer:?}"
    );
    let rows = answer.body["rows"].as_array().cloned().unwrap_or_default();
    assert!(
        rows.iter().any(|r| r["key"] == "angle=compliance"),
        "{answer:?}"
    );
    for row in &rows {
        assert!(row["clients"].as_i64().unwrap_or(0) >= 5, "{row}");
        assert!(
            row["key"] != "cta=meeting" && row["key"] != "cta=question",
            "a row of fewer than five qualifying clients: {row}"
        );
    }
    app.stop().await;
}
