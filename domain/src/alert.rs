//! Alerts: conditions that should not wait for the weekly review, raised and
//! resolved as events so that a downstream service can page or post to chat.
//!
//! One Alert aggregate per client and condition key (`bounce_rate:<resource>`,
//! `reply_rate_drop:client`, …): its id is derived from the two
//! ([`condition_id`]), so every replica of the command service that sees the
//! same condition writes to the same aggregate, and the aggregate refuses to
//! raise what is already open (the event store's optimistic concurrency
//! makes the second writer decide again against the first one's event). An
//! aggregate lives through episodes: raised, resolved, raised again; each
//! episode is one alert with its own id ([`alert_id`]).
//!
//! The rules that say whether a condition holds are pure functions here
//! ([`Thresholds`], [`rate_signal`], [`reply_rate_signal`], …): each answers a
//! [`Signal`] with hysteresis (raise above one threshold, resolve only below
//! a lower one), so an alert does not flap on a rate that hovers around its
//! limit.

use chrono::{DateTime, Duration, Utc};
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::aggregate_types;
use crate::values::Note;

/// What an alert is about. Stored as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// A sending resource's bounce rate over its last sends.
    BounceRate,
    /// A sending resource's spam-complaint rate over its last sends.
    ComplaintRate,
    /// The client's reply rate significantly below its trailing weeks
    /// (matured cohorts only).
    ReplyRateDrop,
    /// A learned pattern in the context no longer holds: its removal is
    /// pending review.
    PatternHealth,
    /// A context version does significantly worse than its predecessor:
    /// its rollback is pending review.
    ContextRegression,
    /// An active client that sent before has sent nothing for a while.
    NoSends,
    /// A context update has waited for a reviewer too long.
    StaleSuggestion,
    /// The client's daily LLM spend limit is reached.
    LlmSpendLimit,
}

impl Condition {
    pub const ALL: [Condition; 8] = [
        Self::BounceRate,
        Self::ComplaintRate,
        Self::ReplyRateDrop,
        Self::PatternHealth,
        Self::ContextRegression,
        Self::NoSends,
        Self::StaleSuggestion,
        Self::LlmSpendLimit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BounceRate => "bounce_rate",
            Self::ComplaintRate => "complaint_rate",
            Self::ReplyRateDrop => "reply_rate_drop",
            Self::PatternHealth => "pattern_health",
            Self::ContextRegression => "context_regression",
            Self::NoSends => "no_sends",
            Self::StaleSuggestion => "stale_suggestion",
            Self::LlmSpendLimit => "llm_spend_limit",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a condition's rule says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Past the raise threshold: raise it if it is not open.
    Raise,
    /// Between the two thresholds, or too little data to say: leave it as
    /// it is, open or not.
    Hold,
    /// Below the resolve threshold: resolve it if it is open.
    Clear,
}

/// The limits the rules apply. Every client has these defaults; the rates
/// follow the mailbox providers' bulk-sender guidance (`docs/alerts.md`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// How many of a resource's last sends its rates are computed over.
    pub resource_window: u64,
    /// Fewer sends than this in the window: no judgement (hold).
    pub resource_min_sends: u64,
    /// Raise above this bounce rate…
    pub bounce_raise: f64,
    /// …and resolve only below this one.
    pub bounce_resolve: f64,
    /// Raise above this complaint rate…
    pub complaint_raise: f64,
    /// …and resolve only below this one.
    pub complaint_resolve: f64,
    /// Matured weeks the reply rate is compared against.
    pub reply_trailing_weeks: u32,
    /// Sends the latest matured week needs before it is judged.
    pub reply_min_sends: u64,
    /// Raise when the two-proportion z of the latest matured week against
    /// the trailing weeks is at or below this (two-sided p < 0.05, below)…
    pub reply_z_raise: f64,
    /// …and resolve once it is above this one.
    pub reply_z_resolve: f64,
    /// An active client with no send for this many hours.
    pub no_sends_hours: i64,
    /// A context update pending for more than this many days.
    pub stale_suggestion_days: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            resource_window: 200,
            resource_min_sends: 100,
            bounce_raise: 0.03,
            bounce_resolve: 0.02,
            complaint_raise: 0.001,
            complaint_resolve: 0.0005,
            reply_trailing_weeks: 4,
            reply_min_sends: 100,
            reply_z_raise: -1.96,
            reply_z_resolve: -1.0,
            no_sends_hours: 48,
            stale_suggestion_days: 7,
        }
    }
}

