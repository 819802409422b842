//! The context shaped for each agent (the context router of the source
//! plan): every agent gets what it needs to do its job and nothing that
//! would distract it, plus the playbook rows it uses and the version it read.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Agent {
    CompanyResearch,
    AccountIntelligence,
    PersonaBuilder,
    EmailStrategist,
    LinkedinOutreach,
}

impl Agent {
    pub const ALL: [Agent; 5] = [
        Self::CompanyResearch,
        Self::AccountIntelligence,
        Self::PersonaBuilder,
        Self::EmailStrategist,
        Self::LinkedinOutreach,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CompanyResearch => "company_research",
            Self::AccountIntelligence => "account_intelligence",
            Self::PersonaBuilder => "persona_builder",
            Self::EmailStrategist => "email_strategist",
            Self::LinkedinOutreach => "linkedin_outreach",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }

    /// Whole sections this agent reads.
    fn sections(self) -> &'static [&'static str] {
        match self {
            Self::CompanyResearch => &["company", "icp"],
            Self::AccountIntelligence => &["company", "icp", "campaign_goals"],
            Self::PersonaBuilder => &["company", "icp", "personas"],
            Self::EmailStrategist => &["company", "personas", "messaging", "campaign_goals"],
            Self::LinkedinOutreach => &["company", "personas", "messaging", "campaign_goals"],
        }
    }

    /// The playbook rows this agent uses.
    fn playbook_keys(self) -> &'static [&'static str] {
        match self {
            Self::CompanyResearch => &["research_sources"],
            Self::AccountIntelligence => &[
                "conversion_patterns",
                "lead_scoring",
                "who",
                "learned",
                "priors",
            ],
            Self::PersonaBuilder => &["who", "persona_signals", "learned", "priors"],
            Self::EmailStrategist => &[
                "subject_patterns",
                "what",
                "timing",
                "when",
                "channel_sequences",
                "how",
                "avoid",
                "learned",
                "priors",
                "experiments",
            ],
            Self::LinkedinOutreach => &[
                "linkedin",
                "connection_strategies",
                "timing",
                "when",
                "channel_sequences",
                "how",
                "avoid",
                "learned",
                "priors",
                "experiments",
            ],
        }
    }

    /// Best-practice sections this agent reads (`best_practices.<key>`).
    fn practice_keys(self) -> &'static [&'static str] {
        match self {
            Self::CompanyResearch | Self::AccountIntelligence => {
                &["research", "general", "platform", "benchmarks"]
            }
            Self::PersonaBuilder => &["personas", "general", "platform", "benchmarks"],
            Self::EmailStrategist => &["email", "general", "platform", "benchmarks"],
            Self::LinkedinOutreach => &["linkedin", "general", "platform", "benchmarks"],
        }
    }
}

fn pick(source: Option<&Value>, keys: &[&str]) -> Value {
    let mut out = Map::new();
    if let Some(Value::Object(map)) = source {
        for key in keys {
            if let Some(value) = map.get(*key) {
                out.insert((*key).to_owned(), value.clone());
            }
        }
    }
    Value::Object(out)
}

/// The view of `document` (at `version`) for `agent`.
pub fn agent_view(agent: Agent, document: &Value, version: u64) -> Value {
    let mut view = Map::new();
    for section in agent.sections() {
        view.insert(
            (*section).to_owned(),
            document.get(*section).cloned().unwrap_or_else(|| json!({})),
        );
    }
    view.insert(
        "playbook".into(),
        pick(document.get("playbook"), agent.playbook_keys()),
    );
    view.insert(
        "best_practices".into(),
        pick(document.get("best_practices"), agent.practice_keys()),
    );
    view.insert(
        "instructions".into(),
        document
            .get("prompts")
            .and_then(|p| p.get(agent.as_str()))
            .cloned()
            .unwrap_or_else(|| json!({})),
    );
    view.insert("agent".into(), json!(agent.as_str()));
    view.insert("context_version".into(), json!(version));
    Value::Object(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Value {
        json!({
            "company": {"value_proposition": "close books in 2 days"},
            "icp": {"industries": ["fintech"]},
            "personas": {"cfo": {"goals": ["faster close"]}},
            "messaging": {"tone": "plain"},
            "prompts": {"email_strategist": {"instructions": "be brief"}, "linkedin_outreach": {"instructions": "be warm"}},
            "playbook": {"subject_patterns": ["question"], "linkedin": {"note_length": "short"}, "lead_scoring": {"tier": "warm"}, "avoid": ["hype"]},
            "best_practices": {"email": ["keep under 120 words"], "linkedin": ["no pitch in invite"], "general": ["personalise"]},
            "secret_section": {"x": 1}
        })
    }

    #[test]
    fn the_email_strategist_gets_messaging_its_playbook_rows_and_its_own_prompt() {
        let view = agent_view(Agent::EmailStrategist, &document(), 7);
        assert_eq!(view["messaging"]["tone"], "plain");
        assert_eq!(
            view["playbook"],
            json!({"subject_patterns": ["question"], "avoid": ["hype"]})
        );
        assert_eq!(view["instructions"]["instructions"], "be brief");
        assert_eq!(
            view["best_practices"],
            json!({"email": ["keep under 120 words"], "general": ["personalise"]})
        );
        assert_eq!(view["context_version"], 7);
        assert!(view.get("icp").is_none());
        assert!(view.get("secret_section").is_none());
    }

    #[test]
    fn what_the_learning_loop_writes_reaches_the_writing_agents() {
        let doc = json!({
            "playbook": {"learned": {"what": {"cta=meeting": "prefer"}}, "priors": {"when": {}},
                         "experiments": {"x": {"winner": "a"}}},
            "best_practices": {"platform": {"what:cta=meeting": "prefer"},
                               "benchmarks": {"what:subject_words=1-3": "prefer"}}
        });
        for agent in [Agent::EmailStrategist, Agent::LinkedinOutreach] {
            let view = agent_view(agent, &doc, 3);
            assert_eq!(view["playbook"]["learned"]["what"]["cta=meeting"], "prefer");
            assert_eq!(view["playbook"]["experiments"]["x"]["winner"], "a");
            assert_eq!(
                view["best_practices"]["platform"]["what:cta=meeting"],
                "prefer"
            );
            assert_eq!(
                view["best_practices"]["benchmarks"]["what:subject_words=1-3"],
                "prefer"
            );
        }
    }

    #[test]
    fn each_agent_sees_its_own_slice() {
        let doc = document();
        let linkedin = agent_view(Agent::LinkedinOutreach, &doc, 1);
        assert_eq!(linkedin["playbook"]["linkedin"]["note_length"], "short");
        assert!(linkedin["playbook"].get("subject_patterns").is_none());
        assert_eq!(linkedin["instructions"]["instructions"], "be warm");
        let account = agent_view(Agent::AccountIntelligence, &doc, 1);
        assert_eq!(
            account["playbook"],
            json!({"lead_scoring": {"tier": "warm"}})
        );
        assert_eq!(account["icp"]["industries"], json!(["fintech"]));
        let research = agent_view(Agent::CompanyResearch, &json!({}), 0);
        assert_eq!(research["company"], json!({}));
        for agent in Agent::ALL {
            assert_eq!(Agent::parse(agent.as_str()), Some(agent));
        }
    }
}
