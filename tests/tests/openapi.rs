//! The OpenAPI documents the two services serve at `GET /openapi.json`: they
//! are OpenAPI 3.1, every reference in them resolves, every operation they
//! document is routed, and every answer is one the document lists (status,
//! media type, required headers, body fields).
//!
//! Each documented operation is called with the operator key, its path
//! parameters filled in (`client_id`: a registered client; `provider`:
//! `smartlead`; `agent`: `email_strategist`; `lead_ref`:
//! `lr_00000000000000000000000000000000`; `family`: `what`;
//! `experiment_id`: an experiment of the client where the answers are
//! checked, a random UUID where only routing is; `update_id`: on the query
//! API a context update of the client where the answers are checked, else
//! a random UUID, so that no review command acts on a real update; anything
//! else: a random UUID), its required query parameters set to their
//! documented `example` and, where it takes a body, an empty JSON object.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sextant_tests::{Answer, Running, TestEnv, OPERATOR_KEY};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Service {
    Command,
    Query,
}

const SERVICES: [Service; 2] = [Service::Command, Service::Query];

fn base(app: &Running, service: Service) -> &str {
    match service {
        Service::Command => &app.command_url,
        Service::Query => &app.query_url,
    }
}

async fn document(app: &Running, service: Service) -> Value {
    let answer = app
        .send(
            Method::GET,
            format!("{}/openapi.json", base(app, service)),
            None,
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{service:?}: {answer:?}");
    assert_eq!(
        media_type(&answer),
        "application/json",
        "{service:?}: {answer:?}"
    );
    assert!(
        answer.body.is_object(),
        "{service:?}: /openapi.json is not a JSON object"
    );
    answer.body
}

fn media_type(answer: &Answer) -> String {
    answer
        .content_type()
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Follows local `$ref`s (`#/components/...`) until a value that is not one.
fn resolve<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
    for _ in 0..16 {
        let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
            return value;
        };
        let pointer = reference
            .strip_prefix('#')
            .ok_or_else(|| format!("{reference} is not a local reference"))
            .expect("every $ref is local");
        value = doc
            .pointer(pointer)
            .ok_or_else(|| format!("{reference} resolves to nothing"))
            .expect("every $ref resolves");
    }
    panic!("a $ref cycle")
}

/// Every `$ref` anywhere in `value`.
fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                found.push(reference.clone());
            }
            map.values().for_each(|v| references(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, found)),
        _ => {}
    }
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

