//! Provider webhooks end to end: every provider's documented payloads,
//! signed as the provider signs them, land as sends and outcomes; bad,
//! missing and stale signatures are 401 and write nothing; repeats are
//! deduplicated; what cannot be mapped is dead-lettered, never dropped.

use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sextant_adapters::webhooks::{self, WebhookRequest};
use sextant_domain::values::Provider;
use sextant_tests::providers::{self, deliver, event_headers, fixtures, scheme};
use sextant_tests::{Running, TestEnv};
use uuid::Uuid;

const SECRET: &str = "a-webhook-secret-of-some-length";

/// Headers a provider would send with `body`: its signature under
/// [`SECRET`] and its event header (the fixture's file name).
fn headers_for(
    provider: Provider,
    name: &str,
    url: &str,
    body: &[u8],
    at: chrono::DateTime<Utc>,
) -> Vec<(String, String)> {
    providers::headers_for(provider, SECRET, name, url, body, at)
}

async fn client_with_secret(app: &Running, provider: Provider) -> Uuid {
    let (client, _) = app.register_client("Acme").await;
    providers::set_secret(app, client, provider, SECRET).await;
    client
}

async fn events(env: &TestEnv) -> usize {
    env.event_ids().await.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_providers_documented_payloads_land_as_sends_and_outcomes_or_dead_letters() {
    let env = TestEnv::new().await;
    let app = env.start_with(sextant_tests::Parts::apis_only()).await;
    for provider in Provider::ALL {
        let client = client_with_secret(&app, provider).await;
        let url = format!(
            "{}/v1/webhooks/{}/{client}",
            app.command_url,
            provider.as_str()
        );
        let mut landed = 0;
        for (name, body) in fixtures(provider) {
            let headers = headers_for(provider, &name, &url, &body, Utc::now());
            let mut header_map = reqwest::header::HeaderMap::new();
            for (k, v) in &headers {
                if let (Ok(k), Ok(v)) = (
                    reqwest::header::HeaderName::from_bytes(k.as_bytes()),
                    reqwest::header::HeaderValue::from_str(v),
                ) {
                    header_map.insert(k, v);
                }
            }
            // What the adapter makes of it (unit-tested against the docs).
            let expected = webhooks::map_request(
                provider,
                &WebhookRequest {
                    method: "POST",
                    url: &url,
                    headers: &header_map,
                    body: &body,
                },
            )
            .map(|items| items.len())
            .unwrap_or(0);
            let answer = deliver(&app, provider, client, &headers, &body).await;
            assert!(
                answer.status.is_success(),
                "{provider:?}/{name}: {answer:?}"
            );
            let handled = ["sends", "outcomes", "duplicates", "dead_lettered"]
                .iter()
                .map(|k| answer.body[*k].as_u64().unwrap_or(0) as usize)
                .sum::<usize>();
            // Answered 202: not mappable, the delivery itself dead-lettered.
            if answer.status == StatusCode::ACCEPTED {
                assert_eq!(
                    answer.body["dead_lettered"], 1,
                    "{provider:?}/{name}: {answer:?}"
                );
                continue;
            }
            assert_eq!(
                handled, expected,
                "{provider:?}/{name}: every mapped item is accounted for: {answer:?}"
            );
            landed += answer.body["sends"].as_u64().unwrap_or(0)
                + answer.body["outcomes"].as_u64().unwrap_or(0);
        }
        assert!(landed > 0, "{provider:?}: nothing landed");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_missing_and_stale_signatures_are_401_and_write_nothing() {
    let env = TestEnv::new().await;
    let app = env.start_with(sextant_tests::Parts::apis_only()).await;
    for provider in Provider::ALL {
        let scheme = scheme(provider);
        let client = client_with_secret(&app, provider).await;
        let before = events(&env).await;
        let url = format!(
            "{}/v1/webhooks/{}/{client}",
            app.command_url,
            provider.as_str()
        );
        let (name, body) = fixtures(provider).into_iter().next().expect("a fixture");

        // Missing.
        let event_header = event_headers(provider, &name);
        let answer = deliver(&app, provider, client, &event_header, &body).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{provider:?} unsigned: {answer:?}"
        );
        // Signed with the wrong secret.
        let mut wrong = webhooks::sign_for_test(
            provider,
            "not-the-secret-at-all",
            "POST",
            &url,
            &body,
            Utc::now(),
        );
        wrong.extend(event_header.clone());
        let answer = deliver(&app, provider, client, &wrong, &body).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{provider:?} wrong secret: {answer:?}"
        );
        // A body changed after signing.
        if scheme.signs_body {
            let headers = headers_for(provider, &name, &url, &body, Utc::now());
            let mut tampered = body.clone();
            tampered.extend_from_slice(b" ");
            let answer = deliver(&app, provider, client, &headers, &tampered).await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{provider:?} tampered: {answer:?}"
            );
        }
        // The timestamp tolerance: a replay ten minutes later is stale.
        if scheme.signs_time {
            let old = headers_for(
                provider,
                &name,
                &url,
                &body,
                Utc::now() - Duration::minutes(10),
            );
            let answer = deliver(&app, provider, client, &old, &body).await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{provider:?} stale: {answer:?}"
            );
            assert!(
                answer.body["detail"]
                    .as_str()
                    .unwrap_or("")
                    .contains("signature"),
                "{provider:?} stale: {answer:?}"
            );
        }
        assert_eq!(
            events(&env).await,
            before,
            "{provider:?}: a refused delivery wrote events"
        );
    }
    assert!(
        Provider::ALL.into_iter().any(|p| scheme(p).signs_time),
        "some provider's timestamp tolerance is checked"
    );
    // A client with no secret for the provider, even with a delivery signed
    // as it would be with a secret, and an unknown provider.
    let (bare, _) = app.register_client("No secrets").await;
    for provider in Provider::ALL {
        let url = format!(
            "{}/v1/webhooks/{}/{bare}",
            app.command_url,
            provider.as_str()
        );
        let (name, body) = fixtures(provider).into_iter().next().expect("a fixture");
        let headers = headers_for(provider, &name, &url, &body, Utc::now());
        let answer = deliver(&app, provider, bare, &headers, &body).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{provider:?} without a secret: {answer:?}"
        );
    }
    let answer = app
        .send(
            Method::POST,
            format!("{}/v1/webhooks/carrier-pigeon/{bare}", app.command_url),
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_delivery_is_deduplicated_and_an_unknown_event_is_dead_lettered() {
    let env = TestEnv::new().await;
    let app = env.start_with(sextant_tests::Parts::apis_only()).await;
    let client = client_with_secret(&app, Provider::Instantly).await;
    let url = format!("{}/v1/webhooks/instantly/{client}", app.command_url);
    let (name, body) = fixtures(Provider::Instantly)
        .into_iter()
        .find(|(n, _)| n == "email_sent")
        .expect("fixture");
    let headers = headers_for(Provider::Instantly, &name, &url, &body, Utc::now());
    let first = deliver(&app, Provider::Instantly, client, &headers, &body).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    assert_eq!(first.body["sends"], 1);
    let before = events(&env).await;
    for _ in 0..3 {
        let again = deliver(&app, Provider::Instantly, client, &headers, &body).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.body["duplicate"], true, "{again:?}");
    }
    assert_eq!(events(&env).await, before);

    let unknown = br#"{"event_type": "lead_teleported", "timestamp": "2026-11-18T10:00:00Z", "campaign_id": "c1"}"#;
    let headers = headers_for(Provider::Instantly, "x", &url, unknown, Utc::now());
    let answer = deliver(&app, Provider::Instantly, client, &headers, unknown).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{answer:?}");
    // One type per field: a count, as in every other webhook answer, with
    // the reason beside it.
    assert_eq!(answer.body["dead_lettered"], 1, "{answer:?}");
    assert_eq!(
        (
            &answer.body["sends"],
            &answer.body["outcomes"],
            &answer.body["duplicates"]
        ),
        (&json!(0), &json!(0), &json!(0)),
        "{answer:?}"
    );
    assert!(
        answer.body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("lead_teleported")),
        "{answer:?}"
    );
    let malformed = b"{not json";
    let headers = headers_for(Provider::Instantly, "x", &url, malformed, Utc::now());
    let answer = deliver(&app, Provider::Instantly, client, &headers, malformed).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{answer:?}");
    let kept: Vec<(String, String)> =
        sqlx::query_as("SELECT reason, payload FROM webhook_dead_letters ORDER BY id")
            .fetch_all(&env.pool)
            .await
            .expect("dead letters");
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept[0].0.contains("lead_teleported"), "{kept:?}");
    assert!(kept[0].1.contains("lead_teleported"));
    assert!(kept[1].0.contains("malformed"), "{kept:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_webhooks_lose_nothing() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let client = client_with_secret(&app, Provider::Smartlead).await;
    let url = format!("{}/v1/webhooks/smartlead/{client}", app.command_url);
    let mut all = fixtures(Provider::Smartlead);
    // Reply and open first, the send last.
    all.sort_by_key(|(name, _)| name == "email_sent");
    let mut position = 0;
    for (name, body) in &all {
        let headers = headers_for(Provider::Smartlead, name, &url, body, Utc::now());
        let answer = deliver(&app, Provider::Smartlead, client, &headers, body).await;
        assert!(answer.status.is_success(), "{name}: {answer:?}");
        position = position.max(answer.body["position"].as_i64().unwrap_or(0));
    }
    env.eventually(
        "the sends projection catches up",
        std::time::Duration::from_secs(10),
        || async { env.checkpoint("sends").await >= position },
    )
    .await;
    // The open, reply and unsubscribe of the fixtures' message arrived
    // before its send; the bounce is of another message, never sent here.
    let per_message: Vec<(String, bool)> = sqlx::query_as(
        "SELECT st.provider_message_id, s.send_id IS NOT NULL FROM send_outcomes o \
         JOIN send_state st ON st.send_id = o.send_id LEFT JOIN sends_view s ON s.send_id = o.send_id \
         WHERE o.client_id = $1",
    )
    .bind(client)
    .fetch_all(&env.pool).await.expect("outcomes");
    let attached = per_message
        .iter()
        .filter(|(m, a)| m == "a891fe37-c45d-21e8-67ba-fcd44e9c33a8" && *a)
        .count();
    let orphans = per_message
        .iter()
        .filter(|(m, a)| m != "a891fe37-c45d-21e8-67ba-fcd44e9c33a8" && !*a)
        .count();
    assert_eq!(
        (attached, orphans),
        (per_message.len() - 1, 1),
        "{per_message:?}"
    );
    let suppressed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM suppression_list WHERE client_id = $1")
            .bind(client)
            .fetch_one(&env.pool)
            .await
            .expect("count");
    assert_eq!(
        suppressed, 1,
        "the unsubscribe that came before the send suppresses its lead"
    );
    app.stop().await;
}

