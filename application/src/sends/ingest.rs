//! The high-volume write path for sends and outcomes.
//!
//! A batch costs one state read, one multi-row event insert and a few
//! set-based statements, in one transaction — not a history read and a
//! transaction per item. The decision per item is the Send aggregate's own
//! ([`SendState::decide`]), against states loaded from `send_state`, a
//! write-side table kept in the same transaction as the events (a
//! transactional handler: it can never disagree with the log). Optimistic
//! concurrency stays: events carry the next sequence of their aggregate and
//! the `events` primary key refuses a concurrent writer's duplicate, in which
//! case the whole batch is decided again against fresh state.
//!
//! Also in the same transaction: the suppression list (so an acknowledged
//! unsubscribe is seen by every later authorisation) and the personal parts
//! (emails, names, subjects) in their erasable tables.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use sextant_adapters::store::{append, Appended, Sequence, Writer};
use sextant_domain::send::input::PersonalParts;
use sextant_domain::send::{
    send_id, suppression_reason, OutcomeFacts, OutcomeKind, Send, SendCommand, SendError,
    SendEvent, SendFacts, SendState,
};
use sextant_domain::{aggregate_types, send::input::Invalid};

/// Most items in one request.
pub const MAX_BATCH: usize = 1000;
const RETRIES: usize = 5;

/// What happened to one item of a batch.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ItemResult {
    Recorded { send_id: Uuid },
    Duplicate { send_id: Uuid },
    Error { field: String, message: String },
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("kept conflicting with concurrent writers; retry")]
    Contended,
}

impl IngestError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Database(e) if sextant_adapters::db::is_unavailable(e))
    }
}

/// The outcome of a batch: per item, and the position of its last event.
#[derive(Debug, Clone)]
pub struct BatchResult {
    pub items: Vec<ItemResult>,
    pub position: i64,
}

/// A parsed send with its personal parts, or why it could not be parsed.
pub type SendItem = Result<(SendFacts, PersonalParts), Invalid>;
pub type OutcomeItem = Result<OutcomeFacts, Invalid>;

/// The client's key for lead refs, created on first use.
pub async fn lead_key(pool: &PgPool, client_id: Uuid) -> Result<Vec<u8>, sqlx::Error> {
    let fresh: [u8; 32] = rand::random();
    sqlx::query(
        "INSERT INTO client_lead_keys (client_id, key) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(client_id)
    .bind(&fresh[..])
    .execute(pool)
    .await?;
    sqlx::query_scalar("SELECT key FROM client_lead_keys WHERE client_id = $1")
        .bind(client_id)
        .fetch_one(pool)
        .await
}

/// A lead's pseudonymous ref: `lr_` and 32 hex digits of HMAC-SHA256 of the
/// normalized email under the client's key.
pub fn lead_ref(key: &[u8], email: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm cannot be reached.
        Err(_) => return format!("lr_{}", &sextant_adapters::keys::sha256_hex(email)[..32]),
    };
    mac.update(email.as_bytes());
    format!("lr_{}", &hex::encode(mac.finalize().into_bytes())[..32])
}

struct Command {
    index: usize,
    send_id: Uuid,
    provider: String,
    provider_message_id: String,
    command: SendCommand,
}

/// Records a batch of sends.
pub async fn record_sends(
    pool: &PgPool,
    writer: &Writer,
    items: Vec<SendItem>,
) -> Result<BatchResult, IngestError> {
    let mut results: Vec<Option<ItemResult>> = vec![None; items.len()];
    let mut commands = Vec::new();
    let mut personal = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        match item {
            Err(invalid) => results[index] = Some(error_item(invalid)),
            Ok((facts, parts)) => {
                let id = send_id(
                    writer.client_id,
                    &facts.provider,
                    &facts.provider_message_id,
                );
                personal.push((id, facts.lead_ref.clone(), parts));
                commands.push(Command {
                    index,
                    send_id: id,
                    provider: facts.provider.clone(),
                    provider_message_id: facts.provider_message_id.clone(),
                    command: SendCommand::RecordSend(Box::new(facts)),
                });
            }
        }
    }
    run(pool, writer, commands, &personal, results).await
}

