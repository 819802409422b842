//! The test harness: every end-to-end test gets its own Postgres database
//! (UUID-named, migrated, dropped afterwards) and its own JetStream stream
//! and subject prefix on the real NATS server, and runs the real services on
//! port 0 in-process.
//!
//! - [`TestEnv`]: a database and a stream; [`TestEnv::start`] runs the
//!   command API, relay, query API and projectors against them.
//! - [`PrivateNats`]: a nats-server of the test's own, to stop and restart.
//! - [`TcpCut`]: a TCP proxy that can cut every connection, to take a real
//!   Postgres "down" for one test without touching anybody else's.
//! - [`PrivatePostgres`]: a Postgres cluster of the test's own, to crash
//!   and restart.
//! - [`procs`]: the real service binaries as child processes, to `kill -9`.
//! - [`load`]: retrying load with a ledger, and the counting checks the
//!   fault suite proves "nothing lost, nothing duplicated" with.
//! - [`providers`]: the eight providers' documented webhooks, signed and
//!   delivered as each provider does.
//! - [`dump`]: a test database as `pg_dump` text.

pub mod bench;
pub mod browser;
pub mod checks;
pub mod cli;
pub mod dump;
pub mod fake_llm;
pub mod live;
pub mod load;
pub mod nats;
pub mod postgres;
pub mod procs;
pub mod providers;
pub mod proxy;
pub mod simulator;
pub mod smtp;

pub use nats::PrivateNats;
pub use postgres::PrivatePostgres;
pub use proxy::TcpCut;

use std::time::Duration;

use async_nats::jetstream;
use reqwest::StatusCode;
use serde_json::Value;
use sextant_adapters::config::{Settings, StreamSettings};
use sextant_adapters::stream::CloudEvent;
use sextant_adapters::{db, relay::Relay, stream};
use sextant_projections::Projector;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const OPERATOR_KEY: &str = "test-operator-key-0123456789";
/// The services' `SEXTANT_SECRETS_KEY` in tests.
pub const SECRETS_KEY: &str = "73657874616e7420746573742073656372657473206b65793a20756e73616665";

pub fn admin_database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn system_nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// `postgres://…/<db>` with the database name replaced.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, rest) = url.rsplit_once('/').unwrap_or((url, ""));
    let query = rest
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{base}/{db}{query}")
}

/// A fresh database and stream for one test.
pub struct TestEnv {
    pub db_name: String,
    /// The server's maintenance database, where this one was created.
    pub admin_url: String,
    pub database_url: String,
    pub pool: PgPool,
    pub nats_url: String,
    pub stream: StreamSettings,
}

impl TestEnv {
    pub async fn new() -> Self {
        Self::with_nats(&system_nats_url()).await
    }

    pub async fn with_nats(nats_url: &str) -> Self {
        Self::on(&admin_database_url(), nats_url).await
    }

    /// A fresh database on the Postgres server `admin` names (a
    /// [`PrivatePostgres`], say) and a fresh stream on `nats_url`.
    pub async fn on(admin: &str, nats_url: &str) -> Self {
        let id = Uuid::new_v4().simple().to_string();
        let db_name = format!("sextant_test_{id}");
        let admin = admin.to_owned();
        let mut conn = PgConnection::connect(&admin)
            .await
            .expect("connect to the admin database");
        sqlx::query(&format!("CREATE DATABASE {db_name}"))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        let database_url = with_database(&admin, &db_name);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(db::connect_options(&database_url).expect("a database URL"))
            .await
            .expect("connect to the test database");
        db::migrate(&pool).await.expect("migrate");
        Self {
            db_name,
            admin_url: admin,
            database_url,
            pool,
            nats_url: nats_url.to_owned(),
            stream: StreamSettings {
                name: format!("T_{id}"),
                subject_prefix: format!("t{id}.events"),
                ..StreamSettings::default()
            },
        }
    }

    pub fn settings(&self) -> Settings {
        let url = self.database_url.clone();
        let nats = self.nats_url.clone();
        let mut settings = Settings::from_lookup(|name| match name {
            "DATABASE_URL" => Some(url.clone()),
            "NATS_URL" => Some(nats.clone()),
            "SEXTANT_OPERATOR_KEY" => Some(OPERATOR_KEY.into()),
            "SEXTANT_SECRETS_KEY" => Some(SECRETS_KEY.into()),
            "SEXTANT_DATABASE_MAX_CONNECTIONS" => Some("8".into()),
            _ => None,
        })
        .expect("test settings");
        settings.stream = self.stream.clone();
        settings.min_position_wait = Duration::from_secs(5);
        settings
    }

    pub async fn jetstream(&self) -> jetstream::Context {
        stream::jetstream(stream::connect(&self.nats_url).await.expect("nats"))
    }

