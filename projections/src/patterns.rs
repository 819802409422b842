//! The `patterns` projection: counts behind the WHAT / WHEN / HOW / WHO /
//! versions detectors, per client and per industry segment. Each send is
//! counted under its keys ([`keys_of`]); each reply, positive reply and
//! meeting under the keys of its send, also when it arrived first. Counts
//! only: statistics are computed when read, so a changed detector is a
//! replay away and the log is never touched. `pattern_sends` also keeps
//! when each send was sent and when each metric first followed it: the
//! cohorts the suggestion engine judges once they have matured
//! (`sextant_domain::inference`). Sends and waiting outcomes are
//! found by send id (derived per client) and leads by client and lead ref:
//! one client's events never count under another's keys.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sextant_adapters::stream::RecordedEvent;
use sextant_domain::aggregate_types;
use sextant_domain::learning::{keys_of, metrics_of_event, Metric, BASELINE};
use sextant_domain::send::{SendEvent, SendFacts};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::runtime::{Projection, ProjectionError, ProjectionName};

pub struct PatternsProjection;

/// Count changes by `client \u{1f} scope \u{1f} family|key`: one string
/// per counter, so that adding to one already seen allocates nothing (a
/// send adds to some thirty of them).
#[derive(Default)]
struct Deltas {
    counts: HashMap<String, Counter>,
    buffer: String,
}

struct Counter {
    client: Uuid,
    scope: String,
    key: String,
    counts: [i64; 4],
}

impl Deltas {
    fn add(&mut self, client: Uuid, scopes: &[String], keys: &[String], column: usize) {
        use std::fmt::Write;
        for scope in scopes {
            for key in keys {
                self.buffer.clear();
                let _ = write!(self.buffer, "{client}\u{1f}{scope}\u{1f}{key}");
                match self.counts.get_mut(self.buffer.as_str()) {
                    Some(counter) => counter.counts[column] += 1,
                    None => {
                        let mut counts = [0; 4];
                        counts[column] = 1;
                        let counter = Counter {
                            client,
                            scope: scope.clone(),
                            key: key.clone(),
                            counts,
                        };
                        self.counts.insert(self.buffer.clone(), counter);
                    }
                }
            }
        }
    }

    /// The rows to add: client, scope, family, key and the four counts.
    fn rows(&self) -> Vec<(Uuid, &str, &str, &str, &[i64; 4])> {
        self.counts
            .values()
            .map(|c| {
                let (family, key) = c.key.split_once('|').unwrap_or(("?", &c.key));
                (c.client, c.scope.as_str(), family, key, &c.counts)
            })
            .collect()
    }
}

fn column(metric: Metric) -> usize {
    match metric {
        Metric::Reply => 1,
        Metric::PositiveReply => 2,
        Metric::Meeting => 3,
    }
}

#[async_trait::async_trait]
impl Projection for PatternsProjection {
    fn name(&self) -> &'static str {
        ProjectionName::Patterns.as_str()
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[aggregate_types::SEND])
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "pattern_counts",
            "pattern_sends",
            "pattern_leads",
            "pattern_pending",
        ]
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
        let mut parsed = Vec::new();
        for event in events {
            let send_id = Uuid::parse_str(&event.aggregate_id)
                .map_err(|e| ProjectionError::Malformed(format!("send id: {e}")))?;
            let client = event.client_id.ok_or_else(|| {
                ProjectionError::Malformed("a send event without a client".into())
            })?;
            parsed.push((send_id, client, event.payload.parse::<SendEvent>()?));
        }
        if parsed.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::load(conn, &parsed).await?;
        for (send_id, client, event) in &parsed {
            match event {
                SendEvent::SendRecorded(facts) => batch.send_recorded(*send_id, *client, facts),
                SendEvent::OutcomeRecorded(_) | SendEvent::ReplyClassified(_) => {
                    batch.outcome_recorded(*send_id, *client, event)
                }
            }
        }
        batch.write(conn).await
    }
}

