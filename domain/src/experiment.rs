//! The Experiment aggregate: variants with weights, the primary metric, a
//! deterministic assignment (hash of experiment id and lead ref into the
//! weights), and its conclusion.

use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::aggregate_types;
use crate::learning::Metric;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub id: String,
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExperimentCommand {
    CreateExperiment {
        experiment_id: Uuid,
        client_id: Uuid,
        name: String,
        variants: Vec<Variant>,
        metric: Metric,
    },
    ConcludeExperiment {
        winner: Option<String>,
        decision: Verdict,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExperimentEvent {
    ExperimentCreated {
        experiment_id: Uuid,
        client_id: Uuid,
        name: String,
        variants: Vec<Variant>,
        metric: Metric,
    },
    ExperimentConcluded {
        winner: Option<String>,
        decision: Verdict,
    },
}

/// What the decision rule says of an experiment. Stored in
/// `experiment_concluded` events and the experiments read model as its
/// snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The leader beats every other variant.
    Winner,
    /// No variant is ahead yet with the confidence the rule asks for.
    KeepRunning,
    /// The split is not what was asked for, so no number is trusted.
    SampleRatioMismatch,
}

impl Verdict {
    pub const ALL: [Verdict; 3] = [Self::Winner, Self::KeepRunning, Self::SampleRatioMismatch];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Winner => "winner",
            Self::KeepRunning => "keep_running",
            Self::SampleRatioMismatch => "sample_ratio_mismatch",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == text)
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl DomainEvent for ExperimentEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ExperimentCreated { .. } => "experiment_created",
            Self::ExperimentConcluded { .. } => "experiment_concluded",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExperimentError {
    #[error("an experiment needs at least two variants")]
    TooFewVariants,
    #[error("variant ids must be 1 to 64 characters and unique")]
    BadVariantIds,
    #[error("weights must be finite, not negative, and sum to a positive total")]
    BadWeights,
    #[error("the name must be 1 to 200 characters")]
    BadName,
    #[error("the experiment already exists")]
    AlreadyExists,
    #[error("the experiment does not exist")]
    Unknown,
    #[error("the experiment is already concluded")]
    AlreadyConcluded,
    #[error("the winner must be one of the variants")]
    UnknownWinner,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    created: bool,
    concluded: bool,
    variants: Vec<Variant>,
}

/// Checks a variant list: two or more, unique ids, usable weights.
pub fn validate_variants(variants: &[Variant]) -> Result<(), ExperimentError> {
    if variants.len() < 2 {
        return Err(ExperimentError::TooFewVariants);
    }
    let mut ids: Vec<&str> = variants.iter().map(|v| v.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != variants.len()
        || variants
            .iter()
            .any(|v| v.id.trim().is_empty() || v.id.len() > 64)
    {
        return Err(ExperimentError::BadVariantIds);
    }
    let total: f64 = variants.iter().map(|v| v.weight).sum();
    if variants
        .iter()
        .any(|v| !v.weight.is_finite() || v.weight < 0.0)
        || !(total > 0.0 && total.is_finite())
    {
        return Err(ExperimentError::BadWeights);
    }
    Ok(())
}

/// The variant a lead gets: the SHA-256 of experiment id and lead ref,
/// read as a number in [0, 1), placed in the cumulative weights. The same
/// lead always gets the same variant; no state is kept.
pub fn assign<'a>(
    experiment_id: Uuid,
    lead_ref: &str,
    variants: &'a [Variant],
) -> Option<&'a Variant> {
    let digest = Sha256::digest(format!("{experiment_id}:{lead_ref}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let u = (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64;
    let total: f64 = variants.iter().map(|v| v.weight).sum();
    let mut cumulative = 0.0;
    for variant in variants {
        cumulative += variant.weight / total;
        if u < cumulative {
            return Some(variant);
        }
    }
    variants.iter().rev().find(|v| v.weight > 0.0)
}

impl Experiment {
    pub fn decide(
        &self,
        command: ExperimentCommand,
    ) -> Result<Vec<ExperimentEvent>, ExperimentError> {
        match command {
            ExperimentCommand::CreateExperiment {
                experiment_id,
                client_id,
                name,
                variants,
                metric,
            } => {
                if self.created {
                    return Err(ExperimentError::AlreadyExists);
                }
                let name = name.trim().to_owned();
                if name.is_empty() || name.chars().count() > 200 {
                    return Err(ExperimentError::BadName);
                }
                validate_variants(&variants)?;
                Ok(vec![ExperimentEvent::ExperimentCreated {
                    experiment_id,
                    client_id,
                    name,
                    variants,
                    metric,
                }])
            }
            ExperimentCommand::ConcludeExperiment { winner, decision } => {
                if !self.created {
                    return Err(ExperimentError::Unknown);
                }
                if self.concluded {
                    return Err(ExperimentError::AlreadyConcluded);
                }
                if let Some(w) = &winner {
                    if !self.variants.iter().any(|v| &v.id == w) {
                        return Err(ExperimentError::UnknownWinner);
                    }
                }
                Ok(vec![ExperimentEvent::ExperimentConcluded {
                    winner,
                    decision,
                }])
            }
        }
    }
}

impl Aggregate for Experiment {
    const TYPE: &'static str = aggregate_types::EXPERIMENT;
    type Command = ExperimentCommand;
    type Event = ExperimentEvent;
    type Error = ExperimentError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ExperimentEvent::ExperimentCreated { variants, .. } => {
                self.created = true;
                self.variants = variants;
            }
            ExperimentEvent::ExperimentConcluded { .. } => self.concluded = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;
    use serde_json::json;

    use super::*;

    fn variants(weights: &[(&str, f64)]) -> Vec<Variant> {
        weights
            .iter()
            .map(|(id, w)| Variant {
                id: (*id).into(),
                weight: *w,
            })
            .collect()
    }

    fn create(vs: Vec<Variant>) -> ExperimentCommand {
        ExperimentCommand::CreateExperiment {
            experiment_id: Uuid::from_u128(1),
            client_id: Uuid::from_u128(2),
            name: "subject test".into(),
            variants: vs,
            metric: Metric::Reply,
        }
    }

    fn created() -> ExperimentEvent {
        ExperimentEvent::ExperimentCreated {
            experiment_id: Uuid::from_u128(1),
            client_id: Uuid::from_u128(2),
            name: "subject test".into(),
            variants: variants(&[("a", 1.0), ("b", 1.0)]),
            metric: Metric::Reply,
        }
    }

    #[test]
    fn an_experiment_is_created_with_two_or_more_weighted_variants() {
        TestFramework::<Experiment>::with(())
            .given_no_previous_events()
            .when(create(variants(&[("a", 1.0), ("b", 1.0)])))
            .then_expect_events(vec![created()]);
    }

    #[test]
    fn bad_variant_lists_are_refused() {
        let cases = [
            (variants(&[("a", 1.0)]), ExperimentError::TooFewVariants),
            (
                variants(&[("a", 1.0), ("a", 2.0)]),
                ExperimentError::BadVariantIds,
            ),
            (
                variants(&[("a", 0.0), ("b", 0.0)]),
                ExperimentError::BadWeights,
            ),
            (
                variants(&[("a", -1.0), ("b", 2.0)]),
                ExperimentError::BadWeights,
            ),
            (
                variants(&[("a", f64::NAN), ("b", 2.0)]),
                ExperimentError::BadWeights,
            ),
        ];
        for (vs, error) in cases {
            TestFramework::<Experiment>::with(())
                .given_no_previous_events()
                .when(create(vs))
                .then_expect_error(error);
        }
    }

    #[test]
    fn an_experiment_concludes_once_with_one_of_its_variants() {
        TestFramework::<Experiment>::with(())
            .given(vec![created()])
            .when(ExperimentCommand::ConcludeExperiment {
                winner: Some("c".into()),
                decision: Verdict::Winner,
            })
            .then_expect_error(ExperimentError::UnknownWinner);
        TestFramework::<Experiment>::with(())
            .given(vec![
                created(),
                ExperimentEvent::ExperimentConcluded {
                    winner: None,
                    decision: Verdict::KeepRunning,
                },
            ])
            .when(ExperimentCommand::ConcludeExperiment {
                winner: None,
                decision: Verdict::SampleRatioMismatch,
            })
            .then_expect_error(ExperimentError::AlreadyConcluded);
        TestFramework::<Experiment>::with(())
            .given_no_previous_events()
            .when(ExperimentCommand::ConcludeExperiment {
                winner: None,
                decision: Verdict::SampleRatioMismatch,
            })
            .then_expect_error(ExperimentError::Unknown);
    }

    #[test]
    fn a_stored_conclusion_keeps_its_decision_as_the_snake_case_name() {
        for verdict in Verdict::ALL {
            let stored = json!({ "type": "experiment_concluded", "winner": null, "decision": verdict.as_str() });
            let event: ExperimentEvent =
                serde_json::from_value(stored.clone()).expect("a stored conclusion reads");
            assert_eq!(
                event,
                ExperimentEvent::ExperimentConcluded {
                    winner: None,
                    decision: verdict,
                }
            );
            assert_eq!(serde_json::to_value(&event).expect("serializes"), stored);
            assert_eq!(Verdict::parse(verdict.as_str()), Some(verdict));
        }
        assert_eq!(
            Verdict::ALL.map(Verdict::as_str),
            ["winner", "keep_running", "sample_ratio_mismatch"]
        );
    }

    #[test]
    fn assignment_is_deterministic_and_follows_the_weights() {
        let vs = variants(&[("a", 3.0), ("b", 1.0)]);
        let id = Uuid::from_u128(42);
        let first = assign(id, "lead-1", &vs).map(|v| v.id.clone());
        for _ in 0..5 {
            assert_eq!(assign(id, "lead-1", &vs).map(|v| v.id.clone()), first);
        }
        let a = (0..20_000)
            .filter(|i| assign(id, &format!("lead-{i}"), &vs).is_some_and(|v| v.id == "a"))
            .count();
        let share = a as f64 / 20_000.0;
        assert!((share - 0.75).abs() < 0.015, "{share}");
        let zero = variants(&[("a", 0.0), ("b", 1.0)]);
        assert!((0..1000).all(|i| assign(id, &format!("l{i}"), &zero).is_some_and(|v| v.id == "b")));
    }
}

/// One variant's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantResult {
    pub id: String,
    pub weight: f64,
    pub sends: u64,
    pub events: u64,
    pub rate: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// Always-valid p-value of the leader against this variant (None for
    /// the leader itself).
    pub always_valid_p: Option<f64>,
}

/// What the numbers say now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub variants: Vec<VariantResult>,
    pub sample_ratio_p: f64,
    pub decision: Verdict,
    pub winner: Option<String>,
    pub rule: String,
}