    pub async fn relay(&self) -> Relay {
        Relay::new(
            self.pool.clone(),
            self.database_url.clone(),
            self.jetstream().await,
            self.stream.clone(),
        )
    }

    /// Runs the command API (with a relay), the query API and every
    /// projector.
    pub async fn start(&self) -> Running {
        self.start_with(Parts::all()).await
    }

    pub async fn start_with(&self, parts: Parts) -> Running {
        let settings = self.settings();
        self.start_against(&settings, parts).await
    }

    /// As [`start_with`](Self::start_with), with settings of the caller's
    /// (a database URL through a [`TcpCut`], say).
    pub async fn start_against(&self, settings: &Settings, parts: Parts) -> Running {
        self.start_projecting(settings, parts, sextant_projections::all())
            .await
    }

    /// As [`start_against`](Self::start_against), with only `projections`
    /// running (when `parts` runs projectors at all): the benchmark
    /// compares ingest with and without one of them.
    pub async fn start_projecting(
        &self,
        settings: &Settings,
        parts: Parts,
        projections: Vec<std::sync::Arc<dyn sextant_projections::runtime::Projection>>,
    ) -> Running {
        sextant_adapters::telemetry::init_tracing(
            &std::env::var("SEXTANT_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            sextant_adapters::config::LogFormat::Pretty,
        )
        .expect("SEXTANT_TEST_LOG is a log filter");
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let pool = db::pool(settings).expect("pool");
        let js = stream::jetstream(stream::connect(&settings.nats_url).await.expect("nats"));

        let command_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let command_url = format!("http://{}", command_listener.local_addr().expect("addr"));
        let state = sextant_command_api::AppState::new(settings, pool.clone())
            .expect("the command API's state from its settings");
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            let _ =
                sextant_command_api::run(
                    command_listener,
                    state,
                    async move { stop.cancelled().await },
                )
                .await;
        }));
        if parts.relay {
            let relay = Relay::new(
                pool.clone(),
                settings.database_url(),
                js.clone(),
                settings.stream.clone(),
            );
            tasks.push(tokio::spawn(relay.run(shutdown.clone())));
        }

        let query_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let query_url = format!("http://{}", query_listener.local_addr().expect("addr"));
        let state = sextant_query_api::AppState::new(settings, pool.clone());
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            let _ = sextant_query_api::run(
                query_listener,
                state,
                async move { stop.cancelled().await },
            )
            .await;
        }));
        if parts.projectors {
            for projector in Projector::for_all(&pool, &js, &settings.stream, projections) {
                tasks.push(tokio::spawn(projector.run(shutdown.clone())));
            }
        }
        Running {
            command_url,
            query_url,
            shutdown,
            tasks,
            http: reqwest::Client::new(),
        }
    }

    /// Every event in the log, in position order.
    pub async fn event_ids(&self) -> Vec<(i64, Uuid)> {
        sqlx::query_as("SELECT global_position, event_id FROM events ORDER BY global_position")
            .fetch_all(&self.pool)
            .await
            .expect("read events")
    }

    /// Every message on this test's stream, in stream order.
    pub async fn stream_events(&self) -> Vec<CloudEvent> {
        let js = self.jetstream().await;
        let Ok(mut stream) = js.get_stream(&self.stream.name).await else {
            return Vec::new();
        };
        let last = stream
            .info()
            .await
            .expect("stream info")
            .state
            .last_sequence;
        let mut events = Vec::new();
        for seq in 1..=last {
            if let Ok(message) = stream.get_raw_message(seq).await {
                events.push(serde_json::from_slice(&message.payload).expect("a CloudEvent"));
            }
        }
        events
    }

    /// The stream's messages with their subjects.
    pub async fn stream_subjects(&self) -> Vec<String> {
        let js = self.jetstream().await;
        let Ok(mut stream) = js.get_stream(&self.stream.name).await else {
            return Vec::new();
        };
        let last = stream
            .info()
            .await
            .expect("stream info")
            .state
            .last_sequence;
        let mut subjects = Vec::new();
        for seq in 1..=last {
            if let Ok(message) = stream.get_raw_message(seq).await {
                subjects.push(message.subject.to_string());
            }
        }
        subjects
    }

    /// Waits (bounded) until `check` holds.
    pub async fn eventually<F, Fut>(&self, what: &str, timeout: Duration, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let started = std::time::Instant::now();
        while !check().await {
            assert!(
                started.elapsed() < timeout,
                "timed out waiting until {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn outbox_depth(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM event_outbox")
            .fetch_one(&self.pool)
            .await
            .expect("outbox depth")
    }

    pub async fn checkpoint(&self, projection: &str) -> i64 {
        sextant_projections::runtime::position_of(&self.pool, projection)
            .await
            .expect("checkpoint")
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let db_name = self.db_name.clone();
        let stream = self.stream.name.clone();
        let nats = self.nats_url.clone();
        let admin = self.admin_url.clone();
        self.pool.close_event();
        // Async work cannot run in drop; a short-lived runtime on its own
        // thread can.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
                if let Ok(Ok(client)) =
                    tokio::time::timeout(Duration::from_secs(2), async_nats::connect(&nats)).await
                {
                    let _ = jetstream::new(client).delete_stream(&stream).await;
                }
            });
        })
        .join();
    }
}

