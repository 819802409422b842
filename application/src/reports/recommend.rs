//! The weekly report's next steps: up to three recommendations, each from
//! one of a fixed set of rules over the report's own numbers, ranked by
//! rule and then by the strength of its evidence (a resource: how many
//! times over its limit it is). Nothing is written that a rule does not
//! say.
//!
//! | rule | when | rank |
//! | --- | --- | --- |
//! | `roll_back_regression` | a rollback proposed because a context version did worse than its predecessor waits for review | 1 |
//! | `rest_resource` | a sending resource's bounce rate is above 3% or its complaint rate above 0.1% this week, over at least 20 sends | 2 |
//! | `decide_waiting_suggestion` | a suggestion has waited longer than 7 days | 3 |
//! | `adopt_pattern` | the suggestion engine proposed a pattern that waits for review | 4 |

use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

/// At most this many recommendations.
pub const MOST: usize = 3;
/// A resource's bounce rate above this asks to rest it.
pub const BOUNCE_LIMIT: f64 = 0.03;
/// A resource's complaint rate above this asks to rest it.
pub const COMPLAINT_LIMIT: f64 = 0.001;
/// Fewer sends than this in the week say nothing of a resource.
pub const MIN_RESOURCE_SENDS: u64 = 20;
/// A suggestion waiting longer than this many days asks for a decision.
pub const WAITING_DAYS: f64 = 7.0;

/// A context update waiting for review when the week ended.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub update_id: Uuid,
    pub source: String,
    pub proposed_by: Option<String>,
    pub rationale: String,
    pub confidence: Option<f64>,
    pub waiting_days: f64,
}

/// A sending resource's week.
#[derive(Debug, Clone)]
pub struct ResourceWeek {
    pub resource: String,
    pub sends: u64,
    pub bounced: u64,
    pub complained: u64,
}

/// What the rules read.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub waiting: Vec<Waiting>,
    pub resources: Vec<ResourceWeek>,
}

/// One next step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub rank: usize,
    pub rule: &'static str,
    pub action: String,
    pub evidence: Value,
}

/// The suggestion engine's name as a proposer.
pub const ENGINE: &str = "system:suggestion-engine";

