//! The `reports` projection: weekly and daily rollups per client, in the
//! client's time zone (ISO weeks starting on the local Monday), overall and
//! by channel, campaign, agent, context version, provider and sending
//! resource.
//!
//! Two bases are kept side by side: the **cohort** counts an outcome in the
//! period of its send, whenever it arrives (the rates of the weekly
//! report); the **activity** counts it in the period it happened. Each
//! outcome counts once per send, at its first report. `report_sends` keeps
//! each send's keys (written once, never updated) so that an outcome finds
//! its send's periods, and `report_outcomes` the first time each outcome
//! followed a send (its primary key refuses a second); a time zone change
//! rebuilds the client's rollups from the two (`report_clients` holds the
//! zone the log says). Writes are set-based: one statement per table per
//! batch, and the sends and outcomes tables take narrow rows, inserted
//! only: this projection rides the send consumer beside three others, and
//! what it costs per event is what batch ingest loses.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use futures::TryStreamExt;
use sextant_adapters::stream::RecordedEvent;
use sextant_domain::aggregate_types;
use sextant_domain::client::ClientEvent;
use sextant_domain::learning::{metrics_of_event, Metric};
use sextant_domain::send::{BounceType, OutcomeKind, SendEvent, SendFacts};
use sextant_domain::values::{TimeZone, Tz};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::runtime::{Projection, ProjectionError, ProjectionName};

pub struct ReportsProjection;

/// The counted columns of `report_rollups`, in order: `sends`, then the
/// outcomes ([`OUTCOMES`]).
pub const COUNTS: [&str; 12] = [
    "sends",
    "delivered",
    "opened",
    "clicked",
    "replied",
    "positive",
    "meetings",
    "conversions",
    "bounced",
    "hard_bounced",
    "unsubscribed",
    "complained",
];

/// The outcome metrics, index `i` being `COUNTS[i + 1]`.
pub const OUTCOMES: usize = 11;

/// The breakdown dimensions of `report_rollups.dim` (besides `all`), as
/// `report_sends` columns.
pub const DIMENSIONS: [&str; 6] = [
    "channel",
    "campaign",
    "agent",
    "context_version",
    "provider",
    "resource",
];

const GRAINS: [&str; 2] = ["week", "day"];
const BASES: [&str; 2] = ["cohort", "activity"];

/// The local Monday of the ISO week `at` falls in, in `tz`.
pub fn week_of(at: DateTime<Utc>, tz: Tz) -> NaiveDate {
    let day = day_of(at, tz);
    day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
}

/// The local date of `at` in `tz`.
pub fn day_of(at: DateTime<Utc>, tz: Tz) -> NaiveDate {
    at.with_timezone(&tz).date_naive()
}

/// The outcome slots (indexes into [`COUNTS`] less one) an event reports.
fn outcome_slots(event: &SendEvent) -> Vec<usize> {
    let Some(outcome) = event.outcome() else {
        return Vec::new();
    };
    let mut slots: Vec<usize> = metrics_of_event(event)
        .into_iter()
        .map(|m| match m {
            Metric::Reply => 3,
            Metric::PositiveReply => 4,
            Metric::Meeting => 5,
        })
        .collect();
    if matches!(event, SendEvent::OutcomeRecorded(_)) {
        match outcome.kind {
            OutcomeKind::Delivered => slots.push(0),
            OutcomeKind::Opened => slots.push(1),
            OutcomeKind::Clicked => slots.push(2),
            OutcomeKind::Converted => slots.push(6),
            OutcomeKind::Bounced => {
                slots.push(7);
                if outcome.bounce_type == Some(BounceType::Hard) {
                    slots.push(8);
                }
            }
            OutcomeKind::Unsubscribed => slots.push(9),
            OutcomeKind::Complained => slots.push(10),
            OutcomeKind::Replied | OutcomeKind::MeetingBooked | OutcomeKind::Accepted => {}
        }
    }
    slots
}

