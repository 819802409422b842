//! The LLM adapter: insight extraction through an OpenAI-compatible
//! chat-completions API (`SEXTANT_LLM_URL`, `SEXTANT_LLM_MODEL`,
//! `SEXTANT_LLM_API_KEY`).
//!
//! Guard rails: a per-client daily spend limit (`llm_spend`), a timeout per
//! call, retries with exponential backoff on timeouts, 429 and 5xx, and a
//! circuit breaker that stops calling a failing service for a while. Every
//! failure is an [`LlmError`]; callers fall back to the deterministic
//! extractor, so an LLM outage never loses a document.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Clone, Debug)]
pub struct LlmSettings {
    /// Base URL; `/chat/completions` is appended.
    pub url: String,
    pub model: String,
    pub api_key: SecretString,
    pub daily_limit_usd: f64,
    pub usd_per_1k_tokens: f64,
    pub timeout: Duration,
    pub attempts: u32,
    /// Consecutive failures that open the breaker, and for how long.
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("the client's daily LLM budget is spent")]
    BudgetExhausted,
    #[error("the LLM circuit breaker is open after repeated failures")]
    CircuitOpen,
    #[error("the LLM did not answer in time")]
    Timeout,
    #[error("the LLM answered {0}")]
    Status(u16),
    #[error("the LLM could not be reached: {0}")]
    Transport(String),
    #[error("the LLM's answer was not usable: {0}")]
    Malformed(String),
    #[error("spend accounting failed: {0}")]
    Database(#[from] sqlx::Error),
}

impl LlmError {
    fn retryable(&self) -> bool {
        matches!(self, Self::Timeout | Self::Transport(_))
            || matches!(self, Self::Status(s) if *s == 429 || *s >= 500)
    }
}

#[derive(Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

pub struct LlmClient {
    http: reqwest::Client,
    settings: LlmSettings,
    breaker: Mutex<Breaker>,
}

/// Sections an extraction may write.
const SECTIONS: [&str; 6] = [
    "company",
    "icp",
    "personas",
    "messaging",
    "campaign_goals",
    "playbook",
];
const MAX_CONTENT_CHARS: usize = 48_000;

const SYSTEM_PROMPT: &str = "You extract outbound-sales context from a document written by the client's team. \
Answer with one JSON object. Its keys may only be: company (value_proposition, offering, differentiators, proof_points), \
icp (industries, company_sizes, regions, titles, pain_points, disqualifiers), personas (by role: goals, objections, language), \
messaging (positioning, tone, angles, terms_to_use, terms_to_avoid), campaign_goals (objectives, constraints), \
playbook (subject_patterns, timing, channel_sequences, avoid). Include only what the document states; \
never include names, emails or phone numbers of people. Answer {} if the document states nothing of this.";

/// The outcome of one extraction.
#[derive(Debug, Clone, PartialEq)]
pub struct Extraction {
    /// A merge patch of sections; `None` when the document held nothing.
    pub patch: Option<Value>,
    pub tokens: u64,
}

impl LlmClient {
    pub fn new(settings: LlmSettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .unwrap_or_default();
        Self {
            http,
            settings,
            breaker: Mutex::new(Breaker::default()),
        }
    }

    pub fn model(&self) -> &str {
        &self.settings.model
    }

