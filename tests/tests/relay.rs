//! The relay's guarantees: nothing lost, nothing published twice, no event
//! skipped, one active relay, NATS outages survived.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use sextant_adapters::relay::LEADER_LOCK;
use sextant_tests::{Parts, PrivateNats, Running, TestEnv, OPERATOR_KEY};
use tokio_util::sync::CancellationToken;

async fn some_commands(app: &Running, clients: usize) -> usize {
    let mut events = 0;
    for i in 0..clients {
        let (client, _) = app.register_client(&format!("Client {i}")).await;
        app.issue_key(client, "reader").await;
        let answer = app
            .command(
                Method::PATCH,
                &format!("/v1/clients/{client}"),
                Some(OPERATOR_KEY),
                Some(json!({ "region": "NZ" })),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        events += 3;
    }
    events
}

/// `env` with a stream that forgets message ids after a second.
fn with_short_duplicate_window(mut env: TestEnv) -> TestEnv {
    env.stream.duplicate_window = Duration::from_secs(1);
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_between_publishing_and_marking_republishes_nothing_and_loses_nothing() {
    // A short duplicate window: the restart below comes after it has passed,
    // so JetStream's own dedupe cannot be what saves us.
    let env = with_short_duplicate_window(TestEnv::new().await);
    let app = env
        .start_with(Parts {
            relay: false,
            projectors: true,
        })
        .await;
    let produced = some_commands(&app, 3).await;

    // The first relay publishes a batch and "dies" before marking it.
    let doomed = env.relay().await;
    let store_id = sextant_adapters::db::store_id(&env.pool)
        .await
        .expect("store id");
    sextant_adapters::stream::ensure_stream(&env.jetstream().await, &env.stream, store_id)
        .await
        .expect("stream");
    let batch = doomed.next_batch().await.expect("batch");
    assert_eq!(batch.len(), produced);
    doomed.publish(0, &batch).await.expect("publish");
    drop(doomed);
    assert_eq!(
        env.outbox_depth().await,
        produced as i64,
        "nothing was marked"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // More work arrives, then a new relay starts.
    let more = some_commands(&app, 1).await;
    let stop = CancellationToken::new();
    let relay = tokio::spawn(env.relay().await.run(stop.clone()));
    let published = env.assert_stream_matches_log().await;
    assert_eq!(published.len(), produced + more);

    // The projection saw each event once.
    let head = env.event_ids().await.last().map(|(p, _)| *p).unwrap_or(0);
    env.eventually(
        "the audit projection catches up",
        Duration::from_secs(10),
        || async { env.checkpoint("audit").await == head },
    )
    .await;
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&env.pool)
        .await
        .expect("count");
    assert_eq!(audited as usize, produced + more);
    stop.cancel();
    let _ = relay.await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_accepted_while_nats_is_down_and_reach_the_stream_once_it_returns() {
    let mut nats = PrivateNats::start().await;
    let env = TestEnv::with_nats(&nats.url()).await;
    let app = env.start().await;
    let before = some_commands(&app, 1).await;
    env.eventually(
        "the first events are published",
        Duration::from_secs(10),
        || async { env.outbox_depth().await == 0 },
    )
    .await;

    nats.stop().await;
    let during = some_commands(&app, 5).await;
    assert_eq!(
        env.outbox_depth().await,
        during as i64,
        "the outbox buffers while NATS is down"
    );
    // Commands are still ready, and say how many events wait.
    let ready = app.command(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["outbox_depth"], during as i64, "{ready:?}");
    // Queries still serve, and say how stale they are.
    let ready = app.query("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert!(
        ready.body["projections"]["audit"]["lag"]
            .as_i64()
            .unwrap_or(0)
            > 0,
        "{ready:?}"
    );
    let listed = app.query("/v1/clients", Some(OPERATOR_KEY)).await;
    assert_eq!(listed.status, StatusCode::OK);

    tokio::time::sleep(Duration::from_secs(1)).await;
    nats.restart().await;
    let published = env.assert_stream_matches_log().await;
    assert_eq!(published.len(), before + during);
    let head = published.last().map(|e| e.sextantposition).unwrap_or(0);
    env.eventually(
        "projections catch up after the outage",
        Duration::from_secs(30),
        || async {
            env.checkpoint("audit").await == head && env.checkpoint("clients").await == head
        },
    )
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_transaction_among_concurrent_writers_is_neither_skipped_nor_reordered() {
    let env = TestEnv::new().await;
    let app = env.start_with(Parts::relay_only()).await;

    // A transaction that appends an event, then dawdles before committing.
    let slow_pool = env.pool.clone();
    let (inserted_tx, inserted_rx) = tokio::sync::oneshot::channel();
    let slow = tokio::spawn(async move {
        let mut tx = slow_pool.begin().await.expect("begin");
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             VALUES ('probe', 'slow', 1, 'probed', '1', '{}', '{}')",
        )
        .execute(&mut *tx)
        .await
        .expect("insert");
        let _ = inserted_tx.send(());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        tx.commit().await.expect("commit");
    });
    inserted_rx.await.expect("the slow transaction inserted");

    // Meanwhile, many writers.
    let app = std::sync::Arc::new(app);
    let mut writers = Vec::new();
    for w in 0..6 {
        let app = app.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..5 {
                app.register_client(&format!("Writer {w}.{i}")).await;
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    slow.await.expect("slow transaction");
    let published = env.assert_stream_matches_log().await;
    assert_eq!(published.len(), 31);
    assert!(published.iter().any(|e| e.sextantaggregate == "probe"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_at_once_publish_each_event_once_and_only_one_leads() {
    let env = TestEnv::new().await;
    let app = env.start_with(Parts::apis_only()).await;
    let stop = CancellationToken::new();
    let first = tokio::spawn(env.relay().await.run(stop.clone()));
    let second = tokio::spawn(env.relay().await.run(stop.clone()));

    let produced = some_commands(&app, 8).await;
    let published = env.assert_stream_matches_log().await;
    assert_eq!(published.len(), produced);
    let leaders = || async {
        let held: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE d.datname = current_database() AND l.locktype = 'advisory' AND l.granted \
             AND ((l.classid::bigint << 32) | l.objid::bigint) = $1",
        )
        .bind(LEADER_LOCK)
        .fetch_one(&env.pool)
        .await
        .expect("locks");
        held
    };
    env.eventually("one relay leads", Duration::from_secs(10), || async {
        leaders().await == 1
    })
    .await;
    // ... and only one: the other stands by, however long we watch.
    for _ in 0..10 {
        assert!(leaders().await <= 1, "two relays lead at once");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    stop.cancel();
    let _ = first.await;
    let _ = second.await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_refuses_a_stream_that_belongs_to_another_event_store_and_keeps_its_outbox() {
    let first = TestEnv::new().await;
    let app = first.start().await;
    let produced = some_commands(&app, 1).await;
    first.assert_stream_matches_log().await;

    // A second database, misconfigured to use the first one's stream.
    let mut second = TestEnv::new().await;
    second.stream = first.stream.clone();
    let other = second.start_with(Parts::relay_only()).await;
    let (_, position) = other.register_client("Elsewhere").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        second.outbox_depth().await,
        1,
        "the event waits in the outbox, not lost"
    );
    assert_eq!(
        first.stream_events().await.len(),
        produced,
        "nothing foreign was published"
    );
    assert!(position >= 1);
    other.stop().await;
    // Dropping `second` must not delete the first store's stream.
    second.stream.name = format!("{}_gone", second.stream.name);
    app.stop().await;
}

/// The stream the relay of `env` publishes to, made as the relay makes it.
async fn ensured_stream(env: &TestEnv) -> async_nats::jetstream::stream::Stream {
    let store_id = sextant_adapters::db::store_id(&env.pool)
        .await
        .expect("store id");
    sextant_adapters::stream::ensure_stream(&env.jetstream().await, &env.stream, store_id)
        .await
        .expect("stream")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_that_does_not_follow_the_streams_last_event_is_refused_so_no_gap_forms() {
    let env = TestEnv::new().await;
    let app = env.start_with(Parts::apis_only()).await;
    let produced = some_commands(&app, 3).await;
    let mut stream = ensured_stream(&env).await;
    let relay = env.relay().await;
    let batch = relay.next_batch().await.expect("batch");
    assert_eq!(batch.len(), produced);
    let last = relay
        .publish(0, &batch[..3])
        .await
        .expect("the head of a batch");
    assert_eq!(last, 3);
    // The tail of a pipelined batch whose middle died with a NATS server
    // (found by the fault suite): chained to a sequence the stream does not
    // end with, it must not land.
    let stray = relay.publish(6, &batch[6..]).await;
    assert!(stray.is_err(), "a message that does not follow was stored");
    assert_eq!(
        stream.info().await.expect("info").state.messages,
        3,
        "nothing after the gap was stored"
    );
    // A relay then publishes the rest, in order, once.
    let stop = CancellationToken::new();
    let running = tokio::spawn(relay.run(stop.clone()));
    let published = env.assert_stream_matches_log().await;
    assert_eq!(published.len(), produced);
    stop.cancel();
    let _ = running.await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_lost_events_it_acknowledged_gets_them_published_again() {
    // JetStream remembers message ids for the duplicate window even when
    // the messages are gone; a short one lets the republication land.
    let env = with_short_duplicate_window(TestEnv::new().await);
    let app = env.start_with(Parts::relay_only()).await;
    let produced = some_commands(&app, 2).await;
    env.assert_stream_matches_log().await;
    app.stop().await;
    // The stream loses what it had acknowledged (a NATS store lost or
    // wiped), while the relay's cursor says all of it is there.
    ensured_stream(&env).await.purge().await.expect("purge");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let app = env.start_with(Parts::relay_only()).await;
    let more = some_commands(&app, 1).await;
    let published = env.assert_stream_matches_log().await;
    assert_eq!(published.len(), produced + more);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_goes_on_after_nats_restarts_long_after_the_last_publication() {
    let mut nats = PrivateNats::start().await;
    // A restarted server remembers message ids only from within the
    // duplicate window: with a one-second window, a restart two seconds
    // after the last publication finds none. Chained by message id, the
    // relay was refused for ever then; chained by sequence, it goes on.
    let env = with_short_duplicate_window(TestEnv::with_nats(&nats.url()).await);
    let app = env.start_with(Parts::relay_only()).await;
    let before = some_commands(&app, 1).await;
    env.assert_stream_matches_log().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    nats.stop().await;
    nats.restart().await;
    let after = some_commands(&app, 2).await;
    let published = env.assert_stream_matches_log().await;
    assert_eq!(published.len(), before + after);
    app.stop().await;
}
