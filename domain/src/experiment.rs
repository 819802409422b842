//! The Experiment aggregate: variants with weights, the primary metric, a
//! deterministic assignment (hash of experiment id and lead ref into the
//! weights), and its conclusion.

use chrono::NaiveDate;
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
    /// Always-valid p-value of the compared variant (the winner, else the
    /// leader) against this variant; None for the compared variant itself.
    /// From `decide_over_looks`, the running minimum over the looks at which
    /// the compared variant's rate was at least this one's.
    pub always_valid_p: Option<f64>,
}

/// What the numbers say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub variants: Vec<VariantResult>,
    pub sample_ratio_p: f64,
    pub decision: Verdict,
    pub winner: Option<String>,
    /// The UTC day of the look at which the winner was reached; None unless
    /// `decision` is `winner` (and from `decide`, which sees one undated
    /// look).
    pub decided_on: Option<NaiveDate>,
    /// How many looks the decision was taken over (1 for `decide`).
    pub looks: usize,
    pub rule: String,
}

/// One look at an experiment: each variant's cumulative sends and events at
/// the end of the UTC day `on` (at the last look: up to now).
#[derive(Debug, Clone, PartialEq)]
pub struct Look {
    pub on: NaiveDate,
    pub variants: Vec<(Variant, u64, u64)>,
}

/// The looks of an experiment from each variant's new sends and new events
/// per UTC day (`(variant id, day, sends, events)`, in any order): one look
/// at the end of each day before `today` that has any, then one on `today`
/// with everything (later days included), each with every variant of
/// `variants` and its cumulative counts, in time order. Days without data
/// would repeat the look before them, so they are left out; there is always
/// the last look. Ids that are not variants are ignored.
pub fn looks_from_daily(
    variants: &[Variant],
    daily: &[(String, NaiveDate, u64, u64)],
    today: NaiveDate,
) -> Vec<Look> {
    let mut days: Vec<NaiveDate> = daily
        .iter()
        .filter(|(id, ..)| variants.iter().any(|v| &v.id == id))
        .map(|(_, day, ..)| (*day).min(today))
        .chain([today])
        .collect();
    days.sort_unstable();
    days.dedup();
    let mut totals = vec![(0u64, 0u64); variants.len()];
    days.into_iter()
        .map(|on| {
            for (id, day, sends, events) in daily {
                if (*day).min(today) == on {
                    if let Some(i) = variants.iter().position(|v| &v.id == id) {
                        totals[i].0 += sends;
                        totals[i].1 += events;
                    }
                }
            }
            Look {
                on,
                variants: variants
                    .iter()
                    .zip(&totals)
                    .map(|(v, (n, x))| (v.clone(), *n, *x))
                    .collect(),
            }
        })
        .collect()
}

/// Below this p the split is not what was asked for and nothing else is
/// trusted (a common, conservative SRM threshold).
pub const SRM_ALPHA: f64 = 0.001;
/// The error rate of the decision rule.
pub const ALPHA: f64 = 0.05;
/// The mixture variance of the always-valid test (effects of a few points
/// on rates of a few percent).
pub const MIXTURE_VARIANCE: f64 = 0.0001;

fn rate(n: u64, x: u64) -> f64 {
    if n > 0 {
        x as f64 / n as f64
    } else {
        0.0
    }
}

/// The index of the leader: the highest rate, ties to the smallest id.
fn leader(variants: &[(Variant, u64, u64)]) -> Option<usize> {
    variants
        .iter()
        .enumerate()
        .max_by(|(_, a), (_, b)| {
            rate(a.1, a.2)
                .total_cmp(&rate(b.1, b.2))
                .then(b.0.id.cmp(&a.0.id))
        })
        .map(|(i, _)| i)
}

/// The p below which the leader beats one other variant: `ALPHA` over the
/// number of comparisons (Bonferroni).
fn bar(variants: usize) -> f64 {
    ALPHA / variants.saturating_sub(1).max(1) as f64
}

fn sample_ratio(variants: &[(Variant, u64, u64)]) -> f64 {
    let observed: Vec<u64> = variants.iter().map(|(_, n, _)| *n).collect();
    let weights: Vec<f64> = variants.iter().map(|(v, ..)| v.weight).collect();
    crate::stats::sample_ratio_p(&observed, &weights)
}

