//! Erasing a lead leaves nothing of it anywhere: one lead's email, name,
//! profile URL, title, subject lines and what a document said about it are
//! seeded through every path personal data can take (the ingest API, all
//! eight providers' webhooks, captured documents and the context updates
//! read from them, dead letters naming the lead only by name or profile),
//! the lead is erased, and a full dump of the database and every message on
//! the stream are searched for each seeded string.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};
use sextant_domain::values::Provider;
use sextant_projections::replay;
use sextant_tests::dump::data_dump;
use sextant_tests::providers::{deliver_signed, fixtures, set_secret};
use sextant_tests::{Running, TestEnv, OPERATOR_KEY};

const SECRET: &str = "an-erasure-webhook-secret-0123456789";

const EMAIL: &str = "zelda.quarrington@erase-me.example";
const FIRST_NAME: &str = "Zelda";
const LAST_NAME: &str = "Quarrington";
const NAME: &str = "Zelda Quarrington";
const PROFILE_URL: &str = "https://www.linkedin.com/in/zelda-quarrington-7f3a";
const TITLE: &str = "Chief Ledger Whisperer";
const SUBJECT: &str = "Zelda, a quarter-close question for you?";
/// Free text about the lead, in a document that names her.
const ABOUT: &str = "prefers calls after the school run";

/// Every string that must be gone: the profile as any URL writes it.
const SEEDED: [&str; 8] = [
    EMAIL,
    NAME,
    FIRST_NAME,
    LAST_NAME,
    "linkedin.com/in/zelda-quarrington-7f3a",
    TITLE,
    SUBJECT,
    ABOUT,
];

/// Another lead's, which the erasure must leave alone.
const OTHER_EMAIL: &str = "bo.other@keep-me.example";

/// A provider's example payload made about the lead: every email, name,
/// profile URL, title and subject field holds the lead's, and the free text
/// that quoted the example's own lead now quotes her.
fn about_the_lead(body: &[u8]) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        return body.to_vec();
    };
    let mut replaced: Vec<(String, &'static str)> = Vec::new();
    rewrite_fields(&mut value, &mut replaced);
    // Longest first, so a full name goes before its first name.
    replaced.sort_by_key(|(old, _)| std::cmp::Reverse(old.len()));
    replaced.dedup();
    rewrite_text(&mut value, &replaced);
    serde_json::to_vec(&value).expect("a payload serializes")
}

/// The lead's value for a field of that name, if it is one about the lead.
fn seeded_for(key: &str, value: &str) -> Option<&'static str> {
    let key = key.to_ascii_lowercase();
    // The sender's mailbox is no lead's.
    let email_field = key.contains("email")
        && !["from", "account", "senduser", "mailbox", "sender"]
            .iter()
            .any(|sender| key.contains(sender));
    Some(match key.as_str() {
        _ if email_field && value.contains('@') => EMAIL,
        "to_name" | "lead_name" | "recipient_name" | "fullname" | "full_name" => NAME,
        "first_name" | "firstname" | "leadfirstname" => FIRST_NAME,
        "last_name" | "lastname" | "leadlastname" => LAST_NAME,
        "linkedinurl" | "profileurl" | "profile_url" | "linkedin_url" => PROFILE_URL,
        "title" | "position" | "headline" => TITLE,
        "subject" | "email_subject" | "reply_subject" => SUBJECT,
        _ => return None,
    })
}

fn rewrite_fields(value: &mut Value, replaced: &mut Vec<(String, &'static str)>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(text) => {
                        if let Some(seeded) = seeded_for(key, text) {
                            if text.chars().count() > 2 {
                                replaced.push((text.clone(), seeded));
                            }
                            *text = seeded.to_owned();
                        }
                    }
                    other => rewrite_fields(other, replaced),
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| rewrite_fields(item, replaced)),
        _ => {}
    }
}

