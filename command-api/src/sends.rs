//! Sends and outcomes (API.md): batched ingest with per-item results, send
//! authorisation against suppression, caps and tiers, and erasure of a
//! lead's personal data.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use chrono::Utc;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use sextant_adapters::http::{
    positioned, ClientScope, FieldError, Principal, Problem, RequestIds, StrictJson,
};
use sextant_adapters::ingest::{self, ItemResult, Writer, MAX_BATCH};
use sextant_domain::aggregate_types;
use sextant_domain::send::input::{parse_lead_ref, Invalid, OutcomeInput, SendInput};
use sextant_domain::send::{
    refusals, AuthorizationEvent, AuthorizationFacts, Channel, LeadEvent, Refusal, Tier,
};
use sextant_domain::values::{ClientStatus, Role};

use crate::error::ApiError;
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

pub(crate) fn writer(client_id: Uuid, principal: &Principal, ids: &RequestIds) -> Writer {
    Writer {
        client_id,
        actor: principal.actor(),
        correlation_id: ids.correlation_id.clone(),
    }
}

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

/// Parses one item, naming the failing field.
fn parse_item<T: DeserializeOwned>(item: Value) -> Result<T, Invalid> {
    serde_path_to_error::deserialize(item).map_err(|err| {
        let field = err.path().to_string();
        Invalid {
            field: if field.is_empty() { ".".into() } else { field },
            message: err.into_inner().to_string(),
        }
    })
}

/// A batch answers 200 with a result per item; a single item answers as a
/// single command would: 201 recorded, 200 duplicate, 422 invalid.
fn answer(result: ingest::BatchResult, batch: bool) -> Result<Response, ApiError> {
    let count = |status: &str| {
        result
            .items
            .iter()
            .filter(|r| {
                matches!(
                    (status, r),
                    ("recorded", ItemResult::Recorded { .. })
                        | ("duplicate", ItemResult::Duplicate { .. })
                        | ("error", ItemResult::Error { .. })
                )
            })
            .count()
    };
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
    let results: Vec<Value> = result
        .items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let mut v = serde_json::to_value(item).unwrap_or(Value::Null);
            v["index"] = json!(index);
            v
        })
        .collect();
    Ok(positioned(
        StatusCode::OK,
        &json!({
            "results": results,
            "recorded": count("recorded"),
            "duplicates": count("duplicate"),
            "errors": count("error"),
            "position": result.position,
        }),
        result.position,
    ))
}

