//! The typed event appender (`sextant_adapters::store::append`): the write
//! paths outside cqrs-es (batched ingest, authorisations, erasures) append
//! through it, with aggregate type, event type and version taken from the
//! domain, and sequences it draws itself where history does not matter.

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use sextant_adapters::store::{append, Appended, Sequence, Writer};
use sextant_domain::metadata::Actor;
use sextant_domain::send::{Lead, LeadEvent};
use sextant_tests::{Parts, TestEnv, OPERATOR_KEY};
use uuid::Uuid;

const LEAD: &str = "lr_0123456789abcdef0123456789abcdef";

fn writer(client_id: Uuid) -> Writer {
    Writer {
        client_id,
        actor: Actor::Operator,
        correlation_id: "appender-test".into(),
    }
}

async fn lead_sequences(env: &TestEnv, aggregate_id: &str) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT sequence FROM events WHERE aggregate_type = 'lead' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(aggregate_id)
    .fetch_all(&env.pool)
    .await
    .expect("the lead's events")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_erasures_of_one_lead_at_once_all_succeed_each_with_its_own_sequence() {
    let env = TestEnv::new().await;
    let app = env.start_with(Parts::apis_only()).await;
    let (client, _) = app.register_client("Erased twice").await;
    let path = format!("/v1/clients/{client}/leads/{LEAD}/erase");
    let answers =
        join_all((0..8).map(|_| app.command(Method::POST, &path, Some(OPERATOR_KEY), None))).await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    }
    assert_eq!(
        lead_sequences(&env, &Lead::id(client, LEAD)).await,
        (1..=8).collect::<Vec<i64>>(),
        "every erasure recorded once, in order, with no gap"
    );
}

#[tokio::test]
async fn the_appender_writes_the_domains_aggregate_type_event_type_and_version() {
    let env = TestEnv::new().await;
    let client = Uuid::now_v7();
    let aggregate_id = Lead::id(client, LEAD);
    let event = LeadEvent::LeadErased {
        lead_ref: LEAD.into(),
    };
    let mut tx = env.pool.begin().await.expect("a transaction");
    let items = [Appended {
        aggregate_id: aggregate_id.clone(),
        sequence: Sequence::Next,
        event: &event,
    }];
    let first = append::<Lead>(&mut tx, &writer(client), &items)
        .await
        .expect("the first erasure");
    let second = append::<Lead>(&mut tx, &writer(client), &items)
        .await
        .expect("the second erasure");
    tx.commit().await.expect("commit");
    assert!(second > first, "{first} then {second}");
    let rows: Vec<(String, String, String, i64, serde_json::Value)> = sqlx::query_as(
        "SELECT aggregate_type, event_type, event_version, sequence, metadata FROM events \
         WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(&aggregate_id)
    .fetch_all(&env.pool)
    .await
    .expect("the appended rows");
    assert_eq!(rows.len(), 2);
    for (index, (aggregate_type, event_type, version, sequence, metadata)) in
        rows.into_iter().enumerate()
    {
        assert_eq!(aggregate_type, "lead");
        assert_eq!(event_type, "lead_erased");
        assert_eq!(version, "1");
        assert_eq!(sequence, index as i64 + 1);
        assert_eq!(metadata["actor"], "operator");
        assert_eq!(metadata["client_id"], client.to_string());
    }
}

#[tokio::test]
async fn an_append_at_a_sequence_already_taken_is_refused_by_the_log() {
    let env = TestEnv::new().await;
    let client = Uuid::now_v7();
    let event = LeadEvent::LeadErased {
        lead_ref: LEAD.into(),
    };
    let at_one = [Appended {
        aggregate_id: Lead::id(client, LEAD),
        sequence: Sequence::At(1),
        event: &event,
    }];
    let mut conn = env.pool.acquire().await.expect("a connection");
    append::<Lead>(&mut conn, &writer(client), &at_one)
        .await
        .expect("the first append at 1");
    let refused = append::<Lead>(&mut conn, &writer(client), &at_one)
        .await
        .expect_err("a second event at sequence 1");
    let code = refused
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("23505"), "{refused}");
}