/// A rate a client sets as an alert's limit: a fraction of sends, above 0
/// and at most 0.5 (a limit of half the sends bouncing alarms nobody).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct AlertRate(f64);

impl AlertRate {
    pub const MAX: f64 = 0.5;

    pub fn value(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for AlertRate {
    type Error = String;

    fn try_from(value: f64) -> Result<Self, Self::Error> {
        if value.is_finite() && value > 0.0 && value <= Self::MAX {
            Ok(Self(value))
        } else {
            Err(format!(
                "must be a fraction of sends above 0 and at most {} (0.03 is 3%), not {value}",
                Self::MAX
            ))
        }
    }
}

impl From<AlertRate> for f64 {
    fn from(rate: AlertRate) -> f64 {
        rate.0
    }
}

/// The alert limits a client may set for its sending resources: above
/// these rates over a resource's last sends, an alert is raised. The
/// defaults are the [`Thresholds`] defaults (3% bounces, 0.1% complaints).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlertLimits {
    pub bounce_rate: AlertRate,
    pub complaint_rate: AlertRate,
}

impl Default for AlertLimits {
    fn default() -> Self {
        let t = Thresholds::default();
        Self {
            bounce_rate: AlertRate(t.bounce_raise),
            complaint_rate: AlertRate(t.complaint_raise),
        }
    }
}

/// A partial change of a client's alert limits: absent limits stay as they
/// are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertLimitsChange {
    pub bounce_rate: Option<AlertRate>,
    pub complaint_rate: Option<AlertRate>,
}

impl AlertLimitsChange {
    /// `current` with the limits this change names replaced.
    pub fn applied_to(self, current: AlertLimits) -> AlertLimits {
        AlertLimits {
            bounce_rate: self.bounce_rate.unwrap_or(current.bounce_rate),
            complaint_rate: self.complaint_rate.unwrap_or(current.complaint_rate),
        }
    }
}

impl Thresholds {
    /// These thresholds with a client's own limits. Each resolve level
    /// keeps the default's proportion to its raise level (two thirds for
    /// bounces, half for complaints), so the hysteresis band scales with
    /// the limit.
    pub fn with_limits(self, limits: AlertLimits) -> Self {
        let defaults = Self::default();
        let bounce = limits.bounce_rate.value();
        let complaint = limits.complaint_rate.value();
        Self {
            bounce_raise: bounce,
            bounce_resolve: bounce * defaults.bounce_resolve / defaults.bounce_raise,
            complaint_raise: complaint,
            complaint_resolve: complaint * defaults.complaint_resolve / defaults.complaint_raise,
            ..self
        }
    }
}

/// A rate with hysteresis: `events` of `sends` above `raise` raises, below
/// `resolve` clears, in between (or on fewer than `min_sends`) holds.
pub fn rate_signal(events: u64, sends: u64, min_sends: u64, raise: f64, resolve: f64) -> Signal {
    if sends == 0 || sends < min_sends {
        return Signal::Hold;
    }
    let rate = events as f64 / sends as f64;
    if rate > raise {
        Signal::Raise
    } else if rate < resolve {
        Signal::Clear
    } else {
        Signal::Hold
    }
}

/// The reply rate of the latest matured week (`recent`: replies, sends)
/// against the trailing matured weeks (`trailing`), by the two-proportion
/// test: answers the signal and the test's z and p.
pub fn reply_rate_signal(
    recent: (u64, u64),
    trailing: (u64, u64),
    t: &Thresholds,
) -> (Signal, f64, f64) {
    let ((x1, n1), (x2, n2)) = (recent, trailing);
    if n1 < t.reply_min_sends || n2 < t.reply_min_sends {
        return (Signal::Hold, 0.0, 1.0);
    }
    let (z, p) = crate::stats::two_proportion_test(x1, n1, x2, n2);
    let signal = if z <= t.reply_z_raise {
        Signal::Raise
    } else if z > t.reply_z_resolve {
        Signal::Clear
    } else {
        Signal::Hold
    };
    (signal, z, p)
}

