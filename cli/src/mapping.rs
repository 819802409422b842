//! From a CSV row to an item of the batch API (`SendInput`, `OutcomeInput`).
//!
//! Three ways, by what the import is told:
//!
//! - **No mapping, no vendor**: the columns are named as the API's fields,
//!   nested ones with dots (`provider_message_id`, `lead.email`,
//!   `content.subject`, `sent_at`).
//! - **`--mapping FILE.toml`**: `[columns]` names the field of each column,
//!   `[fixed]` gives fields the same value on every row, `[values.<field>]`
//!   translates a column's values (`"Opened" = "opened"`), and
//!   `time_format` reads times without an offset (chrono's `%Y-%m-%d ...`,
//!   taken as UTC).
//! - **`--provider smartlead|instantly|lemlist`**: the vendor's field names
//!   (those its webhooks and activity API document; see docs/cli.md), matched
//!   case-insensitively and ignoring spaces and punctuation, with the
//!   provider message id built exactly as Sextant's webhook for that vendor
//!   builds it, so an imported send and a later webhook about it meet.
//!
//! Numbers, booleans and times are converted by the field's type; an empty
//! cell is an absent field. A row that cannot be mapped is rejected with the
//! field and the reason, and the import goes on.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::args::ImportKind;
use crate::error::{CliError, Result};

/// Why a row was refused: the field at fault and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub field: String,
    pub reason: String,
}