/// Records a batch of outcomes. An outcome is this client's own: its send
/// id is derived from the client, the provider and the message id, so an
/// outcome whose send has not arrived yet is kept until it does, and one
/// naming a message id that another client also uses is that very case too.
/// Nothing is looked up across clients, so neither the answer nor its time
/// tells whether another client has a message of that id.
pub async fn record_outcomes(
    pool: &PgPool,
    writer: &Writer,
    items: Vec<OutcomeItem>,
) -> Result<BatchResult, IngestError> {
    let mut results: Vec<Option<ItemResult>> = vec![None; items.len()];
    let mut commands = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        match item {
            Err(invalid) => results[index] = Some(error_item(invalid)),
            Ok(facts) => commands.push(Command {
                index,
                send_id: send_id(
                    writer.client_id,
                    &facts.provider,
                    &facts.provider_message_id,
                ),
                provider: facts.provider.clone(),
                provider_message_id: facts.provider_message_id.clone(),
                command: SendCommand::RecordOutcome(facts),
            }),
        }
    }
    run(pool, writer, commands, &[], results).await
}

fn error_item(invalid: Invalid) -> ItemResult {
    ItemResult::Error {
        field: invalid.field,
        message: invalid.message,
    }
}

async fn run(
    pool: &PgPool,
    writer: &Writer,
    commands: Vec<Command>,
    personal: &[(Uuid, String, PersonalParts)],
    results: Vec<Option<ItemResult>>,
) -> Result<BatchResult, IngestError> {
    for attempt in 0..RETRIES {
        let mut tx = pool.begin().await?;
        match attempt_batch(&mut tx, writer, &commands, personal, results.clone()).await {
            Ok(done) => {
                tx.commit().await?;
                return Ok(done);
            }
            Err(IngestError::Database(sqlx::Error::Database(db)))
                if db.code().as_deref() == Some("23505") =>
            {
                tracing::debug!(
                    attempt,
                    "a concurrent writer got there first; deciding again"
                );
                tx.rollback().await?;
            }
            Err(err) => return Err(err),
        }
    }
    Err(IngestError::Contended)
}

#[derive(sqlx::FromRow)]
struct StateRow {
    send_id: Uuid,
    sequence: i64,
    recorded: bool,
    lead_ref: Option<String>,
    outcomes: Vec<String>,
    reply_classified: bool,
}

struct Loaded {
    sequence: i64,
    state: SendState,
    provider: String,
    provider_message_id: String,
}

