//! The `sends` projection: every send with its lead snapshot and content
//! features, every outcome (kept even when it arrives before its send), and
//! the suppression list as the log tells it. Set-based: a batch of events
//! costs a few statements, whatever its size. Every row is found by its send
//! id, which is derived from client, provider and message id: nothing here
//! looks a send up by provider message id, so two clients' sends of one
//! message id never meet.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sextant_adapters::stream::RecordedEvent;
use sextant_domain::aggregate_types;
use sextant_domain::send::{suppression_reason, OutcomeFacts, SendEvent, SendFacts};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::runtime::{Projection, ProjectionError, ProjectionName};

pub struct SendsProjection;

#[async_trait::async_trait]
impl Projection for SendsProjection {
    fn name(&self) -> &'static str {
        ProjectionName::Sends.as_str()
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[aggregate_types::SEND])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["sends_view", "send_outcomes", "suppression_view"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        self.apply_many(conn, &[event]).await
    }

    async fn apply_many(
        &self,
        conn: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut sends = SendColumns::default();
        let mut outcomes = OutcomeColumns::default();
        let mut classified = OutcomeColumns::default();
        for event in events {
            let send_id = Uuid::parse_str(&event.aggregate_id)
                .map_err(|e| ProjectionError::Malformed(format!("send id: {e}")))?;
            let client_id = event.client_id.ok_or_else(|| {
                ProjectionError::Malformed("a send event without a client".into())
            })?;
            match event.payload.parse::<SendEvent>()? {
                SendEvent::SendRecorded(facts) => {
                    sends.push(send_id, client_id, event.global_position, *facts)?
                }
                SendEvent::OutcomeRecorded(outcome) => {
                    outcomes.push(send_id, client_id, event.global_position, &outcome)
                }
                SendEvent::ReplyClassified(reply) => {
                    classified.push(send_id, client_id, event.global_position, &reply)
                }
            }
        }
        send_recorded(conn, &sends).await?;
        outcome_recorded(conn, &outcomes).await?;
        reply_classified(conn, &classified).await?;
        suppress(conn, &sends, &outcomes, &classified).await?;
        Ok(())
    }
}

/// `SendRecorded`: the sends, once each.
async fn send_recorded(conn: &mut PgConnection, sends: &SendColumns) -> Result<(), sqlx::Error> {
    if sends.send_id.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO sends_view (send_id, client_id, lead_ref, channel, provider, provider_message_id, \
         campaign_id, step, experiment_id, variant, context_version, agent, prompt_version, resource, \
         lead, content, sent_at, position) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], \
                $7::text[], $8::int[], $9::uuid[], $10::text[], $11::bigint[], $12::text[], $13::text[], \
                $14::text[], $15::jsonb[], $16::jsonb[], $17::timestamptz[], $18::bigint[]) \
         ON CONFLICT (send_id) DO NOTHING",
    )
    .bind(&sends.send_id)
    .bind(&sends.client_id)
    .bind(&sends.lead_ref)
    .bind(&sends.channel)
    .bind(&sends.provider)
    .bind(&sends.provider_message_id)
    .bind(&sends.campaign_id)
    .bind(&sends.step)
    .bind(&sends.experiment_id)
    .bind(&sends.variant)
    .bind(&sends.context_version)
    .bind(&sends.agent)
    .bind(&sends.prompt_version)
    .bind(&sends.resource)
    .bind(&sends.lead)
    .bind(&sends.content)
    .bind(&sends.sent_at)
    .bind(&sends.position)
    .execute(conn)
    .await?;
    Ok(())
}

/// `OutcomeRecorded`: the outcomes, one of each kind per send.
async fn outcome_recorded(
    conn: &mut PgConnection,
    outcomes: &OutcomeColumns,
) -> Result<(), sqlx::Error> {
    if outcomes.send_id.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO send_outcomes (send_id, client_id, kind, intent, bounce_type, suppresses, \
         occurred_at, position) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], \
                $7::timestamptz[], $8::bigint[]) \
         ON CONFLICT (send_id, kind) DO NOTHING",
    )
    .bind(&outcomes.send_id)
    .bind(&outcomes.client_id)
    .bind(&outcomes.kind)
    .bind(&outcomes.intent)
    .bind(&outcomes.bounce_type)
    .bind(&outcomes.suppresses)
    .bind(&outcomes.occurred_at)
    .bind(&outcomes.position)
    .execute(conn)
    .await?;
    Ok(())
}