fn rewrite_text(value: &mut Value, replaced: &[(String, &'static str)]) {
    match value {
        Value::Object(map) => map.values_mut().for_each(|v| rewrite_text(v, replaced)),
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_text(v, replaced)),
        Value::String(text) => {
            for (old, new) in replaced {
                if text != new && text.contains(old.as_str()) {
                    *text = text.replace(old.as_str(), new);
                }
            }
        }
        _ => {}
    }
}

async fn command(app: &Running, path: &str, key: &str, body: Value) -> sextant_tests::Answer {
    app.command(Method::POST, path, Some(key), Some(body)).await
}

/// Where each seeded string is found (case-insensitively): the tables of
/// the dump whose rows hold it, and the stream's messages.
async fn remaining(env: &TestEnv) -> Vec<String> {
    let dump = data_dump(&env.database_url).await;
    let stream: Vec<(String, String)> = env
        .stream_events()
        .await
        .into_iter()
        .map(|event| {
            let text = serde_json::to_string(&event).expect("a stream event serializes");
            (format!("stream:{} ({})", event.id, event.event_type), text)
        })
        .collect();
    let mut found = Vec::new();
    for needle in SEEDED {
        let needle_lower = needle.to_lowercase();
        let mut table = String::from("(no table)");
        for line in dump.lines() {
            if let Some(header) = line.strip_prefix("COPY ") {
                table = header
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                continue;
            }
            if line.to_lowercase().contains(&needle_lower) {
                let place = format!("{needle:?} in {table}");
                if !found.contains(&place) {
                    found.push(place);
                }
            }
        }
        for (place, text) in &stream {
            if text.to_lowercase().contains(&needle_lower) {
                found.push(format!("{needle:?} in {place}"));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_a_lead_leaves_none_of_its_seeded_data_in_a_database_dump_or_on_the_stream() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    let ingest = app.issue_key(client, "ingest").await;
    let base = format!("/v1/clients/{client}");

    // The ingest API: everything a send may say about its lead.
    let sent = command(
        &app,
        &format!("{base}/sends"),
        OPERATOR_KEY,
        json!({ "sends": [
            {
                "provider": "smartlead", "provider_message_id": "api-1",
                "lead": { "email": EMAIL, "name": NAME, "title": TITLE, "profile_url": PROFILE_URL,
                          "seniority": "c_level", "industry": "fintech" },
                "channel": "email", "content": { "subject": SUBJECT },
                "sent_at": "2026-11-18T09:12:00Z"
            },
            {
                "provider": "smartlead", "provider_message_id": "api-2",
                "lead": { "email": OTHER_EMAIL, "name": "Bo Other" },
                "channel": "email", "content": { "subject": "Bo, a question?" },
                "sent_at": "2026-11-18T09:12:00Z"
            }
        ] }),
    )
    .await;
    assert_eq!(sent.status, StatusCode::OK, "{sent:?}");
    assert!(
        sent.body["results"]
            .as_array()
            .is_some_and(|items| items.iter().all(|i| i["status"] == "recorded")),
        "{sent:?}"
    );

    // Every provider's documented payloads, made about the lead.
    for provider in Provider::ALL {
        set_secret(&app, client, provider, SECRET).await;
        for (name, body) in fixtures(provider) {
            let body = about_the_lead(&body);
            let answer = deliver_signed(&app, provider, SECRET, client, &name, &body).await;
            assert!(
                answer.status.is_success(),
                "{provider:?}/{name}: {answer:?}"
            );
        }
    }
    // Deliveries nothing can map, naming the lead by name or profile only,
    // and one about somebody else.
    for (provider, body) in [
        (
            Provider::Heyreach,
            json!({ "eventType": "PROFILE_ENRICHED", "timestamp": "2026-11-18T10:00:00Z",
                    "leadProfile": { "linkedInUrl": format!("{PROFILE_URL}/"), "headline": TITLE } }),
        ),
        (
            Provider::Smartlead,
            json!({ "event_type": "LEAD_NOTE_ADDED", "to_name": NAME,
                    "note": format!("{NAME} {ABOUT}") }),
        ),
        (
            Provider::Smartlead,
            json!({ "event_type": "LEAD_NOTE_ADDED", "to_name": "Bo Other", "note": "keep me" }),
        ),
    ] {
        let body = body.to_string();
        let answer =
            deliver_signed(&app, provider, SECRET, client, "unknown", body.as_bytes()).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{answer:?}");
    }

    // Documents that name her: one captured by the operator (applied at
    // once), one by an ingest key (waiting for review); and one that does
    // not, whose insights stay.
    let notes = format!(
        "Call notes.\nSpoke with {NAME} ({EMAIL}), {PROFILE_URL}\nPain points:\n- {NAME} {ABOUT}\n\
         Target titles: {TITLE}\nTone: warm\n"
    );
    let follow_up =
        format!("Follow-up.\nDisqualifiers: {FIRST_NAME}   {LAST_NAME} asked us to wait\n");
    for (key, document, content) in [
        (OPERATOR_KEY, "call-notes", notes.as_str()),
        (ingest.as_str(), "follow-up", follow_up.as_str()),
        (
            OPERATOR_KEY,
            "icp",
            "Target industries: fintech, insurtech\n",
        ),
    ] {
        let answer = command(
            &app,
            &format!("{base}/documents"),
            key,
            json!({ "key": document, "title": "Meeting notes", "source": "meeting_notes",
                    "content": content, "captured_at": "2026-11-18T10:00:00Z" }),
        )
        .await;
        assert!(answer.status.is_success(), "{document}: {answer:?}");
        assert!(answer.body["update"].is_object(), "{document}: {answer:?}");
    }
    // Enough context events after them for a snapshot of the aggregate,
    // which holds the document by reference.
    let mut last = 0;
    for n in 0..13 {
        let answer = command(
            &app,
            &format!("{base}/context/updates"),
            OPERATOR_KEY,
            json!({ "source": "manual", "patch": { "playbook": { "round": n } },
                    "rationale": "keeps the history long" }),
        )
        .await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{answer:?}");
        last = answer.position();
    }
    let snapshots: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM snapshots WHERE aggregate_type = 'client_context'",
    )
    .fetch_one(&env.pool)
    .await
    .expect("count");
    assert!(snapshots > 0, "the context was snapshotted");
    env.eventually(
        "the projections and the stream catch up",
        Duration::from_secs(20),
        || async { env.outbox_depth().await == 0 && env.checkpoint("context").await >= last },
    )
    .await;

    let before = remaining(&env).await;
    for needle in SEEDED {
        assert!(
            before
                .iter()
                .any(|place| place.starts_with(&format!("{needle:?} "))),
            "{needle} was stored somewhere before the erasure: {before:#?}"
        );
    }
    let context = app
        .query(&format!("{base}/context"), Some(OPERATOR_KEY))
        .await;
    assert_eq!(
        context.body["document"]["icp"]["titles"],
        json!([TITLE]),
        "the query API serves the values: {context:?}"
    );

    // She is one lead to the providers that report her email, and a lead
    // of its own to each that names her only by its own id (Outreach's
    // prospect, HubSpot's contact): every ref she has is erased, hers first.
    let (lead_ref, other_ref) = {
        let key = sextant_application::sends::ingest::lead_key(&env.pool, client)
            .await
            .expect("key");
        (
            sextant_application::sends::ingest::lead_ref(&key, EMAIL),
            sextant_application::sends::ingest::lead_ref(&key, OTHER_EMAIL),
        )
    };
    let provider_refs: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT lead_ref FROM sends_view WHERE client_id = $1 AND lead_ref <> ALL($2) \
         ORDER BY lead_ref",
    )
    .bind(client)
    .bind([lead_ref.clone(), other_ref])
    .fetch_all(&env.pool)
    .await
    .expect("lead refs");
    let mut last = 0;
    for (n, lead) in std::iter::once(&lead_ref).chain(&provider_refs).enumerate() {
        let erased = app
            .command(
                Method::POST,
                &format!("{base}/leads/{lead}/erase"),
                Some(OPERATOR_KEY),
                None,
            )
            .await;
        assert_eq!(erased.status, StatusCode::OK, "{erased:?}");
        if n == 0 {
            assert_eq!(erased.body["erased"]["identities"], 1, "{erased:?}");
            assert_eq!(erased.body["erased"]["documents"], 2, "{erased:?}");
            // The two that name her by name or profile only, and any
            // example payload of hers that could not be mapped.
            assert!(
                erased.body["erased"]["dead_letters"]
                    .as_u64()
                    .is_some_and(|n| n >= 2),
                "{erased:?}"
            );
        }
        last = erased.position();
    }
    env.eventually(
        "the erasures reach the stream",
        Duration::from_secs(20),
        || async { env.outbox_depth().await == 0 && env.checkpoint("audit").await >= last },
    )
    .await;

    let left = remaining(&env).await;
    assert!(
        left.is_empty(),
        "the lead's data survived erasure: {left:#?}"
    );

    // Nobody else's data went with hers: the other lead, the dead letter
    // about somebody else, the document that did not name her.
    let dump = data_dump(&env.database_url).await;
    assert!(
        dump.contains(OTHER_EMAIL),
        "the other lead's identity stays"
    );
    assert!(dump.contains("keep me"), "the other dead letter stays");
    let context = app
        .query(&format!("{base}/context"), Some(OPERATOR_KEY))
        .await;
    let document = &context.body["document"];
    assert_eq!(
        document["icp"]["industries"],
        json!(["fintech", "insurtech"])
    );
    assert_eq!(document["icp"].get("titles"), None, "{context:?}");
    assert_eq!(document["icp"].get("pain_points"), None, "{context:?}");
    let approvals = app
        .query(&format!("{base}/approvals"), Some(OPERATOR_KEY))
        .await;
    assert_eq!(
        approvals.body["items"][0]["patch"],
        json!({ "icp": {} }),
        "the pending update's erased value is left out: {approvals:?}"
    );

    // The projection rebuilt from the log, references and all, is the one
    // kept live.
    let projection = sextant_projections::by_name("context").expect("context");
    let live = replay::checksum(&env.pool, projection.as_ref())
        .await
        .expect("checksum");
    replay::rebuild(&env.pool, projection.clone(), false)
        .await
        .expect("rebuild");
    assert_eq!(
        replay::checksum(&env.pool, projection.as_ref())
            .await
            .expect("checksum"),
        live
    );
    app.stop().await;
}

/// Kept for the reader of a failure: what the rewritten fixtures look like.
#[test]
fn a_providers_example_is_made_about_the_lead_wherever_it_names_its_own() {
    let body = br#"{"to_email": "james@x.example", "from_email": "rep@us.example",
        "to_name": "James Parker", "lead_data": {"first_name": "James", "last_name": "Parker"},
        "description": "Email sent to james@x.example for James Parker", "subject": "Hi"}"#;
    let made: Map<String, Value> =
        serde_json::from_slice(&about_the_lead(body)).expect("still JSON");
    assert_eq!(made["to_email"], EMAIL);
    assert_eq!(made["from_email"], "rep@us.example");
    assert_eq!(made["to_name"], NAME);
    assert_eq!(made["lead_data"]["first_name"], FIRST_NAME);
    assert_eq!(
        made["description"],
        format!("Email sent to {EMAIL} for {NAME}")
    );
    assert_eq!(made["subject"], SUBJECT);
}
