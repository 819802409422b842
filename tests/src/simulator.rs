//! A simulator of outbound with known truth: leads, sends and outcomes with
//! planted effects (a few real, most features null), to check that the
//! learning loop finds what is real and stays within its false-discovery
//! target on what is not.

use chrono::{Duration, TimeZone, Utc};
use serde_json::{json, Value};

/// A planted effect: sends with `feature = value` reply `multiplier` times
/// as often as the base rate.
#[derive(Debug, Clone, Copy)]
pub struct Planted {
    pub family: &'static str,
    pub feature: &'static str,
    pub value: &'static str,
    pub multiplier: f64,
}

impl Planted {
    /// The pattern key the learning loop should report.
    pub fn key(&self) -> String {
        format!("{}={}", self.feature, self.value)
    }
}

pub const BASE_REPLY_RATE: f64 = 0.08;

/// A small deterministic generator (xorshift64*), so a seed is a world.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options[((self.next_f64() * options.len() as f64) as usize).min(options.len() - 1)]
    }
}

/// `sends` sends with their reply outcomes, in batches ready to post.
pub fn world(seed: u64, sends: usize, planted: &[Planted]) -> (Vec<Value>, Vec<Value>) {
    let mut rng = Rng::new(seed);
    let start = Utc
        .with_ymd_and_hms(2026, 10, 5, 0, 0, 0)
        .single()
        .expect("an unambiguous time");
    let mut all_sends = Vec::with_capacity(sends);
    let mut outcomes = Vec::new();
    for i in 0..sends {
        let cta = rng.pick(&["meeting", "call", "question", "none", "link"]);
        let angle = rng.pick(&["compliance", "speed", "cost", "growth", "risk"]);
        let seniority = rng.pick(&["vp", "director", "manager", "c_level"]);
        let industry = rng.pick(&["fintech", "saas", "health"]);
        let size = rng.pick(&["11-50", "51-200", "201-500"]);
        let tier = rng.pick(&["cold", "cool", "warm", "hot"]);
        let version = rng.pick(&["1", "2"]);
        let words = 2 + (rng.next_f64() * 10.0) as u32;
        let question = rng.next_f64() < 0.5;
        let personalized = rng.next_f64() < 0.5;
        let sent_at = start + Duration::minutes((rng.next_f64() * 60.0 * 24.0 * 28.0) as i64);
        let features = [
            ("cta", cta),
            ("angle", angle),
            ("seniority", seniority),
            ("industry", industry),
            ("company_size", size),
            ("tier", tier),
            ("context_version", version),
        ];
        let mut p = BASE_REPLY_RATE;
        for plant in planted {
            if features
                .iter()
                .any(|(f, v)| *f == plant.feature && *v == plant.value)
            {
                p *= plant.multiplier;
            }
        }
        let message = format!("sim-{seed}-{i}");
        all_sends.push(json!({
            "provider": "sim", "provider_message_id": message,
            "lead_ref": format!("lead-{seed}-{i:06}"),
            "lead": {"industry": industry, "company_size": size, "seniority": seniority, "tier": tier, "region": "AU"},
            "channel": "email", "campaign_id": "sim", "step": 1,
            "content": {"subject_words": words, "subject_question": question, "personalized": personalized,
                        "body_words": 80, "cta": cta, "angle": angle},
            "context_version": version.parse::<u64>().unwrap_or(1), "agent": "email_strategist", "prompt_version": "1",
            "sent_at": sent_at.to_rfc3339(),
        }));
        if rng.next_f64() < p {
            let intent = if rng.next_f64() < 0.5 {
                "interested"
            } else {
                "not_interested"
            };
            outcomes.push(json!({
                "provider": "sim", "provider_message_id": message, "kind": "replied", "intent": intent,
                "occurred_at": (sent_at + Duration::hours(5)).to_rfc3339(),
            }));
        }
    }
    (all_sends, outcomes)
}
