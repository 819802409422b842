//! Secrets at rest: a webhook secret is stored only sealed under
//! `SEXTANT_SECRETS_KEY` (no table holds it in any form it can be read
//! from), opens only under that key and for its own client and provider,
//! and is never answered; without a key none is stored; reader and ingest
//! keys see no key hash and no secret fingerprint; secrets in URLs of a
//! dead-lettered payload are redacted.

use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde_json::json;
use sextant_adapters::secrets::SecretsKey;
use sextant_domain::values::Provider;
use sextant_tests::providers::deliver_signed_by as deliver;
use sextant_tests::{Answer, Parts, Running, TestEnv, OPERATOR_KEY};
use uuid::Uuid;

const SECRET: &str = "whsec-plaintext-never-stored-7f3a";

fn fixture(provider: Provider, name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../adapters/src/webhooks/fixtures")
        .join(provider.as_str())
        .join(format!("{name}.json"));
    std::fs::read(&path).expect("a fixture of the provider")
}

async fn set_secret(app: &Running, client: Uuid, provider: Provider, secret: &str) -> Answer {
    app.command(
        Method::PUT,
        &format!("/v1/clients/{client}/webhooks/{}", provider.as_str()),
        Some(OPERATOR_KEY),
        Some(json!({ "secret": secret })),
    )
    .await
}

/// Every row of every table of the database, as text.
async fn every_row(env: &TestEnv) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I', table_name) FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(&env.pool)
    .await
    .expect("the tables");
    let mut all = String::new();
    for table in tables {
        let text: String = sqlx::query_scalar(&format!(
            "SELECT COALESCE(string_agg(t::text, E'\\n'), '') FROM {table} t"
        ))
        .fetch_one(&env.pool)
        .await
        .expect("a table's rows as text");
        all.push_str(&text);
        all.push('\n');
    }
    all
}