fn slot_name(slot: usize) -> &'static str {
    COUNTS[slot + 1]
}

fn slot_of(name: &str) -> Option<usize> {
    COUNTS[1..].iter().position(|c| *c == name)
}

/// A send as `report_sends` keeps it: its client, time and breakdown keys.
#[derive(Clone)]
struct SendRow {
    client: Uuid,
    sent_at: DateTime<Utc>,
    dims: [String; 6],
}

impl SendRow {
    fn of(client: Uuid, facts: &SendFacts) -> Self {
        Self {
            client,
            sent_at: facts.sent_at,
            dims: [
                facts.channel.as_str().to_owned(),
                facts.campaign_id.clone().unwrap_or_default(),
                facts.agent.clone().unwrap_or_default(),
                facts
                    .context_version
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                facts.provider.clone(),
                facts.resource.clone().unwrap_or_default(),
            ],
        }
    }
}

/// A rollup row's key: client, grain, basis, period, dimension (0: all)
/// and value, grain, basis and dimension as indexes.
type RollupKey = (Uuid, u8, u8, NaiveDate, u8, String);

/// Count changes, gathered by client, basis, local day and breakdown keys
/// (interned), and spread over the rollup rows (two grains, every
/// dimension) only when written: a batch's sends share few of those, so
/// each event costs one small key, not fourteen.
#[derive(Default)]
struct Deltas {
    dims: Vec<[String; 6]>,
    dims_index: HashMap<[String; 6], u32>,
    counts: HashMap<(Uuid, u8, NaiveDate, u32), [i64; 12]>,
}

impl Deltas {
    fn intern(&mut self, dims: &[String; 6]) -> u32 {
        if let Some(&index) = self.dims_index.get(dims) {
            return index;
        }
        let index = self.dims.len() as u32;
        self.dims.push(dims.clone());
        self.dims_index.insert(dims.clone(), index);
        index
    }

    /// Adds 1 to `column` for `send`, for `basis`, on the local day of `at`.
    fn add(&mut self, send: &SendRow, tz: Tz, basis: u8, at: DateTime<Utc>, column: usize) {
        let dims = self.intern(&send.dims);
        let key = (send.client, basis, day_of(at, tz), dims);
        self.counts.entry(key).or_insert([0; 12])[column] += 1;
    }

    /// A send counted under both bases at its time.
    fn send(&mut self, send: &SendRow, tz: Tz) {
        for basis in 0..2 {
            self.add(send, tz, basis, send.sent_at, 0);
        }
    }

    /// An outcome of `send` in its send's periods and in its own.
    fn outcome(&mut self, send: &SendRow, tz: Tz, slot: usize, at: DateTime<Utc>) {
        self.add(send, tz, 0, send.sent_at, slot + 1);
        self.add(send, tz, 1, at, slot + 1);
    }

    /// The changes by rollup row: each day's in its week and in itself,
    /// under every dimension.
    fn rollups(&self) -> HashMap<RollupKey, [i64; 12]> {
        let mut rows: HashMap<RollupKey, [i64; 12]> = HashMap::new();
        for (&(client, basis, day, dims), counts) in &self.counts {
            let week = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
            for (grain, period) in [(0u8, week), (1u8, day)] {
                for dim in 0..=DIMENSIONS.len() {
                    let value = if dim == 0 {
                        String::new()
                    } else {
                        self.dims[dims as usize][dim - 1].clone()
                    };
                    let row = rows
                        .entry((client, grain, basis, period, dim as u8, value))
                        .or_insert([0; 12]);
                    for (total, add) in row.iter_mut().zip(counts) {
                        *total += add;
                    }
                }
            }
        }
        rows
    }

