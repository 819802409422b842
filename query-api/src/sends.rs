//! Sends reads: the suppression list.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::FromRow;
use uuid::Uuid;

use sextant_adapters::http::{positioned, ClientScope, Problem, StrictQuery};

use crate::consistency::reach;
use crate::error::ApiError;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/clients/{client_id}/suppression", get(suppression))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    min_position: Option<i64>,
    limit: Option<i64>,
    /// Keyset cursor: the last lead ref of the previous page.
    after: Option<String>,
}

#[derive(Debug, Serialize, FromRow)]
struct Suppressed {
    lead_ref: String,
    reason: String,
    send_id: Uuid,
    since: DateTime<Utc>,
}

async fn suppression(
    State(state): State<AppState>,
    ClientScope { client_id, .. }: ClientScope,
    StrictQuery(params): StrictQuery<Params>,
) -> Result<Response, ApiError> {
    let limit = match params.limit {
        None => 100,
        Some(n) if (1..=1000).contains(&n) => n,
        Some(_) => return Err(Problem::invalid_field("limit", "must be 1 to 1000").into()),
    };
    reach(&state, "clients", params.min_position).await?;
    let position = reach(&state, "sends", params.min_position).await?;
    crate::consistency::known_client(&state, client_id).await?;
    let rows: Vec<Suppressed> = sqlx::query_as(
        "SELECT lead_ref, reason, send_id, since FROM suppression_view \
         WHERE client_id = $1 AND lead_ref > $2 ORDER BY lead_ref LIMIT $3",
    )
    .bind(client_id)
    .bind(params.after.unwrap_or_default())
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await?;
    let more = rows.len() as i64 > limit;
    let items: Vec<&Suppressed> = rows.iter().take(limit as usize).collect();
    let next = more
        .then(|| items.last().map(|r| r.lead_ref.clone()))
        .flatten();
    Ok(positioned(
        StatusCode::OK,
        &json!({ "items": items, "next_after": next }),
        position,
    ))
}
