//! Live worlds: sends spread over weeks, replies arriving hours or days
//! after their sends, and the suggestion engine's method
//! (`sextant_domain::inference`) looking on a timer, with reviewers who
//! never decide (every proposal stays pending, so every withdrawal is the
//! engine's). Known truth per world, so false proposals, power and
//! retraction can be counted over many worlds: a few in CI
//! (`tests/tests/learning_live.rs`), many in the benchmark harness.

use std::collections::{BTreeMap, HashMap};

use sextant_domain::inference::{estimate, plan, Cell, Method, PendingSuggestion, Step, Windows};
use sextant_domain::learning::{hour_band, Family, Metric, Verdict};

use crate::simulator::{Rng, BASE_REPLY_RATE};

/// Minutes in a day.
const DAY: i64 = 24 * 60;

/// What is true in a world.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scenario {
    /// No feature has any effect.
    Null,
    /// `personalized=true` on 20% of sends and `question=true` on 50%, each
    /// replying 1.3 times as often.
    Planted,
    /// Tuesday to Thursday mornings (09-12) reply `SLOT_EFFECT` times as
    /// often; `angle=roi`, which has no effect, goes out mostly then.
    Confounded,
}

/// The real effect of the good slots in [`Scenario::Confounded`].
pub const SLOT_EFFECT: f64 = 1.8;
/// The good slots of [`Scenario::Confounded`].
pub const GOOD_SLOTS: [&str; 3] = ["slot=tue 09-12", "slot=wed 09-12", "slot=thu 09-12"];

struct SimSend {
    keys: Vec<String>,
    sent_at: i64,
    replied_at: Option<i64>,
}

/// A world: its sends in the order they were sent.
pub struct LiveWorld {
    sends: Vec<SimSend>,
    pub scenario: Scenario,
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A reply's delay in minutes: half within a working day, the rest spread
/// over the following twelve days, as replies to cold outreach come.
fn reply_delay(rng: &mut Rng) -> i64 {
    if rng.next_f64() < 0.5 {
        (rng.next_f64() * 10.0 * 60.0) as i64 + 5
    } else {
        DAY + (rng.next_f64() * 12.0 * DAY as f64) as i64
    }
}

impl LiveWorld {
    /// `sends` sends over `days` days (a Monday first), on weekdays in
    /// working hours mostly, as a sending platform schedules them.
    pub fn new(seed: u64, scenario: Scenario, sends: usize, days: i64) -> Self {
        let mut rng = Rng::new(seed);
        let mut out = Vec::with_capacity(sends);
        for _ in 0..sends {
            let day = (rng.next_f64() * days as f64) as i64;
            out.push(Self::send(&mut rng, scenario, day));
        }
        out.sort_by_key(|s| s.sent_at);
        Self {
            sends: out,
            scenario,
        }
    }

    /// The world with `count` more sends on day `day` (a multiple of 7 is
    /// a Monday), all in working hours: a campaign launched at once.
    pub fn with_burst(mut self, seed: u64, day: i64, count: usize) -> Self {
        let mut rng = Rng::new(seed ^ 0x5eed);
        for _ in 0..count {
            self.sends.push(Self::send(&mut rng, self.scenario, day));
        }
        self.sends.sort_by_key(|s| s.sent_at);
        self
    }

