//! Sextant's review console: server-rendered pages over the two public
//! HTTP APIs, and nothing else (no database, no NATS). A person signs in
//! with an API key or the operator key; the console keeps the key in a
//! server-side session and calls the APIs with it, so the APIs decide what
//! the person may do, and the pages show only what the key's role may.
//!
//! - [`settings`]: flags and environment.
//! - [`api`]: the command and query APIs, as the signed-in key.
//! - [`session`]: sessions, cookies, the CSRF check on every POST.
//! - [`error`]: [`ConsoleError`], rendered as a page.
//! - [`view`]: the layout's data and JSON as rows and diffs.
//! - [`plot`]: charts drawn on the server as SVG (forest plots).
//! - [`pages`]: one router per page module.
//! - [`run`]: serves the console on a listener until shutdown.
#![forbid(unsafe_code)]

pub mod api;
pub mod error;
pub mod pages;
pub mod plot;
pub mod session;
pub mod settings;
pub mod view;

use std::future::Future;

use axum::extract::{Path, Request};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

pub use error::ConsoleError;
pub use settings::Settings;

use api::Api;
use session::Sessions;

/// The policy every answer carries: scripts, styles and connections from
/// the console itself only (no inline script or style, no `eval`), no
/// framing, forms posted only back to the console.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

#[derive(Clone)]
pub struct AppState {
    pub api: Api,
    pub sessions: Sessions,
    pub secure_cookies: bool,
    pub names: pages::Names,
}

impl AppState {
    pub fn new(settings: &Settings) -> Self {
        Self {
            api: Api::new(&settings.command_url, &settings.query_url),
            sessions: Sessions::new(settings.session_lifetime()),
            secure_cookies: settings.secure_cookies,
            names: pages::Names::default(),
        }
    }
}

pub fn router(state: AppState) -> Router {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/static/{file}", get(static_file))
        .merge(pages::router())
        .fallback(|| async { ConsoleError::NotFound("There is no such page.".into()) })
        .with_state(state);
    sextant_adapters::http::with_common_layers(app)
        .layer(axum::middleware::from_fn(security_headers))
}

/// Serves until `shutdown` resolves, then drains in-flight requests.
pub async fn run(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = AppState::new(&settings);
    sextant_adapters::http::serve(
        listener,
        router(state),
        sextant_adapters::config::HttpSettings::default(),
        shutdown,
    )
    .await
}

/// Ready when the query API answers: without it no page can be shown.
async fn readyz(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    if state.api.query_is_up().await {
        (StatusCode::OK, "ready").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the query API does not answer",
        )
            .into_response()
    }
}

async fn security_headers(req: Request, next: Next) -> Response {
    let is_static = req.uri().path().starts_with("/static/");
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !is_static {
        // Pages show what one session may see: never kept by a cache.
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

const HTMX: &str = include_str!("../static/htmx.min.js");
const CONSOLE_JS: &str = include_str!("../static/console.js");
const CONSOLE_CSS: &str = include_str!("../static/console.css");
const HTMX_LICENSE: &str = include_str!("../static/htmx.LICENSE");
/// axe-core, for the accessibility checks of the browser tests: served,
/// and referred to by no page.
const AXE: &str = include_str!("../static/axe.min.js");
const AXE_LICENSE: &str = include_str!("../static/axe.LICENSE");

async fn static_file(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "htmx.min.js" => (HTMX, "text/javascript; charset=utf-8"),
        "console.js" => (CONSOLE_JS, "text/javascript; charset=utf-8"),
        "console.css" => (CONSOLE_CSS, "text/css; charset=utf-8"),
        "htmx.LICENSE" => (HTMX_LICENSE, "text/plain; charset=utf-8"),
        "axe.min.js" => (AXE, "text/javascript; charset=utf-8"),
        "axe.LICENSE" => (AXE_LICENSE, "text/plain; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(kind)),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}