/// `ReplyClassified`: the reply's intent, and what it suppresses.
async fn reply_classified(
    conn: &mut PgConnection,
    classified: &OutcomeColumns,
) -> Result<(), sqlx::Error> {
    if classified.send_id.is_empty() {
        return Ok(());
    }
    // The reply's row is there: it precedes its classification in the log,
    // in an earlier batch or earlier in this one.
    sqlx::query(
        "UPDATE send_outcomes o SET intent = u.intent, suppresses = COALESCE(o.suppresses, u.suppresses) \
         FROM UNNEST($1::uuid[], $2::text[], $3::text[]) AS u(id, intent, suppresses) \
         WHERE o.send_id = u.id AND o.kind = 'replied' AND o.intent IS NULL",
    )
    .bind(&classified.send_id)
    .bind(&classified.intent)
    .bind(&classified.suppresses)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whichever arrived last, the send or its suppressing outcome, the lead is
/// suppressed now; the earliest such outcome stands, so the result does not
/// depend on arrival order. Only the sends this batch records and those of
/// its suppressing outcomes can change anything (the partial index answers
/// the rest at once).
async fn suppress(
    conn: &mut PgConnection,
    sends: &SendColumns,
    outcomes: &OutcomeColumns,
    classified: &OutcomeColumns,
) -> Result<(), sqlx::Error> {
    let mut candidates: Vec<Uuid> = sends.send_id.clone();
    for columns in [outcomes, classified] {
        candidates.extend(
            columns
                .send_id
                .iter()
                .zip(&columns.suppresses)
                .filter(|(_, reason)| reason.is_some())
                .map(|(id, _)| *id),
        );
    }
    if candidates.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO suppression_view (client_id, lead_ref, reason, send_id, since) \
         SELECT DISTINCT ON (s.client_id, s.lead_ref) s.client_id, s.lead_ref, o.suppresses, s.send_id, o.occurred_at \
         FROM send_outcomes o JOIN sends_view s ON s.send_id = o.send_id \
         WHERE o.send_id = ANY($1) AND o.suppresses IS NOT NULL \
         ORDER BY s.client_id, s.lead_ref, o.occurred_at, s.send_id \
         ON CONFLICT (client_id, lead_ref) DO UPDATE SET reason = EXCLUDED.reason, \
              send_id = EXCLUDED.send_id, since = EXCLUDED.since \
         WHERE (EXCLUDED.since, EXCLUDED.send_id) < (suppression_view.since, suppression_view.send_id)",
    )
    .bind(&candidates)
    .execute(conn)
    .await?;
    Ok(())
}

/// Columns of `sends_view` rows, for one `UNNEST` insert.
#[derive(Default)]
struct SendColumns {
    send_id: Vec<Uuid>,
    client_id: Vec<Uuid>,
    lead_ref: Vec<String>,
    channel: Vec<&'static str>,
    provider: Vec<String>,
    provider_message_id: Vec<String>,
    campaign_id: Vec<Option<String>>,
    step: Vec<Option<i32>>,
    experiment_id: Vec<Option<Uuid>>,
    variant: Vec<Option<String>>,
    context_version: Vec<Option<i64>>,
    agent: Vec<Option<String>>,
    prompt_version: Vec<Option<String>>,
    resource: Vec<Option<String>>,
    lead: Vec<Value>,
    content: Vec<Value>,
    sent_at: Vec<DateTime<Utc>>,
    position: Vec<i64>,
}

impl SendColumns {
    fn push(
        &mut self,
        send_id: Uuid,
        client_id: Uuid,
        position: i64,
        facts: SendFacts,
    ) -> Result<(), ProjectionError> {
        self.send_id.push(send_id);
        self.client_id.push(client_id);
        self.lead_ref.push(facts.lead_ref);
        self.channel.push(facts.channel.as_str());
        self.provider.push(facts.provider);
        self.provider_message_id.push(facts.provider_message_id);
        self.campaign_id.push(facts.campaign_id);
        self.step.push(facts.step.map(|s| s as i32));
        self.experiment_id.push(facts.experiment_id);
        self.variant.push(facts.variant);
        self.context_version
            .push(facts.context_version.map(|v| v as i64));
        self.agent.push(facts.agent);
        self.prompt_version.push(facts.prompt_version);
        self.resource.push(facts.resource);
        self.lead.push(serde_json::to_value(&facts.lead)?);
        self.content.push(serde_json::to_value(&facts.content)?);
        self.sent_at.push(facts.sent_at);
        self.position.push(position);
        Ok(())
    }
}

/// Columns of `send_outcomes` rows, for one `UNNEST` insert.
#[derive(Default)]
struct OutcomeColumns {
    send_id: Vec<Uuid>,
    client_id: Vec<Uuid>,
    kind: Vec<&'static str>,
    intent: Vec<Option<String>>,
    bounce_type: Vec<Option<String>>,
    suppresses: Vec<Option<&'static str>>,
    occurred_at: Vec<DateTime<Utc>>,
    position: Vec<i64>,
}

impl OutcomeColumns {
    fn push(&mut self, send_id: Uuid, client_id: Uuid, position: i64, outcome: &OutcomeFacts) {
        let name = |v: Option<Value>| v.and_then(|v| v.as_str().map(str::to_owned));
        self.send_id.push(send_id);
        self.client_id.push(client_id);
        self.kind.push(outcome.kind.as_str());
        self.intent.push(name(
            outcome.intent.and_then(|i| serde_json::to_value(i).ok()),
        ));
        self.bounce_type.push(name(
            outcome
                .bounce_type
                .and_then(|b| serde_json::to_value(b).ok()),
        ));
        self.suppresses
            .push(suppression_reason(outcome).map(|r| r.as_str()));
        self.occurred_at.push(outcome.occurred_at);
        self.position.push(position);
    }
}