fn ingest_error(err: ingest::IngestError) -> ApiError {
    if err.is_unavailable() {
        ApiError::Unavailable
    } else if matches!(err, ingest::IngestError::Contended) {
        Problem::conflict(err.to_string()).into()
    } else {
        ApiError::Internal(err.into())
    }
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
    state.registered_client(client_id).await?;
    let key = ingest::lead_key(&state.pool, client_id).await?;
    let now = Utc::now();
    let parsed = raw
        .into_iter()
        .map(|item| {
            parse_item::<SendInput>(item)
                .and_then(|input| input.into_facts(now, |email| ingest::lead_ref(&key, email)))
        })
        .collect();
    let result = ingest::record_sends(&state.pool, &writer(client_id, &principal, &ids), parsed)
        .await
        .map_err(ingest_error)?;
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
    state.registered_client(client_id).await?;
    let now = Utc::now();
    let parsed = raw
        .into_iter()
        .map(|item| parse_item::<OutcomeInput>(item).and_then(|input| input.into_facts(now)))
        .collect();
    let result = ingest::record_outcomes(&state.pool, &writer(client_id, &principal, &ids), parsed)
        .await
        .map_err(ingest_error)?;
    answer(result, batch)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorize {
    lead_ref: String,
    channel: Channel,
    resource: String,
    lead_tier: Tier,
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
    let lead_ref =
        parse_lead_ref(&body.lead_ref).map_err(|e| Problem::invalid_field(&e.field, e.message))?;
    let resource = body.resource.trim().to_lowercase();
    if resource.is_empty() || resource.len() > 320 {
        return Err(Problem::invalid_field("resource", "must be 1 to 320 characters").into());
    }
    let client = state.registered_client(client_id).await?;
    let cap = client
        .daily_cap(body.channel.resource_kind(), &resource)
        .map(|c| c.value());

    let mut tx = state.pool.begin().await?;
    let suppressed: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM suppression_list WHERE client_id = $1 AND lead_ref = $2)",
    )
    .bind(client_id)
    .bind(&lead_ref)
    .fetch_one(&mut *tx)
    .await?;
    let used: Option<i32> = sqlx::query_scalar(
        "SELECT used FROM resource_usage WHERE client_id = $1 AND resource = $2 AND day = current_date",
    )
    .bind(client_id)
    .bind(&resource)
    .fetch_optional(&mut *tx)
    .await?;
    let facts = AuthorizationFacts {
        suppressed,
        client_suspended: client.status() == ClientStatus::Suspended,
        tier: body.lead_tier,
        channel: body.channel,
        cap,
        used_today: used.unwrap_or(0).max(0) as u32,
    };
    let mut reasons = refusals(&facts);
    if reasons.is_empty() {
        // Counted once, atomically: of any number of concurrent requests,
        // only as many as the cap allows get a row back.
        sqlx::query(
            "INSERT INTO resource_usage (client_id, resource, day, used) VALUES ($1, $2, current_date, 0) \
             ON CONFLICT DO NOTHING",
        )
        .bind(client_id)
        .bind(&resource)
        .execute(&mut *tx)
        .await?;
        let counted: Option<i32> = sqlx::query_scalar(
            "UPDATE resource_usage SET used = used + 1 \
             WHERE client_id = $1 AND resource = $2 AND day = current_date AND used < $3 RETURNING used",
        )
        .bind(client_id)
        .bind(&resource)
        .bind(cap.unwrap_or(0) as i32)
        .fetch_optional(&mut *tx)
        .await?;
        if counted.is_none() {
            reasons.push(Refusal::DailyCapReached);
        }
    }
    let authorization_id = Uuid::now_v7();
    let event = AuthorizationEvent::AuthorizationDecided {
        authorization_id,
        lead_ref,
        channel: body.channel,
        resource,
        tier: body.lead_tier,
        permit: reasons.is_empty(),
        reasons: reasons.clone(),
    };
    let payload = serde_json::to_value(&event).map_err(anyhow::Error::from)?;
    let position = ingest::append_one(
        &mut tx,
        &writer(client_id, &principal, &ids),
        aggregate_types::AUTHORIZATION,
        &authorization_id.to_string(),
        1,
        "authorization_decided",
        &payload,
    )
    .await?;
    tx.commit().await?;
    Ok(positioned(
        StatusCode::OK,
        &json!({
            "authorization_id": authorization_id,
            "permit": reasons.is_empty(),
            "reasons": reasons,
            "position": position,
        }),
        position,
    ))
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
    let lead_ref = parse_lead_ref(&lead_ref).map_err(|_| Problem::not_found("no such lead"))?;
    state.registered_client(client_id).await?;
    let mut tx = state.pool.begin().await?;
    let emails: Vec<Option<String>> = sqlx::query_scalar(
        "DELETE FROM lead_identities WHERE client_id = $1 AND lead_ref = $2 RETURNING email",
    )
    .bind(client_id)
    .bind(&lead_ref)
    .fetch_all(&mut *tx)
    .await?;
    let identities = emails.len();
    let emails: Vec<String> = emails.into_iter().flatten().collect();
    let subjects = sqlx::query("DELETE FROM send_content WHERE client_id = $1 AND lead_ref = $2")
        .bind(client_id)
        .bind(&lead_ref)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    // Payloads we could not map may name the lead too.
    let patterns: Vec<String> = emails
        .iter()
        .map(|e| {
            format!(
                "%{}%",
                e.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            )
        })
        .collect();
    let dead_letters = sqlx::query(
        "DELETE FROM webhook_dead_letters WHERE client_id = $1 AND payload ILIKE ANY($2)",
    )
    .bind(client_id)
    .bind(&patterns)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let aggregate_id = format!("{client_id}:{lead_ref}");
    let sequence: i64 = sqlx::query_scalar(
        "SELECT COALESCE(max(sequence), 0) + 1 FROM events WHERE aggregate_type = $1 AND aggregate_id = $2",
    )
    .bind(aggregate_types::LEAD)
    .bind(&aggregate_id)
    .fetch_one(&mut *tx)
    .await?;
    let payload = serde_json::to_value(LeadEvent::LeadErased {
        lead_ref: lead_ref.clone(),
    })
    .map_err(anyhow::Error::from)?;
    let position = ingest::append_one(
        &mut tx,
        &writer(client_id, &principal, &ids),
        aggregate_types::LEAD,
        &aggregate_id,
        sequence,
        "lead_erased",
        &payload,
    )
    .await?;
    tx.commit().await?;
    Ok(positioned(
        StatusCode::OK,
        &json!({
            "lead_ref": lead_ref,
            "erased": { "identities": identities, "subjects": subjects, "dead_letters": dead_letters },
            "position": position,
        }),
        position,
    ))
}