/// Each variant's current numbers, with `p(i)` as its always-valid p.
fn results(
    variants: &[(Variant, u64, u64)],
    p: impl Fn(usize) -> Option<f64>,
) -> Vec<VariantResult> {
    use crate::stats::{wilson_interval, Z_95};
    variants
        .iter()
        .enumerate()
        .map(|(i, (variant, n, x))| {
            let (ci_low, ci_high) = wilson_interval(*x, *n, Z_95);
            VariantResult {
                id: variant.id.clone(),
                weight: variant.weight,
                sends: *n,
                events: *x,
                rate: rate(*n, *x),
                ci_low,
                ci_high,
                always_valid_p: p(i),
            }
        })
        .collect()
}

/// The decision rule at one look: a mixture sequential probability ratio
/// test (always-valid p-values, Johari et al. 2017), so people may look
/// every day without inflating false positives; the leader wins once it
/// beats every other variant at `ALPHA` (Bonferroni over the comparisons).
/// A sample ratio mismatch overrides everything. `decide_over_looks` is the
/// rule over an experiment's daily looks.
pub fn decide(variants: &[(Variant, u64, u64)]) -> Decision {
    use crate::stats::always_valid_p;
    let lead = leader(variants);
    let p = |i: usize| match lead {
        Some(l) if l != i => {
            let (_, ln, lx) = &variants[l];
            let (_, n, x) = &variants[i];
            Some(always_valid_p(*lx, *ln, *x, *n, MIXTURE_VARIANCE))
        }
        _ => None,
    };
    let beats_all =
        lead.is_some() && (0..variants.len()).all(|i| p(i).is_none_or(|p| p < bar(variants.len())));
    let srm = sample_ratio(variants);
    let (decision, winner) = if srm < SRM_ALPHA {
        (Verdict::SampleRatioMismatch, None)
    } else if beats_all {
        (Verdict::Winner, lead.map(|l| variants[l].0.id.clone()))
    } else {
        (Verdict::KeepRunning, None)
    };
    Decision {
        variants: results(variants, p),
        sample_ratio_p: srm,
        decision,
        winner,
        decided_on: None,
        looks: 1,
        rule: format!(
            "mSPRT always-valid p-values (normal mixture, variance {MIXTURE_VARIANCE}); the leader wins when it \
             beats every other variant at {ALPHA} (Bonferroni); SRM by chi-square below {SRM_ALPHA} stops the call"
        ),
    }
}