impl Refusal {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A CSV header, looked up by normalised name (lower case, letters and
/// digits only: `Sent At`, `sent_at` and `sentAt` are one name).
pub struct Header {
    names: Vec<String>,
    index: HashMap<String, usize>,
}

pub fn normalise(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl Header {
    pub fn new(names: &[String]) -> Self {
        let mut index = HashMap::new();
        for (i, n) in names.iter().enumerate() {
            index.entry(normalise(n)).or_insert(i);
        }
        Self {
            names: names.to_vec(),
            index,
        }
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn position_exact(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

/// One row: its cells under the header.
pub struct Row<'a> {
    pub header: &'a Header,
    pub cells: &'a [String],
}

impl Row<'_> {
    /// The first non-empty cell of the columns named `names` (normalised).
    fn get(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|n| {
            self.header
                .index
                .get(&normalise(n))
                .and_then(|&i| self.cells.get(i))
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
        })
    }

    fn exact(&self, column: &str) -> Option<&str> {
        self.header
            .position_exact(column)
            .or_else(|| self.header.index.get(&normalise(column)).copied())
            .and_then(|i| self.cells.get(i))
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldType {
    Text,
    Integer,
    Boolean,
    Time,
}

fn field_type(field: &str) -> FieldType {
    match field {
        "step"
        | "context_version"
        | "lead.score"
        | "content.subject_words"
        | "content.body_words" => FieldType::Integer,
        "content.subject_question" | "content.personalized" => FieldType::Boolean,
        "sent_at" | "occurred_at" => FieldType::Time,
        _ => FieldType::Text,
    }
}

/// The fields each kind of item has (nested ones dotted).
pub fn fields(kind: ImportKind) -> &'static [&'static str] {
    match kind {
        ImportKind::Sends => &[
            "provider",
            "provider_message_id",
            "lead_ref",
            "lead.email",
            "lead.name",
            "lead.industry",
            "lead.company_size",
            "lead.seniority",
            "lead.title",
            "lead.profile_url",
            "lead.region",
            "lead.timezone",
            "lead.tier",
            "lead.score",
            "channel",
            "campaign_id",
            "step",
            "experiment_id",
            "variant",
            "content.subject",
            "content.subject_words",
            "content.subject_question",
            "content.personalized",
            "content.body_words",
            "content.cta",
            "content.angle",
            "context_version",
            "agent",
            "prompt_version",
            "resource",
            "sent_at",
        ],
        ImportKind::Outcomes => &[
            "provider",
            "provider_message_id",
            "provider_event_id",
            "kind",
            "intent",
            "bounce_type",
            "occurred_at",
        ],
    }
}

/// A cell as the field's JSON value.
fn convert(field: &str, raw: &str, time_format: Option<&str>) -> Result<Value, Refusal> {
    let raw = raw.trim();
    match field_type(field) {
        FieldType::Text => Ok(Value::String(raw.to_owned())),
        FieldType::Integer => raw
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| {
                // Spreadsheets write whole numbers as `3.0`.
                raw.parse::<f64>()
                    .ok()
                    .filter(|f| f.fract() == 0.0 && f.is_finite())
                    .map(|f| Value::from(f as i64))
                    .ok_or(())
            })
            .map_err(|_| Refusal::new(field, format!("{raw:?} is not a whole number"))),
        FieldType::Boolean => match raw.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "1" | "t" => Ok(Value::Bool(true)),
            "false" | "no" | "n" | "0" | "f" => Ok(Value::Bool(false)),
            _ => Err(Refusal::new(field, format!("{raw:?} is not true or false"))),
        },
        FieldType::Time => parse_time(raw, time_format)
            .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
            .ok_or_else(|| Refusal::new(field, format!("{raw:?} is not a time"))),
    }
}

/// RFC 3339; `YYYY-MM-DD HH:MM:SS[.f]` with or without an offset (UTC
/// without); Unix seconds or milliseconds; or `format` (UTC).
pub fn parse_time(raw: &str, format: Option<&str>) -> Option<DateTime<Utc>> {
    if let Some(format) = format {
        if let Ok(t) = DateTime::parse_from_str(raw, format) {
            return Some(t.with_timezone(&Utc));
        }
        if let Ok(t) = NaiveDateTime::parse_from_str(raw, format) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(raw, f) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(raw, f) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    if raw.len() >= 9 && raw.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = raw.parse().ok()?;
        // Past 1e11 it cannot be seconds (the year 5138): milliseconds.
        return if n > 100_000_000_000 {
            Utc.timestamp_millis_opt(n).single()
        } else {
            Utc.timestamp_opt(n, 0).single()
        };
    }
    None
}

/// Sets `field` (dotted) in `item`.
fn set(item: &mut Map<String, Value>, field: &str, value: Value) {
    match field.split_once('.') {
        Some((head, rest)) => {
            let child = item
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(map) = child {
                set(map, rest, value);
            }
        }
        None => {
            item.insert(field.to_owned(), value);
        }
    }
}

fn has(item: &Map<String, Value>, field: &str) -> bool {
    match field.split_once('.') {
        Some((head, rest)) => item
            .get(head)
            .and_then(Value::as_object)
            .is_some_and(|m| has(m, rest)),
        None => item.get(field).is_some_and(|v| !v.is_null()),
    }
}

/// The mapping file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingFile {
    /// Column → field.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// Field → the value of every row.
    #[serde(default)]
    pub fixed: BTreeMap<String, toml::Value>,
    /// Field → (value in the file → value sent).
    #[serde(default)]
    pub values: BTreeMap<String, BTreeMap<String, String>>,
    /// How times without an offset are written (chrono), read as UTC.
    #[serde(default)]
    pub time_format: Option<String>,
}

impl MappingFile {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| {
            CliError::Usage(format!(
                "{} is not a mapping file: {}",
                path.display(),
                e.message()
            ))
        })
    }

    fn check(&self, kind: ImportKind) -> Result<()> {
        let known = fields(kind);
        for field in self
            .columns
            .values()
            .chain(self.fixed.keys())
            .chain(self.values.keys())
        {
            if !known.contains(&field.as_str()) {
                return Err(CliError::Usage(format!(
                    "the mapping names {field:?}, which is not a field of {}: one of {}",
                    kind_name(kind),
                    known.join(", ")
                )));
            }
        }
        Ok(())
    }
}