    fn send(rng: &mut Rng, scenario: Scenario, day: i64) -> SimSend {
        {
            let weekday = (day % 7) as usize;
            let hour = if rng.next_f64() < 0.85 {
                7 + (rng.next_f64() * 11.0) as i64
            } else {
                (rng.next_f64() * 24.0) as i64
            };
            let sent_at = day * DAY + hour * 60 + (rng.next_f64() * 60.0) as i64;
            let slot = format!("slot={} {}", WEEKDAYS[weekday], hour_band(hour as u32));
            let good = GOOD_SLOTS.contains(&slot.as_str());
            let personalized = rng.next_f64() < 0.2;
            let question = rng.next_f64() < 0.5;
            let angle = match scenario {
                Scenario::Confounded if good => {
                    if rng.next_f64() < 0.7 {
                        "roi"
                    } else {
                        rng.pick(&["cost", "speed", "risk"])
                    }
                }
                Scenario::Confounded => {
                    if rng.next_f64() < 0.08 {
                        "roi"
                    } else {
                        rng.pick(&["cost", "speed", "risk"])
                    }
                }
                _ => rng.pick(&["roi", "cost", "speed", "risk"]),
            };
            let cta = rng.pick(&["meeting", "call", "question", "link"]);
            let words = rng.pick(&["1-3", "4-6", "7-9", "10+"]);
            let seniority = rng.pick(&["vp", "director", "manager", "c_level"]);
            let industry = rng.pick(&["fintech", "saas", "health"]);
            let size = rng.pick(&["11-50", "51-200", "201-500"]);
            let tier = rng.pick(&["cold", "cool", "warm", "hot"]);
            let mut p = BASE_REPLY_RATE;
            match scenario {
                Scenario::Null => {}
                Scenario::Planted => {
                    if personalized {
                        p *= 1.3;
                    }
                    if question {
                        p *= 1.3;
                    }
                }
                Scenario::Confounded => {
                    if good {
                        p *= SLOT_EFFECT;
                    }
                }
            }
            let replied_at = (rng.next_f64() < p).then(|| sent_at + reply_delay(rng));
            let keys = vec![
                format!("what|subject_words={words}"),
                format!("what|question={question}"),
                format!("what|personalized={personalized}"),
                format!("what|cta={cta}"),
                format!("what|angle={angle}"),
                format!("when|{slot}"),
                "how|sequence=email".to_owned(),
                format!("who|seniority={seniority}"),
                format!("who|industry={industry}"),
                format!("who|company_size={size}"),
                format!("who|tier={tier}"),
            ];
            SimSend {
                keys,
                sent_at,
                replied_at,
            }
        }
    }

    /// The cells of every send matured by `now` (minutes from the start).
    pub fn cells_at(&self, now: i64) -> Vec<Cell> {
        let window = i64::from(Windows::default().days(Metric::Reply)) * DAY;
        let mut cells: HashMap<&Vec<String>, (u64, u64)> = HashMap::new();
        for send in self.sends.iter().filter(|s| s.sent_at + window <= now) {
            let entry = cells.entry(&send.keys).or_default();
            entry.0 += 1;
            entry.1 += u64::from(send.replied_at.is_some());
        }
        cells
            .into_iter()
            .map(|(keys, (sends, events))| Cell {
                keys: keys.clone(),
                sends,
                events,
            })
            .collect()
    }

