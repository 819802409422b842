//! Sends reads: the suppression list, the sends with their outcomes, and
//! the webhook deliveries that were dead-lettered.
//!
//! A lead's personal data (email, name, job title, profile URL, and the
//! subject lines written to it) is kept out of the log, erasable; the
//! sends read model knows a lead by its `lead_ref` only. What is kept is
//! shown only to callers who may see personal data
//! ([`PersonalData::of`]): the operator and admin keys. Others get the
//! lead ref, the lead's non-identifying attributes, and no dead-lettered
//! payload (a provider's webhook body names the lead).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use sextant_adapters::http::{Principal, Problem};
use sextant_domain::send::Channel;
use sextant_domain::values::{Provider, Role};

use super::paging::split;
use crate::Result;

/// Whether a caller sees a lead's personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonalData {
    Shown,
    Withheld,
}

impl PersonalData {
    /// Shown to the operator and to admin keys, who may erase a lead and
    /// answer for its data; withheld from reviewer, reader and ingest keys,
    /// whose work needs the lead ref and the lead's attributes only.
    pub fn of(principal: &Principal) -> Self {
        match principal {
            Principal::Operator => Self::Shown,
            Principal::Key { role, .. } => match role {
                Role::Admin => Self::Shown,
                Role::Reviewer | Role::Ingest | Role::Reader => Self::Withheld,
            },
        }
    }
}

/// A lead the client may not send to, and since when.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Suppressed {
    pub lead_ref: String,
    pub reason: String,
    pub send_id: Uuid,
    pub since: DateTime<Utc>,
}

/// A page of the suppression list, by lead ref.
#[derive(Debug, Clone, Serialize)]
pub struct SuppressionPage {
    pub items: Vec<Suppressed>,
    /// The cursor of the next page; `None` on the last.
    pub next_after: Option<String>,
}

/// Up to `limit` suppressed leads of the client after the lead ref `after`
/// (from the first if `None`).
pub async fn suppression(
    pool: &PgPool,
    client_id: Uuid,
    after: Option<&str>,
    limit: i64,
) -> Result<SuppressionPage> {
    let mut items: Vec<Suppressed> = sqlx::query_as(
        "SELECT lead_ref, reason, send_id, since FROM suppression_view \
         WHERE client_id = $1 AND lead_ref > $2 ORDER BY lead_ref LIMIT $3",
    )
    .bind(client_id)
    .bind(after.unwrap_or_default())
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_after = more
        .then(|| items.last().map(|r| r.lead_ref.clone()))
        .flatten();
    Ok(SuppressionPage { items, next_after })
}

/// One outcome of a send.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct OutcomeRow {
    #[serde(skip)]
    pub send_id: Uuid,
    pub kind: String,
    pub intent: Option<String>,
    pub bounce_type: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

/// What Sextant keeps of a send's lead that names the person, and the
/// subject line of the send; each `None` when it was never given or has
/// been erased.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Personal {
    pub email: Option<String>,
    pub name: Option<String>,
    pub title: Option<String>,
    pub profile_url: Option<String>,
    pub subject: Option<String>,
}

/// A send as the sends read model holds it, with its outcomes.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct SendRow {
    pub send_id: Uuid,
    pub lead_ref: String,
    pub channel: String,
    pub provider: String,
    pub provider_message_id: String,
    pub campaign_id: Option<String>,
    pub step: Option<i32>,
    pub experiment_id: Option<Uuid>,
    pub variant: Option<String>,
    pub context_version: Option<i64>,
    pub agent: Option<String>,
    pub prompt_version: Option<String>,
    pub resource: Option<String>,
    /// The lead's attributes at send time, none of which identifies it.
    pub lead: Value,
    /// Features of the message, never its text.
    pub content: Value,
    pub sent_at: DateTime<Utc>,
    /// The position of its `send_recorded` event.
    pub position: i64,
    /// Oldest first.
    #[sqlx(skip)]
    pub outcomes: Vec<OutcomeRow>,
    /// Only for those who see [`PersonalData::Shown`].
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub personal: Option<Personal>,
}

/// Which sends a list holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendFilter {
    pub channel: Option<Channel>,
    pub campaign_id: Option<String>,
}

/// A page of a client's sends, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct SendPage {
    pub items: Vec<SendRow>,
    /// The cursor of the next page (`before`: the last send id of this
    /// one); `None` on the last.
    pub next_before: Option<Uuid>,
}