pub fn kind_name(kind: ImportKind) -> &'static str {
    match kind {
        ImportKind::Sends => "sends",
        ImportKind::Outcomes => "outcomes",
    }
}

/// A vendor whose export Sextant reads without a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Smartlead,
    Instantly,
    Lemlist,
}

impl Vendor {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "smartlead" => Some(Self::Smartlead),
            "instantly" => Some(Self::Instantly),
            "lemlist" => Some(Self::Lemlist),
            _ => None,
        }
    }
}

/// How rows become items.
pub struct Mapper {
    kind: ImportKind,
    how: How,
    /// `--provider` for rows that name none (not a vendor).
    provider: Option<String>,
}

enum How {
    /// Columns named as the API's fields.
    Fields,
    Mapping(MappingFile),
    Vendor(Vendor),
}

impl Mapper {
    pub fn new(
        kind: ImportKind,
        provider: Option<&str>,
        mapping: Option<MappingFile>,
    ) -> Result<Self> {
        let vendor = provider.and_then(Vendor::from_name);
        let how = match (mapping, vendor) {
            (Some(m), _) => {
                m.check(kind)?;
                How::Mapping(m)
            }
            (None, Some(v)) => How::Vendor(v),
            (None, None) => How::Fields,
        };
        Ok(Self {
            kind,
            how,
            provider: provider.map(str::to_owned),
        })
    }

    /// `--provider` as given.
    pub fn provider(&self) -> Option<&str> {
        self.provider.as_deref()
    }