    async fn write(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        if self.counts.is_empty() {
            return Ok(());
        }
        let rollups = self.rollups();
        let rows: Vec<_> = rollups.iter().collect();
        let columns = COUNTS.join(", ");
        let casts: String = (0..COUNTS.len())
            .map(|i| format!(", ${}::bigint[]", i + 7))
            .collect();
        let updates: String = COUNTS
            .iter()
            .map(|c| format!("{c} = report_rollups.{c} + EXCLUDED.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO report_rollups (client_id, grain, basis, period, dim, value, {columns}) \
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::date[], $5::text[], \
             $6::text[]{casts}) \
             ON CONFLICT (client_id, grain, basis, period, dim, value) DO UPDATE SET {updates}"
        );
        let mut query = sqlx::query(&sql)
            .bind(rows.iter().map(|(k, _)| k.0).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|(k, _)| GRAINS[k.1 as usize])
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|(k, _)| BASES[k.2 as usize])
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|(k, _)| k.3).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|(k, _)| {
                        if k.4 == 0 {
                            "all"
                        } else {
                            DIMENSIONS[k.4 as usize - 1]
                        }
                    })
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|(k, _)| k.5.as_str()).collect::<Vec<_>>());
        for i in 0..COUNTS.len() {
            query = query.bind(rows.iter().map(|(_, c)| c[i]).collect::<Vec<_>>());
        }
        query.execute(conn).await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Projection for ReportsProjection {
    fn name(&self) -> &'static str {
        ProjectionName::Reports.as_str()
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[aggregate_types::SEND, aggregate_types::CLIENT])
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "report_rollups",
            "report_sends",
            "report_outcomes",
            "report_pending",
            "report_clients",
        ]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        self.apply_many(conn, &[event]).await
    }

    /// Runs of send events are applied as one batch; a client event (rare)
    /// is applied between them, so that the sends after a time zone change
    /// count in the new zone.
    async fn apply_many(
        &self,
        conn: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut run: Vec<(Uuid, Uuid, SendEvent)> = Vec::new();
        for event in events {
            if event.aggregate_type == aggregate_types::CLIENT {
                apply_sends(conn, std::mem::take(&mut run)).await?;
                client_event(conn, event).await?;
                continue;
            }
            if event.aggregate_type != aggregate_types::SEND {
                continue;
            }
            let send_id = Uuid::parse_str(&event.aggregate_id)
                .map_err(|e| ProjectionError::Malformed(format!("send id: {e}")))?;
            let client = event.client_id.ok_or_else(|| {
                ProjectionError::Malformed("a send event without a client".into())
            })?;
            run.push((send_id, client, event.payload.parse::<SendEvent>()?));
        }
        apply_sends(conn, run).await
    }
}

/// A client's registration and profile changes carry its time zone; a
/// change of zone rebuilds the client's rollups.
async fn client_event(
    conn: &mut PgConnection,
    event: &RecordedEvent,
) -> Result<(), ProjectionError> {
    let client = Uuid::parse_str(&event.aggregate_id)
        .map_err(|e| ProjectionError::Malformed(format!("client id: {e}")))?;
    let zone = match event.payload.parse::<ClientEvent>()? {
        ClientEvent::ClientRegistered { profile, .. } | ClientEvent::ProfileUpdated { profile } => {
            profile.timezone
        }
        _ => return Ok(()),
    };
    let known = zones(conn, &[client]).await?;
    let before = known.get(&client).copied();
    sqlx::query(
        "INSERT INTO report_clients (client_id, timezone) VALUES ($1, $2) \
         ON CONFLICT (client_id) DO UPDATE SET timezone = EXCLUDED.timezone",
    )
    .bind(client)
    .bind(zone.name())
    .execute(&mut *conn)
    .await?;
    if before.is_some_and(|tz| tz != zone.tz()) {
        rebuild_client(conn, client, zone.tz()).await?;
    }
    Ok(())
}

/// The zones of `clients` (UTC for those not known).
async fn zones(
    conn: &mut PgConnection,
    clients: &[Uuid],
) -> Result<HashMap<Uuid, Tz>, ProjectionError> {
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT client_id, timezone FROM report_clients WHERE client_id = ANY($1)")
            .bind(clients)
            .fetch_all(conn)
            .await?;
    rows.into_iter()
        .map(|(client, zone)| {
            TimeZone::try_from(zone.as_str())
                .map(|z| (client, z.tz()))
                .map_err(|e| ProjectionError::Malformed(format!("report_clients.timezone: {e}")))
        })
        .collect()
}

