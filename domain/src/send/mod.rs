//! Sends and outcomes.
//!
//! A Send aggregate is one touch on one lead; its id derives from (client,
//! provider, provider message id), so a repeated send is the same send.
//! Each outcome kind counts once per send however often a provider repeats
//! it, and an outcome may arrive before its send (it is kept in the send's
//! stream and attached when the send arrives). Leads appear only as
//! `lead_ref`, a keyed hash: emails, names and message text never enter the
//! log.
//!
//! The high-volume write path does not go through cqrs-es' one-command-at-
//! a-time executor; it calls [`SendState::decide`] for every item of a batch
//! against states it loads in one query, and appends all events in one
//! statement (see the ingest adapter). The cqrs-es [`Aggregate`] impl runs
//! the same decision, for the given/when/then tests and for single commands.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub mod input;

use crate::aggregate_types;
use crate::values::{CompanySize, ResourceKind};

/// Outreach channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Linkedin,
    Sms,
    Voice,
    Mail,
}

impl Channel {
    /// The kind of sending resource a touch on this channel uses.
    pub fn resource_kind(self) -> ResourceKind {
        match self {
            Self::Email => ResourceKind::Mailbox,
            Self::Linkedin => ResourceKind::LinkedinSeat,
            Self::Sms | Self::Voice => ResourceKind::SmsNumber,
            Self::Mail => ResourceKind::MailAccount,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Linkedin => "linkedin",
            Self::Sms => "sms",
            Self::Voice => "voice",
            Self::Mail => "mail",
        }
    }
}

/// Lead temperature (the lead score's tiers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Cold,
    Cool,
    Warm,
    Hot,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cold => "cold",
            Self::Cool => "cool",
            Self::Warm => "warm",
            Self::Hot => "hot",
        }
    }

    /// Channels a lead of this tier may be reached on (docs/sends-and-webhooks.md): cold:
    /// email; cool: + LinkedIn; warm: + voice; hot: + SMS and mail.
    pub fn allows(self, channel: Channel) -> bool {
        let rank = |t: Tier| t as u8;
        let needed = match channel {
            Channel::Email => Tier::Cold,
            Channel::Linkedin => Tier::Cool,
            Channel::Voice => Tier::Warm,
            Channel::Sms | Channel::Mail => Tier::Hot,
        };
        rank(self) >= rank(needed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    Delivered,
    Opened,
    Clicked,
    Replied,
    Accepted,
    Bounced,
    Unsubscribed,
    Complained,
    MeetingBooked,
    Converted,
}

impl OutcomeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Opened => "opened",
            Self::Clicked => "clicked",
            Self::Replied => "replied",
            Self::Accepted => "accepted",
            Self::Bounced => "bounced",
            Self::Unsubscribed => "unsubscribed",
            Self::Complained => "complained",
            Self::MeetingBooked => "meeting_booked",
            Self::Converted => "converted",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyIntent {
    Interested,
    MeetingRequest,
    Question,
    NotInterested,
    Unsubscribe,
    OutOfOffice,
    AutoReply,
}

impl ReplyIntent {
    /// A reply a person wrote that moves toward a meeting.
    pub fn is_positive(self) -> bool {
        matches!(
            self,
            Self::Interested | Self::MeetingRequest | Self::Question
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BounceType {
    Hard,
    Soft,
}

/// Why a lead is on the suppression list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionReason {
    Unsubscribed,
    HardBounce,
    Complaint,
}

impl SuppressionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unsubscribed => "unsubscribed",
            Self::HardBounce => "hard_bounce",
            Self::Complaint => "complaint",
        }
    }
}

/// Which outcomes put a lead on the client's suppression list.
pub fn suppression_reason(outcome: &OutcomeFacts) -> Option<SuppressionReason> {
    match (outcome.kind, outcome.intent, outcome.bounce_type) {
        (OutcomeKind::Unsubscribed, ..) => Some(SuppressionReason::Unsubscribed),
        (OutcomeKind::Replied, Some(ReplyIntent::Unsubscribe), _) => {
            Some(SuppressionReason::Unsubscribed)
        }
        (OutcomeKind::Bounced, _, Some(BounceType::Hard)) => Some(SuppressionReason::HardBounce),
        (OutcomeKind::Complained, ..) => Some(SuppressionReason::Complaint),
        _ => None,
    }
}

/// The lead's attributes at send time: what learning needs, nothing that
/// identifies the person. The job title is not among them: it is free text
/// a provider fills with a LinkedIn headline as often as with a role, so it
/// is kept with the lead's identity, erasable ([`input::PersonalParts`]);
/// `seniority` is the role learning reads. Sends recorded with a `title`
/// still read: the field is ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LeadSnapshot {
    pub industry: Option<String>,
    pub company_size: Option<CompanySize>,
    pub seniority: Option<String>,
    pub region: Option<String>,
    /// IANA time zone of the lead, for lead-local timing.
    pub timezone: Option<String>,
    pub tier: Option<Tier>,
    pub score: Option<u8>,
}

