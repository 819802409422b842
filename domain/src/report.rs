//! The publication of a client's weekly report, and its delivery by e-mail.
//!
//! One Report aggregate per client and ISO week: its id is derived from the
//! two ([`report_id`]), so every replica of the command service that finds
//! the same week due writes to the same aggregate, and the aggregate
//! refuses to publish what is already published (the event store's
//! optimistic concurrency makes the second writer decide again against the
//! first one's event). Its delivery lives on the same aggregate: each
//! failed attempt is recorded with its number, the delivery once, so a week
//! is published once and delivered at most once whatever the number of
//! replicas.
//!
//! [`ReportRecipients`] is the client setting the delivery goes to: up to
//! [`ReportRecipients::MAX`] e-mail addresses.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::aggregate_types;

/// An e-mail address, as far as a report's recipient needs one: a local
/// part and a domain of dot-separated labels, no spaces, no display name.
/// Written in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

impl EmailAddress {
    /// RFC 5321's limit on a forward path.
    pub const MAX_CHARS: usize = 254;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for EmailAddress {
    type Error = String;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        let text = value.trim();
        let invalid = || format!("{text:?} is not an e-mail address such as ops@acme.example");
        if text.is_empty() || text.chars().count() > Self::MAX_CHARS {
            return Err(invalid());
        }
        let (local, domain) = text.rsplit_once('@').ok_or_else(invalid)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok {
            Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
        } else {
            Err(invalid())
        }
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::try_from(value.as_str())
    }
}