    /// Runs the engine's method on a timer, every `every_minutes`, from the
    /// first send until every send has matured (plus a day), and tells
    /// what it proposed and withdrew. With `ignore_maturity`, every send
    /// counts as soon as it is sent, failed until its reply comes: the
    /// behaviour the windows exist to prevent.
    pub fn run(&self, every_minutes: i64, method: &Method, ignore_maturity: bool) -> Run {
        let window = i64::from(Windows::default().days(Metric::Reply)) * DAY;
        let end = self.sends.last().map_or(0, |s| s.sent_at) + window + DAY;
        let mut run = Run::default();
        let mut pending: Vec<PendingSuggestion<u32>> = Vec::new();
        let mut next_id = 0;
        let mut cells: HashMap<Vec<String>, (u64, u64)> = HashMap::new();
        let mut matured = 0;
        let mut now = every_minutes;
        while now <= end {
            let cells_now: Vec<Cell> = if ignore_maturity {
                let mut all: HashMap<&Vec<String>, (u64, u64)> = HashMap::new();
                for send in self.sends.iter().take_while(|s| s.sent_at <= now) {
                    let entry = all.entry(&send.keys).or_default();
                    entry.0 += 1;
                    entry.1 += u64::from(send.replied_at.is_some_and(|r| r <= now));
                }
                all.into_iter()
                    .map(|(keys, (sends, events))| Cell {
                        keys: keys.clone(),
                        sends,
                        events,
                    })
                    .collect()
            } else {
                // A send matures `window` after it was sent; its reply, if
                // any, has come by then (delays stay under the window).
                while matured < self.sends.len() && self.sends[matured].sent_at + window <= now {
                    let send = &self.sends[matured];
                    let entry = cells.entry(send.keys.clone()).or_default();
                    entry.0 += 1;
                    entry.1 += u64::from(send.replied_at.is_some());
                    matured += 1;
                }
                cells
                    .iter()
                    .map(|(keys, (sends, events))| Cell {
                        keys: keys.clone(),
                        sends: *sends,
                        events: *events,
                    })
                    .collect()
            };
            let estimates = estimate(&cells_now, method);
            for step in plan(&estimates, &pending, &BTreeMap::new(), method) {
                match step {
                    Step::Propose(e) => {
                        run.proposed.push(Proposal {
                            family: e.family,
                            key: e.key.clone(),
                            verdict: e.verdict(),
                            day: now / DAY,
                        });
                        pending.push(PendingSuggestion {
                            id: next_id,
                            family: e.family,
                            key: e.key.clone(),
                            verdict: e.verdict(),
                        });
                        next_id += 1;
                    }
                    Step::Withdraw { id, estimate, why } => {
                        pending.retain(|p| p.id != id);
                        run.withdrawn.push(Withdrawal {
                            with_evidence: estimate.is_some() && !why.is_empty(),
                        });
                    }
                }
            }
            run.looks += 1;
            now += every_minutes;
        }
        run.still_pending = pending
            .into_iter()
            .map(|p| (p.family, p.key, p.verdict))
            .collect();
        run.months = end as f64 / (30.0 * DAY as f64);
        run
    }
}

/// A proposal the engine made, on which simulated day.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub family: Family,
    pub key: String,
    pub verdict: Verdict,
    pub day: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Withdrawal {
    /// It carried the estimate and the reason that withdrew it.
    pub with_evidence: bool,
}

/// What the engine did over a world's life.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub looks: u64,
    pub proposed: Vec<Proposal>,
    pub withdrawn: Vec<Withdrawal>,
    pub still_pending: Vec<(Family, String, Verdict)>,
    /// The world's life, in months of 30 days.
    pub months: f64,
}

impl Run {
    /// Proposals on keys with no effect in `scenario` (or with the wrong
    /// verdict on a real one).
    pub fn false_proposals(&self, scenario: Scenario) -> usize {
        self.proposed
            .iter()
            .filter(|p| !is_true(scenario, p))
            .count()
    }

    pub fn proposed(&self, family: Family, key: &str, verdict: Verdict) -> bool {
        self.proposed
            .iter()
            .any(|p| p.family == family && p.key == key && p.verdict == verdict)
    }
}

/// Whether a proposal states something true of the world. A planted
/// feature's other value is the same effect seen from the other side.
fn is_true(scenario: Scenario, p: &Proposal) -> bool {
    use Verdict::{Avoid, Prefer};
    match scenario {
        Scenario::Null => false,
        Scenario::Planted => matches!(
            (p.key.as_str(), p.verdict),
            ("personalized=true", Prefer)
                | ("personalized=false", Avoid)
                | ("question=true", Prefer)
                | ("question=false", Avoid)
        ),
        Scenario::Confounded => {
            p.family == Family::When
                && ((GOOD_SLOTS.contains(&p.key.as_str()) && p.verdict == Prefer)
                    || (!GOOD_SLOTS.contains(&p.key.as_str()) && p.verdict == Avoid))
        }
    }
}