/// Features of the message, never its text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContentFeatures {
    pub subject_words: Option<u32>,
    pub subject_question: Option<bool>,
    pub personalized: Option<bool>,
    pub body_words: Option<u32>,
    pub cta: Option<String>,
    pub angle: Option<String>,
}

/// Everything a send records (docs/sends-and-webhooks.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendFacts {
    pub provider: String,
    pub provider_message_id: String,
    pub lead_ref: String,
    pub lead: LeadSnapshot,
    pub channel: Channel,
    pub campaign_id: Option<String>,
    pub step: Option<u32>,
    pub experiment_id: Option<Uuid>,
    pub variant: Option<String>,
    pub content: ContentFeatures,
    pub context_version: Option<u64>,
    pub agent: Option<String>,
    pub prompt_version: Option<String>,
    pub resource: Option<String>,
    pub sent_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeFacts {
    pub provider: String,
    pub provider_message_id: String,
    pub kind: OutcomeKind,
    pub intent: Option<ReplyIntent>,
    pub bounce_type: Option<BounceType>,
    pub provider_event_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

/// The id of the send a client's provider message is: a UUID derived from
/// (client, provider, provider message id).
pub fn send_id(client_id: Uuid, provider: &str, provider_message_id: &str) -> Uuid {
    let digest =
        Sha256::digest(format!("{client_id}\n{provider}\n{provider_message_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // Mark it a version 8 (custom) UUID, RFC 9562 variant.
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes)
}

#[derive(Debug, Clone, PartialEq)]
pub enum SendCommand {
    RecordSend(Box<SendFacts>),
    RecordOutcome(OutcomeFacts),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SendEvent {
    SendRecorded(Box<SendFacts>),
    OutcomeRecorded(OutcomeFacts),
    /// A reply recorded without an intent got one: providers classify a
    /// reply after it arrives (Smartlead's `LEAD_CATEGORY_UPDATED`, by hand
    /// or by its AI). Carries the reply as now known (kind `replied`, the
    /// intent, when it was classified). A reply's intent is set once.
    ReplyClassified(OutcomeFacts),
}

impl SendEvent {
    /// The outcome an event records or completes, if any.
    pub fn outcome(&self) -> Option<&OutcomeFacts> {
        match self {
            Self::SendRecorded(_) => None,
            Self::OutcomeRecorded(outcome) | Self::ReplyClassified(outcome) => Some(outcome),
        }
    }
}

impl DomainEvent for SendEvent {
    fn event_type(&self) -> String {
        match self {
            Self::SendRecorded(_) => "send_recorded",
            Self::OutcomeRecorded(_) => "outcome_recorded",
            Self::ReplyClassified(_) => "reply_classified",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the send is already recorded")]
    DuplicateSend,
    #[error("the outcome {0} is already recorded for this send")]
    DuplicateOutcome(&'static str),
}

/// What deciding needs to remember of a send.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SendState {
    pub recorded: bool,
    pub lead_ref: Option<String>,
    pub outcomes: BTreeSet<OutcomeKind>,
    /// The reply's intent is known (it came with the reply or later).
    #[serde(default)]
    pub reply_classified: bool,
}

impl SendState {
    pub fn decide(&self, command: SendCommand) -> Result<Vec<SendEvent>, SendError> {
        match command {
            SendCommand::RecordSend(facts) => {
                if self.recorded {
                    Err(SendError::DuplicateSend)
                } else {
                    Ok(vec![SendEvent::SendRecorded(facts)])
                }
            }
            SendCommand::RecordOutcome(outcome) => {
                if !self.outcomes.contains(&outcome.kind) {
                    Ok(vec![SendEvent::OutcomeRecorded(outcome)])
                } else if outcome.kind == OutcomeKind::Replied
                    && outcome.intent.is_some()
                    && !self.reply_classified
                {
                    // The reply again, now with its intent: keep the intent,
                    // count the reply once.
                    Ok(vec![SendEvent::ReplyClassified(outcome)])
                } else {
                    Err(SendError::DuplicateOutcome(outcome.kind.as_str()))
                }
            }
        }
    }

    pub fn apply(&mut self, event: &SendEvent) {
        match event {
            SendEvent::SendRecorded(facts) => {
                self.recorded = true;
                self.lead_ref = Some(facts.lead_ref.clone());
            }
            SendEvent::OutcomeRecorded(outcome) => {
                self.outcomes.insert(outcome.kind);
                self.reply_classified |=
                    outcome.kind == OutcomeKind::Replied && outcome.intent.is_some();
            }
            SendEvent::ReplyClassified(_) => self.reply_classified = true,
        }
    }
}

/// The cqrs-es face of the same decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Send {
    state: SendState,
}

impl Aggregate for Send {
    const TYPE: &'static str = aggregate_types::SEND;
    type Command = SendCommand;
    type Event = SendEvent;
    type Error = SendError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.state.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.state.apply(&event);
    }
}

#[cfg(test)]
mod tests;

/// Why a send is not permitted (docs/sends-and-webhooks.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    Suppressed,
    DailyCapReached,
    ChannelNotAllowedForTier,
    ClientSuspended,
    UnknownResource,
}

/// What an authorisation is decided on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AuthorizationFacts {
    pub suppressed: bool,
    pub client_suspended: bool,
    pub tier: Tier,
    pub channel: Channel,
    /// The resource's daily cap; `None` if the client has no such resource.
    pub cap: Option<u32>,
    pub used_today: u32,
}

/// Every reason to refuse, in a stable order; empty means permit.
pub fn refusals(facts: &AuthorizationFacts) -> Vec<Refusal> {
    let mut reasons = Vec::new();
    if facts.client_suspended {
        reasons.push(Refusal::ClientSuspended);
    }
    if facts.suppressed {
        reasons.push(Refusal::Suppressed);
    }
    if !facts.tier.allows(facts.channel) {
        reasons.push(Refusal::ChannelNotAllowedForTier);
    }
    match facts.cap {
        None => reasons.push(Refusal::UnknownResource),
        Some(cap) if facts.used_today >= cap => reasons.push(Refusal::DailyCapReached),
        Some(_) => {}
    }
    reasons
}

/// The record of an authorisation asked for, permitted or refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuthorizationEvent {
    AuthorizationDecided {
        authorization_id: Uuid,
        lead_ref: String,
        channel: Channel,
        resource: String,
        tier: Tier,
        permit: bool,
        reasons: Vec<Refusal>,
    },
}