/// Up to `limit` of the client's sends that `filter` admits, newest first
/// (by `sent_at`), sent before the send `before` (from the newest if
/// `None`), each with its outcomes and, as `personal` allows, its lead's
/// personal data. A `before` that names no send of the client is refused
/// naming `before`.
pub async fn sends(
    pool: &PgPool,
    client_id: Uuid,
    filter: &SendFilter,
    before: Option<Uuid>,
    limit: i64,
    personal: PersonalData,
) -> Result<SendPage> {
    let cursor: Option<(DateTime<Utc>, Uuid)> = match before {
        None => None,
        Some(before) => Some(
            sqlx::query_as(
                "SELECT sent_at, send_id FROM sends_view WHERE send_id = $1 AND client_id = $2",
            )
            .bind(before)
            .bind(client_id)
            .fetch_optional(pool)
            .await?
            .ok_or_else(|| {
                Problem::invalid_field(
                    "before",
                    "names no send of this client: pass the next_before of a previous page",
                )
            })?,
        ),
    };
    let (before_at, before_id) = cursor.unzip();
    // Without a cursor the bound is (infinity, max), above every row, so
    // that one statement (and one index range) serves every page.
    let rows: Vec<SendRow> = sqlx::query_as(
        "SELECT send_id, lead_ref, channel, provider, provider_message_id, campaign_id, step, \
         experiment_id, variant, context_version, agent, prompt_version, resource, lead, content, \
         sent_at, position FROM sends_view \
         WHERE client_id = $1 AND ($2::text IS NULL OR channel = $2) \
           AND ($3::text IS NULL OR campaign_id = $3) \
           AND (sent_at, send_id) < (COALESCE($4::timestamptz, 'infinity'::timestamptz), \
                COALESCE($5::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid)) \
         ORDER BY sent_at DESC, send_id DESC LIMIT $6",
    )
    .bind(client_id)
    .bind(filter.channel.map(Channel::as_str))
    .bind(filter.campaign_id.as_deref())
    .bind(before_at)
    .bind(before_id)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let (mut items, next_before) = split(rows, limit, |row| row.send_id);
    let at: HashMap<Uuid, usize> = items
        .iter()
        .enumerate()
        .map(|(i, row)| (row.send_id, i))
        .collect();
    let ids: Vec<Uuid> = at.keys().copied().collect();
    let outcomes: Vec<OutcomeRow> = sqlx::query_as(
        "SELECT send_id, kind, intent, bounce_type, occurred_at FROM send_outcomes \
         WHERE send_id = ANY($1) AND client_id = $2 ORDER BY occurred_at, kind",
    )
    .bind(&ids)
    .bind(client_id)
    .fetch_all(pool)
    .await?;
    for outcome in outcomes {
        if let Some(&i) = at.get(&outcome.send_id) {
            items[i].outcomes.push(outcome);
        }
    }
    if personal == PersonalData::Shown {
        attach_personal(pool, client_id, &mut items, &at).await?;
    }
    Ok(SendPage { items, next_before })
}

/// A lead's identity as `lead_identities` keeps it.
#[derive(FromRow)]
struct Identity {
    lead_ref: String,
    email: Option<String>,
    name: Option<String>,
    title: Option<String>,
    profile_url: Option<String>,
}

/// Each send's [`Personal`]: its lead's identity and its subject line;
/// `at` finds a send in `items` by its id.
async fn attach_personal(
    pool: &PgPool,
    client_id: Uuid,
    items: &mut [SendRow],
    at: &HashMap<Uuid, usize>,
) -> Result<()> {
    let leads: Vec<&str> = items.iter().map(|row| row.lead_ref.as_str()).collect();
    let identities: Vec<Identity> = sqlx::query_as(
        "SELECT lead_ref, email, name, title, profile_url FROM lead_identities \
         WHERE client_id = $1 AND lead_ref = ANY($2)",
    )
    .bind(client_id)
    .bind(&leads)
    .fetch_all(pool)
    .await?;
    let identities: HashMap<String, Identity> = identities
        .into_iter()
        .map(|identity| (identity.lead_ref.clone(), identity))
        .collect();
    let ids: Vec<Uuid> = at.keys().copied().collect();
    let subjects: Vec<(Uuid, Option<String>)> = sqlx::query_as(
        "SELECT send_id, subject FROM send_content WHERE client_id = $1 AND send_id = ANY($2)",
    )
    .bind(client_id)
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    for row in items.iter_mut() {
        let identity = identities.get(&row.lead_ref);
        row.personal = Some(Personal {
            email: identity.and_then(|i| i.email.clone()),
            name: identity.and_then(|i| i.name.clone()),
            title: identity.and_then(|i| i.title.clone()),
            profile_url: identity.and_then(|i| i.profile_url.clone()),
            subject: None,
        });
    }
    for (send_id, subject) in subjects {
        if let Some(personal) = at.get(&send_id).and_then(|&i| items[i].personal.as_mut()) {
            personal.subject = subject;
        }
    }
    Ok(())
}

/// A webhook delivery (or the invalid items of one) that could not be
/// recorded, as kept.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct DeadLetterRow {
    /// Its place in the dead-letter table: the list's cursor.
    pub id: i64,
    pub provider: String,
    pub reason: String,
    pub received_at: DateTime<Utc>,
    /// The body as received, less the secrets some providers put in it;
    /// only for those who see [`PersonalData::Shown`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
}

/// A page of a client's dead letters, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterPage {
    pub items: Vec<DeadLetterRow>,
    /// The cursor of the next page (`before`); `None` on the last.
    pub next_before: Option<i64>,
}

/// Up to `limit` of the client's dead letters (of `provider`, when given),
/// newest first, below the id `before` (from the newest if `None`); the
/// payloads as `personal` allows.
pub async fn dead_letters(
    pool: &PgPool,
    client_id: Uuid,
    provider: Option<Provider>,
    before: Option<i64>,
    limit: i64,
    personal: PersonalData,
) -> Result<DeadLetterPage> {
    let rows: Vec<DeadLetterRow> = sqlx::query_as(
        "SELECT id, provider, reason, received_at, CASE WHEN $4 THEN payload END AS payload \
         FROM webhook_dead_letters \
         WHERE client_id = $1 AND ($2::text IS NULL OR provider = $2) AND id < $3 \
         ORDER BY id DESC LIMIT $5",
    )
    .bind(client_id)
    .bind(provider.map(Provider::as_str))
    .bind(before.unwrap_or(i64::MAX))
    .bind(personal == PersonalData::Shown)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let (items, next_before) = split(rows, limit, |row| row.id);
    Ok(DeadLetterPage { items, next_before })
}
