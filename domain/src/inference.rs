//! How the suggestion engine weighs evidence on live data, where outcomes
//! arrive hours or days after their sends and the engine looks every
//! minute. Pure functions; the method and why each step is there are in
//! docs/learning.md ("The method").
//!
//! 1. **Matured cohorts only.** A send counts once it is older than its
//!    metric's window ([`Windows`]): a fresh send has not failed, its reply
//!    has not come yet.
//! 2. **A key against the rest**, adjusted for the strongest other factors
//!    (Mantel–Haenszel over their strata), so a feature sent mostly at good
//!    times is not credited with the times' effect.
//! 3. **Always-valid p-values** (mixture SPRT on the log risk ratio), so
//!    looking every minute is no worse than looking once; Bonferroni over
//!    the pre-declared features, split equally among each feature's values,
//!    so a client all of whose keys are null gets a false proposal with
//!    probability at most `alpha`, however long the engine runs.
//! 4. **Small cells** are not tested: a key needs an expected count of at
//!    least five events in both arms; its p is Fisher's exact test.
//! 5. **The practical floor** is a property of the adjusted estimate, never
//!    of the correction.
//! 6. **Retraction.** A pending suggestion whose evidence no longer holds,
//!    an applied pattern that stopped holding and a prior the client's own
//!    data contradicts are named by [`plan`] and [`stopped_holding`].

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::learning::{Family, Metric, Verdict};
use crate::stats::{
    always_valid_interval, always_valid_p_normal, fisher_exact_p, mantel_haenszel_risk_ratio,
    min_expected_count, two_proportion_test, two_sided_normal_p, Stratum,
};

/// The features the engine tests, declared before any data is seen: the
/// family-wise error is split over these. `versions` is judged by the
/// regression rule and experiments, `variant` by experiments.
pub const FEATURES: [(Family, &str); 11] = [
    (Family::What, "subject_words"),
    (Family::What, "question"),
    (Family::What, "personalized"),
    (Family::What, "cta"),
    (Family::What, "angle"),
    (Family::When, "slot"),
    (Family::How, "sequence"),
    (Family::Who, "seniority"),
    (Family::Who, "industry"),
    (Family::Who, "company_size"),
    (Family::Who, "tier"),
];

/// How long after a send its outcomes are still expected, per metric: a
/// send younger than its window is *maturing* and is not judged. Each
/// client sets its own (`MaturityWindows` of the Client aggregate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Windows {
    /// Replies and positive replies (default 14 days).
    pub reply_days: u32,
    /// Meetings booked (default 30 days).
    pub meeting_days: u32,
    /// Conversions (default 60 days).
    pub conversion_days: u32,
}

impl Default for Windows {
    fn default() -> Self {
        Self {
            reply_days: 14,
            meeting_days: 30,
            conversion_days: 60,
        }
    }
}

impl Windows {
    pub fn from_days(reply_days: u32, meeting_days: u32, conversion_days: u32) -> Self {
        Self {
            reply_days,
            meeting_days,
            conversion_days,
        }
    }

    pub fn days(&self, metric: Metric) -> u32 {
        match metric {
            Metric::Reply | Metric::PositiveReply => self.reply_days,
            Metric::Meeting => self.meeting_days,
        }
    }

    /// Sends at or before this instant have matured for `metric` at `now`.
    pub fn matured_by(&self, metric: Metric, now: DateTime<Utc>) -> DateTime<Utc> {
        now - Duration::days(i64::from(self.days(metric)))
    }
}

/// Matured sends that carry the same pattern keys (`family|feature=value`),
/// and how many of them had the metric's event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub keys: Vec<String>,
    pub sends: u64,
    pub events: u64,
}

/// The knobs of the method, with the defaults docs/learning.md states.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Method {
    /// The chance, over the whole life of a client all of whose keys are
    /// null, of ever proposing one of them.
    pub alpha: f64,
    /// Sends each arm (the key, the rest) needs.
    pub min_sample: u64,
    /// Expected events each arm needs before the normal approximation (and
    /// so the test) is trusted.
    pub min_expected: f64,
    /// The smallest relative difference worth acting on, applied to the
    /// adjusted lift.
    pub min_relative_lift: f64,
    /// The variance of the normal mixture over the log risk ratio: the
    /// size of effect the test is most sensitive to (ln 1.3 squared).
    pub mixture_variance: f64,
    /// How many of the strongest other features an estimate is adjusted for.
    pub strata_features: usize,
    /// A pending suggestion is withdrawn when its nominal p reaches this
    /// (or its adjusted lift crosses 1).
    pub withdraw_p: f64,
}

