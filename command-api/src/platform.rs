//! `POST /v1/patterns/platform/practices` (operator): approves a platform
//! practice and applies it to the `best_practices` of every client that
//! shares data (`source: best_practices`, so it applies at once, or waits
//! for review under the manual permission mode). Every effect is an event
//! in each client's context.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use sextant_adapters::http::{positioned, Auth, Problem, RequestIds, StrictJson};
use sextant_adapters::store::{CommandError, CommandMeta};
use sextant_domain::context::{ContextCommand, ContextError, ContextEvent, Policy, Source};
use sextant_domain::learning::Family;
use sextant_domain::values::{Note, Rationale};

use crate::error::ApiError;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/patterns/platform/practices", post(approve_practice))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Practice {
    family: String,
    key: String,
    verdict: String,
    note: Note,
}

async fn approve_practice(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ids: RequestIds,
    StrictJson(body): StrictJson<Practice>,
) -> Result<Response, ApiError> {
    principal.require_operator()?;
    let family = Family::parse(&body.family).ok_or_else(|| {
        Problem::invalid_field("family", "must be what, when, how, who or versions")
    })?;
    if !matches!(body.verdict.as_str(), "prefer" | "avoid") {
        return Err(Problem::invalid_field("verdict", "must be prefer or avoid").into());
    }
    let key = body.key.trim();
    if key.is_empty() || key.len() > 200 || !key.contains('=') {
        return Err(
            Problem::invalid_field("key", "must be a pattern key such as cta=meeting").into(),
        );
    }
    let sharing: Vec<Uuid> = sqlx::query_scalar(
        "SELECT client_id FROM clients_view WHERE data_sharing_consent ORDER BY client_id",
    )
    .fetch_all(&state.pool)
    .await?;
    let (mut applied, mut pending, mut already) = (0, 0, 0);
    let mut position = sextant_adapters::db::head_position(&state.pool).await?;
    for client_id in sharing {
        let client = state.clients.load(&client_id.to_string()).await?;
        if !client.is_registered() || !client.data_sharing_consent() {
            continue;
        }
        let command = ContextCommand::ProposeUpdate {
            update_id: Uuid::now_v7(),
            source: Source::BestPractices,
            patch: json!({ "best_practices": { "platform": { format!("{}:{key}", family.as_str()): body.verdict } } }),
            base_version: None,
            rationale: Rationale::try_from(format!("Platform practice: {}", body.note))
                .map_err(|e| Problem::invalid_field("note", e))?,
            evidence: json!({ "level": "platform", "family": family.as_str(), "key": key, "approved_by": principal.actor() }),
            confidence: None,
            policy: Policy {
                mode: client.permission_mode(),
                threshold: client.autopilot_threshold(),
            },
        };
        let meta = CommandMeta::new(client_id, principal.actor(), ids.correlation_id.clone());
        match state
            .context
            .execute(&client_id.to_string(), command, &meta)
            .await
        {
            Ok(committed) => {
                position = position.max(committed.position);
                if committed
                    .events
                    .iter()
                    .any(|e| matches!(e, ContextEvent::UpdateApplied { .. }))
                {
                    applied += 1;
                } else {
                    pending += 1;
                }
            }
            Err(CommandError::Rejected(
                ContextError::DuplicatePending(_) | ContextError::DuplicateOfRejected(_),
            )) => already += 1,
            Err(other) => return Err(other.into()),
        }
    }
    Ok(positioned(
        StatusCode::OK,
        &json!({ "applied": applied, "pending_review": pending, "already_proposed": already, "position": position }),
        position,
    ))
}