    /// Extracts insights from `content` for `client_id`.
    pub async fn extract(
        &self,
        pool: &PgPool,
        client_id: Uuid,
        content: &str,
    ) -> Result<Extraction, LlmError> {
        self.check_breaker()?;
        let spent: Option<f64> = sqlx::query_scalar(
            "SELECT cost_usd FROM llm_spend WHERE client_id = $1 AND day = current_date",
        )
        .bind(client_id)
        .fetch_optional(pool)
        .await?;
        if spent.unwrap_or(0.0) >= self.settings.daily_limit_usd {
            return Err(LlmError::BudgetExhausted);
        }
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1;
        let outcome = loop {
            match self.call(content).await {
                Err(err) if err.retryable() && attempt < self.settings.attempts => {
                    tracing::warn!(error = %err, attempt, "LLM call failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                other => break other,
            }
        };
        self.record_outcome(outcome.is_ok());
        let extraction = outcome?;
        let cost = extraction.tokens as f64 / 1000.0 * self.settings.usd_per_1k_tokens;
        sqlx::query(
            "INSERT INTO llm_spend (client_id, day, calls, tokens, cost_usd) VALUES ($1, current_date, 1, $2, $3) \
             ON CONFLICT (client_id, day) DO UPDATE SET calls = llm_spend.calls + 1, \
             tokens = llm_spend.tokens + EXCLUDED.tokens, cost_usd = llm_spend.cost_usd + EXCLUDED.cost_usd",
        )
        .bind(client_id)
        .bind(extraction.tokens as i64)
        .bind(cost)
        .execute(pool)
        .await?;
        Ok(extraction)
    }

    fn check_breaker(&self) -> Result<(), LlmError> {
        let mut breaker = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        match breaker.open_until {
            Some(until) if Instant::now() < until => Err(LlmError::CircuitOpen),
            Some(_) => {
                // Half-open: let this call through as the trial.
                breaker.open_until = None;
                breaker.failures = self.settings.breaker_threshold.saturating_sub(1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn record_outcome(&self, ok: bool) {
        let mut breaker = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        if ok {
            *breaker = Breaker::default();
            return;
        }
        breaker.failures += 1;
        if breaker.failures >= self.settings.breaker_threshold {
            tracing::error!(failures = breaker.failures, "LLM circuit breaker opened");
            metrics::counter!("sextant_llm_breaker_opened_total").increment(1);
            breaker.open_until = Some(Instant::now() + self.settings.breaker_cooldown);
        }
    }

    async fn call(&self, content: &str) -> Result<Extraction, LlmError> {
        let content: String = content.chars().take(MAX_CONTENT_CHARS).collect();
        let body = json!({
            "model": self.settings.model,
            "temperature": 0,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": content},
            ],
        });
        let url = format!(
            "{}/chat/completions",
            self.settings.url.trim_end_matches('/')
        );
        let response = self
            .http
            .post(url)
            .bearer_auth(self.settings.api_key.expose_secret())
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    LlmError::Timeout
                } else {
                    LlmError::Transport(e.to_string())
                }
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(LlmError::Status(status.as_u16()));
        }
        let answer: Value = response.json().await.map_err(|e| {
            if e.is_timeout() {
                LlmError::Timeout
            } else {
                LlmError::Malformed(e.to_string())
            }
        })?;
        parse_answer(&answer)
    }
}

/// Reads a chat-completions answer: the first choice's message content must
/// be a JSON object; only known sections (themselves objects) are kept.
pub fn parse_answer(answer: &Value) -> Result<Extraction, LlmError> {
    let text = answer["choices"][0]["message"]["content"]
        .as_str()
        .ok_or_else(|| LlmError::Malformed("no choices[0].message.content".into()))?;
    let parsed: Value = serde_json::from_str(text.trim())
        .map_err(|e| LlmError::Malformed(format!("content is not JSON: {e}")))?;
    let Value::Object(sections) = parsed else {
        return Err(LlmError::Malformed("content is not a JSON object".into()));
    };
    let kept: Map<String, Value> = sections
        .into_iter()
        .filter(|(k, v)| {
            SECTIONS.contains(&k.as_str()) && v.as_object().is_some_and(|m| !m.is_empty())
        })
        .collect();
    let tokens = answer["usage"]["total_tokens"].as_u64().unwrap_or(0);
    Ok(Extraction {
        patch: (!kept.is_empty()).then_some(Value::Object(kept)),
        tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_keeps_only_known_sections_that_are_objects() {
        let answer = json!({
            "choices": [{"message": {"role": "assistant", "content":
                "{\"icp\": {\"industries\": [\"fintech\"]}, \"secrets\": {\"x\": 1}, \"messaging\": \"loud\", \"company\": {}}"}}],
            "usage": {"total_tokens": 321}
        });
        let extraction = parse_answer(&answer).unwrap_or(Extraction {
            patch: None,
            tokens: 0,
        });
        assert_eq!(
            extraction.patch,
            Some(json!({"icp": {"industries": ["fintech"]}}))
        );
        assert_eq!(extraction.tokens, 321);
    }

    #[test]
    fn unusable_answers_are_malformed() {
        for answer in [
            json!({}),
            json!({"choices": [{"message": {"content": "not json"}}]}),
            json!({"choices": [{"message": {"content": "[1,2]"}}]}),
        ] {
            assert!(
                matches!(parse_answer(&answer), Err(LlmError::Malformed(_))),
                "{answer}"
            );
        }
    }
}