const SEND_COLUMNS: &str = "send_id, client_id, sent_at, channel, campaign, agent, \
     context_version, provider, resource";

fn row_of(row: &sqlx::postgres::PgRow) -> Result<(Uuid, SendRow), sqlx::Error> {
    use sqlx::Row;
    let dims = [
        row.try_get("channel")?,
        row.try_get("campaign")?,
        row.try_get("agent")?,
        row.try_get("context_version")?,
        row.try_get("provider")?,
        row.try_get("resource")?,
    ];
    Ok((
        row.try_get("send_id")?,
        SendRow {
            client: row.try_get("client_id")?,
            sent_at: row.try_get("sent_at")?,
            dims,
        },
    ))
}

/// Rebuilds one client's rollups from its sends and their outcomes, in
/// `tz`. Rare (a change of zone): it reads the client's rows by scanning.
async fn rebuild_client(
    conn: &mut PgConnection,
    client: Uuid,
    tz: Tz,
) -> Result<(), ProjectionError> {
    use sqlx::Row;
    sqlx::query("DELETE FROM report_rollups WHERE client_id = $1")
        .bind(client)
        .execute(&mut *conn)
        .await?;
    let mut deltas = Deltas::default();
    {
        let sql = format!("SELECT {SEND_COLUMNS} FROM report_sends WHERE client_id = $1");
        let mut rows = sqlx::query(&sql).bind(client).fetch(&mut *conn);
        while let Some(row) = rows.try_next().await? {
            let (_, send) = row_of(&row)?;
            deltas.send(&send, tz);
        }
    }
    {
        let sql = format!(
            "SELECT {}, o.metric, o.occurred_at FROM report_outcomes o \
             JOIN report_sends s USING (send_id) WHERE s.client_id = $1",
            SEND_COLUMNS
                .split(", ")
                .map(|c| format!("s.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut rows = sqlx::query(&sql).bind(client).fetch(&mut *conn);
        while let Some(row) = rows.try_next().await? {
            let (_, send) = row_of(&row)?;
            let metric: String = row.try_get("metric")?;
            let at: DateTime<Utc> = row.try_get("occurred_at")?;
            let slot = slot_of(&metric).ok_or_else(|| {
                ProjectionError::Malformed(format!("report_outcomes.metric {metric:?}"))
            })?;
            deltas.outcome(&send, tz, slot, at);
        }
    }
    deltas.write(conn).await?;
    Ok(())
}

/// Applies a run of send events in order.
async fn apply_sends(
    conn: &mut PgConnection,
    run: Vec<(Uuid, Uuid, SendEvent)>,
) -> Result<(), ProjectionError> {
    if run.is_empty() {
        return Ok(());
    }
    let mut clients: Vec<Uuid> = run.iter().map(|(_, c, _)| *c).collect();
    clients.sort_unstable();
    clients.dedup();
    let tz = zones(conn, &clients).await?;
    let zone = |client: &Uuid| tz.get(client).copied().unwrap_or(Tz::UTC);
    // The sends this run's outcomes follow, when recorded before it.
    let recorded_here: HashSet<Uuid> = run
        .iter()
        .filter(|(_, _, e)| matches!(e, SendEvent::SendRecorded(_)))
        .map(|(id, ..)| *id)
        .collect();
    let mut wanted: Vec<Uuid> = run
        .iter()
        .filter(|(id, _, e)| {
            !matches!(e, SendEvent::SendRecorded(_)) && !recorded_here.contains(id)
        })
        .map(|(id, ..)| *id)
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut known: HashMap<Uuid, SendRow> = HashMap::new();
    if !wanted.is_empty() {
        let sql = format!("SELECT {SEND_COLUMNS} FROM report_sends WHERE send_id = ANY($1)");
        for row in sqlx::query(&sql)
            .bind(&wanted)
            .fetch_all(&mut *conn)
            .await?
        {
            let (id, send) = row_of(&row)?;
            known.insert(id, send);
        }
    }
    // Outcomes that came before the sends this run records. Outcomes
    // nearly always follow their sends: when none waits at all, the
    // run's sends are not looked up one by one.
    let arriving: Vec<Uuid> = recorded_here.iter().copied().collect();
    let any_waiting: bool = !arriving.is_empty()
        && sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM report_pending)")
            .fetch_one(&mut *conn)
            .await?;
    let pending: Vec<(Uuid, String, DateTime<Utc>)> = if any_waiting {
        sqlx::query_as(
            "DELETE FROM report_pending WHERE send_id = ANY($1) \
             RETURNING send_id, metric, occurred_at",
        )
        .bind(&arriving)
        .fetch_all(&mut *conn)
        .await?
    } else {
        Vec::new()
    };
    let mut waiting: HashMap<Uuid, [Option<DateTime<Utc>>; OUTCOMES]> = HashMap::new();
    for (id, metric, at) in pending {
        if let Some(slot) = slot_of(&metric) {
            earliest(&mut waiting.entry(id).or_insert([None; OUTCOMES])[slot], at);
        }
    }
    let mut deltas = Deltas::default();
    let mut new_sends: Vec<(Uuid, SendRow)> = Vec::new();
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    // Each outcome of a known send, first report first; whether it is the
    // send's first of its kind at all, `report_outcomes` says.
    let mut firsts: Vec<(Uuid, usize, DateTime<Utc>)> = Vec::new();
    let mut seen: HashSet<(Uuid, usize)> = HashSet::new();
    for (send_id, client, event) in &run {
        match event {
            SendEvent::SendRecorded(facts) => {
                if known.contains_key(send_id) || index.contains_key(send_id) {
                    continue;
                }
                let send = SendRow::of(*client, facts);
                deltas.send(&send, zone(client));
                if let Some(first) = waiting.remove(send_id) {
                    for (slot, at) in first.iter().enumerate() {
                        if let Some(at) = at {
                            seen.insert((*send_id, slot));
                            firsts.push((*send_id, slot, *at));
                        }
                    }
                }
                index.insert(*send_id, new_sends.len());
                new_sends.push((*send_id, send));
            }
            SendEvent::OutcomeRecorded(o) | SendEvent::ReplyClassified(o) => {
                let slots = outcome_slots(event);
                let at = o.occurred_at;
                if index.contains_key(send_id) || known.contains_key(send_id) {
                    for slot in slots {
                        if seen.insert((*send_id, slot)) {
                            firsts.push((*send_id, slot, at));
                        }
                    }
                } else {
                    let first = waiting.entry(*send_id).or_insert([None; OUTCOMES]);
                    for slot in slots {
                        earliest(&mut first[slot], at);
                    }
                }
            }
        }
    }
    insert_sends(conn, &new_sends).await?;
    for (send_id, slot, at) in insert_outcomes(conn, &firsts).await? {
        let send = match index.get(&send_id) {
            Some(&i) => Some(&new_sends[i].1),
            None => known.get(&send_id),
        };
        if let Some(send) = send {
            deltas.outcome(send, zone(&send.client), slot, at);
        }
    }
    insert_pending(conn, &waiting).await?;
    deltas.write(conn).await?;
    Ok(())
}

fn earliest(slot: &mut Option<DateTime<Utc>>, at: DateTime<Utc>) {
    if slot.is_none_or(|t| at < t) {
        *slot = Some(at);
    }
}

async fn insert_sends(
    conn: &mut PgConnection,
    sends: &[(Uuid, SendRow)],
) -> Result<(), sqlx::Error> {
    if sends.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO report_sends ({SEND_COLUMNS}) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $5::text[], \
         $6::text[], $7::text[], $8::text[], $9::text[]) ON CONFLICT (send_id) DO NOTHING"
    );
    let mut query = sqlx::query(&sql)
        .bind(sends.iter().map(|(id, _)| *id).collect::<Vec<_>>())
        .bind(sends.iter().map(|(_, s)| s.client).collect::<Vec<_>>())
        .bind(sends.iter().map(|(_, s)| s.sent_at).collect::<Vec<_>>());
    for d in 0..DIMENSIONS.len() {
        query = query.bind(
            sends
                .iter()
                .map(|(_, s)| s.dims[d].as_str())
                .collect::<Vec<_>>(),
        );
    }
    query.execute(conn).await?;
    Ok(())
}

