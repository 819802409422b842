//! Experiments: create one; conclude one with the decision its numbers
//! support, proposing a winner as a context update reviewed like any other.

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use sextant_adapters::http::Problem;
use sextant_domain::context::{ContextCommand, Policy, Source};
use sextant_domain::experiment::{Decision, ExperimentCommand, Variant, Verdict};
use sextant_domain::learning::Metric;
use sextant_domain::values::Rationale;

use crate::read_model::experiments::results;
use crate::{App, Caller, Result};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateExperiment {
    pub name: String,
    pub variants: Vec<Variant>,
    pub metric: Metric,
}

#[derive(Debug, Serialize)]
pub struct Created {
    pub experiment_id: Uuid,
    pub position: i64,
}

pub async fn create(
    app: &App,
    caller: &Caller,
    client_id: Uuid,
    input: CreateExperiment,
) -> Result<Created> {
    app.registered_client(client_id).await?;
    let experiment_id = Uuid::now_v7();
    let command = ExperimentCommand::CreateExperiment {
        experiment_id,
        client_id,
        name: input.name,
        variants: input.variants,
        metric: input.metric,
    };
    let committed = app
        .experiments
        .execute(&experiment_id.to_string(), command, &caller.meta(client_id))
        .await?;
    Ok(Created {
        experiment_id,
        position: committed.position,
    })
}

#[derive(Debug, Serialize)]
pub struct Concluded {
    pub decision: Verdict,
    pub winner: Option<String>,
    /// The context update proposing the winner, if there is one.
    pub update_id: Option<Uuid>,
    pub results: Decision,
    pub position: i64,
}

/// Concludes `experiment_id` with the decision its numbers support now.
pub async fn conclude(
    app: &App,
    caller: &Caller,
    client_id: Uuid,
    experiment_id: Uuid,
) -> Result<Concluded> {
    let client = app.registered_client(client_id).await?;
    let (row, decision) = results(&app.pool, client_id, experiment_id)
        .await?
        .ok_or_else(|| Problem::not_found("no such experiment"))?;
    let command = ExperimentCommand::ConcludeExperiment {
        winner: decision.winner.clone(),
        decision: decision.decision,
    };
    let mut position = app
        .experiments
        .execute(&experiment_id.to_string(), command, &caller.meta(client_id))
        .await?
        .position;
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
            proposer: caller.proposer(),
        };
        // Its own command id: positions are found by it.
        position = app
            .context
            .execute(&client_id.to_string(), command, &caller.meta(client_id))
            .await?
            .position;
        update_id = Some(id);
    }
    Ok(Concluded {
        decision: decision.decision,
        winner: decision.winner.clone(),
        update_id,
        results: decision,
        position,
    })
}