async fn head(env: &TestEnv) -> i64 {
    sqlx::query_scalar("SELECT COALESCE(max(global_position), 0) FROM events")
        .fetch_one(&env.pool)
        .await
        .expect("the head of the log")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_secrets_are_stored_sealed_and_never_answered_by_any_api() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    let set = set_secret(&app, client, Provider::Smartlead, SECRET).await;
    assert_eq!(set.status, StatusCode::OK, "{set:?}");
    let fingerprint = set.body["fingerprint"]
        .as_str()
        .expect("a fingerprint")
        .to_owned();
    assert_eq!(fingerprint.len(), 16, "{set:?}");

    // The sealed secret verifies a delivery.
    let accepted = deliver(
        &app,
        Provider::Smartlead,
        client,
        Some(SECRET),
        &fixture(Provider::Smartlead, "email_sent"),
    )
    .await;
    assert!(accepted.status.is_success(), "{accepted:?}");

    // No table holds it in a readable form, not even as hex.
    let stored = every_row(&env).await;
    let hex = hex_of(SECRET);
    assert!(
        !stored.contains(SECRET) && !stored.contains(&hex),
        "a webhook secret is stored readable"
    );
    let sealed: (Vec<u8>, String) =
        sqlx::query_as("SELECT sealed, key_id FROM webhook_secrets WHERE client_id = $1")
            .bind(client)
            .fetch_one(&env.pool)
            .await
            .expect("the sealed secret");
    let key = SecretsKey::parse(sextant_tests::SECRETS_KEY).expect("the tests' secrets key");
    assert_eq!(sealed.1, key.id());
    assert_eq!(key.fingerprint(SECRET.as_bytes()), fingerprint);

    // No answer carries it.
    let position = head(&env).await;
    let answers = [
        set.body.to_string(),
        app.query(
            &format!("/v1/clients/{client}?min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await
        .body
        .to_string(),
        app.query(
            &format!("/v1/clients/{client}/audit?limit=500&min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await
        .body
        .to_string(),
    ];
    for answer in answers {
        assert!(!answer.contains(SECRET), "a secret was answered: {answer}");
    }
    app.stop().await;
}

fn hex_of(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_and_ingest_keys_see_no_key_hashes_or_secret_fingerprints() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    let set = set_secret(&app, client, Provider::Instantly, SECRET).await;
    assert_eq!(set.status, StatusCode::OK, "{set:?}");
    let fingerprint = set.body["fingerprint"]
        .as_str()
        .expect("a fingerprint")
        .to_owned();
    let mut keys = Vec::new();
    for role in ["admin", "reviewer", "ingest", "reader"] {
        keys.push((role, app.issue_key(client, role).await));
    }
    let hashes: Vec<String> =
        sqlx::query_scalar("SELECT key_hash FROM client_api_keys WHERE client_id = $1")
            .bind(client)
            .fetch_all(&env.pool)
            .await
            .expect("the key hashes");
    assert_eq!(hashes.len(), 4);
    let position = head(&env).await;

    let mut callers: Vec<(&str, String)> = keys
        .iter()
        .map(|(role, key)| (*role, key.clone()))
        .collect();
    callers.push(("operator", OPERATOR_KEY.to_owned()));
    for (role, key) in callers {
        let detail = app
            .query(
                &format!("/v1/clients/{client}?min_position={position}"),
                Some(&key),
            )
            .await;
        assert_eq!(detail.status, StatusCode::OK, "{role}: {detail:?}");
        let audit = app
            .query(
                &format!("/v1/clients/{client}/audit?limit=500&min_position={position}"),
                Some(&key),
            )
            .await;
        assert_eq!(audit.status, StatusCode::OK, "{role}: {audit:?}");
        let webhook = &detail.body["webhooks"][0];
        assert_eq!(webhook["provider"], "instantly", "{role}: {detail:?}");
        let (detail_text, audit_text) = (detail.body.to_string(), audit.body.to_string());
        let sees_hashes = hashes.iter().any(|h| audit_text.contains(h));
        match role {
            "reader" | "ingest" => {
                assert!(
                    webhook.get("secret_fingerprint").is_none(),
                    "{role}: {detail:?}"
                );
                for text in [&detail_text, &audit_text] {
                    assert!(
                        !text.contains(&fingerprint),
                        "{role} sees a fingerprint: {text}"
                    );
                }
                assert!(
                    !sees_hashes && !hashes.iter().any(|h| detail_text.contains(h)),
                    "{role} sees a key hash: {audit_text}"
                );
                assert!(
                    !audit_text.contains("\"key_hash\"") && !audit_text.contains("\"fingerprint\""),
                    "{role}: {audit_text}"
                );
                assert!(
                    audit_text.contains("api_key_issued")
                        && audit_text.contains("webhook_secret_set"),
                    "{role} still sees that keys and secrets were set: {audit_text}"
                );
            }
            _ => {
                assert_eq!(
                    webhook["secret_fingerprint"], fingerprint,
                    "{role}: {detail:?}"
                );
                assert!(sees_hashes, "{role} sees the key hashes: {audit_text}");
                assert!(audit_text.contains(&fingerprint), "{role}: {audit_text}");
            }
        }
        for (_, issued) in &keys {
            assert!(
                !detail_text.contains(issued.as_str()) && !audit_text.contains(issued.as_str()),
                "{role} sees an API key"
            );
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_in_a_url_of_a_dead_lettered_payload_is_redacted() {
    let env = TestEnv::new().await;
    let app = env.start_with(Parts::apis_only()).await;
    let (client, _) = app.register_client("Acme").await;
    let set = set_secret(&app, client, Provider::Instantly, SECRET).await;
    assert_eq!(set.status, StatusCode::OK, "{set:?}");
    let unknown_event = json!({
        "event_type": "my_custom_label",
        "timestamp": "2026-11-18T09:12:00Z",
        "webhook_url": "https://sextant.example/v1/webhooks/instantly/c?secret=URL-SECRET-1234&x=1",
        "links": ["https://tracker.example/u?access_token=URL-TOKEN-5678#top"],
        "note": "resend with signature=URL-SIGNATURE-9012 and api_key=URL-KEY-3456",
        "campaign_name": "Q4 fintech"
    })
    .to_string();
    let not_json = "event=reply&secret=RAW-SECRET-7890&lead=ana";
    for body in [unknown_event.as_bytes(), not_json.as_bytes()] {
        let answer = deliver(&app, Provider::Instantly, client, Some(SECRET), body).await;
        assert!(answer.status.is_success(), "{answer:?}");
    }
    let payloads: Vec<String> =
        sqlx::query_scalar("SELECT payload FROM webhook_dead_letters WHERE client_id = $1")
            .bind(client)
            .fetch_all(&env.pool)
            .await
            .expect("the dead letters");
    assert_eq!(payloads.len(), 2, "{payloads:?}");
    let kept = payloads.join("\n");
    for secret in [
        "URL-SECRET-1234",
        "URL-TOKEN-5678",
        "URL-SIGNATURE-9012",
        "URL-KEY-3456",
        "RAW-SECRET-7890",
        SECRET,
    ] {
        assert!(!kept.contains(secret), "{secret} kept in {kept}");
    }
    for context in [
        "sextant.example",
        "#top",
        "Q4 fintech",
        "lead=ana",
        "[redacted]",
    ] {
        assert!(kept.contains(context), "{context} lost from {kept}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_secrets_key_no_webhook_secret_is_stored_and_deliveries_are_refused() {
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.secrets_key = None;
    let app = env.start_against(&settings, Parts::apis_only()).await;
    let (client, _) = app.register_client("Acme").await;
    let before = head(&env).await;
    let set = set_secret(&app, client, Provider::Smartlead, SECRET).await;
    assert_eq!(set.status, StatusCode::SERVICE_UNAVAILABLE, "{set:?}");
    assert!(
        set.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("SEXTANT_SECRETS_KEY")),
        "{set:?}"
    );
    assert_eq!(head(&env).await, before, "an event was written");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_secrets")
        .fetch_one(&env.pool)
        .await
        .expect("the webhook secrets");
    assert_eq!(stored, 0);
    let refused = deliver(
        &app,
        Provider::Smartlead,
        client,
        Some(SECRET),
        &fixture(Provider::Smartlead, "email_sent"),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_secret_opens_only_under_its_key_and_for_its_own_client() {
    let env = TestEnv::new().await;
    let app = env.start_with(Parts::apis_only()).await;
    let (owner, _) = app.register_client("Owner").await;
    let (copier, _) = app.register_client("Copier").await;
    let set = set_secret(&app, owner, Provider::Smartlead, SECRET).await;
    assert_eq!(set.status, StatusCode::OK, "{set:?}");
    let body = fixture(Provider::Smartlead, "email_sent");
    let accepted = deliver(&app, Provider::Smartlead, owner, Some(SECRET), &body).await;
    assert!(accepted.status.is_success(), "{accepted:?}");

    // The owner's sealed secret copied to another client does not open
    // there.
    sqlx::query(
        "INSERT INTO webhook_secrets (client_id, provider, sealed, key_id) \
         SELECT $2, provider, sealed, key_id FROM webhook_secrets WHERE client_id = $1",
    )
    .bind(owner)
    .bind(copier)
    .execute(&env.pool)
    .await
    .expect("copy the sealed secret");
    let refused = deliver(&app, Provider::Smartlead, copier, Some(SECRET), &body).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
    app.stop().await;

    // Under another key it does not open either, until it is set again.
    let mut settings = env.settings();
    settings.secrets_key =
        Some(SecretsKey::parse(&SecretsKey::generate()).expect("a generated key"));
    let app = env.start_against(&settings, Parts::apis_only()).await;
    let refused = deliver(&app, Provider::Smartlead, owner, Some(SECRET), &body).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
    let again = set_secret(&app, owner, Provider::Smartlead, SECRET).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    let accepted = deliver(
        &app,
        Provider::Smartlead,
        owner,
        Some(SECRET),
        &fixture(Provider::Smartlead, "email_open"),
    )
    .await;
    assert!(accepted.status.is_success(), "{accepted:?}");
    app.stop().await;
}
