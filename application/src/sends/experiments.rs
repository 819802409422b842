//! A send that names an experiment is counted in that experiment's results,
//! under its variant: the experiment must be the client's own, and the
//! variant one of its variants, or the results would count sends that
//! belong to no arm (or to another client's experiment).
//!
//! Checked against the Experiment aggregates' `experiment_created` events,
//! not the experiments read model: an experiment is usable the moment its
//! creation is answered, before any projection has seen it. One query per
//! batch, whatever its size.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use sextant_domain::aggregate_types;
use sextant_domain::experiment::ExperimentEvent;
use sextant_domain::send::input::Invalid;

use super::ingest::SendItem;

/// What a batch's sends may name: each experiment of the client they name,
/// with its variant ids.
struct Experiments(HashMap<Uuid, BTreeSet<String>>);

impl Experiments {
    async fn load(pool: &PgPool, client_id: Uuid, items: &[SendItem]) -> sqlx::Result<Self> {
        let named: BTreeSet<String> = items
            .iter()
            .filter_map(|item| item.as_ref().ok())
            .filter_map(|(facts, _)| facts.experiment_id)
            .map(|id| id.to_string())
            .collect();
        if named.is_empty() {
            return Ok(Self(HashMap::new()));
        }
        let named: Vec<String> = named.into_iter().collect();
        let created: Vec<(Value,)> = sqlx::query_as(
            "SELECT payload FROM events WHERE aggregate_type = $1 AND aggregate_id = ANY($2) \
             AND event_type = 'experiment_created'",
        )
        .bind(aggregate_types::EXPERIMENT)
        .bind(&named)
        .fetch_all(pool)
        .await?;
        let mut experiments = HashMap::new();
        for (payload,) in created {
            if let Ok(ExperimentEvent::ExperimentCreated {
                experiment_id,
                client_id: owner,
                variants,
                ..
            }) = serde_json::from_value(payload)
            {
                // Another client's experiment is, to this one, no experiment.
                if owner == client_id {
                    experiments.insert(experiment_id, variants.into_iter().map(|v| v.id).collect());
                }
            }
        }
        Ok(Self(experiments))
    }

    fn check(&self, item: SendItem) -> SendItem {
        let (facts, personal) = item?;
        let Some(experiment_id) = facts.experiment_id else {
            return Ok((facts, personal));
        };
        let Some(variants) = self.0.get(&experiment_id) else {
            return Err(Invalid {
                field: "experiment_id".into(),
                message: "no such experiment of this client".into(),
            });
        };
        if let Some(variant) = &facts.variant {
            if !variants.contains(variant) {
                return Err(Invalid {
                    field: "variant".into(),
                    message: format!(
                        "not a variant of this experiment; its variants: {}",
                        variants.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        }
        Ok((facts, personal))
    }
}

/// `items`, each send that names an experiment the client does not have, or
/// a variant its experiment does not have, turned into that item's error.
pub(super) async fn check(
    pool: &PgPool,
    client_id: Uuid,
    items: Vec<SendItem>,
) -> sqlx::Result<Vec<SendItem>> {
    let experiments = Experiments::load(pool, client_id, &items).await?;
    Ok(items
        .into_iter()
        .map(|item| experiments.check(item))
        .collect())
}
