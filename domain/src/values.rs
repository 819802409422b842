//! Value types that can only hold valid values. HTTP bodies deserialize
//! straight into them, so a request that parses is a request that is valid
//! (serde reports the field and the reason otherwise).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A non-empty, trimmed text of bounded length.
macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                let trimmed = value.trim();
                if trimmed.is_empty() {
                    return Err("must not be empty".into());
                }
                if trimmed.chars().count() > $max {
                    return Err(format!("must be at most {} characters", $max));
                }
                if trimmed.chars().any(char::is_control) {
                    return Err("must not contain control characters".into());
                }
                Ok(Self(trimmed.to_owned()))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = String;

            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::try_from(value.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

bounded_text!(
    /// A client's display name.
    ClientName,
    200
);
bounded_text!(
    /// The industry a client sells in (free text: industries are not a closed list).
    Industry,
    100
);
bounded_text!(
    /// A region code or name (`AU`, `EMEA`, `US-West`).
    Region,
    64
);
bounded_text!(
    /// A human label for an API key.
    KeyLabel,
    100
);
bounded_text!(
    /// Why something was done: a suspension, a rejection, a rollback.
    Reason,
    1000
);
bounded_text!(
    /// Why an update is proposed, in plain language.
    Rationale,
    4000
);
bounded_text!(
    /// A reviewer's note on a decision.
    Note,
    4000
);
bounded_text!(
    /// A document's stable key (`icp-hypothesis`, `meeting/2026-11-18`).
    DocumentKey,
    200
);
bounded_text!(
    /// A document's title.
    Title,
    300
);
bounded_text!(
    /// A sending resource's address: a mailbox, a LinkedIn seat, a phone number.
    ResourceAddress,
    320
);

/// Company size buckets used for clients and for leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CompanySize {
    #[serde(rename = "1-10")]
    S1To10,
    #[serde(rename = "11-50")]
    S11To50,
    #[serde(rename = "51-200")]
    S51To200,
    #[serde(rename = "201-500")]
    S201To500,
    #[serde(rename = "501-1000")]
    S501To1000,
    #[serde(rename = "1001-5000")]
    S1001To5000,
    #[serde(rename = "5001+")]
    S5001Plus,
}

impl CompanySize {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::S1To10 => "1-10",
            Self::S11To50 => "11-50",
            Self::S51To200 => "51-200",
            Self::S201To500 => "201-500",
            Self::S501To1000 => "501-1000",
            Self::S1001To5000 => "1001-5000",
            Self::S5001Plus => "5001+",
        }
    }
}

/// How much a client lets the machine change on its own (docs/context-ledger.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PermissionMode {
    Manual,
    #[default]
    CoPilot,
    Autopilot,
}

impl PermissionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::CoPilot => "co_pilot",
            Self::Autopilot => "autopilot",
        }
    }
}

/// A number from 0 to 1: a confidence, or the threshold one must clear.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct UnitInterval(f64);

/// The confidence an update needs before autopilot applies it unreviewed.
pub type ConfidenceThreshold = UnitInterval;
/// How sure the proposer of an update is.
pub type Confidence = UnitInterval;

impl UnitInterval {
    /// The autopilot threshold a client starts with.
    pub const DEFAULT_THRESHOLD: Self = Self(0.9);

    pub fn value(self) -> f64 {
        self.0
    }
}

/// Defaults to the autopilot threshold a client starts with.
impl Default for UnitInterval {
    fn default() -> Self {
        Self::DEFAULT_THRESHOLD
    }
}

impl TryFrom<f64> for UnitInterval {
    type Error = String;

    fn try_from(value: f64) -> Result<Self, Self::Error> {
        if (0.0..=1.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err("must be between 0 and 1".into())
        }
    }
}

impl From<UnitInterval> for f64 {
    fn from(value: UnitInterval) -> f64 {
        value.0
    }
}

/// What a client API key may do (docs/http-api.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Reviewer,
    Ingest,
    Reader,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Reviewer => "reviewer",
            Self::Ingest => "ingest",
            Self::Reader => "reader",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(Self::Admin),
            "reviewer" => Some(Self::Reviewer),
            "ingest" => Some(Self::Ingest),
            "reader" => Some(Self::Reader),
            _ => None,
        }
    }
}