/// Below this p the split is not what was asked for and nothing else is
/// trusted (a common, conservative SRM threshold).
pub const SRM_ALPHA: f64 = 0.001;
/// The error rate of the decision rule.
pub const ALPHA: f64 = 0.05;
/// The mixture variance of the always-valid test (effects of a few points
/// on rates of a few percent).
pub const MIXTURE_VARIANCE: f64 = 0.0001;

/// The decision rule: a mixture sequential probability ratio test (always-
/// valid p-values, Johari et al. 2017), so people may look every day
/// without inflating false positives; the leader wins once it beats every
/// other variant at `ALPHA` (Bonferroni over the comparisons). A sample
/// ratio mismatch overrides everything.
pub fn decide(variants: &[(Variant, u64, u64)]) -> Decision {
    use crate::stats::{always_valid_p, sample_ratio_p, wilson_interval, Z_95};
    let rate = |n: u64, x: u64| if n > 0 { x as f64 / n as f64 } else { 0.0 };
    let leader = variants
        .iter()
        .max_by(|a, b| {
            rate(a.1, a.2)
                .total_cmp(&rate(b.1, b.2))
                .then(b.0.id.cmp(&a.0.id))
        })
        .map(|(v, n, x)| (v.id.clone(), *n, *x));
    let comparisons = variants.len().saturating_sub(1).max(1) as f64;
    let mut results = Vec::new();
    let mut beats_all = leader.is_some();
    for (variant, n, x) in variants {
        let (ci_low, ci_high) = wilson_interval(*x, *n, Z_95);
        let p = match &leader {
            Some((id, ln, lx)) if id != &variant.id => {
                let p = always_valid_p(*lx, *ln, *x, *n, MIXTURE_VARIANCE);
                beats_all &= p < ALPHA / comparisons;
                Some(p)
            }
            _ => None,
        };
        results.push(VariantResult {
            id: variant.id.clone(),
            weight: variant.weight,
            sends: *n,
            events: *x,
            rate: rate(*n, *x),
            ci_low,
            ci_high,
            always_valid_p: p,
        });
    }
    let observed: Vec<u64> = variants.iter().map(|(_, n, _)| *n).collect();
    let weights: Vec<f64> = variants.iter().map(|(v, ..)| v.weight).collect();
    let srm = sample_ratio_p(&observed, &weights);
    let (decision, winner) = if srm < SRM_ALPHA {
        (Verdict::SampleRatioMismatch, None)
    } else if beats_all {
        (Verdict::Winner, leader.map(|(id, ..)| id))
    } else {
        (Verdict::KeepRunning, None)
    };
    Decision {
        variants: results,
        sample_ratio_p: srm,
        decision,
        winner,
        rule: format!(
            "mSPRT always-valid p-values (normal mixture, variance {MIXTURE_VARIANCE}); the leader wins when it \
             beats every other variant at {ALPHA} (Bonferroni); SRM by chi-square below {SRM_ALPHA} stops the call"
        ),
    }
}

#[cfg(test)]
mod decision_tests {
    use super::*;

    fn v(id: &str) -> Variant {
        Variant {
            id: id.into(),
            weight: 1.0,
        }
    }

    #[test]
    fn a_clear_leader_wins_and_a_tie_keeps_running() {
        let d = decide(&[(v("a"), 3000, 450), (v("b"), 3000, 300)]);
        assert_eq!(
            (d.decision, d.winner.as_deref()),
            (Verdict::Winner, Some("a"))
        );
        let d = decide(&[(v("a"), 3000, 300), (v("b"), 3000, 310)]);
        assert_eq!(d.decision, Verdict::KeepRunning);
        assert!(d
            .variants
            .iter()
            .all(|r| r.ci_low <= r.rate && r.rate <= r.ci_high));
    }

    #[test]
    fn a_sample_ratio_mismatch_overrides_a_winner() {
        let d = decide(&[(v("a"), 3000, 450), (v("b"), 2000, 200)]);
        assert_eq!(d.decision, Verdict::SampleRatioMismatch);
        assert!(d.sample_ratio_p < SRM_ALPHA);
        assert_eq!(d.winner, None);
    }
}