impl From<EmailAddress> for String {
    fn from(value: EmailAddress) -> String {
        value.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who a client's weekly report is e-mailed to: at most
/// [`MAX`](Self::MAX) distinct addresses (none: it is published, not
/// e-mailed). Duplicates are dropped, the order is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct ReportRecipients(Vec<EmailAddress>);

impl ReportRecipients {
    pub const MAX: usize = 20;

    pub fn addresses(&self) -> &[EmailAddress] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl TryFrom<Vec<String>> for ReportRecipients {
    type Error = String;

    fn try_from(values: Vec<String>) -> Result<Self, Self::Error> {
        let mut addresses: Vec<EmailAddress> = Vec::new();
        for (index, value) in values.iter().enumerate() {
            let address = EmailAddress::try_from(value.as_str())
                .map_err(|reason| format!("entry {index}: {reason}"))?;
            if !addresses.contains(&address) {
                addresses.push(address);
            }
        }
        if addresses.len() > Self::MAX {
            return Err(format!("at most {} addresses", Self::MAX));
        }
        Ok(Self(addresses))
    }
}

impl From<ReportRecipients> for Vec<String> {
    fn from(value: ReportRecipients) -> Vec<String> {
        value.0.into_iter().map(String::from).collect()
    }
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

/// The Report aggregate's id: derived from the client and the ISO week
/// (`2026-W48`), so every replica arrives at the same one.
pub fn report_id(client_id: Uuid, week: &str) -> Uuid {
    derived(&format!("report\n{client_id}\n{week}"))
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReportCommand {
    /// Publish the week's report with its summary.
    Publish {
        client_id: Uuid,
        week: String,
        starts_on: NaiveDate,
        ends_on: NaiveDate,
        published_at: DateTime<Utc>,
        summary: Value,
    },
    /// A delivery attempt failed: it must be the next attempt.
    RecordDeliveryFailure {
        attempt: u32,
        recipients: u32,
        error: String,
        failed_at: DateTime<Utc>,
    },
    /// A delivery attempt succeeded: it must be the next attempt.
    RecordDelivery {
        attempt: u32,
        recipients: u32,
        delivered_at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReportEvent {
    ReportPublished {
        report_id: Uuid,
        client_id: Uuid,
        week: String,
        starts_on: NaiveDate,
        ends_on: NaiveDate,
        published_at: DateTime<Utc>,
        /// The report's headline numbers: no lead's data.
        summary: Value,
    },
    ReportDeliveryFailed {
        report_id: Uuid,
        attempt: u32,
        recipients: u32,
        /// What the mail server or the connection answered, without
        /// credentials.
        error: String,
        failed_at: DateTime<Utc>,
    },
    ReportDelivered {
        report_id: Uuid,
        attempt: u32,
        recipients: u32,
        delivered_at: DateTime<Utc>,
    },
}

impl DomainEvent for ReportEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ReportPublished { .. } => "report_published",
            Self::ReportDeliveryFailed { .. } => "report_delivery_failed",
            Self::ReportDelivered { .. } => "report_delivered",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("the week's report is already published")]
    AlreadyPublished,
    #[error("the week's report is not published")]
    NotPublished,
    #[error("the week's report is already delivered")]
    AlreadyDelivered,
    #[error("attempt {given} is not the next delivery attempt ({expected})")]
    NotTheNextAttempt { given: u32, expected: u32 },
}

/// One client's week: published once, delivered at most once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    report_id: Option<Uuid>,
    client_id: Option<Uuid>,
    week: String,
    published_at: Option<DateTime<Utc>>,
    failures: u32,
    last_failed_at: Option<DateTime<Utc>>,
    delivered: bool,
}

impl Report {
    pub fn is_published(&self) -> bool {
        self.report_id.is_some()
    }

    pub fn is_delivered(&self) -> bool {
        self.delivered
    }

    pub fn client_id(&self) -> Option<Uuid> {
        self.client_id
    }

    /// The ISO week (`2026-W48`); empty until published.
    pub fn week(&self) -> &str {
        &self.week
    }

    pub fn published_at(&self) -> Option<DateTime<Utc>> {
        self.published_at
    }

    /// Failed delivery attempts so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn last_failed_at(&self) -> Option<DateTime<Utc>> {
        self.last_failed_at
    }

    /// The number the next delivery attempt has.
    pub fn next_attempt(&self) -> u32 {
        self.failures + 1
    }

    fn check_attempt(&self, attempt: u32) -> Result<Uuid, ReportError> {
        let Some(report_id) = self.report_id else {
            return Err(ReportError::NotPublished);
        };
        if self.delivered {
            return Err(ReportError::AlreadyDelivered);
        }
        if attempt != self.next_attempt() {
            return Err(ReportError::NotTheNextAttempt {
                given: attempt,
                expected: self.next_attempt(),
            });
        }
        Ok(report_id)
    }

    pub fn decide(&self, command: ReportCommand) -> Result<Vec<ReportEvent>, ReportError> {
        match command {
            ReportCommand::Publish {
                client_id,
                week,
                starts_on,
                ends_on,
                published_at,
                summary,
            } => {
                if self.is_published() {
                    return Err(ReportError::AlreadyPublished);
                }
                Ok(vec![ReportEvent::ReportPublished {
                    report_id: report_id(client_id, &week),
                    client_id,
                    week,
                    starts_on,
                    ends_on,
                    published_at,
                    summary,
                }])
            }
            ReportCommand::RecordDeliveryFailure {
                attempt,
                recipients,
                error,
                failed_at,
            } => {
                let report_id = self.check_attempt(attempt)?;
                Ok(vec![ReportEvent::ReportDeliveryFailed {
                    report_id,
                    attempt,
                    recipients,
                    error,
                    failed_at,
                }])
            }
            ReportCommand::RecordDelivery {
                attempt,
                recipients,
                delivered_at,
            } => {
                let report_id = self.check_attempt(attempt)?;
                Ok(vec![ReportEvent::ReportDelivered {
                    report_id,
                    attempt,
                    recipients,
                    delivered_at,
                }])
            }
        }
    }
}

impl Aggregate for Report {
    const TYPE: &'static str = aggregate_types::REPORT;
    type Command = ReportCommand;
    type Event = ReportEvent;
    type Error = ReportError;
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
            ReportEvent::ReportPublished {
                report_id,
                client_id,
                week,
                published_at,
                ..
            } => {
                self.report_id = Some(report_id);
                self.client_id = Some(client_id);
                self.week = week;
                self.published_at = Some(published_at);
            }
            ReportEvent::ReportDeliveryFailed {
                attempt, failed_at, ..
            } => {
                self.failures = attempt;
                self.last_failed_at = Some(failed_at);
            }
            ReportEvent::ReportDelivered { .. } => self.delivered = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use cqrs_es::test::TestFramework;
    use serde_json::json;

    use super::*;

    const CLIENT: Uuid = Uuid::from_u128(7);
    const WEEK: &str = "2026-W48";

    type ReportTest = TestFramework<Report>;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, hour, 0, 0)
            .single()
            .expect("a valid instant")
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).expect("a valid day")
    }

    fn publish() -> ReportCommand {
        ReportCommand::Publish {
            client_id: CLIENT,
            week: WEEK.into(),
            starts_on: day(23),
            ends_on: day(29),
            published_at: at(8),
            summary: json!({ "sends": 120 }),
        }
    }

    fn published() -> ReportEvent {
        ReportEvent::ReportPublished {
            report_id: report_id(CLIENT, WEEK),
            client_id: CLIENT,
            week: WEEK.into(),
            starts_on: day(23),
            ends_on: day(29),
            published_at: at(8),
            summary: json!({ "sends": 120 }),
        }
    }

