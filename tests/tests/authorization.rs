//! Who may call what, checked before anything else is read: a key that may
//! not call an endpoint gets 403 whatever its body or query string, and the
//! 403 names every caller that may (the roles, admin and the operator key).
//! And what a suspended client's keys may no longer do.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sextant_tests::{Answer, Running, TestEnv, OPERATOR_KEY};
use uuid::Uuid;

/// The key roles an endpoint admits besides admin; `None`: the operator
/// key alone.
type Admitted = Option<&'static [&'static str]>;

const OPERATOR_ONLY: Admitted = None;
const ADMINS: Admitted = Some(&[]);
const INGESTERS: Admitted = Some(&["ingest"]);
const PROPOSERS: Admitted = Some(&["ingest", "reviewer"]);
const REVIEWERS: Admitted = Some(&["reviewer"]);

/// Every command endpoint a key may call (the provider webhook takes no
/// key), as its OpenAPI document names it, with the callers it admits.
const COMMAND_ENDPOINTS: &[(&str, &str, Admitted)] = &[
    ("POST", "/v1/clients", OPERATOR_ONLY),
    ("PATCH", "/v1/clients/{client_id}", ADMINS),
    ("POST", "/v1/clients/{client_id}/api-keys", ADMINS),
    (
        "DELETE",
        "/v1/clients/{client_id}/api-keys/{key_id}",
        ADMINS,
    ),
    ("PUT", "/v1/clients/{client_id}/webhooks/{provider}", ADMINS),
    ("POST", "/v1/clients/{client_id}/resources", ADMINS),
    ("POST", "/v1/clients/{client_id}/suspend", OPERATOR_ONLY),
    ("POST", "/v1/clients/{client_id}/reactivate", OPERATOR_ONLY),
    ("POST", "/v1/clients/{client_id}/context/updates", PROPOSERS),
    (
        "POST",
        "/v1/clients/{client_id}/context/updates/{update_id}/approve",
        REVIEWERS,
    ),
    (
        "POST",
        "/v1/clients/{client_id}/context/updates/{update_id}/modify",
        REVIEWERS,
    ),
    (
        "POST",
        "/v1/clients/{client_id}/context/updates/{update_id}/reject",
        REVIEWERS,
    ),
    (
        "POST",
        "/v1/clients/{client_id}/context/rollback",
        REVIEWERS,
    ),
    ("POST", "/v1/clients/{client_id}/documents", PROPOSERS),
    ("POST", "/v1/clients/{client_id}/sends", INGESTERS),
    ("POST", "/v1/clients/{client_id}/outcomes", INGESTERS),
    ("POST", "/v1/clients/{client_id}/sends/authorize", INGESTERS),
    (
        "POST",
        "/v1/clients/{client_id}/leads/{lead_ref}/erase",
        ADMINS,
    ),
    ("POST", "/v1/clients/{client_id}/suggestions/run", ADMINS),
    ("POST", "/v1/clients/{client_id}/experiments", ADMINS),
    (
        "POST",
        "/v1/clients/{client_id}/experiments/{experiment_id}/conclude",
        ADMINS,
    ),
    ("POST", "/v1/patterns/platform/practices", OPERATOR_ONLY),
    (
        "POST",
        "/v1/clients/{client_id}/alerts/{alert_id}/acknowledge",
        REVIEWERS,
    ),
    ("POST", "/v1/alerts/detect", OPERATOR_ONLY),
    ("POST", "/v1/reports/publish", OPERATOR_ONLY),
];

/// Bodies no endpoint accepts: not JSON at all, and JSON of no endpoint's
/// shape.
const MALFORMED_BODIES: [&str; 2] = ["{\"oops\": ", "[1, 2, \"three\"]"];

fn filled(template: &str, client: Uuid) -> String {
    template
        .replace("{client_id}", &client.to_string())
        .replace("{provider}", "smartlead")
        .replace("{lead_ref}", "lr_00000000000000000000000000000000")
        .replace("{key_id}", &Uuid::new_v4().to_string())
        .replace("{update_id}", &Uuid::new_v4().to_string())
        .replace("{experiment_id}", &Uuid::new_v4().to_string())
        .replace("{alert_id}", &Uuid::new_v4().to_string())
}

