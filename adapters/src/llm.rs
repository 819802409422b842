//! The LLM adapter: insight extraction through an OpenAI-compatible
//! chat-completions API (`SEXTANT_LLM_URL`, `SEXTANT_LLM_MODEL`,
//! `SEXTANT_LLM_API_KEY`).
//!
//! Guard rails: a per-client daily spend limit (`llm_spend`), a timeout per
//! call, retries with exponential backoff on timeouts, 429 and 5xx, and a
//! circuit breaker that stops calling a failing service for a while. Every
//! failure is an [`LlmError`]; callers fall back to the deterministic
//! extractor, so an LLM outage never loses a document.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::retry::{Backoff, CircuitBreaker};

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
    #[error("the LLM client could not be set up: {0}")]
    Setup(String),
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

pub struct LlmClient {
    http: reqwest::Client,
    settings: LlmSettings,
    breaker: CircuitBreaker,
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
    /// Fails when the settings cannot make an HTTP client: an API key that
    /// is not a valid header value, or a TLS set-up the platform refuses.
    /// Either would fail every call, so it fails at start-up instead.
    pub fn new(settings: LlmSettings) -> Result<Self, LlmError> {
        let mut bearer =
            HeaderValue::from_str(&format!("Bearer {}", settings.api_key.expose_secret()))
                .map_err(|_| {
                    LlmError::Setup("SEXTANT_LLM_API_KEY is not a valid header value".into())
                })?;
        bearer.set_sensitive(true);
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .default_headers(HeaderMap::from_iter([(AUTHORIZATION, bearer)]))
            .build()
            .map_err(|e| LlmError::Setup(e.to_string()))?;
        Ok(Self {
            http,
            breaker: CircuitBreaker::new(settings.breaker_threshold, settings.breaker_cooldown),
            settings,
        })
    }

    pub fn model(&self) -> &str {
        &self.settings.model
    }

    /// What one client may spend on calls in a day, in US dollars.
    pub fn daily_limit_usd(&self) -> f64 {
        self.settings.daily_limit_usd
    }

    /// Extracts insights from `content` for `client_id`.
    pub async fn extract(
        &self,
        pool: &PgPool,
        client_id: Uuid,
        content: &str,
    ) -> Result<Extraction, LlmError> {
        self.breaker.allow().map_err(|_| LlmError::CircuitOpen)?;
        let spent: Option<f64> = sqlx::query_scalar(
            "SELECT cost_usd FROM llm_spend WHERE client_id = $1 AND day = current_date",
        )
        .bind(client_id)
        .fetch_optional(pool)
        .await?;
        if spent.unwrap_or(0.0) >= self.settings.daily_limit_usd {
            return Err(LlmError::BudgetExhausted);
        }
        let mut backoff = Backoff::llm();
        let mut attempt = 1;
        let outcome = loop {
            match self.call(content).await {
                Err(err) if err.retryable() && attempt < self.settings.attempts => {
                    tracing::warn!(error = %err, attempt, "LLM call failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                    attempt += 1;
                }
                other => break other,
            }
        };
        if outcome.is_ok() {
            self.breaker.record_success();
        } else if let Some(failures) = self.breaker.record_failure() {
            tracing::error!(failures, "LLM circuit breaker opened");
            metrics::counter!("sextant_llm_breaker_opened_total").increment(1);
        }
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
        let response = self.http.post(url).json(&body).send().await.map_err(|e| {
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
        let extraction = parse_answer(&answer).expect("a usable answer");
        assert_eq!(
            extraction.patch,
            Some(json!({"icp": {"industries": ["fintech"]}}))
        );
        assert_eq!(extraction.tokens, 321);
    }

    fn settings(api_key: &str) -> LlmSettings {
        LlmSettings {
            url: "http://127.0.0.1:9".into(),
            model: "test".into(),
            api_key: api_key.into(),
            daily_limit_usd: 1.0,
            usd_per_1k_tokens: 0.002,
            timeout: Duration::from_secs(1),
            attempts: 3,
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(30),
        }
    }

    #[test]
    fn a_client_is_built_from_valid_settings() {
        let client = LlmClient::new(settings("sk-test")).expect("a client");
        assert_eq!(client.model(), "test");
    }

    #[test]
    fn an_api_key_that_cannot_be_sent_fails_at_start_up_without_showing_it() {
        let err = LlmClient::new(settings("sk-secret\nInjected: yes"))
            .err()
            .expect("an api key with a newline is refused");
        assert!(matches!(err, LlmError::Setup(_)), "{err}");
        assert!(err.to_string().contains("SEXTANT_LLM_API_KEY"), "{err}");
        assert!(!err.to_string().contains("sk-secret"), "{err}");
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
