//! Provider webhooks: `POST /v1/webhooks/{provider}/{client_id}`. What a
//! delivery becomes is [`sextant_application::webhooks::receive`]'s.

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::json;
use uuid::Uuid;

use sextant_adapters::http::{positioned, Problem, RequestIds};
use sextant_adapters::webhooks::WebhookRequest;
use sextant_application::webhooks::{self, Received};
use sextant_application::ApiError;
use sextant_domain::values::Provider;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/webhooks/{provider}/{client_id}", post(receive))
}

/// The URL the provider called, as it signed it: behind a proxy, the
/// forwarded scheme and host.
fn called_url(headers: &HeaderMap, uri: &axum::http::Uri) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let scheme = header("x-forwarded-proto").unwrap_or_else(|| "http".into());
    let host = header("x-forwarded-host")
        .or_else(|| header("host"))
        .unwrap_or_else(|| "localhost".into());
    format!("{scheme}://{host}{uri}")
}

async fn receive(
    State(state): State<AppState>,
    Path((provider, client_id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    method: Method,
    headers: HeaderMap,
    ids: RequestIds,
    body: Bytes,
) -> Result<Response, ApiError> {
    let provider = Provider::parse(&provider).ok_or_else(|| {
        Problem::not_found(format!(
            "unknown provider; known: {}",
            Provider::ALL.map(Provider::as_str).join(", ")
        ))
    })?;
    let client_id = Uuid::try_parse(&client_id).map_err(|_| Problem::client_not_found())?;
    let url = called_url(&headers, &uri);
    let request = WebhookRequest {
        method: method.as_str(),
        url: &url,
        headers: &headers,
        body: &body,
    };
    let received = webhooks::receive(
        &state.app,
        provider,
        client_id,
        &request,
        &ids.correlation_id,
    )
    .await?;
    Ok(match received {
        Received::Duplicate { position } => positioned(
            StatusCode::OK,
            &json!({ "duplicate": true, "position": position }),
            position,
        ),
        Received::DeadLettered(counts) => {
            positioned(StatusCode::ACCEPTED, &counts, counts.position)
        }
        Received::Recorded(counts) => positioned(StatusCode::OK, &counts, counts.position),
    })
}