async fn attempt_batch(
    tx: &mut Transaction<'_, Postgres>,
    writer: &Writer,
    commands: &[Command],
    personal: &[(Uuid, String, PersonalParts)],
    mut results: Vec<Option<ItemResult>>,
) -> Result<BatchResult, IngestError> {
    let ids: Vec<Uuid> = commands.iter().map(|c| c.send_id).collect();
    let rows: Vec<StateRow> = sqlx::query_as(
        "SELECT send_id, sequence, recorded, lead_ref, outcomes, reply_classified FROM send_state \
         WHERE send_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?;
    let mut states: HashMap<Uuid, Loaded> = HashMap::new();
    for row in rows {
        let outcomes = row.outcomes.iter().filter_map(|k| parse_kind(k)).collect();
        states.insert(
            row.send_id,
            Loaded {
                sequence: row.sequence,
                state: SendState {
                    recorded: row.recorded,
                    lead_ref: row.lead_ref,
                    outcomes,
                    reply_classified: row.reply_classified,
                },
                provider: String::new(),
                provider_message_id: String::new(),
            },
        );
    }

    let mut events: Vec<(Uuid, i64, SendEvent)> = Vec::new();
    for c in commands {
        let loaded = states.entry(c.send_id).or_insert_with(|| Loaded {
            sequence: 0,
            state: SendState::default(),
            provider: String::new(),
            provider_message_id: String::new(),
        });
        loaded.provider.clone_from(&c.provider);
        loaded
            .provider_message_id
            .clone_from(&c.provider_message_id);
        match loaded.state.decide(c.command.clone()) {
            Ok(new_events) => {
                for event in new_events {
                    loaded.sequence += 1;
                    loaded.state.apply(&event);
                    events.push((c.send_id, loaded.sequence, event));
                }
                results[c.index] = Some(ItemResult::Recorded { send_id: c.send_id });
            }
            Err(SendError::DuplicateSend | SendError::DuplicateOutcome(_)) => {
                results[c.index] = Some(ItemResult::Duplicate { send_id: c.send_id });
            }
        }
    }

    save_states(tx, writer.client_id, &states, &events).await?;
    suppress(tx, writer.client_id, &states, &events).await?;
    // Personal parts only of what was recorded now: a duplicate must not
    // bring back what an erasure removed.
    let recorded: BTreeSet<Uuid> = results
        .iter()
        .filter_map(|r| match r {
            Some(ItemResult::Recorded { send_id }) => Some(*send_id),
            _ => None,
        })
        .collect();
    let fresh: Vec<(Uuid, String, PersonalParts)> = personal
        .iter()
        .filter(|(id, ..)| recorded.contains(id))
        .cloned()
        .collect();
    keep_personal(tx, writer.client_id, &fresh).await?;
    // The events go last: their insert takes the append lock that every
    // writer waits for (events_serialize_appends) and holds it to commit,
    // so nothing else may run between it and the commit. A concurrent
    // writer of the same send still loses here, on the events' primary key,
    // and the whole batch is decided again.
    let position = if events.is_empty() {
        sextant_adapters::db::head_position_in(tx).await?
    } else {
        append_events(tx, writer, &events).await?
    };

    let items = results
        .into_iter()
        .map(|r| {
            r.unwrap_or(ItemResult::Error {
                field: ".".into(),
                message: "not processed".into(),
            })
        })
        .collect();
    Ok(BatchResult { items, position })
}

fn parse_kind(text: &str) -> Option<OutcomeKind> {
    serde_json::from_value(Value::String(text.to_owned())).ok()
}

/// Appends the events in one statement; answers the last position.
async fn append_events(
    tx: &mut Transaction<'_, Postgres>,
    writer: &Writer,
    events: &[(Uuid, i64, SendEvent)],
) -> Result<i64, IngestError> {
    let items: Vec<Appended<SendEvent>> = events
        .iter()
        .map(|(id, sequence, event)| Appended {
            aggregate_id: id.to_string(),
            sequence: Sequence::At(*sequence),
            event,
        })
        .collect();
    Ok(append::<Send>(tx, writer, &items).await?)
}

async fn save_states(
    tx: &mut Transaction<'_, Postgres>,
    client_id: Uuid,
    states: &HashMap<Uuid, Loaded>,
    events: &[(Uuid, i64, SendEvent)],
) -> Result<(), sqlx::Error> {
    let touched: BTreeSet<Uuid> = events.iter().map(|(id, ..)| *id).collect();
    let mut ids = Vec::new();
    let mut providers = Vec::new();
    let mut messages = Vec::new();
    let mut sequences = Vec::new();
    let mut recorded = Vec::new();
    let mut leads: Vec<Option<String>> = Vec::new();
    let mut outcomes = Vec::new();
    let mut classified = Vec::new();
    for id in touched {
        let Some(loaded) = states.get(&id) else {
            continue;
        };
        ids.push(id);
        providers.push(loaded.provider.clone());
        messages.push(loaded.provider_message_id.clone());
        sequences.push(loaded.sequence);
        recorded.push(loaded.state.recorded);
        leads.push(loaded.state.lead_ref.clone());
        let kinds: Vec<&str> = loaded.state.outcomes.iter().map(|k| k.as_str()).collect();
        outcomes.push(kinds.join(","));
        classified.push(loaded.state.reply_classified);
    }
    sqlx::query(
        "INSERT INTO send_state (send_id, client_id, provider, provider_message_id, sequence, recorded, lead_ref, outcomes, \
              reply_classified) \
         SELECT u.id, $1, u.provider, u.message, u.seq, u.recorded, u.lead, \
                CASE WHEN u.outcomes = '' THEN '{}'::text[] ELSE string_to_array(u.outcomes, ',') END, u.classified \
         FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::bigint[], $6::bool[], $7::text[], $8::text[], $9::bool[]) \
              AS u(id, provider, message, seq, recorded, lead, outcomes, classified) \
         ON CONFLICT (send_id) DO UPDATE SET sequence = EXCLUDED.sequence, recorded = EXCLUDED.recorded, \
              lead_ref = EXCLUDED.lead_ref, outcomes = EXCLUDED.outcomes, reply_classified = EXCLUDED.reply_classified",
    )
    .bind(client_id)
    .bind(&ids)
    .bind(&providers)
    .bind(&messages)
    .bind(&sequences)
    .bind(&recorded)
    .bind(&leads)
    .bind(&outcomes)
    .bind(&classified)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Puts on the suppression list every lead whose send now has a
/// suppressing outcome, whichever of the two arrived first. The earliest
/// suppressing outcome stands.
async fn suppress(
    tx: &mut Transaction<'_, Postgres>,
    client_id: Uuid,
    states: &HashMap<Uuid, Loaded>,
    events: &[(Uuid, i64, SendEvent)],
) -> Result<(), sqlx::Error> {
    let mut rows: Vec<(String, &'static str, Uuid, DateTime<Utc>)> = Vec::new();
    for (id, _, event) in events {
        let Some(lead) = states.get(id).and_then(|l| l.state.lead_ref.clone()) else {
            continue;
        };
        // A reply classified later may be the unsubscribe it did not say.
        if let Some(outcome) = event.outcome() {
            if let Some(reason) = suppression_reason(outcome) {
                rows.push((lead, reason.as_str(), *id, outcome.occurred_at));
            }
        }
    }
    // A send that arrives after outcomes of its own (out-of-order webhooks):
    // those outcomes may suppress its lead, now that the lead is known.
    let late: Vec<String> = events
        .iter()
        .filter(|(id, _, e)| {
            matches!(e, SendEvent::SendRecorded(_))
                && states.get(id).is_some_and(|l| !l.state.outcomes.is_empty())
        })
        .map(|(id, ..)| id.to_string())
        .collect();
    if !late.is_empty() {
        let earlier: Vec<(String, Value)> = sqlx::query_as(
            "SELECT aggregate_id, payload FROM events WHERE aggregate_type = $1 \
             AND aggregate_id = ANY($2) AND event_type IN ('outcome_recorded', 'reply_classified')",
        )
        .bind(aggregate_types::SEND)
        .bind(&late)
        .fetch_all(&mut **tx)
        .await?;
        for (id, payload) in earlier {
            let (Ok(id), Ok(event)) = (
                Uuid::parse_str(&id),
                serde_json::from_value::<SendEvent>(payload),
            ) else {
                continue;
            };
            let Some(outcome) = event.outcome() else {
                continue;
            };
            let lead = states.get(&id).and_then(|l| l.state.lead_ref.clone());
            if let (Some(lead), Some(reason)) = (lead, suppression_reason(outcome)) {
                rows.push((lead, reason.as_str(), id, outcome.occurred_at));
            }
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    // One row per lead (a statement may not touch a row twice): the earliest.
    rows.sort_by(|a, b| (&a.0, a.3, a.2).cmp(&(&b.0, b.3, b.2)));
    rows.dedup_by(|later, earlier| later.0 == earlier.0);
    let leads: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let reasons: Vec<&str> = rows.iter().map(|r| r.1).collect();
    let sends: Vec<Uuid> = rows.iter().map(|r| r.2).collect();
    let since: Vec<DateTime<Utc>> = rows.iter().map(|r| r.3).collect();
    sqlx::query(
        "INSERT INTO suppression_list (client_id, lead_ref, reason, send_id, since) \
         SELECT $1, u.lead, u.reason, u.send, u.since \
         FROM UNNEST($2::text[], $3::text[], $4::uuid[], $5::timestamptz[]) AS u(lead, reason, send, since) \
         ON CONFLICT (client_id, lead_ref) DO UPDATE SET reason = EXCLUDED.reason, send_id = EXCLUDED.send_id, \
              since = EXCLUDED.since WHERE EXCLUDED.since < suppression_list.since",
    )
    .bind(client_id)
    .bind(&leads)
    .bind(&reasons)
    .bind(&sends)
    .bind(&since)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn keep_personal(
    tx: &mut Transaction<'_, Postgres>,
    client_id: Uuid,
    personal: &[(Uuid, String, PersonalParts)],
) -> Result<(), sqlx::Error> {
    let identities: Vec<&(Uuid, String, PersonalParts)> = personal
        .iter()
        .filter(|(_, _, p)| {
            p.email.is_some() || p.name.is_some() || p.title.is_some() || p.profile_url.is_some()
        })
        .collect();
    if !identities.is_empty() {
        let leads: Vec<String> = identities.iter().map(|(_, l, _)| l.clone()).collect();
        let column = |part: fn(&PersonalParts) -> &Option<String>| -> Vec<Option<String>> {
            identities.iter().map(|(_, _, p)| part(p).clone()).collect()
        };
        sqlx::query(
            "INSERT INTO lead_identities (client_id, lead_ref, email, name, title, profile_url) \
             SELECT DISTINCT ON (u.lead) $1, u.lead, u.email, u.name, u.title, u.profile_url \
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) \
                  AS u(lead, email, name, title, profile_url) \
             ON CONFLICT (client_id, lead_ref) DO UPDATE SET \
                  email = COALESCE(EXCLUDED.email, lead_identities.email), \
                  name = COALESCE(EXCLUDED.name, lead_identities.name), \
                  title = COALESCE(EXCLUDED.title, lead_identities.title), \
                  profile_url = COALESCE(EXCLUDED.profile_url, lead_identities.profile_url)",
        )
        .bind(client_id)
        .bind(&leads)
        .bind(column(|p| &p.email))
        .bind(column(|p| &p.name))
        .bind(column(|p| &p.title))
        .bind(column(|p| &p.profile_url))
        .execute(&mut **tx)
        .await?;
    }
    let subjects: Vec<&(Uuid, String, PersonalParts)> = personal
        .iter()
        .filter(|(_, _, p)| p.subject.is_some())
        .collect();
    if !subjects.is_empty() {
        let ids: Vec<Uuid> = subjects.iter().map(|(id, _, _)| *id).collect();
        let leads: Vec<String> = subjects.iter().map(|(_, l, _)| l.clone()).collect();
        let texts: Vec<Option<String>> =
            subjects.iter().map(|(_, _, p)| p.subject.clone()).collect();
        sqlx::query(
            "INSERT INTO send_content (send_id, client_id, lead_ref, subject) \
             SELECT DISTINCT ON (u.id) u.id, $1, u.lead, u.subject \
             FROM UNNEST($2::uuid[], $3::text[], $4::text[]) AS u(id, lead, subject) \
             ON CONFLICT (send_id) DO NOTHING",
        )
        .bind(client_id)
        .bind(&ids)
        .bind(&leads)
        .bind(&texts)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lead_refs_are_keyed_per_client_and_stable() {
        let a = lead_ref(b"key-a", "ana@example.com");
        assert_eq!(a, lead_ref(b"key-a", "ana@example.com"));
        assert_ne!(a, lead_ref(b"key-b", "ana@example.com"));
        assert!(a.starts_with("lr_") && a.len() == 35);
        assert!(!a.contains("ana"));
    }
}