struct Operation {
    method: Method,
    path: String,
    /// `name=example` for each required query parameter, joined by `&`.
    query: String,
    takes_body: bool,
    /// The operation's `responses` object.
    responses: Value,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// The required query parameters of an operation (its own and its path
/// item's), each set to its documented `example`.
fn required_query(doc: &Value, item: &Value, operation: &Value, path: &str) -> String {
    let listed = [item, operation]
        .into_iter()
        .filter_map(|v| v.get("parameters").and_then(Value::as_array))
        .flatten()
        .map(|p| resolve(doc, p));
    let mut pairs = Vec::new();
    for parameter in listed {
        if parameter["in"] != "query" || parameter["required"] != true {
            continue;
        }
        let name = parameter["name"].as_str().expect("a parameter has a name");
        let example = parameter
            .get("example")
            .ok_or_else(|| format!("{path}: the required query parameter {name} has no example"))
            .expect("every required query parameter has an example");
        let value = match example {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        pairs.push(format!("{name}={value}"));
    }
    pairs.join("&")
}

fn operations(doc: &Value) -> Vec<Operation> {
    let paths = doc["paths"]
        .as_object()
        .expect("the document has a paths object");
    let mut found = Vec::new();
    for (path, item) in paths {
        let item = resolve(doc, item);
        for name in METHODS {
            let Some(operation) = item.get(name) else {
                continue;
            };
            let method =
                Method::from_bytes(name.to_ascii_uppercase().as_bytes()).expect("an HTTP method");
            found.push(Operation {
                method,
                path: path.clone(),
                query: required_query(doc, item, operation, path),
                takes_body: operation.get("requestBody").is_some(),
                responses: operation["responses"].clone(),
            });
        }
    }
    found
}

/// The path with its `{parameters}` filled in.
fn fill(path: &str, client: Uuid, experiment: Uuid, update: Uuid) -> String {
    let mut filled = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .map(|i| open + i)
            .ok_or_else(|| format!("unclosed parameter in {path}"))
            .expect("every path parameter is closed");
        filled.push_str(&rest[..open]);
        match &rest[open + 1..close] {
            "client_id" => filled.push_str(&client.to_string()),
            "provider" => filled.push_str("smartlead"),
            "agent" => filled.push_str("email_strategist"),
            "lead_ref" => filled.push_str("lr_00000000000000000000000000000000"),
            "family" => filled.push_str("what"),
            "experiment_id" => filled.push_str(&experiment.to_string()),
            "update_id" => filled.push_str(&update.to_string()),
            _ => filled.push_str(&Uuid::new_v4().to_string()),
        }
        rest = &rest[close + 1..];
    }
    filled.push_str(rest);
    filled
}

/// Calls every operation of `service`'s document once, in document order.
async fn call_every_operation(
    app: &Running,
    service: Service,
    client: Uuid,
    experiment: Uuid,
    update: Option<Uuid>,
) -> (Value, Vec<(Operation, Answer)>) {
    let doc = document(app, service).await;
    let update = match service {
        Service::Query => update.unwrap_or_else(Uuid::new_v4),
        Service::Command => Uuid::new_v4(),
    };
    let mut answers = Vec::new();
    for operation in operations(&doc) {
        let mut url = format!(
            "{}{}",
            base(app, service),
            fill(&operation.path, client, experiment, update)
        );
        if !operation.query.is_empty() {
            url = format!("{url}?{}", operation.query);
        }
        let body = operation.takes_body.then(|| json!({}));
        let answer = app
            .send(operation.method.clone(), url, Some(OPERATOR_KEY), body)
            .await;
        answers.push((operation, answer));
    }
    (doc, answers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_services_serve_an_openapi_3_1_document_whose_references_all_resolve() {
    let env = TestEnv::new().await;
    let app = env.start_with(sextant_tests::Parts::apis_only()).await;
    for service in SERVICES {
        let doc = document(&app, service).await;
        let version = doc["openapi"].as_str().unwrap_or("");
        assert!(
            version.starts_with("3.1."),
            "{service:?}: openapi is {version:?}, not 3.1.x"
        );
        assert!(
            doc["info"]["title"].is_string() && doc["info"]["version"].is_string(),
            "{service:?}: info needs a title and a version"
        );
        let operations = operations(&doc);
        assert!(
            operations
                .iter()
                .any(|o| o.method == Method::GET && o.path == "/openapi.json"),
            "{service:?}: GET /openapi.json is not documented"
        );
        let mut found = Vec::new();
        references(&doc, &mut found);
        for reference in &found {
            let pointer = reference
                .strip_prefix('#')
                .ok_or_else(|| format!("{service:?}: {reference} is not a local reference"))
                .expect("every $ref is local");
            assert!(
                doc.pointer(pointer).is_some(),
                "{service:?}: {reference} resolves to nothing"
            );
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed_on_both_services() {
    let env = TestEnv::new().await;
    let app = env.start_with(sextant_tests::Parts::apis_only()).await;
    let (client, _) = app.register_client("Acme").await;
    // No such experiment: its operations answer 404 (documented), not "no such endpoint".
    let experiment = Uuid::new_v4();
    for service in SERVICES {
        let (_, answers) = call_every_operation(&app, service, client, experiment, None).await;
        assert!(!answers.is_empty(), "{service:?} documents nothing");
        for (operation, answer) in answers {
            // The command API adds where reads live to a GET's "no such endpoint".
            let unrouted = answer.status == StatusCode::NOT_FOUND
                && answer.body["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("no such endpoint"));
            assert!(
                !unrouted,
                "{service:?}: {operation} is documented but not routed: {answer:?}"
            );
            assert_ne!(
                answer.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{service:?}: {operation} is documented but its method is not routed: {answer:?}"
            );
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_is_one_the_document_lists_for_its_operation() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    // An experiment of the client, so that its queries answer 200 too (and
    // the command side concludes it).
    let created = app
        .command(
            Method::POST,
            &format!("/v1/clients/{client}/experiments"),
            Some(OPERATOR_KEY),
            Some(json!({ "name": "subject length", "metric": "reply",
                "variants": [{ "id": "short", "weight": 1 }, { "id": "long", "weight": 1 }] })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let experiment: Uuid = created.body["experiment_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no experiment id: {created:?}"))
        .expect("the experiment has an id");
    // A context update of the client (pending), so that the query of one
    // update answers 200 too.
    let proposed = app
        .command(
            Method::POST,
            &format!("/v1/clients/{client}/context/updates"),
            Some(OPERATOR_KEY),
            Some(
                json!({ "source": "crm_analysis", "patch": { "icp": { "regions": ["AU"] } },
                "rationale": "won deals", "confidence": 0.5 }),
            ),
        )
        .await;
    assert_eq!(proposed.status, StatusCode::ACCEPTED, "{proposed:?}");
    let update: Uuid = proposed.body["update_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no update id: {proposed:?}"))
        .expect("the update has an id");
    let position = created.position().max(proposed.position());
    // The client, the experiment and the update are in the read models, so
    // that queries answer 200 too.
    env.eventually(
        "the projections reach the registration, the experiment and the update",
        Duration::from_secs(20),
        || async {
            env.checkpoint("clients").await >= position
                && env.checkpoint("audit").await >= position
                && env.checkpoint("experiments").await >= position
                && env.checkpoint("context").await >= position
        },
    )
    .await;
    for service in SERVICES {
        let (doc, answers) =
            call_every_operation(&app, service, client, experiment, Some(update)).await;
        for (operation, answer) in answers {
            if service == Service::Query {
                // Every query reads a client that exists: its success body is checked.
                assert!(
                    answer.status.is_success(),
                    "{service:?}: {operation} answered {}: {answer:?}",
                    answer.status
                );
            }
            let status = answer.status.as_u16().to_string();
            let class = format!("{}XX", &status[..1]);
            let documented = [status.as_str(), class.as_str(), "default"]
                .into_iter()
                .find_map(|key| operation.responses.get(key));
            let Some(documented) = documented else {
                panic!("{service:?}: {operation} answered {status}, which its document does not list: {answer:?}");
            };
            let documented = resolve(&doc, documented);

            // Required headers are there.
            if let Some(headers) = documented.get("headers").and_then(Value::as_object) {
                for (name, header) in headers {
                    let header = resolve(&doc, header);
                    if header["required"] == true {
                        assert!(
                            answer.headers.get(name.to_ascii_lowercase()).is_some(),
                            "{service:?}: {operation} answered {status} without its {name} header: {answer:?}"
                        );
                    }
                }
            }

            // The media type is a documented one; a JSON body has every
            // required field and no undocumented one.
            let Some(content) = documented.get("content").and_then(Value::as_object) else {
                continue;
            };
            let media = media_type(&answer);
            let Some(media_object) = content.get(&media) else {
                panic!(
                    "{service:?}: {operation} answered {status} as {media:?}; documented: {:?}",
                    content.keys().collect::<Vec<_>>()
                );
            };
            let Value::Object(body) = &answer.body else {
                continue;
            };
            let schema = resolve(&doc, &media_object["schema"]);
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for field in required.iter().filter_map(Value::as_str) {
                    assert!(
                        body.contains_key(field),
                        "{service:?}: {operation} answered {status} without the required field {field}: {answer:?}"
                    );
                }
            }
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for field in body.keys() {
                    assert!(
                        properties.contains_key(field),
                        "{service:?}: {operation} answered {status} with the undocumented field {field}: {answer:?}"
                    );
                }
            }
        }
    }
    app.stop().await;
}
