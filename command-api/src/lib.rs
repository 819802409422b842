//! The command API: every state change enters Sextant here, as a command on
//! an aggregate, and leaves as events in Postgres (and, through the relay
//! this process also runs, on NATS JetStream). Handlers admit the callers
//! their extractor's type names (before any body is read), parse, call a
//! use case of `sextant-application` and render its result; errors are the
//! shared [`sextant_application::ApiError`].
//!
//! - [`clients`]: client registration, profile, keys, webhooks, resources.
//! - [`context`]: context updates, reviews, rollback, documents.
//! - [`sends`]: sends and outcomes, authorisation, erasure.
//! - [`experiments`]: create and conclude experiments.
//! - [`platform`]: platform practices applied to consenting clients.
//! - [`suggestions`]: runs the suggestion engine on demand.
//! - [`alerts`]: acknowledges alerts; runs the alert detector on demand.
//! - [`delivery`]: publishes (and e-mails) the weekly reports due now.
//! - [`webhooks`]: provider webhooks, verified, deduplicated, mapped.
//! - [`run`]: serves a router on a listener until shutdown, so tests bind
//!   port 0 and run many instances side by side.
#![forbid(unsafe_code)]

pub mod alerts;
mod batch_counter;
pub mod clients;
pub mod context;
pub mod delivery;
pub mod experiments;
pub mod platform;
pub mod sends;
pub mod suggestions;
pub mod webhooks;

use std::future::Future;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use secrecy::SecretString;
use serde_json::json;
use sextant_adapters::config::{HttpSettings, Settings};
use sextant_adapters::http::{self, AuthState};
use sextant_adapters::llm::LlmClient;
use sextant_adapters::mail::Mailer;
use sextant_application::App;
use sqlx::PgPool;
use tokio::net::TcpListener;

/// The OpenAPI document of this service.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Said to a request this service has no route for that reads, or uses a
/// method a path does not take: most often a read sent to the wrong service.
pub const READS_ELSEWHERE: &str = "this is the command API, which only changes state; \
reads live on the query API (SEXTANT_QUERY_ADDR, 127.0.0.1:8081 by default), \
whose GET /openapi.json lists them";

#[derive(Clone)]
pub struct AppState {
    pub app: App,
    pub operator_key: SecretString,
    /// How long slow clients may hold a connection, and how many may.
    pub http: HttpSettings,
}

impl AppState {
    /// Fails when the LLM client cannot be built from its settings.
    pub fn new(settings: &Settings, pool: PgPool) -> anyhow::Result<Self> {
        // Install the metrics recorder now, not at the first scrape:
        // whatever is recorded before it is installed is lost.
        sextant_adapters::telemetry::metrics_handle();
        let llm = settings.llm.clone().map(LlmClient::new).transpose()?;
        let mailer = settings.smtp.clone().map(Mailer::new).transpose()?;
        if settings.secrets_key.is_none() {
            tracing::warn!(
                "SEXTANT_SECRETS_KEY is unset: webhook secrets cannot be set and every webhook delivery is refused"
            );
        }
        Ok(Self {
            app: App::new(pool, llm)
                .with_secrets_key(settings.secrets_key.clone())
                .with_mailer(mailer),
            operator_key: settings.operator_key.clone(),
            http: settings.http.clone(),
        })
    }
}

impl AuthState for AppState {
    fn pool(&self) -> &PgPool {
        &self.app.pool
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
        .merge(platform::router())
        .merge(alerts::router())
        .merge(delivery::router());
    http::service(api, get(readyz), OPENAPI, Some(READS_ELSEWHERE), state)
}

/// Serves until `shutdown` resolves, then drains in-flight requests.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.http.clone();
    http::serve(listener, router(state), limits, shutdown).await
}

/// Ready when the database answers: commands need nothing else (with NATS
/// down they are accepted and wait in the outbox).
async fn readyz(State(state): State<AppState>) -> Response {
    let database = sqlx::query("SELECT 1")
        .execute(&state.app.pool)
        .await
        .is_ok();
    let outbox = sextant_adapters::relay::backlog(&state.app.pool)
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
