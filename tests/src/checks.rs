//! The counting checks behind "nothing lost, nothing duplicated": the
//! stream against the log, every projection against a replay of the log,
//! and a load's ledger against the events and read models.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sextant_adapters::stream::CloudEvent;
use sextant_projections::replay;
use uuid::Uuid;

use crate::load::Ledger;
use crate::TestEnv;

impl TestEnv {
    /// The position of the last committed event (0 for none).
    pub async fn head(&self) -> i64 {
        sqlx::query_scalar("SELECT coalesce(max(global_position), 0) FROM events")
            .fetch_one(&self.pool)
            .await
            .expect("head")
    }

    /// A client's baseline pattern counts (every send counts there): sends,
    /// replies, positive replies, meetings.
    pub async fn baseline_counts(&self, client: Uuid) -> (i64, i64, i64, i64) {
        sqlx::query_as(
            "SELECT sends, replies, positive_replies, meetings FROM pattern_counts \
             WHERE client_id = $1 AND scope = 'client' AND family = 'all' AND key = 'all'",
        )
        .bind(client)
        .fetch_one(&self.pool)
        .await
        .expect("baseline counts")
    }

    /// Waits until every projection's checkpoint reaches the head.
    pub async fn caught_up(&self, timeout: Duration) {
        let head = self.head().await;
        self.eventually("every projection reaches the head", timeout, || async {
            for projection in sextant_projections::all() {
                if self.checkpoint(projection.name()).await < head {
                    return false;
                }
            }
            true
        })
        .await;
    }

    /// Asserts the stream holds exactly the committed events, once each, in
    /// position order, with every aggregate's events in sequence order.
    pub async fn assert_stream_matches_log(&self) -> Vec<CloudEvent> {
        self.eventually("the outbox is drained", Duration::from_secs(60), || async {
            self.outbox_depth().await == 0
        })
        .await;
        let committed = self.event_ids().await;
        let published = self.stream_events().await;
        let published_ids: Vec<Uuid> = published.iter().map(|e| e.id).collect();
        let unique: HashSet<Uuid> = published_ids.iter().copied().collect();
        assert_eq!(
            unique.len(),
            published_ids.len(),
            "an event was published twice"
        );
        let committed_ids: Vec<Uuid> = committed.iter().map(|(_, id)| *id).collect();
        if published_ids != committed_ids {
            let on_stream: HashSet<Uuid> = unique;
            let logged: HashSet<Uuid> = committed_ids.iter().copied().collect();
            let missing: Vec<i64> = committed
                .iter()
                .filter(|(_, id)| !on_stream.contains(id))
                .map(|(p, _)| *p)
                .collect();
            let extra = published_ids
                .iter()
                .filter(|id| !logged.contains(id))
                .count();
            panic!(
                "the stream differs from the log: {} logged, {} published; positions missing \
                 from the stream: {missing:?}; {extra} published events not in the log",
                committed_ids.len(),
                published_ids.len()
            );
        }
        assert!(
            published
                .windows(2)
                .all(|w| w[0].sextantposition < w[1].sextantposition),
            "positions do not increase in stream order"
        );
        let mut last_sequence: HashMap<String, i64> = HashMap::new();
        for event in &published {
            let last = last_sequence.entry(event.source.clone()).or_insert(0);
            assert_eq!(
                event.sextantsequence,
                *last + 1,
                "aggregate order broken at {event:?}"
            );
            *last = event.sextantsequence;
        }
        published
    }

    /// Asserts every projection's live read model equals a rebuild of it
    /// from the log (which then replaces it: the two are equal).
    pub async fn assert_projections_equal_replay(&self) {
        for projection in sextant_projections::all() {
            let live = replay::checksum(&self.pool, projection.as_ref())
                .await
                .expect("checksum");
            replay::rebuild(&self.pool, projection.clone(), false)
                .await
                .expect("rebuild");
            let rebuilt = replay::checksum(&self.pool, projection.as_ref())
                .await
                .expect("checksum");
            assert_eq!(
                live,
                rebuilt,
                "the live {} projection differs from a replay",
                projection.name()
            );
        }
    }

    /// Asserts the log and the send read models hold each send and outcome
    /// of `ledger` exactly once, and that no retry found a half-written
    /// batch.
    pub async fn assert_ledger_landed(&self, client: Uuid, ledger: &Ledger) {
        assert_eq!(
            ledger.half_written, 0,
            "a batch was half written: {ledger:?}"
        );
        let count = |sql: &'static str| async move {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(client)
                .fetch_one(&self.pool)
                .await
                .expect("count") as usize
        };
        let logged_sends = count(
            "SELECT count(*) FROM events WHERE client_id = $1 AND event_type = 'send_recorded'",
        )
        .await;
        let logged_outcomes = count(
            "SELECT count(*) FROM events WHERE client_id = $1 AND event_type = 'outcome_recorded'",
        )
        .await;
        let viewed_sends = count("SELECT count(*) FROM sends_view WHERE client_id = $1").await;
        let viewed_outcomes =
            count("SELECT count(*) FROM send_outcomes WHERE client_id = $1").await;
        assert_eq!(
            (logged_sends, logged_outcomes),
            (ledger.sends, ledger.outcomes),
            "the log differs from what was accepted: {ledger:?}"
        );
        assert_eq!(
            (viewed_sends, viewed_outcomes),
            (ledger.sends, ledger.outcomes),
            "the sends projection differs from what was accepted: {ledger:?}"
        );
        let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
            .fetch_one(&self.pool)
            .await
            .expect("audit count");
        let logged: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events WHERE client_id IS NOT NULL")
                .fetch_one(&self.pool)
                .await
                .expect("event count");
        assert_eq!(audited, logged, "the audit trail has a gap or a duplicate");
    }
}

/// What one fault test did, counted: written to `target/faults/<name>.json`
/// so `deploy/local/faults.sh` can tabulate the figures docs/operations.md quotes.
#[derive(Debug, serde::Serialize)]
pub struct FaultFigures {
    pub name: String,
    pub fault: String,
    pub faults_injected: usize,
    pub events_under_load: usize,
    pub failed_attempts: usize,
    pub events_lost: usize,
    pub duplicates: usize,
}

impl FaultFigures {
    /// Counts `ledger` against the log (lost: accepted but not logged;
    /// duplicates: logged more than accepted) and writes the figures.
    pub async fn record(
        env: &TestEnv,
        client: Uuid,
        name: &str,
        fault: &str,
        faults_injected: usize,
        ledger: &Ledger,
    ) -> Self {
        let logged: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE client_id = $1 AND aggregate_type = 'send'",
        )
        .bind(client)
        .fetch_one(&env.pool)
        .await
        .expect("count");
        let logged = logged as usize;
        Self {
            name: name.into(),
            fault: fault.into(),
            faults_injected,
            events_under_load: ledger.events(),
            failed_attempts: ledger.failed_attempts(),
            events_lost: ledger.events().saturating_sub(logged),
            duplicates: logged.saturating_sub(ledger.events()),
        }
        .saved()
    }

    /// Writes the figures where `deploy/local/faults.sh` finds them.
    pub fn saved(self) -> Self {
        let dir = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join("faults")));
        if let Some(dir) = dir {
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(
                dir.join(format!("{}.json", self.name)),
                serde_json::to_vec_pretty(&self).unwrap_or_default(),
            );
        }
        tracing::info!(figures = ?self, "fault figures");
        self
    }
}