    fn failed(attempt: u32) -> ReportEvent {
        ReportEvent::ReportDeliveryFailed {
            report_id: report_id(CLIENT, WEEK),
            attempt,
            recipients: 2,
            error: "connection refused".into(),
            failed_at: at(8 + attempt),
        }
    }

    #[test]
    fn a_week_is_published_with_the_id_its_client_and_week_derive() {
        ReportTest::with(())
            .given_no_previous_events()
            .when(publish())
            .then_expect_events(vec![published()]);
        assert_eq!(report_id(CLIENT, WEEK), report_id(CLIENT, WEEK));
        assert_ne!(report_id(CLIENT, WEEK), report_id(CLIENT, "2026-W49"));
        assert_ne!(report_id(CLIENT, WEEK), report_id(Uuid::from_u128(8), WEEK));
    }

    #[test]
    fn a_published_week_is_not_published_again() {
        ReportTest::with(())
            .given(vec![published()])
            .when(publish())
            .then_expect_error(ReportError::AlreadyPublished);
    }

    #[test]
    fn given_a_failed_attempt_when_the_next_one_succeeds_then_it_is_delivered() {
        ReportTest::with(())
            .given(vec![published(), failed(1)])
            .when(ReportCommand::RecordDelivery {
                attempt: 2,
                recipients: 2,
                delivered_at: at(11),
            })
            .then_expect_events(vec![ReportEvent::ReportDelivered {
                report_id: report_id(CLIENT, WEEK),
                attempt: 2,
                recipients: 2,
                delivered_at: at(11),
            }]);
    }

    #[test]
    fn an_attempt_that_is_not_the_next_is_refused() {
        ReportTest::with(())
            .given(vec![published(), failed(1)])
            .when(ReportCommand::RecordDeliveryFailure {
                attempt: 1,
                recipients: 2,
                error: "again".into(),
                failed_at: at(12),
            })
            .then_expect_error(ReportError::NotTheNextAttempt {
                given: 1,
                expected: 2,
            });
    }

    #[test]
    fn a_delivered_report_is_not_delivered_again() {
        let delivered = ReportEvent::ReportDelivered {
            report_id: report_id(CLIENT, WEEK),
            attempt: 1,
            recipients: 1,
            delivered_at: at(9),
        };
        ReportTest::with(())
            .given(vec![published(), delivered])
            .when(ReportCommand::RecordDelivery {
                attempt: 2,
                recipients: 1,
                delivered_at: at(10),
            })
            .then_expect_error(ReportError::AlreadyDelivered);
    }

    #[test]
    fn an_unpublished_week_cannot_be_delivered() {
        ReportTest::with(())
            .given_no_previous_events()
            .when(ReportCommand::RecordDelivery {
                attempt: 1,
                recipients: 1,
                delivered_at: at(9),
            })
            .then_expect_error(ReportError::NotPublished);
    }

    #[test]
    fn recipients_are_e_mail_addresses_at_most_twenty_without_duplicates() {
        let parsed = ReportRecipients::try_from(vec![
            " Ops@Acme.Example ".to_owned(),
            "Ops@acme.example".to_owned(),
            "ceo+weekly@acme.example".to_owned(),
        ])
        .expect("valid addresses");
        assert_eq!(
            Vec::<String>::from(parsed),
            ["Ops@acme.example", "ceo+weekly@acme.example"]
        );
        for bad in [
            "",
            "ops",
            "ops@",
            "@acme.example",
            "ops@acme",
            "o ps@acme.example",
            "a@b..c",
        ] {
            let err = ReportRecipients::try_from(vec![bad.to_owned()]).err();
            assert!(err.is_some_and(|e| e.starts_with("entry 0")), "{bad:?}");
        }
        let many: Vec<String> = (0..21).map(|i| format!("r{i}@acme.example")).collect();
        assert!(ReportRecipients::try_from(many).is_err());
        let twenty: Vec<String> = (0..20).map(|i| format!("r{i}@acme.example")).collect();
        assert_eq!(ReportRecipients::try_from(twenty).map(|r| r.len()), Ok(20));
    }

    #[test]
    fn events_serialize_with_their_snake_case_type() {
        let json = serde_json::to_value(failed(1)).expect("an event serializes");
        assert_eq!(json["type"], "report_delivery_failed");
        assert_eq!(failed(1).event_type(), "report_delivery_failed");
        assert_eq!(published().event_type(), "report_published");
    }
}