/// An active client that sent before (`last_send`) and has sent nothing in
/// the hours the thresholds allow. A client that never sent is not judged.
pub fn no_sends_signal(
    last_send: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    t: &Thresholds,
) -> Signal {
    match last_send {
        None => Signal::Clear,
        Some(last) if now - last > Duration::hours(t.no_sends_hours) => Signal::Raise,
        Some(_) => Signal::Clear,
    }
}

/// A pending context update proposed at `proposed_at`, waiting longer than
/// the thresholds allow.
pub fn stale_signal(proposed_at: DateTime<Utc>, now: DateTime<Utc>, t: &Thresholds) -> Signal {
    if now - proposed_at > Duration::days(t.stale_suggestion_days) {
        Signal::Raise
    } else {
        Signal::Clear
    }
}

/// The key of a condition about `subject` (a resource address, a pattern,
/// an update id, or `client`).
pub fn condition_key(condition: Condition, subject: &str) -> String {
    format!("{}:{subject}", condition.as_str())
}

fn derived(text: &str) -> Uuid {
    let digest = Sha256::digest(text.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // A version 8 (custom) UUID, RFC 9562 variant.
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes)
}

/// The Alert aggregate's id: derived from the client and the condition
/// key, so every replica arrives at the same one.
pub fn condition_id(client_id: Uuid, key: &str) -> Uuid {
    derived(&format!("alert\n{client_id}\n{key}"))
}

/// The id of one episode of a condition: the alert a person acknowledges.
pub fn alert_id(condition_id: Uuid, episode: u32) -> Uuid {
    derived(&format!("alert-episode\n{condition_id}\n{episode}"))
}

