//! Platform practices: the operator approves one and it is proposed to the
//! `best_practices` of every client that shares data (`source:
//! best_practices`, so it applies at once, or waits for review under the
//! manual permission mode). Every effect is an event in each client's
//! context.

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use sextant_adapters::http::Problem;
use sextant_adapters::store::CommandError;
use sextant_domain::context::{ContextCommand, ContextError, ContextEvent, Policy, Source};
use sextant_domain::learning::{Family, Verdict};
use sextant_domain::values::{Note, Rationale};

use crate::{App, Caller, Result};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Practice {
    pub family: Family,
    pub key: String,
    pub verdict: PracticeVerdict,
    pub note: Note,
}

/// The verdicts an operator may approve: a practice is preferred or
/// avoided; rolling back is for a client's own context versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PracticeVerdict {
    Prefer,
    Avoid,
}

impl From<PracticeVerdict> for Verdict {
    fn from(verdict: PracticeVerdict) -> Self {
        match verdict {
            PracticeVerdict::Prefer => Self::Prefer,
            PracticeVerdict::Avoid => Self::Avoid,
        }
    }
}

/// What became of the practice across the sharing clients.
#[derive(Debug, Default, Serialize)]
pub struct Spread {
    pub applied: u64,
    pub pending_review: u64,
    pub already_proposed: u64,
    pub position: i64,
}

pub async fn approve_practice(app: &App, caller: &Caller, input: Practice) -> Result<Spread> {
    let family = input.family;
    let verdict = Verdict::from(input.verdict);
    let key = input.key.trim();
    if key.is_empty() || key.len() > 200 || !key.contains('=') {
        return Err(
            Problem::invalid_field("key", "must be a pattern key such as cta=meeting").into(),
        );
    }
    let sharing: Vec<Uuid> = sqlx::query_scalar(
        "SELECT client_id FROM clients_view WHERE data_sharing_consent ORDER BY client_id",
    )
    .fetch_all(&app.pool)
    .await?;
    let mut spread = Spread {
        position: sextant_adapters::db::head_position(&app.pool).await?,
        ..Spread::default()
    };
    for client_id in sharing {
        let client = app.clients.load(&client_id.to_string()).await?;
        if !client.is_registered() || !client.data_sharing_consent() {
            continue;
        }
        let command = ContextCommand::ProposeUpdate {
            update_id: Uuid::now_v7(),
            source: Source::BestPractices,
            patch: json!({ "best_practices": { "platform": { format!("{}:{key}", family.as_str()): verdict.as_str() } } }),
            base_version: None,
            rationale: Rationale::try_from(format!("Platform practice: {}", input.note))
                .map_err(|e| Problem::invalid_field("note", e))?,
            evidence: json!({ "level": "platform", "family": family.as_str(), "key": key, "approved_by": caller.actor.to_string() }),
            confidence: None,
            policy: Policy {
                mode: client.permission_mode(),
                threshold: client.autopilot_threshold(),
            },
        };
        match app
            .context
            .execute(&client_id.to_string(), command, &caller.meta(client_id))
            .await
        {
            Ok(committed) => {
                spread.position = spread.position.max(committed.position);
                if committed
                    .events
                    .iter()
                    .any(|e| matches!(e, ContextEvent::UpdateApplied { .. }))
                {
                    spread.applied += 1;
                } else {
                    spread.pending_review += 1;
                }
            }
            Err(CommandError::Rejected(
                ContextError::DuplicatePending(_) | ContextError::DuplicateOfRejected(_),
            )) => spread.already_proposed += 1,
            Err(other) => return Err(other.into()),
        }
    }
    Ok(spread)
}