async fn raw(app: &Running, method: &str, url: String, key: &str, body: &str) -> Answer {
    let method = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
    let response = app
        .http
        .request(method, url)
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    Answer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

/// The refusal names every caller that may: the admitted roles, admin and
/// the operator key; on an operator-only endpoint, the operator.
fn assert_names_who_may(answer: &Answer, admitted: Admitted, what: &str) {
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{what}: {answer:?}");
    assert_eq!(
        answer.body["type"], "urn:sextant:problem:forbidden",
        "{what}: {answer:?}"
    );
    let detail = answer.body["detail"].as_str().unwrap_or_default();
    match admitted {
        None => assert_eq!(detail, "only the operator may do this", "{what}"),
        Some(roles) => {
            for name in roles.iter().chain(&["admin", "the operator key"]) {
                assert!(detail.contains(name), "{what}: {detail:?} omits {name}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_endpoint_refuses_a_key_it_does_not_admit_with_403_whatever_the_body() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    let mut keys = Vec::new();
    for role in ["reader", "ingest", "reviewer", "admin"] {
        keys.push((role, app.issue_key(client, role).await));
    }
    let before = env.event_ids().await.len();
    for (method, template, admitted) in COMMAND_ENDPOINTS {
        let url = format!("{}{}", app.command_url, filled(template, client));
        for (role, key) in &keys {
            let admits = match admitted {
                None => false,
                Some(roles) => *role == "admin" || roles.contains(role),
            };
            if admits {
                continue;
            }
            for body in MALFORMED_BODIES {
                let answer = raw(&app, method, url.clone(), key, body).await;
                assert_names_who_may(
                    &answer,
                    *admitted,
                    &format!("{role} key, {method} {template}, body {body}"),
                );
            }
        }
    }
    assert_eq!(
        env.event_ids().await.len(),
        before,
        "a refused call wrote events"
    );
    app.stop().await;
}

#[test]
fn the_table_of_who_may_call_what_covers_every_command_endpoint_a_key_calls() {
    let document: Value =
        serde_json::from_str(sextant_command_api::OPENAPI).expect("the OpenAPI document parses");
    let paths = document["paths"]
        .as_object()
        .expect("the document lists its paths");
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, operations) in paths {
        if !path.starts_with("/v1/") || path.starts_with("/v1/webhooks/") {
            continue;
        }
        for method in ["get", "post", "put", "patch", "delete"] {
            if operations.get(method).is_some() {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    let mut listed: Vec<(String, String)> = COMMAND_ENDPOINTS
        .iter()
        .map(|(method, path, _)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    documented.sort();
    listed.sort();
    assert_eq!(listed, documented);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_api_refuses_a_key_before_reading_its_query_string() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    let reader = app.issue_key(client, "reader").await;
    // The client list is the operator's, whatever the query string holds.
    for query in ["?limit=lots", "?nonsense=1", ""] {
        let answer = app
            .query(&format!("/v1/clients{query}"), Some(&reader))
            .await;
        assert_names_who_may(&answer, OPERATOR_ONLY, &format!("GET /v1/clients{query}"));
    }
    // Platform tables are for the operator and clients that share their own
    // data (this one does not), whatever the family or the query string.
    for path in [
        "/v1/patterns/platform/what?metric=bogus",
        "/v1/patterns/platform/what?nonsense=1",
        "/v1/patterns/platform/what",
    ] {
        let answer = app.query(path, Some(&reader)).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}: {answer:?}");
        let detail = answer.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("the operator key") && detail.contains("share their own data"),
            "{path}: {detail:?}"
        );
    }
    // The operator is let through to the parsing, and told what is wrong.
    let answer = app
        .query("/v1/clients?limit=lots", Some(OPERATOR_KEY))
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{answer:?}"
    );
    app.stop().await;
}

/// Who may call a query endpoint that reads across clients.
#[derive(Debug, Clone, Copy)]
enum AcrossClients {
    /// The operator key alone.
    Operator,
    /// The operator key, and keys of clients that share their own data.
    OperatorAndSharers,
}

/// Every query endpoint that names no client (besides `GET /v1/whoami`,
/// any key's), as its OpenAPI document names it, with who may call it.
const QUERY_ENDPOINTS_ACROSS_CLIENTS: &[(&str, AcrossClients)] = &[
    ("/v1/clients", AcrossClients::Operator),
    ("/v1/approvals", AcrossClients::Operator),
    ("/v1/alerts", AcrossClients::Operator),
    ("/v1/reports/weekly", AcrossClients::Operator),
    (
        "/v1/patterns/platform/{family}",
        AcrossClients::OperatorAndSharers,
    ),
];

/// Query strings of every kind: none, well-formed ones of each endpoint,
/// unknown parameters, values of the wrong type, a repeated parameter, and
/// ones that are not valid query strings at all.
const QUERY_STRINGS: &[&str] = &[
    "",
    "?limit=10",
    "?status=all",
    "?week=2026-W48&format=csv",
    "?metric=reply",
    "?nonsense=1",
    "?limit=lots&before=never",
    "?limit=1&limit=2",
    "?%zz=%&&=",
    "?format=pdf&table=%00",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_endpoint_across_clients_refuses_each_role_of_a_client_key_with_403_whatever_the_query_string(
) {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    let mut keys = Vec::new();
    for role in ["admin", "reviewer", "reader", "ingest"] {
        keys.push((role, app.issue_key(client, role).await));
    }
    for (template, who) in QUERY_ENDPOINTS_ACROSS_CLIENTS {
        let path = template.replace("{family}", "what");
        for (role, key) in &keys {
            for query in QUERY_STRINGS {
                let what = format!("{role} key, GET {path}{query}");
                let answer = app.query(&format!("{path}{query}"), Some(key)).await;
                match who {
                    AcrossClients::Operator => assert_names_who_may(&answer, OPERATOR_ONLY, &what),
                    AcrossClients::OperatorAndSharers => {
                        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{what}: {answer:?}");
                        assert_eq!(
                            answer.body["type"], "urn:sextant:problem:forbidden",
                            "{what}: {answer:?}"
                        );
                        let detail = answer.body["detail"].as_str().unwrap_or_default();
                        assert!(
                            detail.contains("the operator key")
                                && detail.contains("share their own data"),
                            "{what}: {detail:?}"
                        );
                    }
                }
            }
        }
        // The operator is let through to the query string, and told what
        // is wrong with it: the 403s above are the keys', not the paths'.
        let answer = app
            .query(&format!("{path}?nonsense=1"), Some(OPERATOR_KEY))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "operator, GET {path}?nonsense=1: {answer:?}"
        );
    }
    app.stop().await;
}

#[test]
fn the_table_of_query_endpoints_across_clients_covers_every_documented_one() {
    let document: Value =
        serde_json::from_str(sextant_query_api::OPENAPI).expect("the OpenAPI document parses");
    let paths = document["paths"]
        .as_object()
        .expect("the document lists its paths");
    let mut documented: Vec<String> = paths
        .iter()
        .filter(|(path, operations)| {
            path.starts_with("/v1/")
                && !path.contains("{client_id}")
                && path.as_str() != "/v1/whoami"
                && operations.get("get").is_some()
        })
        .map(|(path, _)| path.clone())
        .collect();
    let mut listed: Vec<String> = QUERY_ENDPOINTS_ACROSS_CLIENTS
        .iter()
        .map(|(path, _)| (*path).to_owned())
        .collect();
    documented.sort();
    listed.sort();
    assert_eq!(listed, documented);
}

struct Suspended {
    client: Uuid,
    admin: String,
    ingest: String,
    reviewer: String,
    pending: Vec<String>,
}

/// A client with a version, three pending updates and a key of each role;
/// then suspended.
async fn suspended(app: &Running) -> Suspended {
    let (client, _) = app.register_client("Acme").await;
    let admin = app.issue_key(client, "admin").await;
    let ingest = app.issue_key(client, "ingest").await;
    let reviewer = app.issue_key(client, "reviewer").await;
    let updates = format!("/v1/clients/{client}/context/updates");
    let first = app
        .command(
            Method::POST,
            &updates,
            Some(&reviewer),
            Some(
                json!({ "source": "manual", "patch": { "icp": { "industries": ["fintech"] } },
                         "rationale": "kick-off" }),
            ),
        )
        .await;
    assert_eq!(first.body["status"], "applied", "{first:?}");
    let mut pending = Vec::new();
    for tone in ["plain", "warm", "bold"] {
        let answer = app
            .command(
                Method::POST,
                &updates,
                Some(&ingest),
                Some(
                    json!({ "source": "agent_suggestion", "rationale": "replies",
                             "patch": { "messaging": { tone: true } } }),
                ),
            )
            .await;
        assert_eq!(answer.body["status"], "pending", "{answer:?}");
        pending.push(
            answer.body["update_id"]
                .as_str()
                .expect("an update id")
                .to_owned(),
        );
    }
    let answer = app
        .command(
            Method::POST,
            &format!("/v1/clients/{client}/suspend"),
            Some(OPERATOR_KEY),
            Some(json!({ "reason": "unpaid invoice" })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    Suspended {
        client,
        admin,
        ingest,
        reviewer,
        pending,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_clients_keys_may_not_change_its_context_or_issue_keys_but_the_operator_may() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let s = suspended(&app).await;
    let c = |rest: &str| format!("/v1/clients/{}{rest}", s.client);
    let document = json!({ "key": "icp", "title": "ICP", "source": "icp_hypothesis",
                           "content": "Regions: AU, NZ", "captured_at": "2026-11-01T00:00:00Z" });
    let calls: Vec<(&str, String, &str, Option<Value>)> = vec![
        (
            "propose",
            c("/context/updates"),
            s.ingest.as_str(),
            Some(
                json!({ "source": "crm_analysis", "patch": { "icp": { "titles": ["CFO"] } },
                         "rationale": "won deals" }),
            ),
        ),
        (
            "propose",
            c("/context/updates"),
            s.reviewer.as_str(),
            Some(
                json!({ "source": "manual", "patch": { "icp": { "titles": ["CFO"] } },
                         "rationale": "kick-off" }),
            ),
        ),
        (
            "approve",
            c(&format!("/context/updates/{}/approve", s.pending[0])),
            s.reviewer.as_str(),
            None,
        ),
        (
            "modify",
            c(&format!("/context/updates/{}/modify", s.pending[1])),
            s.admin.as_str(),
            Some(json!({ "patch": { "messaging": { "warm": false } } })),
        ),
        (
            "reject",
            c(&format!("/context/updates/{}/reject", s.pending[2])),
            s.reviewer.as_str(),
            Some(json!({ "reason": "no" })),
        ),
        (
            "roll back",
            c("/context/rollback"),
            s.reviewer.as_str(),
            Some(json!({ "to_version": 1, "reason": "regressed" })),
        ),
        (
            "capture a document",
            c("/documents"),
            s.ingest.as_str(),
            Some(document.clone()),
        ),
        (
            "capture a document",
            c("/documents"),
            s.admin.as_str(),
            Some(document.clone()),
        ),
        (
            "issue a key",
            c("/api-keys"),
            s.admin.as_str(),
            Some(json!({ "role": "admin", "label": "a way back in" })),
        ),
    ];
    let before = env.event_ids().await.len();
    for (what, path, key, body) in &calls {
        let answer = app
            .command(Method::POST, path, Some(*key), body.clone())
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{what}: {answer:?}");
        assert!(
            answer.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("suspended")),
            "{what}: {answer:?}"
        );
    }
    assert_eq!(
        env.event_ids().await.len(),
        before,
        "a suspended client's key changed something"
    );

    // The operator still may.
    for (what, path, _, body) in calls
        .into_iter()
        .filter(|(what, ..)| matches!(*what, "approve" | "issue a key" | "capture a document"))
    {
        let answer = app
            .command(Method::POST, &path, Some(OPERATOR_KEY), body)
            .await;
        assert!(answer.status.is_success(), "operator, {what}: {answer:?}");
    }
    // Reactivated, its keys may again.
    let answer = app
        .command(Method::POST, &c("/reactivate"), Some(OPERATOR_KEY), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let answer = app
        .command(
            Method::POST,
            &c(&format!("/context/updates/{}/reject", s.pending[2])),
            Some(&s.reviewer),
            Some(json!({ "reason": "no" })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    app.stop().await;
}