/// The decision rule over an experiment's looks (in time order, the last
/// one now), so that a decision once reached stands. Looks whose split does
/// not match the weights (chi-square p below `SRM_ALPHA`) count for nothing.
/// Over the others, the always-valid p of variant i against variant j is
/// the running minimum, over the looks at which i's rate was at least j's,
/// of the mSPRT p at each look (a running minimum of always-valid p-values
/// is itself one; 1 before any such look). A look reaches a winner when its
/// leader's running-minimum p against every other variant is below
/// `ALPHA` / (variants − 1); from the first such look on, that leader is the
/// winner whatever later looks show. A sample-ratio mismatch at the last
/// look overrides: `sample_ratio_mismatch`, no winner. The variants' numbers
/// are the last look's; their p-values compare the winner (else the last
/// look's leader) with each.
pub fn decide_over_looks(looks: &[Look]) -> Decision {
    use crate::stats::always_valid_p;
    let Some(now) = looks.last() else {
        return Decision {
            looks: 0,
            ..decide(&[])
        };
    };
    let k = now.variants.len();
    // running[i][j]: the running-minimum p of i ahead of j.
    let mut running = vec![vec![1.0f64; k]; k];
    let mut reached: Option<(usize, NaiveDate)> = None;
    for look in looks {
        let vs = &look.variants;
        // Every look lists the same variants in the same order; a look whose
        // split is not the one asked for is not trusted at all.
        if vs.len() != k
            || vs.iter().zip(&now.variants).any(|(a, b)| a.0.id != b.0.id)
            || sample_ratio(vs) < SRM_ALPHA
        {
            continue;
        }
        for (i, (_, ni, xi)) in vs.iter().enumerate() {
            for (j, (_, nj, xj)) in vs.iter().enumerate() {
                if i != j && rate(*ni, *xi) >= rate(*nj, *xj) {
                    let p = always_valid_p(*xi, *ni, *xj, *nj, MIXTURE_VARIANCE);
                    running[i][j] = running[i][j].min(p);
                }
            }
        }
        if reached.is_none() {
            if let Some(l) = leader(vs) {
                if (0..k).all(|j| j == l || running[l][j] < bar(k)) {
                    reached = Some((l, look.on));
                }
            }
        }
    }
    let srm = sample_ratio(&now.variants);
    let compared = reached.map(|(w, _)| w).or_else(|| leader(&now.variants));
    let (decision, winner, decided_on) = match reached {
        _ if srm < SRM_ALPHA => (Verdict::SampleRatioMismatch, None, None),
        Some((w, on)) => (
            Verdict::Winner,
            Some(now.variants[w].0.id.clone()),
            Some(on),
        ),
        None => (Verdict::KeepRunning, None, None),
    };
    Decision {
        variants: results(&now.variants, |j| {
            compared.filter(|&c| c != j).map(|c| running[c][j])
        }),
        sample_ratio_p: srm,
        decision,
        winner,
        decided_on,
        looks: looks.len(),
        rule: format!(
            "mSPRT always-valid p-values (normal mixture, variance {MIXTURE_VARIANCE}), each the running minimum \
             over daily looks (cumulative counts at the end of each UTC day with data, the last one now) at which \
             the compared variant was ahead; a look's leader wins when it beats every other variant at {ALPHA} \
             (Bonferroni), and a winner once reached stands; SRM by chi-square below {SRM_ALPHA} leaves a look \
             out and, at the last look, stops the call"
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

#[cfg(test)]
mod look_tests {
    use super::*;
    use crate::stats::always_valid_p;

    fn v(id: &str) -> Variant {
        Variant {
            id: id.into(),
            weight: 1.0,
        }
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).expect("a date")
    }

    /// A look on day `d` with cumulative (sends, events) of a and b.
    fn look(d: u32, a: (u64, u64), b: (u64, u64)) -> Look {
        Look {
            on: day(d),
            variants: vec![(v("a"), a.0, a.1), (v("b"), b.0, b.1)],
        }
    }

    fn p_of(decision: &Decision, id: &str) -> Option<f64> {
        decision
            .variants
            .iter()
            .find(|r| r.id == id)
            .and_then(|r| r.always_valid_p)
    }

    #[test]
    fn a_winner_reached_at_one_look_stands_when_later_looks_dilute_it() {
        // Given: day 16, a little data; day 17, 20% against 10% on 1000
        // sends each (p ≈ 0.004); day 18, a day that reverses the gap so the
        // totals are 14.5% against 13.5%.
        let looks = [
            look(16, (100, 15), (100, 10)),
            look(17, (1000, 200), (1000, 100)),
            look(18, (2000, 290), (2000, 270)),
        ];
        let at_17 = always_valid_p(200, 1000, 100, 1000, MIXTURE_VARIANCE);
        assert!(at_17 < ALPHA, "{at_17}");
        // The last look alone is no call.
        let last = decide(&looks[2].variants);
        assert_eq!(last.decision, Verdict::KeepRunning);
        assert!(p_of(&last, "b").is_some_and(|p| p > ALPHA), "{last:?}");

        // When: the rule runs over every look.
        let d = decide_over_looks(&looks);

        // Then: a won on day 17 and still has; its p is the running minimum.
        assert_eq!(
            (d.decision, d.winner.as_deref(), d.decided_on),
            (Verdict::Winner, Some("a"), Some(day(17)))
        );
        assert_eq!(p_of(&d, "b"), Some(at_17));
        assert_eq!(p_of(&d, "a"), None);
        assert_eq!(d.looks, 3);
        assert!(d.rule.contains("running minimum"), "{}", d.rule);
        // The numbers shown are the last look's.
        let a = d.variants.iter().find(|r| r.id == "a").expect("a");
        assert_eq!((a.sends, a.events), (2000, 290));
    }

    #[test]
    fn the_winner_stands_even_when_another_variant_takes_the_lead() {
        // Given a won on day 17, when b overtakes it on day 18,
        let looks = [
            look(17, (1000, 200), (1000, 100)),
            look(18, (3000, 380), (3000, 400)),
        ];
        let d = decide_over_looks(&looks);
        // then the decision stands, compared with the winner.
        assert_eq!(
            (d.decision, d.winner.as_deref()),
            (Verdict::Winner, Some("a"))
        );
        assert_eq!(
            p_of(&d, "b"),
            Some(always_valid_p(200, 1000, 100, 1000, MIXTURE_VARIANCE))
        );
    }

    #[test]
    fn a_sample_ratio_mismatch_at_the_last_look_overrides_a_winner_reached_before() {
        // Given a won on day 17, when day 18's sends skew the split to 3:2,
        let looks = [
            look(17, (1000, 200), (1000, 100)),
            look(18, (3000, 450), (2000, 200)),
        ];
        let d = decide_over_looks(&looks);
        // then the mismatch is reported and nothing is called.
        assert_eq!(d.decision, Verdict::SampleRatioMismatch);
        assert!(d.sample_ratio_p < SRM_ALPHA);
        assert_eq!((d.winner, d.decided_on), (None, None));
    }

    #[test]
    fn a_look_with_a_mismatched_split_counts_for_nothing() {
        // Given a skewed first day with a wide gap, when later days even out
        // the split and close the gap,
        let looks = [
            look(16, (3000, 600), (1000, 100)),
            look(17, (6000, 900), (6000, 880)),
        ];
        assert_eq!(
            decide(&looks[0].variants).decision,
            Verdict::SampleRatioMismatch
        );
        let d = decide_over_looks(&looks);
        // then the first day's p is not carried and there is no call.
        assert_eq!(d.decision, Verdict::KeepRunning);
        assert_eq!(
            p_of(&d, "b"),
            Some(always_valid_p(900, 6000, 880, 6000, MIXTURE_VARIANCE))
        );
    }

    #[test]
    fn the_p_of_a_comparison_only_takes_looks_where_the_compared_variant_was_ahead() {
        // Given b ahead on day 16 (p ≈ 0.11, not yet a call), when a leads
        // narrowly by day 17,
        let looks = [
            look(16, (600, 60), (600, 120)),
            look(17, (4000, 610), (4000, 600)),
        ];
        let at_16 = always_valid_p(120, 600, 60, 600, MIXTURE_VARIANCE);
        assert!(at_16 > ALPHA && at_16 < 0.2, "{at_16}");
        let d = decide_over_looks(&looks);
        // then a is the leader with the p of day 17 only: b's old lead is no
        // evidence for a.
        assert_eq!(d.decision, Verdict::KeepRunning);
        assert_eq!(
            p_of(&d, "b"),
            Some(always_valid_p(610, 4000, 600, 4000, MIXTURE_VARIANCE))
        );
        assert_eq!(p_of(&d, "a"), None);
    }

    #[test]
    fn one_look_decides_as_the_single_look_rule_does() {
        for (a, b) in [((3000, 450), (3000, 300)), ((3000, 300), (3000, 310))] {
            let single = decide(&look(17, a, b).variants);
            let over = decide_over_looks(&[look(17, a, b)]);
            assert_eq!(
                (over.decision, &over.winner, &over.variants),
                (single.decision, &single.winner, &single.variants)
            );
        }
        let none = decide_over_looks(&[]);
        assert_eq!((none.decision, none.looks), (Verdict::KeepRunning, 0));
    }

    #[test]
    fn daily_counts_become_cumulative_looks_ending_today() {
        let variants = [v("a"), v("b")];
        let daily = [
            ("b".to_owned(), day(17), 10, 2),
            ("a".to_owned(), day(16), 5, 1),
            ("a".to_owned(), day(17), 7, 0),
            ("x".to_owned(), day(15), 99, 99),
            // Dated after today: counted in today's look.
            ("a".to_owned(), day(25), 1, 1),
        ];
        let looks = looks_from_daily(&variants, &daily, day(20));
        assert_eq!(
            looks,
            vec![
                look(16, (5, 1), (0, 0)),
                look(17, (12, 1), (10, 2)),
                look(20, (13, 2), (10, 2)),
            ]
        );
        // Without data, one look today with every variant at zero.
        assert_eq!(
            looks_from_daily(&variants, &[], day(20)),
            vec![look(20, (0, 0), (0, 0))]
        );
        // Data of today itself is today's look, not a second one.
        assert_eq!(
            looks_from_daily(&variants, &[("a".to_owned(), day(20), 3, 1)], day(20)),
            vec![look(20, (3, 1), (0, 0))]
        );
    }
}
