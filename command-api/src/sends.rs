//! Sends and outcomes: batched ingest with per-item results, send
//! authorisation, erasure of a lead's personal data. The use cases are
//! [`sextant_application::sends`]'.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use sextant_adapters::http::{
    positioned, ClientScope, FieldError, Problem, RequestIds, StrictJson,
};
use sextant_application::sends::{self, Authorize, BatchResult, ItemResult, MAX_BATCH};
use sextant_application::{ApiError, Caller};
use sextant_domain::values::Role;

use crate::AppState;

/// Batches are larger than other bodies.
pub const BATCH_BODY_LIMIT: usize = 4 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    let batch_limit = axum::extract::DefaultBodyLimit::max(BATCH_BODY_LIMIT);
    Router::new()
        .route(
            "/v1/clients/{client_id}/sends",
            post(record_sends).layer(batch_limit),
        )
        .route(
            "/v1/clients/{client_id}/outcomes",
            post(record_outcomes).layer(batch_limit),
        )
        .route("/v1/clients/{client_id}/sends/authorize", post(authorize))
        .route(
            "/v1/clients/{client_id}/leads/{lead_ref}/erase",
            post(erase),
        )
}

const INGESTERS: &[Role] = &[Role::Ingest];

/// One item or `{"<key>": [...]}`; answers the items and whether it was a
/// batch.
fn items(body: Value, key: &str) -> Result<(Vec<Value>, bool), Problem> {
    match body {
        Value::Object(mut map) if map.len() == 1 && map.contains_key(key) => {
            match map.remove(key) {
                Some(Value::Array(items)) => {
                    if items.is_empty() {
                        return Err(Problem::invalid_field(key, "must hold at least one item"));
                    }
                    if items.len() > MAX_BATCH {
                        return Err(Problem::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "batch-too-large",
                            "Batch too large",
                            format!(
                                "a batch holds at most {MAX_BATCH} items; this one has {}",
                                items.len()
                            ),
                        ));
                    }
                    Ok((items, true))
                }
                _ => Err(Problem::invalid_field(key, "must be an array")),
            }
        }
        Value::Object(map) => Ok((vec![Value::Object(map)], false)),
        _ => Err(Problem::invalid_field(
            ".",
            format!("send one object or {{\"{key}\": [...]}}"),
        )),
    }
}

/// A batch answers 200 with a result per item; a single item answers as a
/// single command would: 201 recorded, 200 duplicate, 422 invalid.
fn answer(result: BatchResult, batch: bool) -> Result<Response, ApiError> {
    if !batch {
        return match result.items.first() {
            Some(ItemResult::Error { field, message }) => {
                Err(Problem::validation(vec![FieldError {
                    field: field.clone(),
                    message: message.clone(),
                }])
                .into())
            }
            Some(item) => {
                let status = if matches!(item, ItemResult::Recorded { .. }) {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                let mut body = serde_json::to_value(item).map_err(anyhow::Error::from)?;
                body["position"] = json!(result.position);
                Ok(positioned(status, &body, result.position))
            }
            None => Err(Problem::invalid_field(".", "nothing to record").into()),
        };
    }
    let (mut recorded, mut duplicates, mut errors) = (0, 0, 0);
    let mut results = Vec::with_capacity(result.items.len());
    for (index, item) in result.items.iter().enumerate() {
        match item {
            ItemResult::Recorded { .. } => recorded += 1,
            ItemResult::Duplicate { .. } => duplicates += 1,
            ItemResult::Error { .. } => errors += 1,
        }
        let mut v = serde_json::to_value(item).map_err(anyhow::Error::from)?;
        v["index"] = json!(index);
        results.push(v);
    }
    Ok(positioned(
        StatusCode::OK,
        &json!({
            "results": results,
            "recorded": recorded,
            "duplicates": duplicates,
            "errors": errors,
            "position": result.position,
        }),
        result.position,
    ))
}

async fn record_sends(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
    }: ClientScope,
    ids: RequestIds,
    StrictJson(body): StrictJson<Value>,
) -> Result<Response, ApiError> {
    principal.authorize(client_id, INGESTERS)?;
    let (raw, batch) = items(body, "sends")?;
    let caller = Caller::principal(&principal, ids.correlation_id);
    let result = sends::record_sends(&state.app, &caller, client_id, raw).await?;
    answer(result, batch)
}

async fn record_outcomes(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
    }: ClientScope,
    ids: RequestIds,
    StrictJson(body): StrictJson<Value>,
) -> Result<Response, ApiError> {
    principal.authorize(client_id, INGESTERS)?;
    let (raw, batch) = items(body, "outcomes")?;
    let caller = Caller::principal(&principal, ids.correlation_id);
    let result = sends::record_outcomes(&state.app, &caller, client_id, raw).await?;
    answer(result, batch)
}

async fn authorize(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
    }: ClientScope,
    ids: RequestIds,
    StrictJson(body): StrictJson<Authorize>,
) -> Result<Response, ApiError> {
    principal.authorize(client_id, INGESTERS)?;
    let caller = Caller::principal(&principal, ids.correlation_id);
    let authorized = sends::authorize(&state.app, &caller, client_id, body).await?;
    Ok(positioned(StatusCode::OK, &authorized, authorized.position))
}

async fn erase(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
    }: ClientScope,
    Path((_, lead_ref)): Path<(String, String)>,
    ids: RequestIds,
) -> Result<Response, ApiError> {
    principal.authorize(client_id, &[Role::Admin])?;
    let caller = Caller::principal(&principal, ids.correlation_id);
    let erased = sends::erase(&state.app, &caller, client_id, &lead_ref).await?;
    Ok(positioned(StatusCode::OK, &erased, erased.position))
}
