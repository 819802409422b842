//! The reads a review console needs, end to end: a client's experiments,
//! sends with their outcomes and dead letters, one context update, the
//! approval queue of a client and of every client, the filtered audit
//! trail. Each list is paged by its keyset cursor and filtered; a lead's
//! personal data reaches the operator and admin keys only; a key of
//! another client learns nothing; bad cursors, filters and times are 422
//! naming the field.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sextant_domain::values::Provider;
use sextant_tests::providers;
use sextant_tests::{Answer, Running, TestEnv, OPERATOR_KEY};
use uuid::Uuid;

const SECRET: &str = "a-webhook-secret-of-some-length";

fn send(message: &str, email: &str, channel: &str, campaign: &str, sent_at: &str) -> Value {
    json!({
        "provider": "smartlead", "provider_message_id": message,
        "lead": {"email": email, "name": format!("Name of {email}"), "title": "VP Finance",
                 "profile_url": format!("https://www.linkedin.com/in/{message}"),
                 "industry": "fintech", "company_size": "11-50", "seniority": "vp", "region": "AU"},
        "channel": channel, "campaign_id": campaign, "step": 1,
        "content": {"subject": format!("{email}, quick question?"), "body_words": 84},
        "sent_at": sent_at
    })
}

fn outcome(message: &str, kind: &str) -> Value {
    json!({"provider": "smartlead", "provider_message_id": message,
           "provider_event_id": format!("evt-{message}-{kind}"),
           "kind": kind, "occurred_at": "2026-11-18T15:40:00Z"})
}

/// The JSON text of a cursor, as a query string carries it.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn items(answer: &Answer) -> Vec<Value> {
    answer.body["items"]
        .as_array()
        .ok_or_else(|| format!("no items in {answer:?}"))
        .expect("a page has items")
        .clone()
}

/// Every item of a list, page by page of `limit`, following `next` (the
/// page's cursor field) as the query parameter `cursor`.
async fn every_page(
    app: &Running,
    path: &str,
    key: &str,
    limit: usize,
    cursor: &str,
    next: &str,
) -> Vec<Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut found = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..100 {
        let url = match &after {
            None => format!("{path}{sep}limit={limit}"),
            Some(at) => format!("{path}{sep}limit={limit}&{cursor}={at}"),
        };
        let page = app.query(&url, Some(key)).await;
        assert_eq!(page.status, StatusCode::OK, "{url}: {page:?}");
        let got = items(&page);
        assert!(got.len() <= limit, "{url}: a page longer than its limit");
        found.extend(got);
        match &page.body[next] {
            Value::Null => return found,
            value => after = Some(text_of(value)),
        }
    }
    panic!("{path}: the cursor never ended")
}

fn field(items: &[Value], name: &str) -> Vec<String> {
    items.iter().map(|item| text_of(&item[name])).collect()
}

fn once_each(ids: &[String]) -> HashSet<String> {
    let unique: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), ids.len(), "an item was listed twice: {ids:?}");
    unique
}

fn assert_422_naming(answer: &Answer, field: &str, what: &str) {
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{what}: {answer:?}"
    );
    assert_eq!(
        answer.body["errors"][0]["field"], field,
        "{what}: {answer:?}"
    );
}

/// Records `items` as sends (or outcomes) of `client`; answers the position.
async fn ingest(app: &Running, client: Uuid, path: &str, items: Vec<Value>) -> i64 {
    app.ingest(client, path, &items).await
}