    /// Checks the header before any row is read: a column every row needs
    /// and that no column can give is a usage error, not a million rejects.
    pub fn check_header(&self, header: &Header) -> Result<()> {
        if let How::Fields = self.how {
            let known = fields(self.kind);
            let mapped: Vec<&String> = header
                .names()
                .iter()
                .filter(|n| known.contains(&n.trim()))
                .collect();
            if mapped.is_empty() {
                return Err(CliError::Usage(format!(
                    "no column is named as a field of {} (first columns: {}): name them so ({}), or pass --mapping or --provider smartlead|instantly|lemlist",
                    kind_name(self.kind),
                    header.names().iter().take(5).cloned().collect::<Vec<_>>().join(", "),
                    fields(self.kind).iter().take(6).copied().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        Ok(())
    }

    pub fn map(&self, row: &Row<'_>) -> Result<Value, Refusal> {
        let mut item = Map::new();
        match &self.how {
            How::Fields => {
                for (i, name) in row.header.names().iter().enumerate() {
                    let name = name.trim();
                    if !fields(self.kind).contains(&name) {
                        continue;
                    }
                    if let Some(raw) = row.cells.get(i).map(|s| s.trim()).filter(|s| !s.is_empty())
                    {
                        set(&mut item, name, convert(name, raw, None)?);
                    }
                }
            }
            How::Mapping(m) => {
                for (column, field) in &m.columns {
                    if let Some(raw) = row.exact(column) {
                        let raw = m
                            .values
                            .get(field)
                            .and_then(|t| t.get(raw))
                            .map(String::as_str)
                            .unwrap_or(raw);
                        set(
                            &mut item,
                            field,
                            convert(field, raw, m.time_format.as_deref())?,
                        );
                    }
                }
                for (field, value) in &m.fixed {
                    if !has(&item, field) {
                        let value = match value {
                            toml::Value::String(s) => convert(field, s, m.time_format.as_deref())?,
                            toml::Value::Integer(i) => Value::from(*i),
                            toml::Value::Float(f) => Value::from(*f),
                            toml::Value::Boolean(b) => Value::Bool(*b),
                            other => Value::String(other.to_string()),
                        };
                        set(&mut item, field, value);
                    }
                }
            }
            How::Vendor(v) => vendor_item(*v, self.kind, row, &mut item)?,
        }
        if let Some(provider) = &self.provider {
            if !has(&item, "provider") {
                item.insert("provider".into(), Value::String(provider.clone()));
            }
        }
        Ok(Value::Object(item))
    }
}

/// `h` + 16 hex digits of the SHA-256 of the trimmed, lower-cased email:
/// Sextant's webhook mapping's lead token.
fn lead_token(email: &str) -> String {
    let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
    format!("h{}", &hex::encode(digest)[..16])
}

fn need<'a>(row: &'a Row<'_>, field: &str, names: &[&str]) -> Result<&'a str, Refusal> {
    row.get(names).ok_or_else(|| {
        Refusal::new(
            field,
            format!("no value in any of the columns {}", names.join(", ")),
        )
    })
}

fn put_text(item: &mut Map<String, Value>, field: &str, value: Option<&str>) {
    if let Some(v) = value {
        set(item, field, Value::String(v.to_owned()));
    }
}

fn put_converted(
    item: &mut Map<String, Value>,
    field: &str,
    value: Option<&str>,
) -> Result<(), Refusal> {
    if let Some(v) = value {
        set(item, field, convert(field, v, None)?);
    }
    Ok(())
}

/// What a vendor's event type means: a send (on a channel) or an outcome.
enum VendorEvent {
    Send(&'static str),
    Outcome(&'static str, Option<&'static str>),
    Nothing,
}

fn vendor_event(vendor: Vendor, name: &str) -> VendorEvent {
    use VendorEvent::{Nothing, Outcome, Send};
    match vendor {
        Vendor::Smartlead => match name.to_ascii_uppercase().as_str() {
            "EMAIL_SENT" | "FIRST_EMAIL_SENT" => Send("email"),
            "EMAIL_OPEN" | "EMAIL_OPENED" => Outcome("opened", None),
            "EMAIL_LINK_CLICK" | "EMAIL_CLICKED" => Outcome("clicked", None),
            "EMAIL_REPLY" | "EMAIL_REPLIED" => Outcome("replied", None),
            "EMAIL_BOUNCE" | "EMAIL_BOUNCED" => Outcome("bounced", None),
            "LEAD_UNSUBSCRIBED" | "EMAIL_UNSUBSCRIBED" => Outcome("unsubscribed", None),
            _ => Nothing,
        },
        Vendor::Instantly => match name.to_ascii_lowercase().as_str() {
            "email_sent" => Send("email"),
            "email_opened" => Outcome("opened", None),
            "email_link_clicked" | "link_clicked" => Outcome("clicked", None),
            "reply_received" => Outcome("replied", None),
            "auto_reply_received" => Outcome("replied", Some("auto_reply")),
            "email_bounced" => Outcome("bounced", None),
            "lead_unsubscribed" => Outcome("unsubscribed", None),
            "lead_interested" => Outcome("replied", Some("interested")),
            "lead_not_interested" | "lead_wrong_person" => {
                Outcome("replied", Some("not_interested"))
            }
            "lead_out_of_office" => Outcome("replied", Some("out_of_office")),
            "lead_meeting_booked" => Outcome("meeting_booked", None),
            "lead_closed" => Outcome("converted", None),
            _ => Nothing,
        },
        Vendor::Lemlist => match name {
            "emailsSent" | "emailSent" => Send("email"),
            "linkedinSent" | "linkedinInviteDone" => Send("linkedin"),
            "emailsOpened" | "emailOpened" | "linkedinOpened" => Outcome("opened", None),
            "emailsClicked" | "emailClicked" => Outcome("clicked", None),
            "emailsReplied" | "emailReplied" | "linkedinReplied" => Outcome("replied", None),
            "emailsBounced" | "emailBounced" => Outcome("bounced", None),
            "emailsUnsubscribed" | "emailUnsubscribed" => Outcome("unsubscribed", None),
            "emailsInterested" | "linkedinInterested" => Outcome("replied", Some("interested")),
            "emailsNotInterested" | "linkedinNotInterested" => {
                Outcome("replied", Some("not_interested"))
            }
            "linkedinInviteAccepted" => Outcome("accepted", None),
            _ => Nothing,
        },
    }
}

/// The vendor's columns naming the event, and the message id.
fn vendor_columns(vendor: Vendor) -> (&'static [&'static str], &'static str) {
    match vendor {
        Vendor::Smartlead => (&["event_type", "event"], "smartlead"),
        Vendor::Instantly => (&["event_type"], "instantly"),
        Vendor::Lemlist => (&["type"], "lemlist"),
    }
}

fn vendor_message_id(vendor: Vendor, row: &Row<'_>) -> Result<String, Refusal> {
    let field = "provider_message_id";
    match vendor {
        Vendor::Smartlead => {
            if let Some(stats) = row.get(&["stats_id"]) {
                return Ok(stats.to_owned());
            }
            let campaign = row.get(&["campaign_id"]);
            let lead = row.get(&["sl_email_lead_id", "lead_id"]);
            let sequence = row.get(&["sequence_number"]);
            match (campaign, lead, sequence) {
                (Some(c), Some(l), Some(s)) => Ok(format!("{c}:{l}:{s}")),
                _ => Err(Refusal::new(
                    field,
                    "no stats_id, and not all of campaign_id, lead_id and sequence_number",
                )),
            }
        }
        Vendor::Instantly => {
            let campaign = need(row, field, &["campaign_id"])?;
            let email = need(row, "lead.email", &["lead_email", "email"])?;
            let step = need(row, "step", &["step"])?;
            Ok(format!("{campaign}:{}:{step}", lead_token(email)))
        }
        Vendor::Lemlist => {
            let campaign = need(row, field, &["campaignId"])?;
            let lead = need(row, field, &["leadId"])?;
            let step = need(row, field, &["stepId"])?;
            Ok(format!("{campaign}:{lead}:{step}"))
        }
    }
}

fn vendor_item(
    vendor: Vendor,
    kind: ImportKind,
    row: &Row<'_>,
    item: &mut Map<String, Value>,
) -> Result<(), Refusal> {
    let (event_columns, provider) = vendor_columns(vendor);
    let event = row
        .get(event_columns)
        .map(|name| (name, vendor_event(vendor, name)));
    item.insert("provider".into(), Value::String(provider.into()));
    item.insert(
        "provider_message_id".into(),
        Value::String(vendor_message_id(vendor, row)?),
    );
    let time_columns: &[&str] = match vendor {
        Vendor::Smartlead => &[
            "event_timestamp",
            "timestamp",
            "sent_time",
            "sent_at",
            "time",
        ],
        Vendor::Instantly => &["timestamp", "timestamp_created", "sent_at"],
        Vendor::Lemlist => &["createdAt", "sentAt", "date"],
    };
    match kind {
        ImportKind::Sends => {
            let channel = match event {
                None => "email",
                Some((_, VendorEvent::Send(channel))) => channel,
                Some((name, _)) => {
                    return Err(Refusal::new(
                        event_columns[0],
                        format!("{name:?} is not a send event"),
                    ))
                }
            };
            item.insert("channel".into(), Value::String(channel.into()));
            let time = need(row, "sent_at", time_columns)?;
            set(item, "sent_at", convert("sent_at", time, None)?);
            match vendor {
                Vendor::Smartlead => {
                    put_text(
                        item,
                        "lead.email",
                        row.get(&["to_email", "sl_lead_email", "lead_email", "email"]),
                    );
                    put_text(
                        item,
                        "lead.name",
                        row.get(&["to_name", "lead_name", "name"]),
                    );
                    put_text(item, "campaign_id", row.get(&["campaign_id"]));
                    put_converted(item, "step", row.get(&["sequence_number"]))?;
                    put_text(
                        item,
                        "content.subject",
                        row.get(&["subject", "email_subject"]),
                    );
                    put_text(item, "resource", row.get(&["from_email"]));
                }
                Vendor::Instantly => {
                    put_text(item, "lead.email", row.get(&["lead_email", "email"]));
                    put_text(item, "campaign_id", row.get(&["campaign_id"]));
                    put_converted(item, "step", row.get(&["step"]))?;
                    put_text(item, "variant", row.get(&["variant"]));
                    put_text(
                        item,
                        "content.subject",
                        row.get(&["email_subject", "subject"]),
                    );
                    put_text(item, "resource", row.get(&["email_account"]));
                }
                Vendor::Lemlist => {
                    put_text(item, "campaign_id", row.get(&["campaignId"]));
                    put_text(item, "resource", row.get(&["sendUserEmail"]));
                    match row.get(&["leadEmail", "email"]) {
                        Some(email) => put_text(item, "lead.email", Some(email)),
                        None => {
                            let lead = need(row, "lead_ref", &["leadId"])?;
                            let cleaned: String = lead
                                .chars()
                                .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                                .collect();
                            let lead_ref: String = format!("lemlist_lead_{cleaned}")
                                .chars()
                                .take(128)
                                .collect();
                            item.insert("lead_ref".into(), Value::String(lead_ref));
                        }
                    }
                }
            }
        }
        ImportKind::Outcomes => {
            let (kind, intent) = match event {
                Some((_, VendorEvent::Outcome(kind, intent))) => (kind, intent),
                Some((name, _)) => {
                    return Err(Refusal::new(
                        event_columns[0],
                        format!("{name:?} is not an outcome Sextant records"),
                    ))
                }
                None => {
                    return Err(Refusal::new(
                        event_columns[0],
                        format!("no event type (column {})", event_columns.join(" or ")),
                    ))
                }
            };
            item.insert("kind".into(), Value::String(kind.into()));
            if let Some(intent) = intent {
                item.insert("intent".into(), Value::String(intent.into()));
            }
            let time = need(row, "occurred_at", time_columns)?;
            set(item, "occurred_at", convert("occurred_at", time, None)?);
            let event_id = match vendor {
                Vendor::Lemlist => row.get(&["_id", "id"]),
                Vendor::Smartlead | Vendor::Instantly => None,
            };
            put_text(item, "provider_event_id", event_id);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row_of(names: &[&str], cells: &[&str]) -> (Header, Vec<String>) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        (
            Header::new(&names),
            cells.iter().map(|s| s.to_string()).collect(),
        )
    }

    #[test]
    fn columns_named_as_the_apis_fields_map_with_their_types() {
        let (h, cells) = row_of(
            &[
                "provider",
                "provider_message_id",
                "lead.email",
                "channel",
                "step",
                "content.personalized",
                "sent_at",
                "other",
            ],
            &[
                "smtp",
                "m-1",
                "a@b.co",
                "email",
                "2",
                "yes",
                "2026-01-02 03:04:05",
                "x",
            ],
        );
        let m = Mapper::new(ImportKind::Sends, None, None).expect("mapper");
        let item = m
            .map(&Row {
                header: &h,
                cells: &cells,
            })
            .expect("an item");
        assert_eq!(
            item,
            json!({"provider": "smtp", "provider_message_id": "m-1", "lead": {"email": "a@b.co"},
                   "channel": "email", "step": 2, "content": {"personalized": true},
                   "sent_at": "2026-01-02T03:04:05Z"})
        );
    }

    #[test]
    fn a_mapping_file_renames_translates_and_fixes_values() {
        let mapping: MappingFile = toml::from_str(
            r#"
time_format = "%d/%m/%Y %H:%M"
[columns]
"Message" = "provider_message_id"
"What" = "kind"
"When" = "occurred_at"
[fixed]
provider = "acme"
[values.kind]
"Opened" = "opened"
"#,
        )
        .expect("a mapping");
        let (h, cells) = row_of(
            &["Message", "What", "When"],
            &["m-9", "Opened", "05/03/2026 10:30"],
        );
        let m = Mapper::new(ImportKind::Outcomes, None, Some(mapping)).expect("mapper");
        let item = m
            .map(&Row {
                header: &h,
                cells: &cells,
            })
            .expect("an item");
        assert_eq!(
            item,
            json!({"provider": "acme", "provider_message_id": "m-9", "kind": "opened",
                   "occurred_at": "2026-03-05T10:30:00Z"})
        );
    }

    #[test]
    fn a_mapping_naming_an_unknown_field_is_a_usage_error() {
        let mapping: MappingFile =
            toml::from_str("[columns]\n\"A\" = \"lead.mail\"\n").expect("a mapping");
        let err = Mapper::new(ImportKind::Sends, None, Some(mapping))
            .err()
            .expect("refused");
        assert_eq!(err.exit_code(), crate::error::USAGE);
    }

    #[test]
    fn a_bad_number_is_refused_naming_the_field() {
        let (h, cells) = row_of(&["provider_message_id", "step"], &["m", "three"]);
        let m = Mapper::new(ImportKind::Sends, None, None).expect("mapper");
        let refusal = m
            .map(&Row {
                header: &h,
                cells: &cells,
            })
            .expect_err("refused");
        assert_eq!(refusal.field, "step");
    }

    #[test]
    fn instantly_rows_get_the_webhooks_message_id() {
        let (h, cells) = row_of(
            &[
                "timestamp",
                "event_type",
                "campaign_id",
                "lead_email",
                "step",
                "email_account",
            ],
            &[
                "2025-05-13T08:41:10.000Z",
                "email_sent",
                "camp-1",
                " Maria@Prospect.example",
                "1",
                "sam@x.example",
            ],
        );
        let m = Mapper::new(ImportKind::Sends, Some("instantly"), None).expect("mapper");
        let item = m
            .map(&Row {
                header: &h,
                cells: &cells,
            })
            .expect("an item");
        let expected = format!("camp-1:{}:1", lead_token("maria@prospect.example"));
        assert_eq!(item["provider_message_id"], json!(expected));
        assert_eq!(item["provider"], "instantly");
        assert_eq!(item["resource"], "sam@x.example");
        assert_eq!(item["sent_at"], "2025-05-13T08:41:10Z");
    }

    #[test]
    fn smartlead_and_lemlist_outcomes_map_their_event_names() {
        let (h, cells) = row_of(
            &["Event Type", "Stats ID", "Event Timestamp"],
            &["EMAIL_OPEN", "st-1", "2025-03-28T08:15:01+00:00"],
        );
        let m = Mapper::new(ImportKind::Outcomes, Some("smartlead"), None).expect("mapper");
        let item = m
            .map(&Row {
                header: &h,
                cells: &cells,
            })
            .expect("an item");
        assert_eq!(
            item,
            json!({"provider": "smartlead", "provider_message_id": "st-1", "kind": "opened",
                   "occurred_at": "2025-03-28T08:15:01Z"})
        );
        let (h, cells) = row_of(
            &["_id", "type", "createdAt", "campaignId", "leadId", "stepId"],
            &[
                "act_1",
                "emailsInterested",
                "2025-10-29T11:42:10.004Z",
                "cam",
                "lea",
                "stp",
            ],
        );
        let m = Mapper::new(ImportKind::Outcomes, Some("lemlist"), None).expect("mapper");
        let item = m
            .map(&Row {
                header: &h,
                cells: &cells,
            })
            .expect("an item");
        assert_eq!(item["provider_message_id"], "cam:lea:stp");
        assert_eq!(item["kind"], "replied");
        assert_eq!(item["intent"], "interested");
        assert_eq!(item["provider_event_id"], "act_1");
    }
}