/// The record of a lead's personal data being erased.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LeadEvent {
    LeadErased { lead_ref: String },
}

impl DomainEvent for AuthorizationEvent {
    fn event_type(&self) -> String {
        match self {
            Self::AuthorizationDecided { .. } => "authorization_decided",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl DomainEvent for LeadEvent {
    fn event_type(&self) -> String {
        match self {
            Self::LeadErased { .. } => "lead_erased",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// Decide an authorisation: what was asked, and every reason found against
/// it (none: permitted).
#[derive(Debug, Clone, PartialEq)]
pub struct DecideAuthorization {
    pub authorization_id: Uuid,
    pub lead_ref: String,
    pub channel: Channel,
    pub resource: String,
    pub tier: Tier,
    pub reasons: Vec<Refusal>,
}

impl DecideAuthorization {
    /// The decision's record: permitted exactly when nothing stands
    /// against it.
    pub fn decided(self) -> AuthorizationEvent {
        AuthorizationEvent::AuthorizationDecided {
            authorization_id: self.authorization_id,
            lead_ref: self.lead_ref,
            channel: self.channel,
            resource: self.resource,
            tier: self.tier,
            permit: self.reasons.is_empty(),
            reasons: self.reasons,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    #[error("this authorisation was already decided")]
    AlreadyDecided,
}

/// One authorisation asked for: decided once, never changed. Its id is the
/// authorisation id; it has one event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Authorization {
    decided: bool,
}

impl Aggregate for Authorization {
    const TYPE: &'static str = aggregate_types::AUTHORIZATION;
    type Command = DecideAuthorization;
    type Event = AuthorizationEvent;
    type Error = AuthorizationError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), Self::Error> {
        if self.decided {
            return Err(AuthorizationError::AlreadyDecided);
        }
        sink.write(command.decided(), self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            AuthorizationEvent::AuthorizationDecided { .. } => self.decided = true,
        }
    }
}

/// Erase what Sextant keeps of a lead's personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EraseLead {
    pub lead_ref: String,
}

/// A lead, by client and lead ref: the history of its erasures. Every
/// request to erase is recorded, the second as much as the first, since
/// personal data may have arrived again in between.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lead {
    erasures: u64,
}

impl Lead {
    /// The aggregate id of a lead: leads are pseudonymous per client.
    pub fn id(client_id: Uuid, lead_ref: &str) -> String {
        format!("{client_id}:{lead_ref}")
    }
}

impl Aggregate for Lead {
    const TYPE: &'static str = aggregate_types::LEAD;
    type Command = EraseLead;
    type Event = LeadEvent;
    type Error = std::convert::Infallible;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), Self::Error> {
        sink.write(
            LeadEvent::LeadErased {
                lead_ref: command.lead_ref,
            },
            self,
        )
        .await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            LeadEvent::LeadErased { .. } => self.erasures += 1,
        }
    }
}
