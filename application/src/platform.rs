//! Platform practices: the operator approves one and it is proposed to the
//! `best_practices` of every client that shares data (`source:
//! best_practices`, so it applies at once, or waits for review under the
//! manual permission mode). Every effect is an event in each client's
//! context.
//!
//! A practice is approved from a platform row, not from the operator's
//! word alone: the row of its family and key must be shown by the platform
//! table (k-anonymity), clear the thresholds the suggestion engine acts on
//! ([`learning::significant`]) and point the way of the verdict.

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use sextant_adapters::http::Problem;
use sextant_adapters::store::CommandError;
use sextant_domain::context::{ContextCommand, ContextError, ContextEvent, Policy, Source};
use sextant_domain::learning::{Family, Metric, PatternRow, Verdict};
use sextant_domain::stats::format_p;
use sextant_domain::values::{Note, Rationale};

use crate::learning::{self, Thresholds};
use crate::read_model::platform::platform_table;
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

/// The metric platform practices are judged on: the one the suggestion
/// engine's platform priors use.
const PRACTICE_METRIC: Metric = Metric::Reply;

/// Whether the platform row of `family` and `key` supports `verdict`: shown
/// (enough consenting clients), significant, and the same way round.
async fn supported(app: &App, family: Family, key: &str, verdict: Verdict) -> Result<()> {
    let table = platform_table(&app.pool, family, PRACTICE_METRIC, None).await?;
    let query = format!(
        "GET /v1/patterns/platform/{}?metric={}",
        family.as_str(),
        PRACTICE_METRIC.as_str()
    );
    let Some(baseline_sends) = table.baseline_sends else {
        return Err(Problem::invalid_field(
            "key",
            format!("the platform table ({query}) is withheld: a practice needs a platform row"),
        )
        .into());
    };
    let Some(row) = table.rows.iter().find(|r| r.stats.key == key) else {
        return Err(Problem::invalid_field(
            "key",
            format!(
                "no platform row has this key ({query} shows only keys enough consenting clients sent): a practice needs one"
            ),
        )
        .into());
    };
    let thresholds = Thresholds::default();
    let family_rows: Vec<PatternRow> = table.rows.iter().map(|r| r.stats.clone()).collect();
    if !learning::significant(&family_rows, baseline_sends, thresholds)
        .iter()
        .any(|r| r.key == key)
    {
        return Err(Problem::invalid_field(
            "key",
            format!(
                "its platform row is not significant: lift {:.2}, q = {}, {} sends against {} in all \
                 (a practice needs q below {}, {} sends on each side and a lift at least {:.0}% from 1)",
                row.stats.lift,
                format_p(row.stats.q),
                row.stats.sends,
                baseline_sends,
                thresholds.fdr,
                thresholds.min_sample,
                thresholds.min_relative_lift * 100.0
            ),
        )
        .into());
    }
    let shown = Verdict::of_lift(row.stats.lift);
    if shown != verdict {
        return Err(Problem::invalid_field(
            "verdict",
            format!(
                "its platform row says {} (lift {:.2})",
                shown.as_str(),
                row.stats.lift
            ),
        )
        .into());
    }
    Ok(())
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
    supported(app, family, key, verdict).await?;
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
            proposer: caller.proposer(),
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
