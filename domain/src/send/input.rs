//! What integrators and webhooks send in: a send or an outcome as it
//! arrives, with the personal parts (the lead's email, name, title and
//! profile URL, the subject line) that are split off before anything
//! reaches the log.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    BounceType, Channel, ContentFeatures, LeadSnapshot, OutcomeFacts, OutcomeKind, ReplyIntent,
    SendFacts, Tier,
};
use crate::values::CompanySize;

/// How far ahead of our clock a timestamp may be (clock skew), no more.
pub const MAX_FUTURE_SKEW_MINUTES: i64 = 60;

/// The earliest day a send or an outcome may be dated (and a document
/// captured). Outreach tooling is younger; anything earlier is a wrong
/// clock or a unit mistake (seconds read as milliseconds), and far enough
/// back it is a time Postgres cannot store at all, which would fail the
/// whole batch or park a projection on an event already in the log.
pub const EARLIEST_DAY: (i32, u32, u32) = (2000, 1, 1);

/// [`EARLIEST_DAY`] at midnight UTC.
pub fn earliest() -> DateTime<Utc> {
    let (y, m, d) = EARLIEST_DAY;
    NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map(|at| at.and_utc())
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// Whether `at` lies in the window a send, an outcome or a document may be
/// dated in: from [`earliest`] to `max_ahead` past `now`. The message says
/// what is wrong, for the field's error.
pub fn check_time(
    at: DateTime<Utc>,
    now: DateTime<Utc>,
    max_ahead: Duration,
) -> Result<(), String> {
    if at < earliest() {
        let (y, m, d) = EARLIEST_DAY;
        return Err(format!("must not be before {y:04}-{m:02}-{d:02}T00:00:00Z"));
    }
    if at > now + max_ahead {
        return Err(format!(
            "is in the future (more than {} minutes ahead of the server's clock)",
            max_ahead.num_minutes()
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadInput {
    pub email: Option<String>,
    pub name: Option<String>,
    pub industry: Option<String>,
    pub company_size: Option<CompanySize>,
    pub seniority: Option<String>,
    pub title: Option<String>,
    /// The lead's profile (LinkedIn) URL.
    pub profile_url: Option<String>,
    pub region: Option<String>,
    pub timezone: Option<String>,
    pub tier: Option<Tier>,
    pub score: Option<u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentInput {
    pub subject: Option<String>,
    pub subject_words: Option<u32>,
    pub subject_question: Option<bool>,
    pub personalized: Option<bool>,
    pub body_words: Option<u32>,
    pub cta: Option<String>,
    pub angle: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendInput {
    pub provider: String,
    pub provider_message_id: String,
    pub lead_ref: Option<String>,
    #[serde(default)]
    pub lead: LeadInput,
    pub channel: Channel,
    pub campaign_id: Option<String>,
    pub step: Option<u32>,
    pub experiment_id: Option<Uuid>,
    pub variant: Option<String>,
    #[serde(default)]
    pub content: ContentInput,
    pub context_version: Option<u64>,
    pub agent: Option<String>,
    pub prompt_version: Option<String>,
    pub resource: Option<String>,
    pub sent_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeInput {
    pub provider: String,
    pub provider_message_id: String,
    pub provider_event_id: Option<String>,
    pub kind: OutcomeKind,
    pub intent: Option<ReplyIntent>,
    pub bounce_type: Option<BounceType>,
    pub occurred_at: DateTime<Utc>,
}

/// Personal data split off a send: kept in erasable tables, keyed by the
/// lead's ref and the send's id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersonalParts {
    pub email: Option<String>,
    pub name: Option<String>,
    /// The lead's job title or headline: free text about the person.
    pub title: Option<String>,
    pub profile_url: Option<String>,
    pub subject: Option<String>,
}

/// A validation failure of one item: the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

fn invalid(field: &str, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// A bounded, trimmed, non-empty text (or none).
fn text(field: &'static str, value: Option<String>, max: usize) -> Result<Option<String>, Invalid> {
    match value.map(|v| v.trim().to_owned()) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) if v.chars().count() > max => {
            Err(invalid(field, format!("must be at most {max} characters")))
        }
        Some(v) if v.chars().any(char::is_control) => {
            Err(invalid(field, "must not contain control characters"))
        }
        Some(v) => Ok(Some(v)),
    }
}

/// Provider names: lower-case letters, digits, `_` and `-`, 1 to 64.
pub fn provider_name(value: &str) -> Result<String, Invalid> {
    let v = value.trim();
    if v.is_empty()
        || v.len() > 64
        || !v
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(invalid("provider", "must be 1 to 64 of a-z, 0-9, _ and -"));
    }
    Ok(v.to_owned())
}

fn message_id(value: &str) -> Result<String, Invalid> {
    let v = value.trim();
    if v.is_empty() || v.len() > 256 || v.chars().any(char::is_control) {
        return Err(invalid(
            "provider_message_id",
            "must be 1 to 256 printable characters",
        ));
    }
    Ok(v.to_owned())
}

fn in_window(field: &'static str, at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), Invalid> {
    check_time(at, now, Duration::minutes(MAX_FUTURE_SKEW_MINUTES))
        .map_err(|message| invalid(field, message))
}

/// A plausible email address (the parts a person could mistype); lower-cased.
pub fn normalize_email(value: &str) -> Result<String, Invalid> {
    let v = value.trim().to_lowercase();
    let Some((local, domain)) = v.split_once('@') else {
        return Err(invalid("lead.email", "is not an email address"));
    };
    if local.is_empty()
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || v.len() > 320
        || v.chars().any(char::is_whitespace)
    {
        return Err(invalid("lead.email", "is not an email address"));
    }
    Ok(v)
}

/// A lead ref given by the caller: `lr_` and 32 hex digits, or any opaque
/// ref of 8 to 128 URL-safe characters an integrator already uses.
pub fn parse_lead_ref(value: &str) -> Result<String, Invalid> {
    let v = value.trim();
    if v.len() < 8
        || v.len() > 128
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(invalid(
            "lead_ref",
            "must be 8 to 128 of A-Z, a-z, 0-9, _ and -",
        ));
    }
    if v.contains('@') {
        return Err(invalid("lead_ref", "must not be an email address"));
    }
    Ok(v.to_owned())
}

impl SendInput {
    /// Validates the send and splits it into facts for the log and personal
    /// parts for erasable storage. `lead_ref_for` turns a normalized email
    /// into the client's keyed ref.
    pub fn into_facts(
        self,
        now: DateTime<Utc>,
        lead_ref_for: impl FnOnce(&str) -> String,
    ) -> Result<(SendFacts, PersonalParts), Invalid> {
        let provider = provider_name(&self.provider)?;
        let provider_message_id = message_id(&self.provider_message_id)?;
        in_window("sent_at", self.sent_at, now)?;
        let email = self
            .lead
            .email
            .as_deref()
            .map(normalize_email)
            .transpose()?;
        let lead_ref = match (&self.lead_ref, &email) {
            (Some(given), _) => parse_lead_ref(given)?,
            (None, Some(email)) => lead_ref_for(email),
            (None, None) => return Err(invalid("lead", "give lead.email or lead_ref")),
        };
        if let Some(score) = self.lead.score {
            if score > 100 {
                return Err(invalid("lead.score", "must be 0 to 100"));
            }
        }
        if let Some(step) = self.step {
            if !(1..=100).contains(&step) {
                return Err(invalid("step", "must be 1 to 100"));
            }
        }
        let subject = text("content.subject", self.content.subject, 998)?;
        let subject_words = self.content.subject_words.or_else(|| {
            subject
                .as_ref()
                .map(|s| s.split_whitespace().count() as u32)
        });
        let subject_question = self
            .content
            .subject_question
            .or_else(|| subject.as_ref().map(|s| s.trim_end().ends_with('?')));
        let facts = SendFacts {
            provider,
            provider_message_id,
            lead_ref,
            lead: LeadSnapshot {
                industry: text("lead.industry", self.lead.industry, 100)?,
                company_size: self.lead.company_size,
                seniority: text("lead.seniority", self.lead.seniority, 64)?,
                region: text("lead.region", self.lead.region, 64)?,
                timezone: text("lead.timezone", self.lead.timezone, 64)?,
                tier: self.lead.tier,
                score: self.lead.score,
            },
            channel: self.channel,
            campaign_id: text("campaign_id", self.campaign_id, 200)?,
            step: self.step,
            experiment_id: self.experiment_id,
            variant: text("variant", self.variant, 64)?,
            content: ContentFeatures {
                subject_words,
                subject_question,
                personalized: self.content.personalized,
                body_words: self.content.body_words,
                cta: text("content.cta", self.content.cta, 64)?,
                angle: text("content.angle", self.content.angle, 100)?,
            },
            context_version: self.context_version,
            agent: text("agent", self.agent, 64)?,
            prompt_version: text("prompt_version", self.prompt_version, 64)?,
            resource: text("resource", self.resource, 320)?.map(|r| r.to_lowercase()),
            sent_at: self.sent_at,
        };
        let personal = PersonalParts {
            email,
            name: text("lead.name", self.lead.name, 200)?,
            title: text("lead.title", self.lead.title, 200)?,
            profile_url: text("lead.profile_url", self.lead.profile_url, 500)?,
            subject,
        };
        Ok((facts, personal))
    }
}

impl OutcomeInput {
    pub fn into_facts(self, now: DateTime<Utc>) -> Result<OutcomeFacts, Invalid> {
        let provider = provider_name(&self.provider)?;
        let provider_message_id = message_id(&self.provider_message_id)?;
        in_window("occurred_at", self.occurred_at, now)?;
        if self.intent.is_some() && self.kind != OutcomeKind::Replied {
            return Err(invalid("intent", "only a reply has an intent"));
        }
        if self.bounce_type.is_some() && self.kind != OutcomeKind::Bounced {
            return Err(invalid("bounce_type", "only a bounce has a bounce type"));
        }
        Ok(OutcomeFacts {
            provider,
            provider_message_id,
            kind: self.kind,
            intent: self.intent,
            bounce_type: self.bounce_type,
            provider_event_id: text("provider_event_id", self.provider_event_id, 256)?,
            occurred_at: self.occurred_at,
        })
    }
}