impl Default for Method {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            min_sample: 100,
            min_expected: 5.0,
            min_relative_lift: 0.2,
            mixture_variance: 1.3_f64.ln().powi(2),
            strata_features: 2,
            withdraw_p: 0.05,
        }
    }
}

/// What the matured data says of one key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub family: Family,
    /// `feature=value`.
    pub key: String,
    pub sends: u64,
    pub events: u64,
    pub rest_sends: u64,
    pub rest_events: u64,
    pub rate: f64,
    pub rest_rate: f64,
    /// The key's rate over the rest's, unadjusted.
    pub crude_lift: f64,
    /// The Mantel–Haenszel risk ratio of the key against the rest within
    /// the strata of `adjusted_for`, and its 95% interval.
    pub lift: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// The always-valid 95% interval of the adjusted lift (the mixture
    /// SPRT's confidence sequence at `alpha`): what the checks of verdicts
    /// the context already holds read at every look.
    pub av_ci_low: f64,
    pub av_ci_high: f64,
    /// The features the estimate is stratified by (`family|feature`).
    pub adjusted_for: Vec<String>,
    /// The nominal two-sided p of the adjusted estimate; Fisher's exact p
    /// of the crude table where an arm expects fewer than `min_expected`
    /// events.
    pub p: f64,
    /// The always-valid p of the adjusted estimate.
    pub always_valid_p: f64,
    /// What `always_valid_p` must reach: `alpha` over the features, over
    /// the feature's values (a feature of two values every send carries one
    /// of is one comparison); 0 when the key is not testable.
    pub bar: f64,
    /// Both arms have the minimum sample and expected count.
    pub testable: bool,
    /// Testable, below its bar and beyond the practical floor.
    pub significant: bool,
}

impl Estimate {
    pub fn verdict(&self) -> Verdict {
        Verdict::of_lift(self.lift)
    }

    /// `family|feature=value`, as the pattern projection keys it.
    pub fn full_key(&self) -> String {
        format!("{}|{}", self.family.as_str(), self.key)
    }
}

fn feature_of(full_key: &str) -> &str {
    full_key.split_once('=').map_or(full_key, |(f, _)| f)
}

fn declared(feature: &str) -> bool {
    FEATURES.iter().any(|(family, name)| {
        feature
            .strip_prefix(family.as_str())
            .and_then(|r| r.strip_prefix('|'))
            == Some(name)
    })
}

fn ratio(events: u64, sends: u64) -> f64 {
    if sends == 0 {
        0.0
    } else {
        events as f64 / sends as f64
    }
}

