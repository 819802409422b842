//! The command API: every state change enters Sextant here, as a command on
//! an aggregate, and leaves as events in Postgres (and, through the relay
//! this process also runs, on NATS JetStream).
//!
//! - [`error`]: the one error enum of this service, rendered as problem+json.
//! - [`clients`]: client registration, profile, keys, webhooks, resources.
//! - [`context`]: context updates, reviews, rollback, documents.
//! - [`sends`]: sends and outcomes, authorisation, erasure.
//! - [`experiments`]: create and conclude experiments.
//! - [`platform`]: platform practices applied to consenting clients.
//! - [`suggestions`]: runs the suggestion engine on demand.
//! - [`webhooks`]: provider webhooks, verified, deduplicated, mapped.
//! - [`run`]: serves a router on a listener until shutdown, so tests bind
//!   port 0 and run many instances side by side.
#![forbid(unsafe_code)]

pub mod clients;
pub mod context;
pub mod error;
pub mod experiments;
pub mod platform;
pub mod sends;
pub mod suggestions;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use secrecy::SecretString;
use serde_json::json;
use sextant_adapters::config::Settings;
use sextant_adapters::http::{self, AuthState};
use sextant_adapters::llm::LlmClient;
use sextant_adapters::store::CommandStore;
use sextant_domain::client::Client;
use sextant_domain::context::ClientContext;
use sextant_domain::experiment::Experiment;
use sqlx::PgPool;
use tokio::net::TcpListener;

/// The OpenAPI document of this service.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// ClientContext histories grow without bound: a snapshot every this many
/// events keeps loading flat.
const CONTEXT_SNAPSHOT_EVERY: usize = 25;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub operator_key: SecretString,
    pub clients: Arc<CommandStore<Client>>,
    pub context: Arc<CommandStore<ClientContext>>,
    pub experiments: Arc<CommandStore<Experiment>>,
    pub llm: Option<Arc<LlmClient>>,
}

impl AppState {
    pub fn new(settings: &Settings, pool: PgPool) -> Self {
        // Install the metrics recorder now, not at the first scrape:
        // whatever is recorded before it is installed is lost.
        sextant_adapters::telemetry::metrics_handle();
        Self {
            clients: CommandStore::new(pool.clone(), ()),
            context: CommandStore::with_snapshots(pool.clone(), (), CONTEXT_SNAPSHOT_EVERY),
            experiments: CommandStore::new(pool.clone(), ()),
            llm: settings.llm.clone().map(|s| Arc::new(LlmClient::new(s))),
            operator_key: settings.operator_key.clone(),
            pool,
        }
    }
}

impl AppState {
    /// The client, which must exist. Read from its aggregate, not a
    /// projection: policies must see the client as it is now.
    pub async fn registered_client(
        &self,
        client_id: uuid::Uuid,
    ) -> Result<Client, error::ApiError> {
        let client = self.clients.load(&client_id.to_string()).await?;
        if client.is_registered() {
            Ok(client)
        } else {
            Err(http::Problem::client_not_found().into())
        }
    }
}

/// Executes `command` on the client-keyed aggregate of `store` (its id is
/// the client's) on behalf of the caller.
pub(crate) async fn execute<A>(
    store: &CommandStore<A>,
    client_id: uuid::Uuid,
    principal: &http::Principal,
    ids: &http::RequestIds,
    command: A::Command,
) -> Result<sextant_adapters::store::Committed<A::Event>, error::ApiError>
where
    A: cqrs_es::Aggregate,
    A::Command: Clone,
    A::Error: error::DomainRefusal,
{
    let meta = sextant_adapters::store::CommandMeta::new(
        client_id,
        principal.actor(),
        ids.correlation_id.clone(),
    );
    Ok(store
        .execute(&client_id.to_string(), command, &meta)
        .await?)
}

impl AuthState for AppState {
    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn operator_key(&self) -> &SecretString {
        &self.operator_key
    }
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(clients::router())
        .merge(context::router())
        .merge(sends::router())
        .merge(webhooks::router())
        .merge(suggestions::router())
        .merge(experiments::router())
        .merge(platform::router());
    http::service(api, get(readyz), OPENAPI, state)
}

/// Serves until `shutdown` resolves, then drains in-flight requests.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    http::serve(listener, router(state), shutdown).await
}

/// Ready when the database answers: commands need nothing else (with NATS
/// down they are accepted and wait in the outbox).
async fn readyz(State(state): State<AppState>) -> Response {
    let database = sqlx::query("SELECT 1").execute(&state.pool).await.is_ok();
    let outbox = sextant_adapters::relay::backlog(&state.pool)
        .await
        .ok()
        .map(|(depth, _)| depth);
    let status = if database {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if database { "ready" } else { "unavailable" },
            "database": if database { "up" } else { "down" },
            "outbox_depth": outbox,
        })),
    )
        .into_response()
}
