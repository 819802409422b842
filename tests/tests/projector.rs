//! The projection runtime under faults: a batch that fails after delivery is
//! delivered again (never skipped), a poison event is parked while the rest
//! goes on, and only one projector per projection runs at a time.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use sextant_projections::replay;
use sextant_tests::{Parts, Running, TcpCut, TestEnv, OPERATOR_KEY};

async fn head(env: &TestEnv) -> i64 {
    env.event_ids().await.last().map(|(p, _)| *p).unwrap_or(0)
}

async fn audited(env: &TestEnv) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&env.pool)
        .await
        .expect("count")
}

async fn work(app: &Running, n: usize) {
    for i in 0..n {
        let (client, _) = app.register_client(&format!("Client {i}")).await;
        let answer = app
            .command(
                Method::PATCH,
                &format!("/v1/clients/{client}"),
                Some(OPERATOR_KEY),
                Some(json!({ "region": "NZ" })),
            )
            .await;
        assert!(answer.status.is_success(), "{answer:?}");
    }
}

fn proxied(env: &TestEnv, proxy: &TcpCut) -> String {
    let mut url = reqwest::Url::parse(&env.database_url).expect("url");
    let _ = url.set_port(Some(proxy.port));
    url.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_fails_after_delivery_is_delivered_again_not_skipped() {
    let env = TestEnv::new().await;
    let upstream = {
        let url = reqwest::Url::parse(&env.database_url).expect("url");
        format!(
            "{}:{}",
            url.host_str().unwrap_or("127.0.0.1"),
            url.port().unwrap_or(5432)
        )
    };
    let proxy = TcpCut::start(upstream).await;
    let writers = env
        .start_with(Parts {
            relay: true,
            projectors: false,
        })
        .await;
    let mut settings = env.settings();
    settings.database_url = proxied(&env, &proxy).into();
    let projectors = env
        .start_against(
            &settings,
            Parts {
                relay: false,
                projectors: true,
            },
        )
        .await;

    work(&writers, 3).await;
    let first = head(&env).await;
    env.eventually(
        "the projector catches up",
        Duration::from_secs(10),
        || async { env.checkpoint("audit").await == first },
    )
    .await;

    // The projector's database goes away while events keep arriving: the
    // batches it has been delivered fail.
    proxy.cut();
    work(&writers, 3).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restore();
    work(&writers, 2).await;

    // Well within JetStream's 30 s redelivery: nothing waits for it.
    let last = head(&env).await;
    env.eventually(
        "the projector catches up after the outage",
        Duration::from_secs(15),
        || async { env.checkpoint("audit").await == last },
    )
    .await;
    assert_eq!(
        audited(&env).await as usize,
        env.event_ids().await.len(),
        "an event was skipped"
    );
    let audit = sextant_projections::by_name("audit").expect("audit");
    let live = replay::checksum(&env.pool, audit.as_ref())
        .await
        .expect("checksum");
    replay::rebuild(&env.pool, audit.clone(), false)
        .await
        .expect("rebuild");
    assert_eq!(
        replay::checksum(&env.pool, audit.as_ref())
            .await
            .expect("checksum"),
        live
    );
    projectors.stop().await;
    writers.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_is_parked_with_its_reason_and_the_rest_goes_on() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    work(&app, 1).await;
    // An event the clients projection cannot read.
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('client', '00000000-0000-0000-0000-000000000001', 1, 'client_registered', '1', \
         '{\"type\": \"client_registered\", \"garbage\": true}', \
         '{\"client_id\": \"00000000-0000-0000-0000-000000000001\"}')",
    )
    .execute(&env.pool)
    .await
    .expect("insert poison");
    work(&app, 1).await;
    let last = head(&env).await;
    env.eventually(
        "the projections reading client events pass the poison event",
        Duration::from_secs(10),
        || async {
            env.checkpoint("clients").await == last && env.checkpoint("reports").await == last
        },
    )
    .await;
    let parked: Vec<(String, String)> =
        sqlx::query_as("SELECT projection, reason FROM projection_parked ORDER BY projection")
            .fetch_all(&env.pool)
            .await
            .expect("parked");
    // Each projection that reads client events parks it, on its own.
    let parkers: Vec<&str> = parked.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(parkers, ["clients", "reports"], "{parked:?}");
    assert!(
        parked
            .iter()
            .all(|(_, reason)| reason.contains("malformed")),
        "{parked:?}"
    );
    let clients: i64 = sqlx::query_scalar("SELECT count(*) FROM clients_view")
        .fetch_one(&env.pool)
        .await
        .expect("count");
    assert_eq!(clients, 2, "the events after the poison one were applied");
    let metrics = app
        .http
        .get(format!("{}/metrics", app.query_url))
        .send()
        .await
        .expect("metrics");
    let text = metrics.text().await.expect("a metrics body");
    assert!(text.contains("sextant_projection_parked_total"), "{text}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_running_projectors_apply_each_event_once() {
    let env = TestEnv::new().await;
    let first = env.start().await;
    let second = env
        .start_with(Parts {
            relay: false,
            projectors: true,
        })
        .await;
    work(&first, 6).await;
    let last = head(&env).await;
    env.eventually(
        "the projections catch up",
        Duration::from_secs(15),
        || async {
            env.checkpoint("audit").await == last && env.checkpoint("clients").await == last
        },
    )
    .await;
    assert_eq!(audited(&env).await as usize, env.event_ids().await.len());
    // Stop the leading process: the other takes over.
    first.stop().await;
    let writer = env
        .start_with(Parts {
            relay: true,
            projectors: false,
        })
        .await;
    work(&writer, 2).await;
    let last = head(&env).await;
    env.eventually(
        "the standby projector takes over",
        Duration::from_secs(15),
        || async { env.checkpoint("audit").await == last },
    )
    .await;
    assert_eq!(audited(&env).await as usize, env.event_ids().await.len());
    second.stop().await;
    writer.stop().await;
}

/// How many messages the projector's consumer has been sent.
async fn delivered(env: &TestEnv, consumer: &str) -> u64 {
    use async_nats::jetstream::consumer::pull;
    let js = env.jetstream().await;
    let stream = js.get_stream(&env.stream.name).await.expect("stream");
    let mut consumer = stream
        .get_consumer::<pull::Config>(consumer)
        .await
        .expect("consumer");
    consumer
        .info()
        .await
        .expect("info")
        .delivered
        .consumer_sequence
}

async fn events_of(env: &TestEnv, aggregate_type: &str) -> u64 {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = $1")
        .bind(aggregate_type)
        .fetch_one(&env.pool)
        .await
        .expect("count");
    n as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_send_is_delivered_once_other_projectors_get_only_their_type_and_every_checkpoint_reaches_the_head(
) {
    let env = TestEnv::new().await;
    let app = env.start().await;
    work(&app, 2).await;
    let client = app.register_client("Sender").await.0;
    // Five sends, then their outcomes, in the benchmark's shapes.
    let batches = [
        ("sends", sextant_tests::bench::ingest::sends_body(0, 5)),
        (
            "outcomes",
            sextant_tests::bench::ingest::outcomes_body(0, 5),
        ),
    ];
    for (path, body) in batches {
        let recorded = sextant_tests::bench::ingest::post_batch(&app, client, path, body)
            .await
            .expect("posted");
        assert_eq!(recorded, 5, "{path}");
    }

    // Every projection reaches the head, though most are sent none of the
    // last events (the checkpoint moves past them once nothing is pending).
    let head = head(&env).await;
    env.eventually(
        "every checkpoint at the head",
        Duration::from_secs(20),
        || async {
            let mut all = true;
            for projection in sextant_projections::all() {
                all &= env.checkpoint(projection.name()).await == head;
            }
            all
        },
    )
    .await;

    // Each consumer was sent its aggregate type's events and nothing else,
    // and the send projections ride the audit trail's consumer, which reads
    // every event: each send and outcome was delivered once.
    assert_eq!(events_of(&env, "send").await, 10);
    assert_eq!(
        delivered(&env, "sextant_projection_clients").await,
        events_of(&env, "client").await
    );
    assert_eq!(
        delivered(&env, "sextant_projection_context").await,
        events_of(&env, "client_context").await
    );
    let every: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&env.pool)
        .await
        .expect("count");
    assert_eq!(
        delivered(&env, "sextant_projection_audit_sends_patterns_reports").await,
        every as u64
    );
    let consumers: Vec<String> = {
        let js = env.jetstream().await;
        let stream = js.get_stream(&env.stream.name).await.expect("stream");
        let names = stream.consumer_names();
        futures::StreamExt::collect::<Vec<_>>(names)
            .await
            .into_iter()
            .map(|n| n.expect("consumer name"))
            .collect()
    };
    // One shared by the audit trail and every projection of sends, and one
    // per other aggregate type: clients, context, experiments, alerts,
    // report deliveries.
    assert_eq!(consumers.len(), 6, "{consumers:?}");
    app.stop().await;
}

/// The log's events, of one aggregate type or all, in position order.
async fn logged(
    env: &TestEnv,
    aggregate_type: Option<&str>,
) -> Vec<sextant_adapters::stream::RecordedEvent> {
    use sextant_adapters::stream::{RecordedEvent, EVENT_COLUMNS};
    let rows = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM events e WHERE $1::text IS NULL OR e.aggregate_type = $1 \
         ORDER BY e.global_position"
    ))
    .bind(aggregate_type)
    .fetch_all(&env.pool)
    .await
    .expect("events");
    rows.iter()
        .map(RecordedEvent::from_row)
        .collect::<Result<_, _>>()
        .expect("readable")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_delivered_twice_in_one_batch_is_applied_once() {
    use sextant_projections::runtime::{apply_batch, Incoming};
    let env = TestEnv::new().await;
    let app = env.start_with(Parts::apis_only()).await;
    let client = app.register_client("Counted").await.0;
    // Send number 2 and its outcome, a reply.
    for (path, body) in [
        ("sends", sextant_tests::bench::ingest::sends_body(2, 1)),
        (
            "outcomes",
            sextant_tests::bench::ingest::outcomes_body(2, 1),
        ),
    ] {
        let recorded = sextant_tests::bench::ingest::post_batch(&app, client, path, body)
            .await
            .expect("posted");
        assert_eq!(recorded, 1, "{path}");
    }
    let events = logged(&env, Some("send")).await;
    assert_eq!(events.len(), 2);
    // The reply delivered, then delivered again before the batch is applied
    // (a redelivery after a NATS restart).
    let incoming: Vec<Incoming> = [&events[0], &events[1], &events[1]]
        .into_iter()
        .map(|e| Incoming::Event(e.clone()))
        .collect();
    let patterns = sextant_projections::by_name("patterns").expect("patterns");
    let mut tx = env.pool.begin().await.expect("begin");
    apply_batch(&mut tx, patterns.as_ref(), &incoming, 3)
        .await
        .expect("applied");
    tx.commit().await.expect("commit");
    let (sends, replies, ..) = env.baseline_counts(client).await;
    assert_eq!((sends, replies), (1, 1));
    app.stop().await;
}