/// Proposes a pending analysis on its own path; answers the update id and
/// the position.
async fn propose(app: &Running, client: Uuid, row: &str) -> (String, i64) {
    let answer = app
        .command(
            Method::POST,
            &format!("/v1/clients/{client}/context/updates"),
            Some(OPERATOR_KEY),
            Some(json!({ "source": "crm_analysis", "confidence": 0.5,
                "patch": { "playbook": { row: "from won deals" } }, "rationale": "won deals" })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{answer:?}");
    assert_eq!(answer.body["status"], "pending", "{answer:?}");
    let id = answer.body["update_id"]
        .as_str()
        .expect("an update id")
        .to_owned();
    (id, answer.position())
}

async fn create_experiment(app: &Running, client: Uuid, name: &str) -> (String, i64) {
    let answer = app
        .command(
            Method::POST,
            &format!("/v1/clients/{client}/experiments"),
            Some(OPERATOR_KEY),
            Some(json!({ "name": name, "metric": "reply",
                "variants": [{ "id": "a", "weight": 1 }, { "id": "b", "weight": 1 }] })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    let id = answer.body["experiment_id"]
        .as_str()
        .expect("an experiment id")
        .to_owned();
    (id, answer.position())
}

/// A dead letter of `client` from `provider`: a body that is not JSON,
/// naming a lead.
async fn dead_letter(app: &Running, client: Uuid, provider: Provider, n: usize) {
    let body = format!("{{not json {n}, lead: ana.lima@example.com");
    let answer =
        providers::deliver_signed(app, provider, SECRET, client, "x", body.as_bytes()).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{answer:?}");
    assert_eq!(answer.body["dead_lettered"], 1, "{answer:?}");
}

/// Seven sends of a client (three at one time, so that ties are paged
/// too), two with outcomes; answers the client and the position.
async fn client_with_sends(app: &Running) -> (Uuid, i64) {
    let (client, _) = app.register_client("Acme").await;
    // (message, lead, channel, campaign, sent at)
    let table = [
        ("m-1", "ana", "email", "q4", "2026-11-18T09:00:00Z"),
        ("m-2", "ben", "email", "q4", "2026-11-18T10:00:00Z"),
        ("m-3", "cy", "email", "q1", "2026-11-18T10:00:00Z"),
        ("m-4", "di", "linkedin", "q4", "2026-11-18T10:00:00Z"),
        ("m-5", "ed", "linkedin", "q1", "2026-11-18T11:00:00Z"),
        ("m-6", "fa", "email", "q4", "2026-11-18T12:00:00Z"),
        ("m-7", "gu", "email", "q4", "2026-11-18T13:00:00Z"),
    ];
    let sends = table
        .iter()
        .map(|(message, lead, channel, campaign, at)| {
            send(
                message,
                &format!("{lead}@example.com"),
                channel,
                campaign,
                at,
            )
        })
        .collect();
    let sent = ingest(app, client, "sends", sends).await;
    let outcomes = vec![
        outcome("m-2", "opened"),
        outcome("m-2", "replied"),
        outcome("m-6", "bounced"),
    ];
    let position = ingest(app, client, "outcomes", outcomes).await;
    (client, sent.max(position))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_through_each_clients_list_with_its_cursor_visits_every_item_once() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, position) = client_with_sends(&app).await;
    let c = |rest: &str| format!("/v1/clients/{client}{rest}?min_position={position}");

    // Sends: newest first, the three at one time by send id, each once.
    let sends = every_page(&app, &c("/sends"), OPERATOR_KEY, 2, "before", "next_before").await;
    let ids = field(&sends, "send_id");
    assert_eq!(once_each(&ids).len(), 7, "{sends:?}");
    let keys: Vec<(String, String)> = sends
        .iter()
        .map(|s| (text_of(&s["sent_at"]), text_of(&s["send_id"])))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(keys, sorted, "not newest first");
    let replied = sends
        .iter()
        .find(|s| s["provider_message_id"] == "m-2")
        .expect("m-2 is listed");
    let kinds: HashSet<&str> = replied["outcomes"]
        .as_array()
        .expect("outcomes")
        .iter()
        .filter_map(|o| o["kind"].as_str())
        .collect();
    assert_eq!(kinds, HashSet::from(["opened", "replied"]), "{replied}");

    // Experiments: newest first, each once.
    let mut created = Vec::new();
    let mut position = position;
    for name in ["one", "two", "three", "four", "five"] {
        let (id, at) = create_experiment(&app, client, name).await;
        created.push(id);
        position = position.max(at);
    }
    let c = |rest: &str| format!("/v1/clients/{client}{rest}?min_position={position}");
    let listed = every_page(
        &app,
        &c("/experiments"),
        OPERATOR_KEY,
        2,
        "before",
        "next_before",
    )
    .await;
    let ids = field(&listed, "experiment_id");
    once_each(&ids);
    created.reverse();
    assert_eq!(ids, created, "not newest first");

    // Dead letters: newest first, each once.
    providers::set_secret(&app, client, Provider::Instantly, SECRET).await;
    for n in 0..5 {
        dead_letter(&app, client, Provider::Instantly, n).await;
    }
    let letters = every_page(
        &app,
        &c("/dead-letters"),
        OPERATOR_KEY,
        2,
        "before",
        "next_before",
    )
    .await;
    let ids: Vec<i64> = letters.iter().filter_map(|l| l["id"].as_i64()).collect();
    assert_eq!(ids.len(), 5, "{letters:?}");
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "not newest first: {ids:?}"
    );
    for letter in &letters {
        assert_eq!(letter["provider"], "instantly", "{letter}");
        assert!(letter["reason"].is_string() && letter["received_at"].is_string());
    }

    // The audit trail, filtered, still pages through each event once.
    let trail = every_page(
        &app,
        &c("/audit?actor=operator"),
        OPERATOR_KEY,
        3,
        "before",
        "next_before",
    )
    .await;
    let positions = field(&trail, "position");
    once_each(&positions);
    assert!(trail.iter().all(|e| e["actor"] == "operator"), "{trail:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_through_the_approval_queue_visits_every_update_once_oldest_first() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    let mut proposed = Vec::new();
    let mut position = 0;
    for i in 0..5 {
        let (id, at) = propose(&app, client, &format!("row_{i}")).await;
        proposed.push(id);
        position = position.max(at);
    }
    let reviewer = app.issue_key(client, "reviewer").await;
    let path = format!("/v1/clients/{client}/approvals?min_position={position}");
    let queue = every_page(&app, &path, &reviewer, 2, "after", "next_after").await;
    let ids = field(&queue, "update_id");
    once_each(&ids);
    assert_eq!(ids, proposed, "not oldest first");
    assert!(
        queue.iter().all(|u| u["client_id"] == client.to_string()),
        "{queue:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_queue_spans_clients_and_each_item_carries_its_client_id() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (acme, _) = app.register_client("Acme").await;
    let (globex, _) = app.register_client("Globex").await;
    let mut owner = std::collections::HashMap::new();
    let mut position = 0;
    for i in 0..3 {
        for client in [acme, globex] {
            let (id, at) = propose(&app, client, &format!("row_{i}")).await;
            owner.insert(id, client.to_string());
            position = position.max(at);
        }
    }
    let path = format!("/v1/approvals?min_position={position}");
    let queue = every_page(&app, &path, OPERATOR_KEY, 4, "after", "next_after").await;
    let ids = field(&queue, "update_id");
    assert_eq!(once_each(&ids).len(), 6, "{queue:?}");
    for item in &queue {
        let id = text_of(&item["update_id"]);
        assert_eq!(text_of(&item["client_id"]), owner[&id], "{item}");
    }
    let proposed_at: Vec<DateTime<Utc>> = field(&queue, "proposed_at")
        .iter()
        .map(|t| t.parse().expect("an RFC 3339 time"))
        .collect();
    assert!(
        proposed_at.windows(2).all(|w| w[0] <= w[1]),
        "not oldest first: {proposed_at:?}"
    );

    // A client's keys, even an admin's, may not read every client's queue.
    let admin = app.issue_key(acme, "admin").await;
    let answer = app.query("/v1/approvals", Some(&admin)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_narrow_each_list() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, position) = client_with_sends(&app).await;
    let (first, created) = create_experiment(&app, client, "first").await;
    let (_, _) = create_experiment(&app, client, "second").await;
    // Concluding reads the experiment from its read model.
    env.eventually(
        "the experiments projection reaches the experiment",
        std::time::Duration::from_secs(10),
        || async { env.checkpoint("experiments").await >= created },
    )
    .await;
    let concluded = app
        .command(
            Method::POST,
            &format!("/v1/clients/{client}/experiments/{first}/conclude"),
            Some(OPERATOR_KEY),
            None,
        )
        .await;
    assert_eq!(concluded.status, StatusCode::OK, "{concluded:?}");
    let (pending, _) = propose(&app, client, "row_pending").await;
    let (rejected, _) = propose(&app, client, "row_rejected").await;
    // A reviewer rejects it: one event of the trail is not the operator's.
    let reviewer = app.issue_key(client, "reviewer").await;
    let answer = app
        .command(
            Method::POST,
            &format!("/v1/clients/{client}/context/updates/{rejected}/reject"),
            Some(&reviewer),
            Some(json!({ "reason": "not now" })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    providers::set_secret(&app, client, Provider::Instantly, SECRET).await;
    providers::set_secret(&app, client, Provider::Smartlead, SECRET).await;
    dead_letter(&app, client, Provider::Instantly, 1).await;
    dead_letter(&app, client, Provider::Smartlead, 2).await;
    dead_letter(&app, client, Provider::Smartlead, 3).await;
    // Every read below waits for the last event written.
    let head = env.event_ids().await.last().map(|(p, _)| *p).unwrap_or(0);
    let position = position.max(answer.position()).max(head);
    let read = |rest: String| {
        let app = &app;
        async move {
            let sep = if rest.contains('?') { '&' } else { '?' };
            let url = format!("/v1/clients/{client}{rest}{sep}min_position={position}");
            let answer = app.query(&url, Some(OPERATOR_KEY)).await;
            assert_eq!(answer.status, StatusCode::OK, "{url}: {answer:?}");
            items(&answer)
        }
    };

    let linkedin = read("/sends?channel=linkedin".into()).await;
    assert_eq!(field(&linkedin, "provider_message_id"), ["m-5", "m-4"]);
    let q1 = read("/sends?campaign_id=q1".into()).await;
    assert_eq!(field(&q1, "provider_message_id"), ["m-5", "m-3"]);
    let both = read("/sends?channel=email&campaign_id=q1".into()).await;
    assert_eq!(field(&both, "provider_message_id"), ["m-3"]);

    let running = read("/experiments?status=running".into()).await;
    assert_eq!(field(&running, "name"), ["second"]);
    let done = read("/experiments?status=concluded".into()).await;
    assert_eq!(field(&done, "experiment_id"), [first]);
    assert_eq!(read("/experiments".into()).await.len(), 2);

    let queue = read("/approvals".into()).await;
    assert_eq!(field(&queue, "update_id"), [pending]);
    let refused = read("/approvals?status=rejected".into()).await;
    assert_eq!(field(&refused, "update_id"), [rejected]);

    let smartlead = read("/dead-letters?provider=smartlead".into()).await;
    assert_eq!(smartlead.len(), 2, "{smartlead:?}");
    assert!(smartlead.iter().all(|l| l["provider"] == "smartlead"));

    let trail = read("/audit?limit=500".into()).await;
    let issued = read("/audit?event_type=webhook_secret_set".into()).await;
    assert_eq!(issued.len(), 2, "{issued:?}");
    assert!(issued
        .iter()
        .all(|e| e["event_type"] == "webhook_secret_set"));
    let by_operator = read("/audit?actor=operator&limit=500".into()).await;
    assert!(!by_operator.is_empty() && by_operator.len() < trail.len());
    assert!(by_operator.iter().all(|e| e["actor"] == "operator"));
    // A time splits the trail in two: at or after it, and before it.
    let middle: DateTime<Utc> = trail[trail.len() / 2]["recorded_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("a recorded_at");
    let at = urlencode(&middle.to_rfc3339());
    let since = read(format!("/audit?limit=500&since={at}")).await;
    let until = read(format!("/audit?limit=500&until={at}")).await;
    assert!(!since.is_empty() && !until.is_empty());
    assert_eq!(since.len() + until.len(), trail.len());
    let time = |e: &Value| -> DateTime<Utc> {
        e["recorded_at"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .expect("a recorded_at")
    };
    assert!(since.iter().all(|e| time(e) >= middle));
    assert!(until.iter().all(|e| time(e) < middle));
    let window = read(format!(
        "/audit?limit=500&since={at}&until={}",
        urlencode(&(middle + chrono::Duration::microseconds(1)).to_rfc3339())
    ))
    .await;
    assert!(window.iter().all(|e| time(e) == middle) && !window.is_empty());
    app.stop().await;
}

/// `+` in a query string is a space.
fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_key_gets_no_personal_data_from_the_sends_read_while_an_admin_does() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, position) = client_with_sends(&app).await;
    providers::set_secret(&app, client, Provider::Instantly, SECRET).await;
    dead_letter(&app, client, Provider::Instantly, 1).await;
    let sends = format!("/v1/clients/{client}/sends?min_position={position}");
    let letters = format!("/v1/clients/{client}/dead-letters");
    for role in ["reader", "ingest", "reviewer"] {
        let key = app.issue_key(client, role).await;
        for path in [&sends, &letters] {
            let answer = app.query(path, Some(&key)).await;
            assert_eq!(answer.status, StatusCode::OK, "{role} {path}: {answer:?}");
            let text = answer.body.to_string();
            for personal in [
                "@example.com",
                "Name of",
                "VP Finance",
                "linkedin.com/in",
                "quick question",
            ] {
                assert!(
                    !text.contains(personal),
                    "{role} {path} sees {personal:?}: {text}"
                );
            }
        }
        let answer = app.query(&sends, Some(&key)).await;
        for send in items(&answer) {
            assert!(send.get("personal").is_none(), "{role}: {send}");
            assert!(send["lead_ref"].is_string(), "{role}: {send}");
            assert_eq!(send["lead"]["industry"], "fintech", "{role}: {send}");
        }
        let answer = app.query(&letters, Some(&key)).await;
        for letter in items(&answer) {
            assert!(letter.get("payload").is_none(), "{role}: {letter}");
            assert!(letter["reason"].is_string(), "{role}: {letter}");
        }
    }
    let admin = app.issue_key(client, "admin").await;
    for key in [admin.as_str(), OPERATOR_KEY] {
        let answer = app.query(&sends, Some(key)).await;
        let listed = items(&answer);
        let ana = listed
            .iter()
            .find(|s| s["provider_message_id"] == "m-1")
            .expect("m-1 is listed");
        assert_eq!(ana["personal"]["email"], "ana@example.com", "{ana}");
        assert_eq!(ana["personal"]["name"], "Name of ana@example.com", "{ana}");
        assert_eq!(ana["personal"]["title"], "VP Finance", "{ana}");
        assert_eq!(
            ana["personal"]["profile_url"], "https://www.linkedin.com/in/m-1",
            "{ana}"
        );
        assert_eq!(
            ana["personal"]["subject"], "ana@example.com, quick question?",
            "{ana}"
        );
        let answer = app.query(&letters, Some(key)).await;
        let letter = &items(&answer)[0];
        assert!(
            letter["payload"]
                .as_str()
                .is_some_and(|p| p.contains("ana.lima@example.com")),
            "{letter}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_another_client_gets_404_on_every_new_read_and_a_client_key_403_on_the_operators_queue(
) {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (mine, _) = app.register_client("Mine").await;
    let (theirs, _) = app.register_client("Theirs").await;
    let (update, position) = propose(&app, theirs, "row_0").await;
    let (experiment, _) = create_experiment(&app, theirs, "theirs").await;
    let admin = app.issue_key(mine, "admin").await;
    let reader = app.issue_key(mine, "reader").await;
    let t = |rest: &str| format!("/v1/clients/{theirs}{rest}");
    for path in [
        t("/experiments"),
        t(&format!("/experiments?before={experiment}")),
        t(&format!("/context/updates/{update}")),
        t(&format!("/approvals?after={update}")),
        t("/sends?channel=email"),
        t("/dead-letters"),
        t("/audit?event_type=update_proposed"),
    ] {
        for key in [&admin, &reader] {
            let answer = app.query(&path, Some(key)).await;
            assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}: {answer:?}");
            assert_eq!(
                answer.body["detail"], "no such client",
                "{path}: {answer:?}"
            );
        }
    }
    // Their update does not exist for my client either, even to the operator.
    let answer = app
        .query(
            &format!("/v1/clients/{mine}/context/updates/{update}?min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    // Nor is it a cursor of my queue.
    let answer = app
        .query(
            &format!("/v1/clients/{mine}/approvals?after={update}&min_position={position}"),
            Some(&admin),
        )
        .await;
    assert_422_naming(&answer, "after", "their update as my cursor");
    for key in [&admin, &reader] {
        let answer = app.query("/v1/approvals?status=bogus", Some(key)).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_cursor_filter_or_time_is_a_422_naming_the_field() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, position) = app.register_client("Acme").await;
    // A cursor is looked up only for a client the read model knows.
    env.eventually(
        "the clients projection reaches the registration",
        std::time::Duration::from_secs(10),
        || async { env.checkpoint("clients").await >= position },
    )
    .await;
    let c = |rest: &str| format!("/v1/clients/{client}{rest}");
    let unknown = Uuid::new_v4();
    let cases: Vec<(String, &str)> = vec![
        (c("/experiments?before=yesterday"), "before"),
        (c(&format!("/experiments?before={unknown}")), "before"),
        (c("/experiments?status=paused"), "status"),
        (c("/experiments?limit=0"), "limit"),
        (c("/approvals?after=1"), "after"),
        (c(&format!("/approvals?after={unknown}")), "after"),
        (c("/approvals?status=maybe"), "status"),
        ("/v1/approvals?after=abc".into(), "after"),
        ("/v1/approvals?limit=501".into(), "limit"),
        (c("/sends?before=42"), "before"),
        (c(&format!("/sends?before={unknown}")), "before"),
        (c("/sends?channel=pigeon"), "channel"),
        (c("/sends?campaign_id="), "campaign_id"),
        (
            c(&format!("/sends?campaign_id={}", "x".repeat(201))),
            "campaign_id",
        ),
        (c("/dead-letters?before=latest"), "before"),
        (c("/dead-letters?provider=carrier_pigeon"), "provider"),
        (c("/audit?before=last"), "before"),
        (c("/audit?event_type=client_teleported"), "event_type"),
        (c("/audit?actor="), "actor"),
        (c("/audit?since=yesterday"), "since"),
        (c("/audit?until=2026-13-45T99:99:99Z"), "until"),
        (c("/audit?since=%2B275000-01-01T00:00:00Z"), "since"),
        (
            c("/audit?since=2026-11-18T10:00:00Z&until=2026-11-18T09:00:00Z"),
            "until",
        ),
    ];
    for (path, field) in cases {
        let answer = app.query(&path, Some(OPERATOR_KEY)).await;
        assert_422_naming(&answer, field, &path);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_update_id_is_404_and_a_known_one_reads_as_the_queue_lists_it() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    let (update, position) = propose(&app, client, "row_0").await;
    let reader = app.issue_key(client, "reader").await;
    let one = app
        .query(
            &format!("/v1/clients/{client}/context/updates/{update}?min_position={position}"),
            Some(&reader),
        )
        .await;
    assert_eq!(one.status, StatusCode::OK, "{one:?}");
    let queue = app
        .query(&format!("/v1/clients/{client}/approvals"), Some(&reader))
        .await;
    let listed = items(&queue);
    assert_eq!(listed.len(), 1, "{queue:?}");
    let mut from_queue = listed[0].clone();
    let mut alone = one.body.clone();
    // The age is computed as each answer is made.
    for item in [&mut from_queue, &mut alone] {
        item.as_object_mut()
            .expect("an object")
            .remove("age_seconds");
    }
    assert_eq!(alone, from_queue);
    assert_eq!(one.body["client_id"], client.to_string());

    for unknown in [Uuid::new_v4().to_string(), "not-a-uuid".to_owned()] {
        let answer = app
            .query(
                &format!("/v1/clients/{client}/context/updates/{unknown}"),
                Some(&reader),
            )
            .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
        assert_eq!(answer.body["detail"], "no such update", "{answer:?}");
        assert!(
            answer
                .content_type()
                .starts_with("application/problem+json"),
            "{answer:?}"
        );
    }
    app.stop().await;
}

#[test]
fn the_audit_trails_event_types_are_every_one_the_event_contract_lists() {
    let contract = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/asyncapi.yaml"),
    )
    .expect("docs/asyncapi.yaml");
    // The enum under `event_type:` in the channel's parameters.
    let mut listed = Vec::new();
    let mut lines = contract
        .lines()
        .skip_while(|l| l.trim() != "event_type:")
        .skip(1);
    for line in lines.by_ref() {
        if line.trim() == "enum:" {
            break;
        }
    }
    for line in lines {
        match line.trim().strip_prefix("- ") {
            Some(name) => listed.push(name.to_owned()),
            None => break,
        }
    }
    let mut known: Vec<String> = sextant_application::read_model::clients::EVENT_TYPES
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
    listed.sort();
    known.sort();
    assert!(!listed.is_empty(), "no event types found in the contract");
    assert_eq!(known, listed);
}