/// Every declared key's estimate from the matured cells, most significant
/// first.
pub fn estimate(cells: &[Cell], method: &Method) -> Vec<Estimate> {
    // Intern the keys: the strata passes below touch every key of every
    // cell a few times.
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let mut names: Vec<&str> = Vec::new();
    let interned: Vec<(Vec<u32>, u64, u64)> = cells
        .iter()
        .map(|cell| {
            let keys = cell
                .keys
                .iter()
                .filter(|k| declared(feature_of(k)))
                .map(|k| {
                    *ids.entry(k.as_str()).or_insert_with(|| {
                        names.push(k.as_str());
                        (names.len() - 1) as u32
                    })
                })
                .collect();
            (keys, cell.sends, cell.events)
        })
        .collect();
    let total_sends: u64 = interned.iter().map(|c| c.1).sum();
    let total_events: u64 = interned.iter().map(|c| c.2).sum();
    let mut crude = vec![(0u64, 0u64); names.len()];
    for (keys, sends, events) in &interned {
        for &k in keys {
            crude[k as usize].0 += sends;
            crude[k as usize].1 += events;
        }
    }
    let features: Vec<&str> = names.iter().map(|n| feature_of(n)).collect();
    let testable: Vec<bool> = crude
        .iter()
        .map(|&(n, x)| {
            let (rest_n, rest_x) = (total_sends - n, total_events - x);
            n >= method.min_sample
                && rest_n >= method.min_sample
                && min_expected_count(x, n, rest_x, rest_n) >= method.min_expected
        })
        .collect();
    // Values seen per feature (the Bonferroni split), and each feature's
    // strength: its smallest crude p among testable keys.
    let mut values: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut strength: BTreeMap<&str, f64> = BTreeMap::new();
    for (k, &(n, x)) in crude.iter().enumerate() {
        let seen = values.entry(features[k]).or_default();
        seen.0 += 1;
        seen.1 += n;
        if testable[k] {
            let (_, p) = two_proportion_test(x, n, total_events - x, total_sends - n);
            let entry = strength.entry(features[k]).or_insert(1.0);
            *entry = entry.min(p);
        }
    }
    let mut strongest: Vec<(&str, f64)> = strength
        .iter()
        .filter(|(_, p)| **p < 0.05)
        .map(|(f, p)| (*f, *p))
        .collect();
    strongest.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(b.0)));
    strongest.truncate(MAX_CANDIDATE_STRATIFIERS);
    // A stratifier must be a factor in its own right, not a proxy for
    // another (`angle=roi`, sent mostly at good times, is a proxy for the
    // times): stratifying by a proxy would hide the real factor's effect
    // behind it.
    let survives = |candidate: &str, other: &str| -> bool {
        let keys: Vec<usize> = (0..names.len())
            .filter(|&k| features[k] == candidate && testable[k])
            .collect();
        let strata = stratify(&interned, &features, &keys, &[other]);
        keys.iter().zip(strata).any(|(_, strata)| {
            mantel_haenszel_risk_ratio(&strata)
                .filter(|rr| rr.log_variance.is_finite() && rr.log_variance > 0.0)
                .is_some_and(|rr| two_sided_normal_p(rr.log_ratio / rr.log_variance.sqrt()) < 0.05)
        })
    };
    // A proxy loses its effect once the other is held fixed while the
    // other keeps its own. When neither keeps its effect (both weak, or
    // one the mirror of the other), both stay stratifiers: holding both
    // fixed is the cautious reading.
    let proxy = |candidate: &str| -> bool {
        strongest.iter().any(|(other, _)| {
            *other != candidate && !survives(candidate, other) && survives(other, candidate)
        })
    };
    let factors: Vec<&str> = strongest
        .iter()
        .map(|(f, _)| *f)
        .filter(|f| !proxy(f))
        .collect();
    let strata_for = |feature: &str| -> Vec<&str> {
        factors
            .iter()
            .copied()
            .filter(|f| *f != feature)
            .take(method.strata_features)
            .collect()
    };
    // One pass over the cells per distinct set of strata features.
    let mut by_set: BTreeMap<Vec<&str>, Vec<usize>> = BTreeMap::new();
    for (k, feature) in features.iter().enumerate() {
        by_set.entry(strata_for(feature)).or_default().push(k);
    }
    let mut strata_of: Vec<Vec<Stratum>> = vec![Vec::new(); names.len()];
    for (set, keys) in &by_set {
        for (k, strata) in keys.iter().zip(stratify(&interned, &features, keys, set)) {
            strata_of[*k] = strata;
        }
    }
    let feature_count = FEATURES.len() as f64;
    let mut out: Vec<Estimate> = (0..names.len())
        .map(|k| {
            let (n, x) = crude[k];
            let (rest_n, rest_x) = (total_sends - n, total_events - x);
            let (rate, rest_rate) = (ratio(x, n), ratio(rest_x, rest_n));
            let crude_lift = if rest_rate > 0.0 {
                rate / rest_rate
            } else {
                0.0
            };
            let small = min_expected_count(x, n, rest_x, rest_n) < method.min_expected;
            let adjusted = mantel_haenszel_risk_ratio(&strata_of[k]);
            let (lift, (ci_low, ci_high), (av_ci_low, av_ci_high), normal_p, always_valid_p) =
                match adjusted {
                    Some(rr) if rr.log_variance.is_finite() && rr.log_variance > 0.0 => {
                        let (low, high) = always_valid_interval(
                            rr.log_ratio,
                            rr.log_variance,
                            method.mixture_variance,
                            method.alpha,
                        );
                        (
                            rr.ratio,
                            (rr.ci_low, rr.ci_high),
                            (low.exp(), high.exp()),
                            two_sided_normal_p(rr.log_ratio / rr.log_variance.sqrt()),
                            always_valid_p_normal(
                                rr.log_ratio,
                                rr.log_variance,
                                method.mixture_variance,
                            ),
                        )
                    }
                    _ => (
                        crude_lift,
                        (0.0, f64::INFINITY),
                        (0.0, f64::INFINITY),
                        1.0,
                        1.0,
                    ),
                };
            let p = if small {
                fisher_exact_p(x, n, rest_x, rest_n)
            } else {
                normal_p
            };
            let (family, key) = names[k].split_once('|').unwrap_or(("", names[k]));
            // Two values that every send carries one of are one
            // comparison seen from both sides (the same p): one share.
            let comparisons = match values.get(features[k]) {
                Some(&(2, sends)) if sends == total_sends => 1,
                Some(&(count, _)) => count.max(1),
                None => 1,
            } as f64;
            let bar = if testable[k] {
                method.alpha / (feature_count * comparisons)
            } else {
                0.0
            };
            let beyond_floor =
                lift >= 1.0 + method.min_relative_lift || lift <= 1.0 - method.min_relative_lift;
            Estimate {
                family: Family::parse(family).unwrap_or(Family::What),
                key: key.to_owned(),
                sends: n,
                events: x,
                rest_sends: rest_n,
                rest_events: rest_x,
                rate,
                rest_rate,
                crude_lift,
                lift,
                ci_low,
                ci_high,
                av_ci_low,
                av_ci_high,
                adjusted_for: strata_for(features[k])
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                p,
                always_valid_p,
                bar,
                testable: testable[k],
                significant: testable[k] && always_valid_p <= bar && beyond_floor,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.significant
            .cmp(&a.significant)
            .then(a.always_valid_p.total_cmp(&b.always_valid_p))
            .then(a.full_key().cmp(&b.full_key()))
    });
    out
}

