//! Sends and outcomes: batched ingest with a result per item ([`ingest`]),
//! send authorisation against suppression, caps and tiers, and erasure of a
//! lead's personal data (`erasure`).

mod erasure;
mod experiments;
pub mod ingest;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use sextant_adapters::http::Problem;
use sextant_adapters::store::{append, Appended, Sequence};
use sextant_domain::send::input::{parse_lead_ref, Invalid, OutcomeInput, SendInput};
use sextant_domain::send::{
    refusals, Authorization, AuthorizationFacts, Channel, DecideAuthorization, Refusal, Tier,
};
use sextant_domain::values::ClientStatus;

use crate::{ApiError, App, Caller, Result};

pub use erasure::{erase, Erased, ErasedCounts};
pub use ingest::{BatchResult, ItemResult, MAX_BATCH};

/// Parses one item, naming the failing field (a missing one by its own
/// name, not the path of the object that lacks it).
fn parse_item<T: serde::de::DeserializeOwned>(item: Value) -> Result<T, Invalid> {
    serde_path_to_error::deserialize(item).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        Invalid {
            field: sextant_adapters::http::error_field(&path, &message),
            message,
        }
    })
}

pub(crate) fn ingest_error(err: ingest::IngestError) -> ApiError {
    if err.is_unavailable() {
        ApiError::Unavailable
    } else if matches!(err, ingest::IngestError::Contended) {
        Problem::conflict(err.to_string()).into()
    } else {
        ApiError::Internal(err.into())
    }
}

/// Records a batch of sends, each item parsed on its own: an invalid item
/// is that item's error, not the batch's.
pub async fn record_sends(
    app: &App,
    caller: &Caller,
    client_id: Uuid,
    items: Vec<Value>,
) -> Result<BatchResult> {
    app.registered_client(client_id).await?;
    let key = ingest::lead_key(&app.pool, client_id).await?;
    let now = Utc::now();
    let parsed = items
        .into_iter()
        .map(|item| {
            parse_item::<SendInput>(item)
                .and_then(|input| input.into_facts(now, |email| ingest::lead_ref(&key, email)))
        })
        .collect();
    let parsed = experiments::check(&app.pool, client_id, parsed).await?;
    ingest::record_sends(&app.pool, &caller.writer(client_id), parsed)
        .await
        .map_err(ingest_error)
}

/// Records a batch of outcomes, each item parsed on its own.
pub async fn record_outcomes(
    app: &App,
    caller: &Caller,
    client_id: Uuid,
    items: Vec<Value>,
) -> Result<BatchResult> {
    app.registered_client(client_id).await?;
    let now = Utc::now();
    let parsed = items
        .into_iter()
        .map(|item| parse_item::<OutcomeInput>(item).and_then(|input| input.into_facts(now)))
        .collect();
    ingest::record_outcomes(&app.pool, &caller.writer(client_id), parsed)
        .await
        .map_err(ingest_error)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorize {
    pub lead_ref: String,
    pub channel: Channel,
    pub resource: String,
    pub lead_tier: Tier,
}

#[derive(Debug, Serialize)]
pub struct Authorized {
    pub authorization_id: Uuid,
    pub permit: bool,
    pub reasons: Vec<Refusal>,
    pub position: i64,
}

/// Decides whether a send may go out now, and records the decision. A
/// permit counts against the resource's daily cap.
pub async fn authorize(
    app: &App,
    caller: &Caller,
    client_id: Uuid,
    input: Authorize,
) -> Result<Authorized> {
    let lead_ref =
        parse_lead_ref(&input.lead_ref).map_err(|e| Problem::invalid_field(&e.field, e.message))?;
    let resource = input.resource.trim().to_lowercase();
    if resource.is_empty() || resource.len() > 320 {
        return Err(Problem::invalid_field("resource", "must be 1 to 320 characters").into());
    }
    let client = app.registered_client(client_id).await?;
    let cap = client
        .daily_cap(input.channel.resource_kind(), &resource)
        .map(|c| c.value());

    let mut tx = app.pool.begin().await?;
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
        tier: input.lead_tier,
        channel: input.channel,
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
    let event = DecideAuthorization {
        authorization_id,
        lead_ref,
        channel: input.channel,
        resource,
        tier: input.lead_tier,
        reasons: reasons.clone(),
    }
    .decided();
    let position = append::<Authorization>(
        &mut tx,
        &caller.writer(client_id),
        &[Appended {
            aggregate_id: authorization_id.to_string(),
            sequence: Sequence::At(1),
            event: &event,
        }],
    )
    .await?;
    tx.commit().await?;
    Ok(Authorized {
        authorization_id,
        permit: reasons.is_empty(),
        reasons,
        position,
    })
}