/// Smartlead classifies a reply after it arrives: the reply comes as
/// `EMAIL_REPLY` (no intent), its category later as `LEAD_CATEGORY_UPDATED`.
/// The category used to be dropped as a repeat of the reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_classified_after_it_arrived_keeps_its_intent_counts_once_and_an_unsubscribe_category_suppresses(
) {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let client = client_with_secret(&app, Provider::Smartlead).await;
    let url = format!("{}/v1/webhooks/smartlead/{client}", app.command_url);
    let fixture = |name: &str| {
        fixtures(Provider::Smartlead)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, body)| String::from_utf8(body).expect("UTF-8"))
            .expect("fixture")
    };
    // The fixtures' message, and a second one to another lead whose reply is
    // classified "Do Not Contact".
    let other = |body: String, category: &str| {
        body.replace(
            "a891fe37-c45d-21e8-67ba-fcd44e9c33a8",
            "b7e2c410-0d9a-4c1e-8f2b-3a4d5e6f7a80",
        )
        .replace("james.parker@", "nina.ross@")
        .replace("\"Interested\"", &format!("\"{category}\""))
    };
    let mut position = 0;
    let post = |body: String| {
        let headers = headers_for(Provider::Smartlead, "", &url, body.as_bytes(), Utc::now());
        let app = &app;
        async move {
            let answer = deliver(app, Provider::Smartlead, client, &headers, body.as_bytes()).await;
            assert!(answer.status.is_success(), "{answer:?}");
            answer
        }
    };
    for body in [
        fixture("email_sent"),
        fixture("email_reply"),
        other(fixture("email_sent"), ""),
        other(fixture("email_reply"), ""),
    ] {
        let answer = post(body).await;
        position = position.max(answer.body["position"].as_i64().unwrap_or(0));
    }
    for category in [
        fixture("lead_category_updated"),
        other(fixture("lead_category_updated"), "Do Not Contact"),
    ] {
        let answer = post(category.clone()).await;
        assert_eq!(
            answer.body["outcomes"], 1,
            "the classification is recorded: {answer:?}"
        );
        position = position.max(answer.body["position"].as_i64().unwrap_or(0));
        // The same category again (a new delivery) is a repeat.
        let again = category.replace("\"webhook_id\": 100", "\"webhook_id\": 101");
        let answer = post(again).await;
        assert_eq!(answer.body["outcomes"], 0, "{answer:?}");
    }
    env.caught_up(std::time::Duration::from_secs(10)).await;

    let intents: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT st.provider_message_id, o.intent, o.suppresses FROM send_outcomes o \
         JOIN send_state st ON st.send_id = o.send_id WHERE o.client_id = $1 AND o.kind = 'replied' \
         ORDER BY 1",
    )
    .bind(client)
    .fetch_all(&env.pool)
    .await
    .expect("replies");
    assert_eq!(
        intents,
        vec![
            (
                "a891fe37-c45d-21e8-67ba-fcd44e9c33a8".into(),
                Some("interested".into()),
                None
            ),
            (
                "b7e2c410-0d9a-4c1e-8f2b-3a4d5e6f7a80".into(),
                Some("unsubscribe".into()),
                Some("unsubscribed".into())
            ),
        ]
    );
    // Two replies, counted once each; one of them positive.
    let (_, replies, positive, _) = env.baseline_counts(client).await;
    assert_eq!((replies, positive), (2, 1));
    // The "Do Not Contact" lead is suppressed, on both sides; the other not.
    for table in ["suppression_list", "suppression_view"] {
        let reasons: Vec<String> =
            sqlx::query_scalar(&format!("SELECT reason FROM {table} WHERE client_id = $1"))
                .bind(client)
                .fetch_all(&env.pool)
                .await
                .expect("suppressed");
        assert_eq!(reasons, vec!["unsubscribed".to_owned()], "{table}");
    }
    app.stop().await;
}