/// A projection of clients that takes any other event as malformed.
struct ClientsOnly;

#[async_trait::async_trait]
impl sextant_projections::Projection for ClientsOnly {
    fn name(&self) -> &'static str {
        "clients_only"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&["client"])
    }

    async fn apply(
        &self,
        _: &mut sqlx::PgConnection,
        event: &sextant_adapters::stream::RecordedEvent,
    ) -> Result<(), sextant_projections::ProjectionError> {
        match event.aggregate_type.as_str() {
            "client" => Ok(()),
            other => Err(sextant_projections::ProjectionError::Malformed(format!(
                "handed a {other} event"
            ))),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_riding_a_shared_consumer_is_handed_only_the_types_it_reads() {
    use sextant_projections::runtime::{apply_events, Incoming};
    let env = TestEnv::new().await;
    let app = env.start_with(Parts::apis_only()).await;
    let client = app.register_client("Mixed").await.0;
    let recorded = sextant_tests::bench::ingest::post_batch(
        &app,
        client,
        "sends",
        sextant_tests::bench::ingest::sends_body(0, 2),
    )
    .await
    .expect("posted");
    assert_eq!(recorded, 2);
    // Every event, as the consumer that reads every event delivers them.
    let incoming: Vec<Incoming> = logged(&env, None)
        .await
        .into_iter()
        .map(Incoming::Event)
        .collect();
    assert!(incoming
        .iter()
        .any(|e| matches!(e, Incoming::Event(e) if e.aggregate_type == "send")));
    let mut tx = env.pool.begin().await.expect("begin");
    let reached = apply_events(&mut tx, &ClientsOnly, &incoming, 0)
        .await
        .expect("applied");
    tx.commit().await.expect("commit");
    // It passed the sends without being handed them: nothing parked, and
    // its position is the head.
    assert_eq!(reached, head(&env).await);
    let parked: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_parked")
        .fetch_one(&env.pool)
        .await
        .expect("parked");
    assert_eq!(parked, 0);
    app.stop().await;
}