/// How many of the strongest features are candidates for stratifying
/// (each pair is checked for being a proxy of the other).
const MAX_CANDIDATE_STRATIFIERS: usize = 4;

/// The 2x2 strata of each of `keys` (interned ids) against the rest of the
/// sends, within the strata the features `set` make: one pass over the
/// cells. A cell without a feature of `set` is in that feature's "none"
/// stratum.
fn stratify(
    cells: &[(Vec<u32>, u64, u64)],
    features: &[&str],
    keys: &[usize],
    set: &[&str],
) -> Vec<Vec<Stratum>> {
    let position: HashMap<usize, usize> = keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
    let mut totals: HashMap<Vec<u32>, (u64, u64)> = HashMap::new();
    let mut per_key: HashMap<(usize, Vec<u32>), (u64, u64)> = HashMap::new();
    for (cell_keys, sends, events) in cells {
        let stratum: Vec<u32> = set
            .iter()
            .map(|f| {
                cell_keys
                    .iter()
                    .copied()
                    .find(|&k| features[k as usize] == *f)
                    .unwrap_or(u32::MAX)
            })
            .collect();
        let total = totals.entry(stratum.clone()).or_default();
        total.0 += sends;
        total.1 += events;
        for &k in cell_keys {
            if let Some(&i) = position.get(&(k as usize)) {
                let entry = per_key.entry((i, stratum.clone())).or_default();
                entry.0 += sends;
                entry.1 += events;
            }
        }
    }
    let mut out = vec![Vec::new(); keys.len()];
    for ((i, stratum), (n, x)) in per_key {
        let (tn, tx) = totals.get(&stratum).copied().unwrap_or_default();
        out[i].push(Stratum {
            events: x,
            sends: n,
            rest_events: tx - x,
            rest_sends: tn - n,
        });
    }
    out
}

/// A suggestion of the engine's waiting for review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSuggestion<Id> {
    pub id: Id,
    pub family: Family,
    pub key: String,
    pub verdict: Verdict,
}