/// One batch's view of the tables and the changes it makes to them.
struct Batch {
    /// The scopes and keys of every send known so far, by send.
    sends: HashMap<Uuid, (Vec<String>, Vec<String>)>,
    /// Outcomes waiting for their send, by send: one per metric, as the
    /// table's key is, at the earliest time it was reported.
    waiting: HashMap<Uuid, BTreeMap<Metric, DateTime<Utc>>>,
    /// When each metric first followed a known send (the cohorts the
    /// suggestion engine matures), to write after the batch's new sends.
    followed: HashMap<Uuid, [Option<DateTime<Utc>>; 3]>,
    /// The channels each lead was sent on, in order, by client and lead.
    channels: HashMap<(Uuid, String), Vec<String>>,
    deltas: Deltas,
    new_sends: Vec<NewSend>,
    touched_leads: BTreeMap<(Uuid, String), ()>,
}

impl Batch {
    /// What is already known of the sends and leads `parsed` touches.
    async fn load(
        conn: &mut PgConnection,
        parsed: &[(Uuid, Uuid, SendEvent)],
    ) -> Result<Self, ProjectionError> {
        let ids: Vec<Uuid> = parsed.iter().map(|(id, ..)| *id).collect();
        let known: Vec<(Uuid, Vec<String>, Vec<String>)> = sqlx::query_as(
            "SELECT send_id, scopes, keys FROM pattern_sends WHERE send_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
        let sends: HashMap<Uuid, (Vec<String>, Vec<String>)> = known
            .into_iter()
            .map(|(id, scopes, keys)| (id, (scopes, keys)))
            .collect();
        // Outcomes that came first are counted when their send arrives: take
        // them only for the sends this batch records (taking them for an
        // outcome's send would lose them).
        let arriving: Vec<Uuid> = parsed
            .iter()
            .filter(|(id, _, e)| matches!(e, SendEvent::SendRecorded(_)) && !sends.contains_key(id))
            .map(|(id, ..)| *id)
            .collect();
        let pending: Vec<(Uuid, String, DateTime<Utc>)> = sqlx::query_as(
            "DELETE FROM pattern_pending WHERE send_id = ANY($1) RETURNING send_id, metric, occurred_at",
        )
        .bind(&arriving)
        .fetch_all(&mut *conn)
        .await?;
        // Those taken from the table above; the batch adds those whose send
        // is not known yet (it may come later in this very batch).
        let mut waiting: HashMap<Uuid, BTreeMap<Metric, DateTime<Utc>>> = HashMap::new();
        for (id, metric, at) in pending {
            if let Some(metric) = Metric::parse(&metric) {
                earliest(waiting.entry(id).or_default(), metric, at);
            }
        }
        // The leads this batch sends to, looked up by primary key (a join on
        // the pairs: `= ANY` filters on both columns made Postgres scan).
        let mut pairs: Vec<(Uuid, String)> = parsed
            .iter()
            .filter_map(|(_, client, e)| match e {
                SendEvent::SendRecorded(f) => Some((*client, f.lead_ref.clone())),
                SendEvent::OutcomeRecorded(_) | SendEvent::ReplyClassified(_) => None,
            })
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        let histories: Vec<(Uuid, String, Vec<String>)> = sqlx::query_as(
            "SELECT l.client_id, l.lead_ref, l.channels \
             FROM UNNEST($1::uuid[], $2::text[]) AS u(client_id, lead_ref) \
             JOIN pattern_leads l ON l.client_id = u.client_id AND l.lead_ref = u.lead_ref",
        )
        .bind(pairs.iter().map(|(c, _)| *c).collect::<Vec<_>>())
        .bind(pairs.iter().map(|(_, l)| l.clone()).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await?;
        let channels: HashMap<(Uuid, String), Vec<String>> = histories
            .into_iter()
            .map(|(c, l, ch)| ((c, l), ch))
            .collect();
        Ok(Self {
            sends,
            waiting,
            followed: HashMap::new(),
            channels,
            deltas: Deltas::default(),
            new_sends: Vec::new(),
            touched_leads: BTreeMap::new(),
        })
    }

    /// A send is counted under its keys, with the outcomes that came first;
    /// a send seen before is not counted again.
    fn send_recorded(&mut self, send_id: Uuid, client: Uuid, facts: &SendFacts) {
        if self.sends.contains_key(&send_id) {
            return;
        }
        let lead = (client, facts.lead_ref.clone());
        let history = self.channels.entry(lead.clone()).or_default();
        let mut keys: Vec<String> = keys_of(facts, history)
            .into_iter()
            .map(|(family, key)| format!("{}|{key}", family.as_str()))
            .collect();
        keys.push(format!("{}|{}", BASELINE.0, BASELINE.1));
        history.push(facts.channel.as_str().to_owned());
        self.touched_leads.insert(lead, ());
        let mut scopes = vec!["client".to_owned()];
        if let Some(industry) = &facts.lead.industry {
            scopes.push(format!("industry:{}", industry.to_lowercase()));
        }
        self.deltas.add(client, &scopes, &keys, 0);
        for (metric, at) in self.waiting.remove(&send_id).unwrap_or_default() {
            self.deltas.add(client, &scopes, &keys, column(metric));
            self.follow(send_id, metric, at);
        }
        self.sends.insert(send_id, (scopes.clone(), keys.clone()));
        self.new_sends.push(NewSend {
            send_id,
            client,
            scopes,
            keys,
            sent_at: facts.sent_at,
        });
    }

    /// `OutcomeRecorded` and `ReplyClassified`: each metric the event
    /// reports is counted under its send's keys, or waits for the send.
    fn outcome_recorded(&mut self, send_id: Uuid, client: Uuid, event: &SendEvent) {
        let at = match event {
            SendEvent::OutcomeRecorded(o) | SendEvent::ReplyClassified(o) => o.occurred_at,
            SendEvent::SendRecorded(_) => return,
        };
        for metric in metrics_of_event(event) {
            match self.sends.get(&send_id) {
                Some((scopes, keys)) => {
                    self.deltas.add(client, scopes, keys, column(metric));
                    self.follow(send_id, metric, at);
                }
                None => earliest(self.waiting.entry(send_id).or_default(), metric, at),
            }
        }
    }

    /// `metric` followed `send_id` at `at`: the earliest time is kept.
    fn follow(&mut self, send_id: Uuid, metric: Metric, at: DateTime<Utc>) {
        let slot = &mut self.followed.entry(send_id).or_default()[column(metric) - 1];
        if slot.is_none_or(|t| at < t) {
            *slot = Some(at);
        }
    }

    async fn write(self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        // What is still waiting has no send yet: keep it for when it comes.
        let new_pending: Vec<(Uuid, &'static str, DateTime<Utc>)> = self
            .waiting
            .into_iter()
            .flat_map(|(id, metrics)| metrics.into_iter().map(move |(m, at)| (id, m.as_str(), at)))
            .collect();
        insert_sends(conn, &self.new_sends).await?;
        record_followed(conn, &self.followed).await?;
        insert_leads(conn, &self.touched_leads, &self.channels).await?;
        insert_pending(conn, &new_pending).await?;
        add_counts(conn, &self.deltas).await?;
        Ok(())
    }
}

/// A send first seen in this batch, as `pattern_sends` keeps it.
struct NewSend {
    send_id: Uuid,
    client: Uuid,
    scopes: Vec<String>,
    keys: Vec<String>,
    sent_at: DateTime<Utc>,
}

/// The earliest report of each metric is the one kept.
fn earliest(times: &mut BTreeMap<Metric, DateTime<Utc>>, metric: Metric, at: DateTime<Utc>) {
    let kept = times.entry(metric).or_insert(at);
    if at < *kept {
        *kept = at;
    }
}

async fn insert_sends(conn: &mut PgConnection, new_sends: &[NewSend]) -> Result<(), sqlx::Error> {
    if new_sends.is_empty() {
        return Ok(());
    }
    let scopes: Vec<String> = new_sends.iter().map(|s| s.scopes.join("\u{1f}")).collect();
    let keys: Vec<String> = new_sends.iter().map(|s| s.keys.join("\u{1f}")).collect();
    sqlx::query(
        "INSERT INTO pattern_sends (send_id, client_id, scopes, keys, sent_at) \
         SELECT u.id, u.client, string_to_array(u.scopes, E'\\x1f'), string_to_array(u.keys, E'\\x1f'), u.sent_at \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[]) \
              AS u(id, client, scopes, keys, sent_at)",
    )
    .bind(new_sends.iter().map(|s| s.send_id).collect::<Vec<_>>())
    .bind(new_sends.iter().map(|s| s.client).collect::<Vec<_>>())
    .bind(&scopes)
    .bind(&keys)
    .bind(new_sends.iter().map(|s| s.sent_at).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// When each metric first followed its send: the earliest report wins, so
/// the order outcomes arrive in does not matter.
async fn record_followed(
    conn: &mut PgConnection,
    followed: &HashMap<Uuid, [Option<DateTime<Utc>>; 3]>,
) -> Result<(), sqlx::Error> {
    if followed.is_empty() {
        return Ok(());
    }
    let at = |i: usize| followed.values().map(|t| t[i]).collect::<Vec<_>>();
    sqlx::query(
        "UPDATE pattern_sends s SET \
            replied_at = LEAST(s.replied_at, u.replied_at), \
            positive_at = LEAST(s.positive_at, u.positive_at), \
            meeting_at = LEAST(s.meeting_at, u.meeting_at) \
         FROM UNNEST($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[]) \
              AS u(send_id, replied_at, positive_at, meeting_at) \
         WHERE s.send_id = u.send_id",
    )
    .bind(followed.keys().copied().collect::<Vec<_>>())
    .bind(at(0))
    .bind(at(1))
    .bind(at(2))
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_leads(
    conn: &mut PgConnection,
    touched_leads: &BTreeMap<(Uuid, String), ()>,
    channels: &HashMap<(Uuid, String), Vec<String>>,
) -> Result<(), sqlx::Error> {
    if touched_leads.is_empty() {
        return Ok(());
    }
    let rows: Vec<(Uuid, String, String)> = touched_leads
        .keys()
        .map(|(c, l)| {
            (
                *c,
                l.clone(),
                channels
                    .get(&(*c, l.clone()))
                    .map(|h| h.join(","))
                    .unwrap_or_default(),
            )
        })
        .collect();
    sqlx::query(
        "INSERT INTO pattern_leads (client_id, lead_ref, channels) \
         SELECT u.client, u.lead, string_to_array(u.channels, ',') \
         FROM UNNEST($1::uuid[], $2::text[], $3::text[]) AS u(client, lead, channels) \
         ON CONFLICT (client_id, lead_ref) DO UPDATE SET channels = EXCLUDED.channels",
    )
    .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2.clone()).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_pending(
    conn: &mut PgConnection,
    new_pending: &[(Uuid, &'static str, DateTime<Utc>)],
) -> Result<(), sqlx::Error> {
    if new_pending.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO pattern_pending (send_id, metric, occurred_at) \
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[]) \
         ON CONFLICT (send_id, metric) DO UPDATE \
         SET occurred_at = LEAST(pattern_pending.occurred_at, EXCLUDED.occurred_at)",
    )
    .bind(new_pending.iter().map(|p| p.0).collect::<Vec<_>>())
    .bind(new_pending.iter().map(|p| p.1).collect::<Vec<_>>())
    .bind(new_pending.iter().map(|p| p.2).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

async fn add_counts(conn: &mut PgConnection, deltas: &Deltas) -> Result<(), sqlx::Error> {
    if deltas.counts.is_empty() {
        return Ok(());
    }
    let rows = deltas.rows();
    sqlx::query(
        "INSERT INTO pattern_counts (client_id, scope, family, key, sends, replies, positive_replies, meetings) \
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], \
                $7::bigint[], $8::bigint[]) \
         ON CONFLICT (client_id, scope, family, key) DO UPDATE SET \
            sends = pattern_counts.sends + EXCLUDED.sends, \
            replies = pattern_counts.replies + EXCLUDED.replies, \
            positive_replies = pattern_counts.positive_replies + EXCLUDED.positive_replies, \
            meetings = pattern_counts.meetings + EXCLUDED.meetings",
    )
    .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.1).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.3).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.4[0]).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.4[1]).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.4[2]).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.4[3]).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}