/// Records each outcome as its send's first of its kind; answers those
/// that were (a send's outcome of a kind already recorded is not).
async fn insert_outcomes(
    conn: &mut PgConnection,
    outcomes: &[(Uuid, usize, DateTime<Utc>)],
) -> Result<Vec<(Uuid, usize, DateTime<Utc>)>, ProjectionError> {
    if outcomes.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(Uuid, String, DateTime<Utc>)> = sqlx::query_as(
        "INSERT INTO report_outcomes (send_id, metric, occurred_at) \
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[]) \
         ON CONFLICT (send_id, metric) DO NOTHING RETURNING send_id, metric, occurred_at",
    )
    .bind(outcomes.iter().map(|o| o.0).collect::<Vec<_>>())
    .bind(outcomes.iter().map(|o| slot_name(o.1)).collect::<Vec<_>>())
    .bind(outcomes.iter().map(|o| o.2).collect::<Vec<_>>())
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(id, metric, at)| {
            let slot = slot_of(&metric).ok_or_else(|| {
                ProjectionError::Malformed(format!("report_outcomes.metric {metric:?}"))
            })?;
            Ok((id, slot, at))
        })
        .collect()
}

async fn insert_pending(
    conn: &mut PgConnection,
    waiting: &HashMap<Uuid, [Option<DateTime<Utc>>; OUTCOMES]>,
) -> Result<(), sqlx::Error> {
    let rows: Vec<(Uuid, &'static str, DateTime<Utc>)> = waiting
        .iter()
        .flat_map(|(id, slots)| {
            slots
                .iter()
                .enumerate()
                .filter_map(move |(slot, at)| at.map(|at| (*id, slot_name(slot), at)))
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO report_pending (send_id, metric, occurred_at) \
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[]) \
         ON CONFLICT (send_id, metric) DO UPDATE \
         SET occurred_at = LEAST(report_pending.occurred_at, EXCLUDED.occurred_at)",
    )
    .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.1).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    #[test]
    fn a_sunday_evening_in_utc_is_monday_in_sydney() {
        let at = Utc
            .with_ymd_and_hms(2026, 11, 29, 23, 30, 0)
            .single()
            .expect("a time");
        let sunday_week = NaiveDate::from_ymd_opt(2026, 11, 23).expect("a date");
        let monday = NaiveDate::from_ymd_opt(2026, 11, 30).expect("a date");
        assert_eq!(week_of(at, Tz::UTC), sunday_week);
        assert_eq!(week_of(at, Tz::Australia__Sydney), monday);
        assert_eq!(day_of(at, Tz::Australia__Sydney), monday);
    }

    #[test]
    fn a_positive_reply_counts_as_a_reply_and_a_positive_one() {
        let reply = sextant_domain::send::OutcomeFacts {
            provider: "p".into(),
            provider_message_id: "m".into(),
            kind: OutcomeKind::Replied,
            intent: Some(sextant_domain::send::ReplyIntent::Interested),
            bounce_type: None,
            provider_event_id: None,
            occurred_at: Utc::now(),
        };
        let mut slots = outcome_slots(&SendEvent::OutcomeRecorded(reply.clone()));
        slots.sort_unstable();
        assert_eq!(slots, vec![3, 4]);
        assert_eq!(outcome_slots(&SendEvent::ReplyClassified(reply)), vec![4]);
    }
}