/// Which background parts [`TestEnv::start_with`] runs besides the two APIs.
#[derive(Debug, Clone, Copy)]
pub struct Parts {
    pub relay: bool,
    pub projectors: bool,
}

impl Parts {
    pub fn all() -> Self {
        Self {
            relay: true,
            projectors: true,
        }
    }

    /// The APIs and the relay: the stream fills, no read model moves.
    pub fn relay_only() -> Self {
        Self {
            relay: true,
            projectors: false,
        }
    }

    pub fn apis_only() -> Self {
        Self {
            relay: false,
            projectors: false,
        }
    }
}

/// Running services; stopped on drop.
pub struct Running {
    pub command_url: String,
    pub query_url: String,
    pub shutdown: CancellationToken,
    pub tasks: Vec<JoinHandle<()>>,
    pub http: reqwest::Client,
}

/// An HTTP answer: status, headers and JSON body (Null when not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn position(&self) -> i64 {
        self.headers
            .get("sextant-position")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no Sextant-Position header in {self:?}"))
    }

    pub fn content_type(&self) -> String {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }
}

impl Running {
    /// A handle on services running elsewhere (child processes, say):
    /// requests only, nothing to stop.
    pub fn at(command_url: String, query_url: String) -> Self {
        Self {
            command_url,
            query_url,
            shutdown: CancellationToken::new(),
            tasks: Vec::new(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        url: String,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.http.request(method, url);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        self.send(method, format!("{}{path}", self.command_url), key, body)
            .await
    }

    pub async fn query(&self, path: &str, key: Option<&str>) -> Answer {
        self.send(
            reqwest::Method::GET,
            format!("{}{path}", self.query_url),
            key,
            None,
        )
        .await
    }

    /// Posts `items` to a client's batch endpoint (`sends` or `outcomes`)
    /// as the operator, a thousand at a time, each batch taken whole;
    /// answers the highest position written.
    pub async fn ingest(&self, client: Uuid, path: &str, items: &[Value]) -> i64 {
        let mut position = 0;
        for chunk in items.chunks(1000) {
            let answer = self
                .command(
                    reqwest::Method::POST,
                    &format!("/v1/clients/{client}/{path}"),
                    Some(OPERATOR_KEY),
                    Some(serde_json::json!({ path: chunk })),
                )
                .await;
            assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
            assert_eq!(answer.body["errors"], 0, "{answer:?}");
            position = position.max(answer.position());
        }
        position
    }

    /// Registers a client as the operator; answers its id and the position.
    pub async fn register_client(&self, name: &str) -> (Uuid, i64) {
        let answer = self
            .command(
                reqwest::Method::POST,
                "/v1/clients",
                Some(OPERATOR_KEY),
                Some(serde_json::json!({
                    "name": name, "industry": "fintech", "company_size": "11-50", "region": "AU"
                })),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
        let id = answer.body["client_id"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .expect("client_id");
        (id, answer.position())
    }

    /// Issues a key of `role` for `client`; answers the key.
    pub async fn issue_key(&self, client: Uuid, role: &str) -> String {
        let answer = self
            .command(
                reqwest::Method::POST,
                &format!("/v1/clients/{client}/api-keys"),
                Some(OPERATOR_KEY),
                Some(serde_json::json!({ "role": role, "label": format!("{role} key") })),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
        answer.body["key"].as_str().expect("key").to_owned()
    }

    /// Registers a client in `co_pilot` mode (suggestions wait for a
    /// reviewer) with a key of each of `roles`; answers its id, the keys in
    /// the order of `roles` and the position of the mode's change.
    pub async fn co_pilot_client<const N: usize>(
        &self,
        name: &str,
        roles: [&str; N],
    ) -> (Uuid, [String; N], i64) {
        let (id, _) = self.register_client(name).await;
        let answer = self
            .command(
                reqwest::Method::PATCH,
                &format!("/v1/clients/{id}"),
                Some(OPERATOR_KEY),
                Some(serde_json::json!({ "permission_mode": "co_pilot" })),
            )
            .await;
        assert!(answer.status.is_success(), "{answer:?}");
        let mut keys: [String; N] = std::array::from_fn(|_| String::new());
        for (key, role) in keys.iter_mut().zip(roles) {
            *key = self.issue_key(id, role).await;
        }
        (id, keys, answer.position())
    }
}
