//! The query API: reads read models only, never the event log's aggregates.
//! This process also runs the projections that build those read models.
//! Handlers admit the callers their extractor's type names (before the
//! query string is read), parse, call a query of
//! `sextant_application::read_model` and render; errors are the shared
//! [`sextant_application::ApiError`].
//!
//! - [`consistency`]: `min_position` waits and the `Sextant-Position` header.
//! - [`clients`]: client list, client detail, audit trail.
//! - [`context`]: the context now and in the past, agent views, versions,
//!   diffs, the approval queue.
//! - [`sends`]: the suppression list.
//! - [`experiments`]: results with the decision rule, assignment.
//! - [`patterns`]: the pattern tables of the learning loop.
//! - [`alerts`]: a client's alerts, every client's alerts.
//! - [`deliveries`]: a client's published weekly reports and their e-mail.
//! - [`identity`]: who the presented key is.
//! - [`run`]: serves a router on a listener until shutdown.
#![forbid(unsafe_code)]

pub mod alerts;
pub mod clients;
pub mod consistency;
pub mod context;
pub mod deliveries;
pub mod experiments;
pub mod identity;
pub mod patterns;
pub mod reports;
pub mod sends;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use secrecy::SecretString;
use serde_json::json;
use sextant_adapters::config::{HttpSettings, Settings};
use sextant_adapters::http::{self, AuthState};
use sextant_projections::Projection;
use sqlx::PgPool;
use tokio::net::TcpListener;

pub const OPENAPI: &str = include_str!("../openapi.json");

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub operator_key: SecretString,
    /// How long slow clients may hold a connection, and how many may.
    pub http: HttpSettings,
    pub min_position_wait: Duration,
    pub projections: Arc<Vec<Arc<dyn Projection>>>,
}

impl AppState {
    pub fn new(settings: &Settings, pool: PgPool) -> Self {
        // Install the metrics recorder now, not at the first scrape:
        // whatever is recorded before it is installed is lost.
        sextant_adapters::telemetry::metrics_handle();
        Self {
            pool,
            operator_key: settings.operator_key.clone(),
            min_position_wait: settings.min_position_wait,
            projections: Arc::new(sextant_projections::all()),
            http: settings.http.clone(),
        }
    }
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
        .merge(patterns::router())
        .merge(reports::router())
        .merge(experiments::router())
        .merge(alerts::router())
        .merge(deliveries::router())
        .merge(identity::router());
    // Its own wording: every query is a read already.
    http::service(api, get(readyz), OPENAPI, None, state)
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

/// Ready when the database answers; reports every projection's position
/// and lag behind the event log, so staleness is visible.
async fn readyz(State(state): State<AppState>) -> Response {
    let head = sextant_adapters::db::head_position(&state.pool).await;
    let Ok(head) = head else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "database": "down" })),
        )
            .into_response();
    };
    let mut projections = serde_json::Map::new();
    for projection in state.projections.iter() {
        let position = sextant_projections::runtime::position_of(&state.pool, projection.name())
            .await
            .unwrap_or(0);
        let lag = (head - position).max(0);
        metrics::gauge!("sextant_projection_lag_events", "projection" => projection.name())
            .set(lag as f64);
        projections.insert(
            projection.name().to_owned(),
            json!({ "position": position, "lag": lag }),
        );
    }
    (
        StatusCode::OK,
        Json(json!({
            "status": "ready",
            "database": "up",
            "head": head,
            "projections": projections,
        })),
    )
        .into_response()
}
