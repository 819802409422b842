//! Experiments: create one; conclude one with the decision its numbers
//! support, proposing a winner as a context update.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use sextant_adapters::http::{positioned, ClientScope, Problem, RequestIds};
use sextant_adapters::store::CommandMeta;
use sextant_domain::context::{ContextCommand, Policy, Source};
use sextant_domain::experiment::{ExperimentCommand, ExperimentError, Variant};
use sextant_domain::learning::Metric;
use sextant_domain::values::{Rationale, Role};
use sextant_projections::experiments::results;

use crate::error::{ApiError, DomainRefusal};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/clients/{client_id}/experiments", post(create))
        .route(
            "/v1/clients/{client_id}/experiments/{experiment_id}/conclude",
            post(conclude),
        )
}

impl DomainRefusal for ExperimentError {
    fn problem(&self) -> Problem {
        let detail = self.to_string();
        match self {
            Self::TooFewVariants | Self::BadVariantIds | Self::BadWeights => {
                Problem::invalid_field("variants", detail)
            }
            Self::BadName => Problem::invalid_field("name", detail),
            Self::Unknown => Problem::not_found("no such experiment"),
            Self::AlreadyExists | Self::AlreadyConcluded | Self::UnknownWinner => {
                Problem::conflict(detail)
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Create {
    name: String,
    variants: Vec<Variant>,
    metric: Metric,
}

async fn create(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
    }: ClientScope,
    ids: RequestIds,
    sextant_adapters::http::StrictJson(body): sextant_adapters::http::StrictJson<Create>,
) -> Result<Response, ApiError> {
    principal.authorize(client_id, &[Role::Admin])?;
    state.registered_client(client_id).await?;
    let experiment_id = Uuid::now_v7();
    let command = ExperimentCommand::CreateExperiment {
        experiment_id,
        client_id,
        name: body.name,
        variants: body.variants,
        metric: body.metric,
    };
    let meta = CommandMeta::new(client_id, principal.actor(), ids.correlation_id.clone());
    let committed = state
        .experiments
        .execute(&experiment_id.to_string(), command, &meta)
        .await?;
    Ok(positioned(
        StatusCode::CREATED,
        &json!({ "experiment_id": experiment_id, "position": committed.position }),
        committed.position,
    ))
}

async fn conclude(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
    }: ClientScope,
    Path((_, experiment)): Path<(String, String)>,
    ids: RequestIds,
) -> Result<Response, ApiError> {
    principal.authorize(client_id, &[Role::Admin])?;
    let experiment_id =
        Uuid::try_parse(&experiment).map_err(|_| Problem::not_found("no such experiment"))?;
    let client = state.registered_client(client_id).await?;
    let (row, decision) = results(&state.pool, client_id, experiment_id)
        .await?
        .ok_or_else(|| Problem::not_found("no such experiment"))?;
    let meta = CommandMeta::new(client_id, principal.actor(), ids.correlation_id.clone());
    let command = ExperimentCommand::ConcludeExperiment {
        winner: decision.winner.clone(),
        decision: decision.decision.clone(),
    };
    let mut committed = state
        .experiments
        .execute(&experiment_id.to_string(), command, &meta)
        .await?;
    // A winner becomes a suggested context update, reviewed like any other.
    let mut update_id = None;
    if let Some(winner) = &decision.winner {
        let id = Uuid::now_v7();
        let rationale = format!(
            "Experiment \"{}\" concluded: variant {winner} won on {} ({}).",
            row.name, row.metric, decision.rule
        );
        let command = ContextCommand::ProposeUpdate {
            update_id: id,
            source: Source::EmailPerformance,
            patch: json!({ "playbook": { "experiments": { row.name.clone(): { "winner": winner } } } }),
            base_version: None,
            rationale: Rationale::try_from(rationale)
                .map_err(|e| Problem::invalid_field("name", e))?,
            evidence: json!({ "experiment_id": experiment_id, "results": decision,
                              "query": format!("GET /v1/clients/{client_id}/experiments/{experiment_id}") }),
            confidence: None,
            policy: Policy {
                mode: client.permission_mode(),
                threshold: client.autopilot_threshold(),
            },
        };
        // Its own command id: positions are found by it.
        let meta = CommandMeta::new(client_id, principal.actor(), ids.correlation_id.clone());
        committed.position = state
            .context
            .execute(&client_id.to_string(), command, &meta)
            .await?
            .position;
        update_id = Some(id);
    }
    Ok(positioned(
        StatusCode::OK,
        &json!({ "decision": decision.decision, "winner": decision.winner, "update_id": update_id,
                 "results": decision, "position": committed.position }),
        committed.position,
    ))
}