/// A kind of sending resource, with the platform's default daily cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Mailbox,
    LinkedinSeat,
    SmsNumber,
    MailAccount,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mailbox => "mailbox",
            Self::LinkedinSeat => "linkedin_seat",
            Self::SmsNumber => "sms_number",
            Self::MailAccount => "mail_account",
        }
    }

    /// docs/sends-and-webhooks.md: 50 emails per mailbox, 17 LinkedIn actions per seat, 100
    /// SMS per number, per day. Direct mail has no industry norm; 100.
    pub fn default_daily_cap(self) -> DailyCap {
        DailyCap(match self {
            Self::Mailbox => 50,
            Self::LinkedinSeat => 17,
            Self::SmsNumber => 100,
            Self::MailAccount => 100,
        })
    }
}

/// Sends per resource per day: positive and bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct DailyCap(u32);

impl DailyCap {
    pub const MAX: u32 = 100_000;

    pub fn value(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for DailyCap {
    type Error = String;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        if value == 0 {
            Err("must be positive".into())
        } else if value > Self::MAX {
            Err(format!("must be at most {}", Self::MAX))
        } else {
            Ok(Self(value))
        }
    }
}

impl From<DailyCap> for u32 {
    fn from(value: DailyCap) -> u32 {
        value.0
    }
}

/// An IANA time zone (`Australia/Sydney`, `UTC`): a client's weeks and days
/// are counted in its zone. Parsed from the zone's name (surrounding white
/// space trimmed, case as the tz database spells it) and written as it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZone(Tz);

/// The tz database's zones, as `chrono` works with them.
pub use chrono_tz::Tz;

impl TimeZone {
    pub const UTC: Self = Self(Tz::UTC);

    pub fn tz(self) -> Tz {
        self.0
    }

    /// The zone's name as the tz database spells it.
    pub fn name(self) -> &'static str {
        self.0.name()
    }
}

/// UTC: the zone of a client that has not named one.
impl Default for TimeZone {
    fn default() -> Self {
        Self::UTC
    }
}

impl From<Tz> for TimeZone {
    fn from(value: Tz) -> Self {
        Self(value)
    }
}

impl TryFrom<&str> for TimeZone {
    type Error = String;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        value.trim().parse::<Tz>().map(Self).map_err(|_| {
            "must be an IANA time zone name, such as `Australia/Sydney` or `UTC`".into()
        })
    }
}

impl TryFrom<String> for TimeZone {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::try_from(value.as_str())
    }
}

impl From<TimeZone> for String {
    fn from(value: TimeZone) -> String {
        value.name().to_owned()
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A number of days from 1 to 365: how long after a send one of its
/// outcomes is still expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct WindowDays(u32);

impl WindowDays {
    pub const MAX: u32 = 365;

    pub fn value(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for WindowDays {
    type Error = String;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        if (1..=Self::MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(format!("must be 1 to {} days", Self::MAX))
        }
    }
}

impl From<WindowDays> for u32 {
    fn from(value: WindowDays) -> u32 {
        value.0
    }
}

/// How long after a send its outcomes are still expected, per kind of
/// outcome: a send younger than its outcome's window is still maturing, and
/// its missing outcome is no evidence yet. Defaults: replies 14 days,
/// meetings 30, conversions 60.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MaturityWindows {
    pub reply_days: WindowDays,
    pub meeting_days: WindowDays,
    pub conversion_days: WindowDays,
}

impl MaturityWindows {
    pub const DEFAULT: Self = Self {
        reply_days: WindowDays(14),
        meeting_days: WindowDays(30),
        conversion_days: WindowDays(60),
    };

    /// The windows as the suggestion engine reads them.
    pub fn windows(self) -> crate::inference::Windows {
        crate::inference::Windows::from_days(
            self.reply_days.value(),
            self.meeting_days.value(),
            self.conversion_days.value(),
        )
    }
}

impl Default for MaturityWindows {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The sending platforms and CRMs whose webhooks Sextant accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Smartlead,
    Instantly,
    Hubspot,
    Salesloft,
    Replyio,
    Heyreach,
    Lemlist,
    Outreach,
}

impl Provider {
    pub const ALL: [Provider; 8] = [
        Self::Smartlead,
        Self::Instantly,
        Self::Hubspot,
        Self::Salesloft,
        Self::Replyio,
        Self::Heyreach,
        Self::Lemlist,
        Self::Outreach,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Smartlead => "smartlead",
            Self::Instantly => "instantly",
            Self::Hubspot => "hubspot",
            Self::Salesloft => "salesloft",
            Self::Replyio => "replyio",
            Self::Heyreach => "heyreach",
            Self::Lemlist => "lemlist",
            Self::Outreach => "outreach",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }
}

/// Whether a client may act: suspended clients keep their data but send nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientStatus {
    #[default]
    Active,
    Suspended,
}

impl ClientStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_text_is_trimmed_and_refuses_empty_long_and_control_text() {
        assert_eq!(
            ClientName::try_from("  Acme ").map(String::from),
            Ok("Acme".into())
        );
        assert!(ClientName::try_from("   ").is_err());
        assert!(Region::try_from("x".repeat(65)).is_err());
        assert!(Region::try_from("x".repeat(64)).is_ok());
        assert!(Industry::try_from("fin\u{0}tech").is_err());
    }