/// What one look decides.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<'a, Id> {
    /// Propose this verdict on this estimate.
    Propose(&'a Estimate),
    /// Withdraw a pending suggestion: its evidence no longer holds.
    Withdraw {
        id: Id,
        estimate: Option<&'a Estimate>,
        why: String,
    },
}

/// One look: propose what is significant and neither pending with the
/// same verdict nor already held by the document; withdraw what is pending
/// and no longer holds. `held` is the verdict the document holds per
/// `family|key`.
pub fn plan<'a, Id: Clone>(
    estimates: &'a [Estimate],
    pending: &[PendingSuggestion<Id>],
    held: &BTreeMap<String, Verdict>,
    method: &Method,
) -> Vec<Step<'a, Id>> {
    let find = |family: Family, key: &str| {
        estimates
            .iter()
            .find(|e| e.family == family && e.key == key)
    };
    let mut steps = Vec::new();
    for suggestion in pending {
        let estimate = find(suggestion.family, &suggestion.key);
        let why = match estimate {
            None => Some("no matured sends carry the key any more".to_owned()),
            Some(e) => no_longer_holds(e, suggestion.verdict, method),
        };
        if let Some(why) = why {
            steps.push(Step::Withdraw {
                id: suggestion.id.clone(),
                estimate,
                why,
            });
        }
    }
    for estimate in estimates.iter().filter(|e| e.significant) {
        let verdict = estimate.verdict();
        let already_pending = pending
            .iter()
            .any(|s| s.family == estimate.family && s.key == estimate.key && s.verdict == verdict);
        if already_pending || held.get(&estimate.full_key()) == Some(&verdict) {
            continue;
        }
        steps.push(Step::Propose(estimate));
    }
    steps
}

/// Why a pending suggestion's evidence no longer holds, if it does not:
/// its adjusted lift is no longer on the verdict's side of 1, or its
/// nominal p reached `withdraw_p`. Looser than what proposing takes, so a
/// suggestion does not come and go with every look.
pub fn no_longer_holds(estimate: &Estimate, verdict: Verdict, method: &Method) -> Option<String> {
    let wrong_side = match verdict {
        Verdict::Prefer => estimate.lift <= 1.0,
        Verdict::Avoid => estimate.lift >= 1.0,
        Verdict::RollBack => false,
    };
    if wrong_side {
        Some(format!(
            "the adjusted lift is now {:.2}, no longer {} 1",
            estimate.lift,
            if verdict == Verdict::Prefer {
                "above"
            } else {
                "below"
            }
        ))
    } else if estimate.p >= method.withdraw_p {
        Some(format!(
            "the difference is no longer significant (p = {:.2} on {} matured sends)",
            estimate.p, estimate.sends
        ))
    } else {
        None
    }
}

/// Why a verdict the context holds stopped holding, if it did: its
/// always-valid 95% interval (the adjusted lift's confidence sequence, so
/// that reading it at every look keeps the chance of ever judging a verdict
/// that still holds wrongly at `alpha`) now lies entirely short of the
/// practical floor (for `prefer`, below 1 + floor; for `avoid`, above
/// 1 − floor), on a testable key. Used for learned patterns (on the sends
/// since they were applied) and for priors (`floor` 0: the client's own
/// data significantly on the other side of 1).
pub fn stopped_holding(estimate: &Estimate, verdict: Verdict, floor: f64) -> Option<String> {
    if !estimate.testable {
        return None;
    }
    let (fails, bound) = match verdict {
        Verdict::Prefer => (estimate.av_ci_high < 1.0 + floor, estimate.av_ci_high),
        Verdict::Avoid => (estimate.av_ci_low > 1.0 - floor, estimate.av_ci_low),
        Verdict::RollBack => (false, 0.0),
    };
    let meant = if verdict == Verdict::Prefer {
        "preferred"
    } else {
        "avoided"
    };
    fails.then(|| {
        format!(
            "{} was to be {meant}, but its adjusted lift is {:.2} (always-valid 95% interval {:.2}–{:.2}, \
             bound {:.2}) on {} sends",
            estimate.key,
            estimate.lift,
            estimate.av_ci_low,
            estimate.av_ci_high,
            bound,
            estimate.sends
        )
    })
}

#[cfg(test)]
mod tests;
