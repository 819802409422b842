//! Sextant withdraws a pending context update whose evidence no longer
//! holds: proposed over HTTP, withdrawn through the application layer as
//! the suggestion engine, read back over HTTP as `withdrawn` with its
//! reason and the evidence that withdrew it; the read model a replay
//! rebuilds equals the live one.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sextant_application::{context, ApiError, App};
use sextant_domain::values::Reason;
use sextant_tests::{Answer, Running, OPERATOR_KEY};
use uuid::Uuid;

const REASON: &str = "the reply rate it rested on fell back to the baseline";

fn suggestion() -> Value {
    json!({
        "source": "agent_suggestion",
        "patch": { "playbook": { "learned": { "what": { "cta=meeting": "prefer" } } } },
        "rationale": "meeting CTAs get more replies",
        "evidence": { "sends": 1200, "reply_rate": 0.041, "q": 0.02 },
        "confidence": 0.5
    })
}

fn weaker_evidence() -> Value {
    json!({ "sends": 2600, "reply_rate": 0.019, "q": 0.61 })
}

async fn propose(app: &Running, client: Uuid, ingest: &str) -> Uuid {
    let answer = app
        .command(
            Method::POST,
            &format!("/v1/clients/{client}/context/updates"),
            Some(ingest),
            Some(suggestion()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{answer:?}");
    assert_eq!(answer.body["status"], "pending", "{answer:?}");
    answer.body["update_id"]
        .as_str()
        .and_then(|id| Uuid::parse_str(id).ok())
        .expect("an answer names its update")
}

async fn approvals(app: &Running, client: Uuid, key: &str, status: &str, at: i64) -> Answer {
    let answer = app
        .query(
            &format!("/v1/clients/{client}/approvals?status={status}&min_position={at}"),
            Some(key),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer
}

fn ids(answer: &Answer) -> Vec<String> {
    answer.body["items"]
        .as_array()
        .expect("a list of updates")
        .iter()
        .map(|item| item["update_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn refusal_status(result: sextant_application::Result<i64>) -> u16 {
    match result {
        Err(ApiError::Problem(problem)) => problem.status,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_update_sextant_withdraws_is_listed_as_withdrawn_with_its_reason_and_evidence() {
    let env = sextant_tests::TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Acme").await;
    let mode = app
        .command(
            Method::PATCH,
            &format!("/v1/clients/{client}"),
            Some(OPERATOR_KEY),
            Some(json!({ "permission_mode": "co_pilot" })),
        )
        .await;
    assert!(mode.status.is_success(), "{mode:?}");
    let ingest = app.issue_key(client, "ingest").await;
    let reviewer = app.issue_key(client, "reviewer").await;
    let update = propose(&app, client, &ingest).await;

    let sextant = App::new(env.pool.clone(), None);
    let reason = || Reason::try_from(REASON).expect("a valid reason");
    let position =
        context::withdraw_as_system(&sextant, client, update, reason(), weaker_evidence())
            .await
            .expect("a pending update is withdrawn");

    let withdrawn = approvals(&app, client, &reviewer, "withdrawn", position).await;
    let items = withdrawn.body["items"]
        .as_array()
        .expect("a list of updates");
    assert_eq!(items.len(), 1, "{withdrawn:?}");
    let row = &items[0];
    assert_eq!(row["update_id"], update.to_string());
    assert_eq!(row["status"], "withdrawn");
    assert_eq!(row["reason"], REASON);
    assert_eq!(row["withdrawal_evidence"], weaker_evidence());
    assert_eq!(row["evidence"], suggestion()["evidence"], "as proposed");
    assert_eq!(row["decided_by"], "system:suggestion-engine");
    assert_eq!(row["via"], Value::Null);
    assert_eq!(row["version"], Value::Null);
    let pending = approvals(&app, client, &reviewer, "pending", position).await;
    assert!(ids(&pending).is_empty(), "{pending:?}");
    let audit = app
        .query(
            &format!("/v1/clients/{client}/audit?min_position={position}"),
            Some(&reviewer),
        )
        .await;
    assert_eq!(audit.status, StatusCode::OK, "{audit:?}");
    let recorded = audit.body["items"]
        .as_array()
        .expect("a list of events")
        .iter()
        .find(|e| e["event_type"] == "update_withdrawn")
        .unwrap_or_else(|| panic!("no update_withdrawn in {audit:?}"));
    assert_eq!(recorded["data"]["evidence"], weaker_evidence());

    // Only a pending update is withdrawn: once more is 409, an unknown one 404.
    let again = context::withdraw_as_system(&sextant, client, update, reason(), json!({})).await;
    assert_eq!(refusal_status(again), 409);
    let unknown =
        context::withdraw_as_system(&sextant, client, Uuid::now_v7(), reason(), json!({})).await;
    assert_eq!(refusal_status(unknown), 404);

    // A withdrawal holds nothing back: the same suggestion, on the same
    // evidence, waits for a reviewer again.
    let proposed_again = propose(&app, client, &ingest).await;
    assert_ne!(proposed_again, update);

    let head = env.head().await;
    let pending = approvals(&app, client, &reviewer, "pending", head).await;
    assert_eq!(ids(&pending), vec![proposed_again.to_string()]);
    let all = approvals(&app, client, &reviewer, "all", head).await;
    assert_eq!(all.body["items"].as_array().map(Vec::len), Some(2));

    env.caught_up(Duration::from_secs(20)).await;
    env.assert_projections_equal_replay().await;
    app.stop().await;
}