    #[test]
    fn daily_cap_must_be_positive_and_bounded() {
        assert!(DailyCap::try_from(0).is_err());
        assert!(DailyCap::try_from(DailyCap::MAX + 1).is_err());
        assert_eq!(DailyCap::try_from(17).map(DailyCap::value), Ok(17));
    }

    #[test]
    fn confidence_threshold_lies_between_zero_and_one() {
        assert!(ConfidenceThreshold::try_from(-0.01).is_err());
        assert!(ConfidenceThreshold::try_from(1.01).is_err());
        assert!(ConfidenceThreshold::try_from(f64::NAN).is_err());
        assert!(ConfidenceThreshold::try_from(0.75).is_ok());
    }

    #[test]
    fn a_time_zone_parses_from_its_iana_name_only() {
        let sydney = TimeZone::try_from(" Australia/Sydney ").expect("a zone name parses");
        assert_eq!(sydney.tz(), Tz::Australia__Sydney);
        assert_eq!(
            serde_json::to_string(&sydney).expect("a zone serializes"),
            r#""Australia/Sydney""#
        );
        assert_eq!(TimeZone::default().name(), "UTC");
        for bad in ["", "Mars/Olympus_Mons", "australia/sydney", "+10:00"] {
            assert!(TimeZone::try_from(bad).is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<TimeZone>(r#""Nowhere/Else""#).is_err());
    }

    #[test]
    fn a_window_lasts_one_to_365_days() {
        assert!(WindowDays::try_from(0).is_err());
        assert!(WindowDays::try_from(366).is_err());
        assert_eq!(WindowDays::try_from(1).map(WindowDays::value), Ok(1));
        assert_eq!(WindowDays::try_from(365).map(WindowDays::value), Ok(365));
        let windows = MaturityWindows::default().windows();
        assert_eq!(
            (
                windows.reply_days,
                windows.meeting_days,
                windows.conversion_days
            ),
            (14, 30, 60)
        );
        assert_eq!(windows, crate::inference::Windows::default());
    }

    #[test]
    fn enums_use_their_documented_wire_names() {
        let json = serde_json::to_string(&(
            PermissionMode::CoPilot,
            CompanySize::S5001Plus,
            ResourceKind::LinkedinSeat,
            Provider::Replyio,
        ))
        .expect("enums serialize");
        assert_eq!(json, r#"["co_pilot","5001+","linkedin_seat","replyio"]"#);
        for provider in Provider::ALL {
            assert_eq!(Provider::parse(provider.as_str()), Some(provider));
        }
    }

    #[test]
    fn a_role_parses_from_its_wire_name_only() {
        for role in [Role::Admin, Role::Reviewer, Role::Ingest, Role::Reader] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        for bad in ["", "Admin", "READER", " reviewer", "owner"] {
            assert_eq!(Role::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn default_caps_follow_the_domain_notes() {
        assert_eq!(ResourceKind::Mailbox.default_daily_cap().value(), 50);
        assert_eq!(ResourceKind::LinkedinSeat.default_daily_cap().value(), 17);
        assert_eq!(ResourceKind::SmsNumber.default_daily_cap().value(), 100);
    }
}