#[derive(Debug, Clone, PartialEq)]
pub enum AlertCommand {
    /// Raise the condition's next episode.
    Raise {
        client_id: Uuid,
        condition: Condition,
        subject: String,
        evidence: Value,
    },
    /// Resolve the open episode.
    Resolve { evidence: Value },
    /// A person has seen episode `alert_id`.
    Acknowledge {
        alert_id: Uuid,
        by: String,
        note: Option<Note>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AlertEvent {
    AlertRaised {
        alert_id: Uuid,
        client_id: Uuid,
        condition: Condition,
        subject: String,
        key: String,
        episode: u32,
        evidence: Value,
    },
    AlertResolved {
        alert_id: Uuid,
        condition: Condition,
        subject: String,
        evidence: Value,
    },
    AlertAcknowledged {
        alert_id: Uuid,
        by: String,
        note: Option<String>,
    },
}

impl DomainEvent for AlertEvent {
    fn event_type(&self) -> String {
        match self {
            Self::AlertRaised { .. } => "alert_raised",
            Self::AlertResolved { .. } => "alert_resolved",
            Self::AlertAcknowledged { .. } => "alert_acknowledged",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlertError {
    #[error("the alert is already open")]
    AlreadyOpen,
    #[error("the alert is not open")]
    NotOpen,
    #[error("no such alert")]
    Unknown,
    #[error("a later alert of the same condition superseded this one")]
    Superseded,
    #[error("the alert is already acknowledged")]
    AlreadyAcknowledged,
}

/// One client's condition through its episodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    client_id: Option<Uuid>,
    condition: Option<Condition>,
    subject: String,
    episode: u32,
    current: Option<Uuid>,
    open: bool,
    acknowledged: bool,
    /// Every episode's alert id, oldest first.
    episodes: Vec<Uuid>,
}

impl Alert {
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The current (latest) episode's alert id, if there was one.
    pub fn current(&self) -> Option<Uuid> {
        self.current
    }

    pub fn decide(&self, command: AlertCommand) -> Result<Vec<AlertEvent>, AlertError> {
        match command {
            AlertCommand::Raise {
                client_id,
                condition,
                subject,
                evidence,
            } => {
                if self.open {
                    return Err(AlertError::AlreadyOpen);
                }
                let key = condition_key(condition, &subject);
                let episode = self.episode + 1;
                Ok(vec![AlertEvent::AlertRaised {
                    alert_id: alert_id(condition_id(client_id, &key), episode),
                    client_id,
                    condition,
                    subject,
                    key,
                    episode,
                    evidence,
                }])
            }
            AlertCommand::Resolve { evidence } => {
                let (true, Some(alert_id), Some(condition)) =
                    (self.open, self.current, self.condition)
                else {
                    return Err(AlertError::NotOpen);
                };
                Ok(vec![AlertEvent::AlertResolved {
                    alert_id,
                    condition,
                    subject: self.subject.clone(),
                    evidence,
                }])
            }
            AlertCommand::Acknowledge { alert_id, by, note } => {
                if !self.episodes.contains(&alert_id) {
                    return Err(AlertError::Unknown);
                }
                if self.current != Some(alert_id) {
                    return Err(AlertError::Superseded);
                }
                if self.acknowledged {
                    return Err(AlertError::AlreadyAcknowledged);
                }
                Ok(vec![AlertEvent::AlertAcknowledged {
                    alert_id,
                    by,
                    note: note.map(String::from),
                }])
            }
        }
    }
}

impl Aggregate for Alert {
    const TYPE: &'static str = aggregate_types::ALERT;
    type Command = AlertCommand;
    type Event = AlertEvent;
    type Error = AlertError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            AlertEvent::AlertRaised {
                alert_id,
                client_id,
                condition,
                subject,
                episode,
                ..
            } => {
                self.client_id = Some(client_id);
                self.condition = Some(condition);
                self.subject = subject;
                self.episode = episode;
                self.current = Some(alert_id);
                self.open = true;
                self.acknowledged = false;
                self.episodes.push(alert_id);
            }
            AlertEvent::AlertResolved { .. } => self.open = false,
            AlertEvent::AlertAcknowledged { .. } => self.acknowledged = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;
    use serde_json::json;

    use super::*;

    const CLIENT: Uuid = Uuid::from_u128(7);

    fn raise() -> AlertCommand {
        AlertCommand::Raise {
            client_id: CLIENT,
            condition: Condition::BounceRate,
            subject: "sdr1@acme.example".into(),
            evidence: json!({ "rate": 0.05 }),
        }
    }

    fn raised(episode: u32) -> AlertEvent {
        let key = condition_key(Condition::BounceRate, "sdr1@acme.example");
        AlertEvent::AlertRaised {
            alert_id: alert_id(condition_id(CLIENT, &key), episode),
            client_id: CLIENT,
            condition: Condition::BounceRate,
            subject: "sdr1@acme.example".into(),
            key,
            episode,
            evidence: json!({ "rate": 0.05 }),
        }
    }

    fn resolved(episode: u32) -> AlertEvent {
        let key = condition_key(Condition::BounceRate, "sdr1@acme.example");
        AlertEvent::AlertResolved {
            alert_id: alert_id(condition_id(CLIENT, &key), episode),
            condition: Condition::BounceRate,
            subject: "sdr1@acme.example".into(),
            evidence: json!({ "rate": 0.01 }),
        }
    }

    fn episode_id(episode: u32) -> Uuid {
        alert_id(
            condition_id(CLIENT, "bounce_rate:sdr1@acme.example"),
            episode,
        )
    }

    #[test]
    fn given_no_alert_when_raised_then_its_first_episode_is_raised() {
        TestFramework::<Alert>::with(())
            .given_no_previous_events()
            .when(raise())
            .then_expect_events(vec![raised(1)]);
    }

    #[test]
    fn given_an_open_alert_when_raised_again_then_it_is_refused() {
        TestFramework::<Alert>::with(())
            .given(vec![raised(1)])
            .when(raise())
            .then_expect_error(AlertError::AlreadyOpen);
    }

    #[test]
    fn given_a_resolved_alert_when_raised_then_a_second_episode_with_its_own_id_is_raised() {
        TestFramework::<Alert>::with(())
            .given(vec![raised(1), resolved(1)])
            .when(raise())
            .then_expect_events(vec![raised(2)]);
        assert_ne!(episode_id(1), episode_id(2));
    }

    #[test]
    fn given_an_open_alert_when_resolved_then_it_is_resolved_once() {
        TestFramework::<Alert>::with(())
            .given(vec![raised(1)])
            .when(AlertCommand::Resolve {
                evidence: json!({ "rate": 0.01 }),
            })
            .then_expect_events(vec![resolved(1)]);
        TestFramework::<Alert>::with(())
            .given(vec![raised(1), resolved(1)])
            .when(AlertCommand::Resolve {
                evidence: json!({}),
            })
            .then_expect_error(AlertError::NotOpen);
        TestFramework::<Alert>::with(())
            .given_no_previous_events()
            .when(AlertCommand::Resolve {
                evidence: json!({}),
            })
            .then_expect_error(AlertError::NotOpen);
    }

    #[test]
    fn given_an_alert_when_acknowledged_then_only_its_current_episode_once() {
        let ack = |id: Uuid| AlertCommand::Acknowledge {
            alert_id: id,
            by: "operator".into(),
            note: Some(Note::try_from("on it").expect("a valid note")),
        };
        TestFramework::<Alert>::with(())
            .given(vec![raised(1)])
            .when(ack(episode_id(1)))
            .then_expect_events(vec![AlertEvent::AlertAcknowledged {
                alert_id: episode_id(1),
                by: "operator".into(),
                note: Some("on it".into()),
            }]);
        TestFramework::<Alert>::with(())
            .given(vec![
                raised(1),
                AlertEvent::AlertAcknowledged {
                    alert_id: episode_id(1),
                    by: "operator".into(),
                    note: None,
                },
            ])
            .when(ack(episode_id(1)))
            .then_expect_error(AlertError::AlreadyAcknowledged);
        TestFramework::<Alert>::with(())
            .given(vec![raised(1), resolved(1), raised(2)])
            .when(ack(episode_id(1)))
            .then_expect_error(AlertError::Superseded);
        TestFramework::<Alert>::with(())
            .given(vec![raised(1)])
            .when(ack(Uuid::from_u128(99)))
            .then_expect_error(AlertError::Unknown);
    }

    #[test]
    fn a_new_episode_may_be_acknowledged_again() {
        TestFramework::<Alert>::with(())
            .given(vec![
                raised(1),
                AlertEvent::AlertAcknowledged {
                    alert_id: episode_id(1),
                    by: "operator".into(),
                    note: None,
                },
                resolved(1),
                raised(2),
            ])
            .when(AlertCommand::Acknowledge {
                alert_id: episode_id(2),
                by: "operator".into(),
                note: None,
            })
            .then_expect_events(vec![AlertEvent::AlertAcknowledged {
                alert_id: episode_id(2),
                by: "operator".into(),
                note: None,
            }]);
    }

    #[test]
    fn the_ids_are_derived_from_the_client_and_the_condition_alone() {
        let key = condition_key(Condition::ReplyRateDrop, "client");
        assert_eq!(key, "reply_rate_drop:client");
        assert_eq!(condition_id(CLIENT, &key), condition_id(CLIENT, &key));
        assert_ne!(
            condition_id(CLIENT, &key),
            condition_id(Uuid::from_u128(8), &key)
        );
        assert_eq!(condition_id(CLIENT, &key).get_version_num(), 8);
        assert_eq!(alert_id(condition_id(CLIENT, &key), 1).get_version_num(), 8);
    }

    #[test]
    fn a_clients_own_limits_move_the_raise_and_resolve_levels_in_proportion() {
        let limits = AlertLimitsChange {
            bounce_rate: Some(AlertRate::try_from(0.06).expect("a rate")),
            complaint_rate: None,
        }
        .applied_to(AlertLimits::default());
        let t = Thresholds::default().with_limits(limits);
        assert_eq!(t.bounce_raise, 0.06);
        assert!(
            (t.bounce_resolve - 0.04).abs() < 1e-12,
            "{}",
            t.bounce_resolve
        );
        assert_eq!(
            t.complaint_raise, 0.001,
            "a limit left out keeps the default"
        );
        assert_eq!(t.complaint_resolve, 0.0005);
        let signal = |bounces| rate_signal(bounces, 200, 100, t.bounce_raise, t.bounce_resolve);
        assert_eq!(signal(8), Signal::Hold, "4% is below this client's 6%");
        assert_eq!(signal(13), Signal::Raise, "6.5%");
        assert_eq!(signal(7), Signal::Clear, "3.5% is below two thirds of 6%");
        assert_eq!(AlertLimits::default().bounce_rate.value(), 0.03);
        assert_eq!(AlertLimits::default().complaint_rate.value(), 0.001);
    }

    #[test]
    fn an_alert_rate_is_a_fraction_above_zero_and_at_most_a_half() {
        for bad in [0.0, -0.01, 0.51, 3.0, f64::NAN, f64::INFINITY] {
            assert!(AlertRate::try_from(bad).is_err(), "{bad}");
        }
        for good in [0.0001, 0.03, 0.5] {
            assert!(AlertRate::try_from(good).is_ok(), "{good}");
        }
        let parsed: Result<AlertLimitsChange, _> = serde_json::from_str(r#"{"bounce_rate": 3}"#);
        assert!(parsed.is_err(), "3 is 300%, not 3%");
    }

    #[test]
    fn a_bounce_rate_raises_above_three_percent_and_clears_only_below_two() {
        let t = Thresholds::default();
        let bounce = |x| {
            rate_signal(
                x,
                200,
                t.resource_min_sends,
                t.bounce_raise,
                t.bounce_resolve,
            )
        };
        assert_eq!(bounce(7), Signal::Raise, "3.5%");
        assert_eq!(bounce(6), Signal::Hold, "exactly 3% is not above it");
        assert_eq!(bounce(5), Signal::Hold, "2.5%: between the thresholds");
        assert_eq!(bounce(4), Signal::Hold, "exactly 2% is not below it");
        assert_eq!(bounce(3), Signal::Clear, "1.5%");
        assert_eq!(
            rate_signal(
                50,
                99,
                t.resource_min_sends,
                t.bounce_raise,
                t.bounce_resolve
            ),
            Signal::Hold,
            "too few sends to judge"
        );
    }

    #[test]
    fn one_complaint_in_two_hundred_sends_is_above_the_complaint_limit() {
        let t = Thresholds::default();
        let complaint = |x| {
            rate_signal(
                x,
                200,
                t.resource_min_sends,
                t.complaint_raise,
                t.complaint_resolve,
            )
        };
        assert_eq!(complaint(1), Signal::Raise);
        assert_eq!(complaint(0), Signal::Clear);
    }

    #[test]
    fn a_reply_rate_raises_only_when_significantly_below_its_trailing_weeks() {
        let t = Thresholds::default();
        // 1.5% against 5%: z ≈ -2.2.
        let (signal, z, p) = reply_rate_signal((3, 200), (40, 800), &t);
        assert_eq!(signal, Signal::Raise, "z = {z}");
        assert!(p < 0.05);
        // 4% against 5%: not significant, and above the resolve bar.
        assert_eq!(reply_rate_signal((8, 200), (40, 800), &t).0, Signal::Clear);
        // 3% against 5%: z ≈ -1.2, between the bars.
        assert_eq!(reply_rate_signal((6, 200), (40, 800), &t).0, Signal::Hold);
        // Better than before is never an alert.
        assert_eq!(reply_rate_signal((30, 200), (40, 800), &t).0, Signal::Clear);
        // Too few sends in the latest week.
        assert_eq!(reply_rate_signal((0, 50), (40, 800), &t).0, Signal::Hold);
    }

    #[test]
    fn silence_and_waiting_are_judged_against_now() {
        let t = Thresholds::default();
        let now = DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
            .expect("a time")
            .with_timezone(&Utc);
        assert_eq!(no_sends_signal(None, now, &t), Signal::Clear);
        assert_eq!(
            no_sends_signal(Some(now - Duration::hours(49)), now, &t),
            Signal::Raise
        );
        assert_eq!(
            no_sends_signal(Some(now - Duration::hours(47)), now, &t),
            Signal::Clear
        );
        assert_eq!(
            stale_signal(now - Duration::days(8), now, &t),
            Signal::Raise
        );
        assert_eq!(
            stale_signal(now - Duration::days(6), now, &t),
            Signal::Clear
        );
    }

    #[test]
    fn stored_alert_events_keep_their_snake_case_names() {
        let stored = serde_json::to_value(raised(1)).expect("serializes");
        assert_eq!(stored["type"], "alert_raised");
        assert_eq!(stored["condition"], "bounce_rate");
        assert_eq!(stored["key"], "bounce_rate:sdr1@acme.example");
        let back: AlertEvent = serde_json::from_value(stored).expect("reads back");
        assert_eq!(back, raised(1));
        for condition in Condition::ALL {
            assert_eq!(Condition::parse(condition.as_str()), Some(condition));
        }
    }
}