/// The recommendations `facts` call for, ranked, at most [`MOST`].
pub fn recommend(facts: &Facts) -> Vec<Recommendation> {
    // (rule rank, strength (higher first), recommendation)
    let mut found: Vec<(u8, f64, Recommendation)> = Vec::new();
    let mut taken: Vec<Uuid> = Vec::new();
    for w in facts
        .waiting
        .iter()
        .filter(|w| w.source == "context_regression")
    {
        taken.push(w.update_id);
        found.push((
            1,
            w.waiting_days,
            Recommendation {
                rank: 0,
                rule: "roll_back_regression",
                action: format!(
                    "Review the proposed rollback (update {}): a context version did worse than its predecessor",
                    w.update_id
                ),
                evidence: json!({
                    "update_id": w.update_id,
                    "rationale": w.rationale,
                    "waiting_days": round1(w.waiting_days),
                }),
            },
        ));
    }
    for r in &facts.resources {
        if r.sends < MIN_RESOURCE_SENDS {
            continue;
        }
        let bounce = r.bounced as f64 / r.sends as f64;
        let complaint = r.complained as f64 / r.sends as f64;
        if bounce > BOUNCE_LIMIT || complaint > COMPLAINT_LIMIT {
            found.push((
                2,
                (bounce / BOUNCE_LIMIT).max(complaint / COMPLAINT_LIMIT),
                Recommendation {
                    rank: 0,
                    rule: "rest_resource",
                    action: format!(
                        "Rest the sending resource {} and check its list and set-up",
                        r.resource
                    ),
                    evidence: json!({
                        "resource": r.resource,
                        "sends": r.sends,
                        "bounced": r.bounced,
                        "complained": r.complained,
                        "bounce_rate": bounce,
                        "complaint_rate": complaint,
                        "bounce_limit": BOUNCE_LIMIT,
                        "complaint_limit": COMPLAINT_LIMIT,
                    }),
                },
            ));
        }
    }
    let long_waiting: Vec<&Waiting> = facts
        .waiting
        .iter()
        .filter(|w| !taken.contains(&w.update_id) && w.waiting_days > WAITING_DAYS)
        .collect();
    for w in long_waiting {
        taken.push(w.update_id);
        found.push((
            3,
            w.waiting_days,
            Recommendation {
                rank: 0,
                rule: "decide_waiting_suggestion",
                action: format!(
                    "Decide on update {}: it has waited {:.0} days for review",
                    w.update_id, w.waiting_days
                ),
                evidence: json!({
                    "update_id": w.update_id,
                    "source": w.source,
                    "waiting_days": round1(w.waiting_days),
                }),
            },
        ));
    }
    for w in facts
        .waiting
        .iter()
        .filter(|w| !taken.contains(&w.update_id) && w.proposed_by.as_deref() == Some(ENGINE))
    {
        found.push((
            4,
            w.confidence.unwrap_or(0.0),
            Recommendation {
                rank: 0,
                rule: "adopt_pattern",
                action: format!(
                    "Review the learned pattern proposed in update {}",
                    w.update_id
                ),
                evidence: json!({
                    "update_id": w.update_id,
                    "rationale": w.rationale,
                    "confidence": w.confidence,
                }),
            },
        ));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
    found
        .into_iter()
        .take(MOST)
        .enumerate()
        .map(|(i, (.., mut r))| {
            r.rank = i + 1;
            r
        })
        .collect()
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(source: &str, by: Option<&str>, days: f64, confidence: Option<f64>) -> Waiting {
        Waiting {
            update_id: Uuid::new_v4(),
            source: source.into(),
            proposed_by: by.map(str::to_owned),
            rationale: "why".into(),
            confidence,
            waiting_days: days,
        }
    }

    fn resource(name: &str, sends: u64, bounced: u64, complained: u64) -> ResourceWeek {
        ResourceWeek {
            resource: name.into(),
            sends,
            bounced,
            complained,
        }
    }

    #[test]
    fn a_pending_rollback_is_recommended_first() {
        let facts = Facts {
            waiting: vec![
                waiting("email_performance", Some(ENGINE), 1.0, Some(0.9)),
                waiting("context_regression", Some(ENGINE), 1.0, None),
            ],
            resources: vec![resource("box@a.example", 100, 10, 0)],
        };
        let steps = recommend(&facts);
        assert_eq!(steps[0].rule, "roll_back_regression");
        assert_eq!(steps[0].rank, 1);
        assert_eq!(steps[1].rule, "rest_resource");
        assert_eq!(steps[2].rule, "adopt_pattern");
    }

    #[test]
    fn a_resource_over_a_bounce_or_complaint_limit_is_to_be_rested() {
        let facts = Facts {
            waiting: vec![],
            resources: vec![
                resource("bouncy", 100, 4, 0),
                resource("fine", 100, 3, 0),
                resource("complained", 2000, 0, 3),
                resource("tiny", 10, 5, 0),
            ],
        };
        let steps = recommend(&facts);
        let rested: Vec<&str> = steps
            .iter()
            .map(|s| s.evidence["resource"].as_str().expect("a resource"))
            .collect();
        // The furthest over its limit first: 1.5× the complaint limit, then
        // 1.33× the bounce limit.
        assert_eq!(rested, vec!["complained", "bouncy"]);
        assert!(steps.iter().all(|s| s.rule == "rest_resource"));
    }

    #[test]
    fn a_suggestion_waiting_more_than_seven_days_asks_for_a_decision() {
        let facts = Facts {
            waiting: vec![
                waiting("manual", Some("key:1"), 8.5, None),
                waiting("manual", Some("key:2"), 6.0, None),
            ],
            resources: vec![],
        };
        let steps = recommend(&facts);
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].rule, "decide_waiting_suggestion");
        assert_eq!(steps[0].evidence["waiting_days"], 8.5);
    }

    #[test]
    fn an_engine_suggestion_is_a_pattern_to_adopt_most_confident_first() {
        let low = waiting("email_performance", Some(ENGINE), 1.0, Some(0.6));
        let high = waiting("email_performance", Some(ENGINE), 1.0, Some(0.95));
        let facts = Facts {
            waiting: vec![low.clone(), high.clone()],
            resources: vec![],
        };
        let steps = recommend(&facts);
        assert_eq!(steps.len(), 2);
        assert!(steps.iter().all(|s| s.rule == "adopt_pattern"));
        assert_eq!(steps[0].evidence["update_id"], json!(high.update_id));
    }

    #[test]
    fn no_more_than_three_steps_and_none_without_a_rule() {
        assert!(recommend(&Facts::default()).is_empty());
        let facts = Facts {
            waiting: (0..5)
                .map(|_| waiting("context_regression", Some(ENGINE), 2.0, None))
                .collect(),
            resources: vec![],
        };
        let steps = recommend(&facts);
        assert_eq!(steps.len(), MOST);
        assert_eq!(
            steps.iter().map(|s| s.rank).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }
}
