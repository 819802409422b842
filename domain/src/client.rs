//! The Client aggregate: one per tenant, id = the client's UUID.
//!
//! It guards registration, the profile (with the client's time zone), the
//! permission mode and autopilot threshold, the maturity windows of its
//! outcomes, data-sharing consent, API keys (hashes only: the key itself is
//! shown once and never stored), webhook secrets (fingerprints only: the
//! secret lives in an erasable table), sending resources with daily caps, and
//! suspension.

use std::collections::BTreeMap;

use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::aggregate_types;
use crate::alert::{AlertLimits, AlertLimitsChange};
use crate::report::ReportRecipients;
use crate::values::{
    ClientName, ClientStatus, CompanySize, ConfidenceThreshold, DailyCap, Industry, KeyLabel,
    MaturityWindows, PermissionMode, Provider, Reason, Region, ResourceAddress, ResourceKind, Role,
    TimeZone, WindowDays,
};

/// The profile a client registers with and may later change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub name: ClientName,
    pub industry: Industry,
    pub company_size: CompanySize,
    pub region: Region,
    /// The zone the client's weeks and days are counted in; UTC in
    /// profiles recorded before clients had one.
    #[serde(default)]
    pub timezone: TimeZone,
}

/// A partial profile change: absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileChange {
    pub name: Option<ClientName>,
    pub industry: Option<Industry>,
    pub company_size: Option<CompanySize>,
    pub region: Option<Region>,
    pub timezone: Option<TimeZone>,
}

/// A partial change of the maturity windows: absent windows stay as they
/// are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaturityWindowsChange {
    pub reply_days: Option<WindowDays>,
    pub meeting_days: Option<WindowDays>,
    pub conversion_days: Option<WindowDays>,
}

impl MaturityWindowsChange {
    /// `current` with the windows this change names replaced.
    pub fn applied_to(self, current: MaturityWindows) -> MaturityWindows {
        MaturityWindows {
            reply_days: self.reply_days.unwrap_or(current.reply_days),
            meeting_days: self.meeting_days.unwrap_or(current.meeting_days),
            conversion_days: self.conversion_days.unwrap_or(current.conversion_days),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClientCommand {
    RegisterClient {
        client_id: Uuid,
        profile: Profile,
        permission_mode: PermissionMode,
        data_sharing_consent: bool,
        maturity: MaturityWindows,
    },
    /// Change any of profile, permission mode, autopilot threshold, consent
    /// and maturity windows at once; only what actually changes becomes an
    /// event.
    UpdateClient {
        profile: ProfileChange,
        permission_mode: Option<PermissionMode>,
        autopilot_threshold: Option<ConfidenceThreshold>,
        data_sharing_consent: Option<bool>,
        maturity: Option<MaturityWindowsChange>,
        /// Who the weekly report is e-mailed to, all at once (empty: no
        /// one).
        report_recipients: Option<ReportRecipients>,
        /// Any of the alert limits of its sending resources.
        alert_limits: Option<AlertLimitsChange>,
    },
    IssueApiKey {
        key_id: Uuid,
        role: Role,
        label: KeyLabel,
        /// Hex SHA-256 of the key's secret part.
        key_hash: String,
    },
    RevokeApiKey {
        key_id: Uuid,
    },
    SetWebhookSecret {
        provider: Provider,
        /// A short, non-reversible fingerprint of the secret.
        fingerprint: String,
    },
    RegisterResource {
        kind: ResourceKind,
        address: ResourceAddress,
        daily_cap: Option<DailyCap>,
    },
    SuspendClient {
        reason: Reason,
    },
    ReactivateClient,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientEvent {
    ClientRegistered {
        client_id: Uuid,
        profile: Profile,
        permission_mode: PermissionMode,
        autopilot_threshold: ConfidenceThreshold,
        data_sharing_consent: bool,
        /// The defaults in registrations recorded before clients had their
        /// own windows.
        #[serde(default)]
        maturity: MaturityWindows,
    },
    ProfileUpdated {
        profile: Profile,
    },
    PermissionModeChanged {
        permission_mode: PermissionMode,
        autopilot_threshold: ConfidenceThreshold,
    },
    /// Some of the maturity windows changed; all three as they now are.
    MaturityWindowsChanged {
        maturity: MaturityWindows,
    },
    /// Who the weekly report is e-mailed to, as they now are.
    ReportRecipientsChanged {
        report_recipients: ReportRecipients,
    },
    /// Some of the alert limits changed; both as they now are.
    AlertLimitsChanged {
        alert_limits: AlertLimits,
    },
    DataSharingConsentGiven,
    DataSharingConsentWithdrawn,
    ApiKeyIssued {
        key_id: Uuid,
        role: Role,
        label: KeyLabel,
        key_hash: String,
    },
    ApiKeyRevoked {
        key_id: Uuid,
    },
    WebhookSecretSet {
        provider: Provider,
        fingerprint: String,
    },
    ResourceRegistered {
        kind: ResourceKind,
        address: ResourceAddress,
        daily_cap: DailyCap,
    },
    ResourceCapChanged {
        kind: ResourceKind,
        address: ResourceAddress,
        daily_cap: DailyCap,
    },
    ClientSuspended {
        reason: Reason,
    },
    ClientReactivated,
}

impl DomainEvent for ClientEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ClientRegistered { .. } => "client_registered",
            Self::ProfileUpdated { .. } => "profile_updated",
            Self::PermissionModeChanged { .. } => "permission_mode_changed",
            Self::MaturityWindowsChanged { .. } => "maturity_windows_changed",
            Self::ReportRecipientsChanged { .. } => "report_recipients_changed",
            Self::AlertLimitsChanged { .. } => "alert_limits_changed",
            Self::DataSharingConsentGiven => "data_sharing_consent_given",
            Self::DataSharingConsentWithdrawn => "data_sharing_consent_withdrawn",
            Self::ApiKeyIssued { .. } => "api_key_issued",
            Self::ApiKeyRevoked { .. } => "api_key_revoked",
            Self::WebhookSecretSet { .. } => "webhook_secret_set",
            Self::ResourceRegistered { .. } => "resource_registered",
            Self::ResourceCapChanged { .. } => "resource_cap_changed",
            Self::ClientSuspended { .. } => "client_suspended",
            Self::ClientReactivated => "client_reactivated",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("client is already registered")]
    AlreadyRegistered,
    #[error("client is not registered")]
    NotRegistered,
    #[error("API key {0} already exists")]
    DuplicateKey(Uuid),
    #[error("API key {0} does not exist")]
    UnknownKey(Uuid),
    #[error("API key {0} is already revoked")]
    KeyAlreadyRevoked(Uuid),
    #[error("webhook fingerprint must not be empty")]
    EmptyFingerprint,
    #[error("key hash must be a hex SHA-256")]
    MalformedKeyHash,
    #[error("client is already suspended")]
    AlreadySuspended,
    #[error("client is not suspended")]
    NotSuspended,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct KeyState {
    role: Role,
    revoked: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Client {
    /// `None` until registered.
    profile: Option<Profile>,
    permission_mode: PermissionMode,
    autopilot_threshold: ConfidenceThreshold,
    data_sharing_consent: bool,
    #[serde(default)]
    maturity: MaturityWindows,
    #[serde(default)]
    report_recipients: ReportRecipients,
    #[serde(default)]
    alert_limits: AlertLimits,
    status: ClientStatus,
    keys: BTreeMap<Uuid, KeyState>,
    /// `kind:address` → daily cap.
    resources: BTreeMap<String, DailyCap>,
    webhooks: BTreeMap<String, String>,
}

fn resource_key(kind: ResourceKind, address: &ResourceAddress) -> String {
    resource_key_of(kind, address.as_str())
}

fn resource_key_of(kind: ResourceKind, address: &str) -> String {
    format!("{}:{}", kind.as_str(), address.trim().to_lowercase())
}

impl Client {
    /// The pure decision: which events a command produces from this state.
    pub fn decide(&self, command: ClientCommand) -> Result<Vec<ClientEvent>, ClientError> {
        match (&self.profile, command) {
            (
                None,
                ClientCommand::RegisterClient {
                    client_id,
                    profile,
                    permission_mode,
                    data_sharing_consent,
                    maturity,
                },
            ) => Ok(vec![ClientEvent::ClientRegistered {
                client_id,
                profile,
                permission_mode,
                autopilot_threshold: ConfidenceThreshold::DEFAULT_THRESHOLD,
                data_sharing_consent,
                maturity,
            }]),
            (None, _) => Err(ClientError::NotRegistered),
            (Some(current), command) => self.decide_registered(current, command),
        }
    }

    fn decide_registered(
        &self,
        current: &Profile,
        command: ClientCommand,
    ) -> Result<Vec<ClientEvent>, ClientError> {
        let mut events = Vec::new();
        match command {
            ClientCommand::RegisterClient { .. } => return Err(ClientError::AlreadyRegistered),
            ClientCommand::UpdateClient {
                profile,
                permission_mode,
                autopilot_threshold,
                data_sharing_consent,
                maturity,
                report_recipients,
                alert_limits,
            } => {
                let next = Profile {
                    name: profile.name.unwrap_or_else(|| current.name.clone()),
                    industry: profile.industry.unwrap_or_else(|| current.industry.clone()),
                    company_size: profile.company_size.unwrap_or(current.company_size),
                    region: profile.region.unwrap_or_else(|| current.region.clone()),
                    timezone: profile.timezone.unwrap_or(current.timezone),
                };
                if &next != current {
                    events.push(ClientEvent::ProfileUpdated { profile: next });
                }
                let mode = permission_mode.unwrap_or(self.permission_mode);
                let threshold = autopilot_threshold.unwrap_or(self.autopilot_threshold);
                if mode != self.permission_mode || threshold != self.autopilot_threshold {
                    events.push(ClientEvent::PermissionModeChanged {
                        permission_mode: mode,
                        autopilot_threshold: threshold,
                    });
                }
                match data_sharing_consent {
                    Some(true) if !self.data_sharing_consent => {
                        events.push(ClientEvent::DataSharingConsentGiven)
                    }
                    Some(false) if self.data_sharing_consent => {
                        events.push(ClientEvent::DataSharingConsentWithdrawn)
                    }
                    _ => {}
                }
                if let Some(change) = maturity {
                    let windows = change.applied_to(self.maturity);
                    if windows != self.maturity {
                        events.push(ClientEvent::MaturityWindowsChanged { maturity: windows });
                    }
                }
                if let Some(recipients) = report_recipients {
                    if recipients != self.report_recipients {
                        events.push(ClientEvent::ReportRecipientsChanged {
                            report_recipients: recipients,
                        });
                    }
                }
                if let Some(change) = alert_limits {
                    let limits = change.applied_to(self.alert_limits);
                    if limits != self.alert_limits {
                        events.push(ClientEvent::AlertLimitsChanged {
                            alert_limits: limits,
                        });
                    }
                }
            }
            ClientCommand::IssueApiKey {
                key_id,
                role,
                label,
                key_hash,
            } => {
                if self.keys.contains_key(&key_id) {
                    return Err(ClientError::DuplicateKey(key_id));
                }
                if key_hash.len() != 64 || !key_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(ClientError::MalformedKeyHash);
                }
                events.push(ClientEvent::ApiKeyIssued {
                    key_id,
                    role,
                    label,
                    key_hash,
                });
            }
            ClientCommand::RevokeApiKey { key_id } => match self.keys.get(&key_id) {
                None => return Err(ClientError::UnknownKey(key_id)),
                Some(key) if key.revoked => return Err(ClientError::KeyAlreadyRevoked(key_id)),
                Some(_) => events.push(ClientEvent::ApiKeyRevoked { key_id }),
            },
            ClientCommand::SetWebhookSecret {
                provider,
                fingerprint,
            } => {
                if fingerprint.trim().is_empty() {
                    return Err(ClientError::EmptyFingerprint);
                }
                if self.webhooks.get(provider.as_str()) != Some(&fingerprint) {
                    events.push(ClientEvent::WebhookSecretSet {
                        provider,
                        fingerprint,
                    });
                }
            }
            ClientCommand::RegisterResource {
                kind,
                address,
                daily_cap,
            } => {
                let cap = daily_cap.unwrap_or_else(|| kind.default_daily_cap());
                match self.resources.get(&resource_key(kind, &address)) {
                    None => events.push(ClientEvent::ResourceRegistered {
                        kind,
                        address,
                        daily_cap: cap,
                    }),
                    Some(existing) if *existing != cap => {
                        events.push(ClientEvent::ResourceCapChanged {
                            kind,
                            address,
                            daily_cap: cap,
                        })
                    }
                    Some(_) => {}
                }
            }
            ClientCommand::SuspendClient { reason } => {
                if self.status == ClientStatus::Suspended {
                    return Err(ClientError::AlreadySuspended);
                }
                events.push(ClientEvent::ClientSuspended { reason });
            }
            ClientCommand::ReactivateClient => {
                if self.status != ClientStatus::Suspended {
                    return Err(ClientError::NotSuspended);
                }
                events.push(ClientEvent::ClientReactivated);
            }
        }
        Ok(events)
    }

    pub fn profile(&self) -> Option<&Profile> {
        self.profile.as_ref()
    }

    pub fn data_sharing_consent(&self) -> bool {
        self.data_sharing_consent
    }

    pub fn is_registered(&self) -> bool {
        self.profile.is_some()
    }

    pub fn permission_mode(&self) -> PermissionMode {
        self.permission_mode
    }

    pub fn autopilot_threshold(&self) -> ConfidenceThreshold {
        self.autopilot_threshold
    }

    /// The client's time zone (UTC until it is registered).
    pub fn timezone(&self) -> TimeZone {
        self.profile
            .as_ref()
            .map(|profile| profile.timezone)
            .unwrap_or_default()
    }

    /// How long after a send each of its outcomes is still expected.
    pub fn maturity(&self) -> MaturityWindows {
        self.maturity
    }

    /// Who the weekly report is e-mailed to (none until set).
    pub fn report_recipients(&self) -> &ReportRecipients {
        &self.report_recipients
    }

    /// The alert limits of the client's sending resources (the defaults
    /// until set).
    pub fn alert_limits(&self) -> AlertLimits {
        self.alert_limits
    }

    pub fn status(&self) -> ClientStatus {
        self.status
    }

    /// The daily cap of a registered sending resource.
    pub fn daily_cap(&self, kind: ResourceKind, address: &str) -> Option<DailyCap> {
        self.resources.get(&resource_key_of(kind, address)).copied()
    }
}

impl Aggregate for Client {
    const TYPE: &'static str = aggregate_types::CLIENT;
    type Command = ClientCommand;
    type Event = ClientEvent;
    type Error = ClientError;
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
            ClientEvent::ClientRegistered {
                profile,
                permission_mode,
                autopilot_threshold,
                data_sharing_consent,
                maturity,
                ..
            } => {
                self.profile = Some(profile);
                self.permission_mode = permission_mode;
                self.autopilot_threshold = autopilot_threshold;
                self.data_sharing_consent = data_sharing_consent;
                self.maturity = maturity;
            }
            ClientEvent::ProfileUpdated { profile } => self.profile = Some(profile),
            ClientEvent::PermissionModeChanged {
                permission_mode,
                autopilot_threshold,
            } => {
                self.permission_mode = permission_mode;
                self.autopilot_threshold = autopilot_threshold;
            }
            ClientEvent::MaturityWindowsChanged { maturity } => self.maturity = maturity,
            ClientEvent::ReportRecipientsChanged { report_recipients } => {
                self.report_recipients = report_recipients
            }
            ClientEvent::AlertLimitsChanged { alert_limits } => self.alert_limits = alert_limits,
            ClientEvent::DataSharingConsentGiven => self.data_sharing_consent = true,
            ClientEvent::DataSharingConsentWithdrawn => self.data_sharing_consent = false,
            ClientEvent::ApiKeyIssued { key_id, role, .. } => {
                self.keys.insert(
                    key_id,
                    KeyState {
                        role,
                        revoked: false,
                    },
                );
            }
            ClientEvent::ApiKeyRevoked { key_id } => {
                if let Some(key) = self.keys.get_mut(&key_id) {
                    key.revoked = true;
                }
            }
            ClientEvent::WebhookSecretSet {
                provider,
                fingerprint,
            } => {
                self.webhooks
                    .insert(provider.as_str().to_owned(), fingerprint);
            }
            ClientEvent::ResourceRegistered {
                kind,
                address,
                daily_cap,
            }
            | ClientEvent::ResourceCapChanged {
                kind,
                address,
                daily_cap,
            } => {
                self.resources
                    .insert(resource_key(kind, &address), daily_cap);
            }
            ClientEvent::ClientSuspended { .. } => self.status = ClientStatus::Suspended,
            ClientEvent::ClientReactivated => self.status = ClientStatus::Active,
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    type ClientTest = TestFramework<Client>;

    fn text<T: TryFrom<&'static str, Error = String>>(value: &'static str) -> T {
        T::try_from(value).expect("a valid test value")
    }

    fn client_id() -> Uuid {
        Uuid::from_u128(7)
    }

    fn profile() -> Profile {
        Profile {
            name: text("Acme"),
            industry: text("fintech"),
            company_size: CompanySize::S11To50,
            region: text("AU"),
            timezone: TimeZone::UTC,
        }
    }

    fn registered() -> ClientEvent {
        ClientEvent::ClientRegistered {
            client_id: client_id(),
            profile: profile(),
            permission_mode: PermissionMode::CoPilot,
            autopilot_threshold: ConfidenceThreshold::DEFAULT_THRESHOLD,
            data_sharing_consent: false,
            maturity: MaturityWindows::default(),
        }
    }

    fn register() -> ClientCommand {
        ClientCommand::RegisterClient {
            client_id: client_id(),
            profile: profile(),
            permission_mode: PermissionMode::CoPilot,
            data_sharing_consent: false,
            maturity: MaturityWindows::default(),
        }
    }

    fn days(value: u32) -> WindowDays {
        WindowDays::try_from(value).expect("a valid window")
    }

    fn sydney() -> TimeZone {
        TimeZone::try_from("Australia/Sydney").expect("a valid zone")
    }

    fn hash() -> String {
        "ab".repeat(32)
    }

    fn key_issued(key: u128) -> ClientEvent {
        ClientEvent::ApiKeyIssued {
            key_id: Uuid::from_u128(key),
            role: Role::Reviewer,
            label: text("ops"),
            key_hash: hash(),
        }
    }

    /// An update of the profile and the maturity windows only.
    fn settings(profile: ProfileChange, maturity: Option<MaturityWindowsChange>) -> ClientCommand {
        ClientCommand::UpdateClient {
            profile,
            permission_mode: None,
            autopilot_threshold: None,
            data_sharing_consent: None,
            maturity,
            report_recipients: None,
            alert_limits: None,
        }
    }

    fn no_change() -> ClientCommand {
        ClientCommand::UpdateClient {
            profile: ProfileChange::default(),
            permission_mode: None,
            autopilot_threshold: None,
            data_sharing_consent: None,
            maturity: None,
            report_recipients: None,
            alert_limits: None,
        }
    }

    #[test]
    fn a_new_client_is_registered_with_the_default_threshold() {
        ClientTest::with(())
            .given_no_previous_events()
            .when(register())
            .then_expect_events(vec![registered()]);
    }

    #[test]
    fn a_client_cannot_be_registered_twice() {
        ClientTest::with(())
            .given(vec![registered()])
            .when(register())
            .then_expect_error(ClientError::AlreadyRegistered);
    }

    #[test]
    fn no_command_reaches_an_unregistered_client() {
        for command in [
            no_change(),
            ClientCommand::RevokeApiKey {
                key_id: Uuid::from_u128(1),
            },
            ClientCommand::ReactivateClient,
            ClientCommand::SuspendClient {
                reason: text("unpaid"),
            },
        ] {
            ClientTest::with(())
                .given_no_previous_events()
                .when(command)
                .then_expect_error(ClientError::NotRegistered);
        }
    }

    #[test]
    fn an_update_emits_only_what_changes() {
        ClientTest::with(())
            .given(vec![registered()])
            .when(ClientCommand::UpdateClient {
                profile: ProfileChange {
                    region: Some(text("NZ")),
                    ..ProfileChange::default()
                },
                permission_mode: Some(PermissionMode::Autopilot),
                autopilot_threshold: Some(
                    ConfidenceThreshold::try_from(0.8).expect("0.8 is a valid threshold"),
                ),
                data_sharing_consent: Some(true),
                maturity: None,
                report_recipients: None,
                alert_limits: None,
            })
            .then_expect_events(vec![
                ClientEvent::ProfileUpdated {
                    profile: Profile {
                        region: text("NZ"),
                        ..profile()
                    },
                },
                ClientEvent::PermissionModeChanged {
                    permission_mode: PermissionMode::Autopilot,
                    autopilot_threshold: ConfidenceThreshold::try_from(0.8)
                        .expect("0.8 is a valid threshold"),
                },
                ClientEvent::DataSharingConsentGiven,
            ]);
    }

    #[test]
    fn an_update_that_changes_nothing_emits_nothing() {
        ClientTest::with(())
            .given(vec![registered()])
            .when(ClientCommand::UpdateClient {
                profile: ProfileChange {
                    name: Some(text("Acme")),
                    ..ProfileChange::default()
                },
                permission_mode: Some(PermissionMode::CoPilot),
                autopilot_threshold: None,
                data_sharing_consent: Some(false),
                maturity: Some(MaturityWindowsChange {
                    reply_days: Some(days(14)),
                    ..MaturityWindowsChange::default()
                }),
                report_recipients: Some(ReportRecipients::default()),
                alert_limits: Some(AlertLimitsChange::default()),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn given_recipients_when_they_change_then_all_of_them_are_recorded_and_the_same_again_records_nothing(
    ) {
        let recipients = ReportRecipients::try_from(vec![
            "ops@acme.example".to_owned(),
            "ceo@acme.example".to_owned(),
        ])
        .expect("valid addresses");
        let update = |report_recipients: Option<ReportRecipients>| ClientCommand::UpdateClient {
            profile: ProfileChange::default(),
            permission_mode: None,
            autopilot_threshold: None,
            data_sharing_consent: None,
            maturity: None,
            report_recipients,
            alert_limits: None,
        };
        let changed = ClientEvent::ReportRecipientsChanged {
            report_recipients: recipients.clone(),
        };
        ClientTest::with(())
            .given(vec![registered()])
            .when(update(Some(recipients.clone())))
            .then_expect_events(vec![changed.clone()]);
        ClientTest::with(())
            .given(vec![registered(), changed.clone()])
            .when(update(Some(recipients.clone())))
            .then_expect_events(vec![]);
        ClientTest::with(())
            .given(vec![registered(), changed])
            .when(update(Some(ReportRecipients::default())))
            .then_expect_events(vec![ClientEvent::ReportRecipientsChanged {
                report_recipients: ReportRecipients::default(),
            }]);
        let mut client = Client::default();
        client.apply(registered());
        client.apply(ClientEvent::ReportRecipientsChanged {
            report_recipients: recipients.clone(),
        });
        assert_eq!(client.report_recipients(), &recipients);
    }

    #[test]
    fn alert_limits_change_only_as_named_and_only_when_they_differ() {
        use crate::alert::AlertRate;
        let rate = |value: f64| AlertRate::try_from(value).expect("a rate");
        let change = |bounce: Option<f64>| ClientCommand::UpdateClient {
            profile: ProfileChange::default(),
            permission_mode: None,
            autopilot_threshold: None,
            data_sharing_consent: None,
            maturity: None,
            report_recipients: None,
            alert_limits: Some(AlertLimitsChange {
                bounce_rate: bounce.map(rate),
                complaint_rate: None,
            }),
        };
        let raised = AlertLimits {
            bounce_rate: rate(0.05),
            ..AlertLimits::default()
        };
        ClientTest::with(())
            .given(vec![registered()])
            .when(change(Some(0.05)))
            .then_expect_events(vec![ClientEvent::AlertLimitsChanged {
                alert_limits: raised,
            }]);
        ClientTest::with(())
            .given(vec![
                registered(),
                ClientEvent::AlertLimitsChanged {
                    alert_limits: raised,
                },
            ])
            .when(change(Some(0.05)))
            .then_expect_events(vec![]);
        ClientTest::with(())
            .given(vec![registered()])
            .when(change(Some(0.03)))
            .then_expect_events(vec![]);
        let mut client = Client::default();
        client.apply(registered());
        assert_eq!(client.alert_limits(), AlertLimits::default());
        client.apply(ClientEvent::AlertLimitsChanged {
            alert_limits: raised,
        });
        assert_eq!(client.alert_limits(), raised);
    }

    #[test]
    fn consent_can_be_withdrawn_once_given() {
        ClientTest::with(())
            .given(vec![registered(), ClientEvent::DataSharingConsentGiven])
            .when(ClientCommand::UpdateClient {
                profile: ProfileChange::default(),
                permission_mode: None,
                autopilot_threshold: None,
                data_sharing_consent: Some(false),
                maturity: None,
                report_recipients: None,
                alert_limits: None,
            })
            .then_expect_events(vec![ClientEvent::DataSharingConsentWithdrawn]);
    }

    #[test]
    fn a_client_registers_with_its_time_zone_and_windows() {
        let windows = MaturityWindows {
            reply_days: days(10),
            meeting_days: days(21),
            conversion_days: days(90),
        };
        let profile = Profile {
            timezone: sydney(),
            ..profile()
        };
        ClientTest::with(())
            .given_no_previous_events()
            .when(ClientCommand::RegisterClient {
                client_id: client_id(),
                profile: profile.clone(),
                permission_mode: PermissionMode::CoPilot,
                data_sharing_consent: false,
                maturity: windows,
            })
            .then_expect_events(vec![ClientEvent::ClientRegistered {
                client_id: client_id(),
                profile,
                permission_mode: PermissionMode::CoPilot,
                autopilot_threshold: ConfidenceThreshold::DEFAULT_THRESHOLD,
                data_sharing_consent: false,
                maturity: windows,
            }]);
    }

    #[test]
    fn a_time_zone_change_updates_the_profile() {
        ClientTest::with(())
            .given(vec![registered()])
            .when(settings(
                ProfileChange {
                    timezone: Some(sydney()),
                    ..ProfileChange::default()
                },
                None,
            ))
            .then_expect_events(vec![ClientEvent::ProfileUpdated {
                profile: Profile {
                    timezone: sydney(),
                    ..profile()
                },
            }]);
    }

    #[test]
    fn the_same_time_zone_and_windows_again_record_nothing() {
        let windows = MaturityWindows {
            reply_days: days(10),
            ..MaturityWindows::default()
        };
        ClientTest::with(())
            .given(vec![
                registered(),
                ClientEvent::ProfileUpdated {
                    profile: Profile {
                        timezone: sydney(),
                        ..profile()
                    },
                },
                ClientEvent::MaturityWindowsChanged { maturity: windows },
            ])
            .when(settings(
                ProfileChange {
                    timezone: Some(sydney()),
                    ..ProfileChange::default()
                },
                Some(MaturityWindowsChange {
                    reply_days: Some(days(10)),
                    meeting_days: Some(days(30)),
                    conversion_days: None,
                }),
            ))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_windows_change_records_all_three_windows_as_they_now_are() {
        ClientTest::with(())
            .given(vec![registered()])
            .when(settings(
                ProfileChange::default(),
                Some(MaturityWindowsChange {
                    meeting_days: Some(days(21)),
                    conversion_days: Some(days(90)),
                    ..MaturityWindowsChange::default()
                }),
            ))
            .then_expect_events(vec![ClientEvent::MaturityWindowsChanged {
                maturity: MaturityWindows {
                    reply_days: days(14),
                    meeting_days: days(21),
                    conversion_days: days(90),
                },
            }]);
    }

    #[test]
    fn the_aggregate_answers_its_time_zone_and_windows() {
        let windows = MaturityWindows {
            conversion_days: days(120),
            ..MaturityWindows::default()
        };
        let mut client = Client::default();
        assert_eq!(client.timezone(), TimeZone::UTC);
        assert_eq!(client.maturity(), MaturityWindows::default());
        for event in [
            registered(),
            ClientEvent::ProfileUpdated {
                profile: Profile {
                    timezone: sydney(),
                    ..profile()
                },
            },
            ClientEvent::MaturityWindowsChanged { maturity: windows },
        ] {
            client.apply(event);
        }
        assert_eq!(client.timezone(), sydney());
        assert_eq!(client.maturity(), windows);
    }

    #[test]
    fn events_recorded_before_time_zones_and_windows_read_as_utc_and_the_defaults() {
        let registered: ClientEvent = serde_json::from_value(serde_json::json!({
            "type": "client_registered",
            "client_id": client_id(),
            "profile": { "name": "Acme", "industry": "fintech",
                         "company_size": "11-50", "region": "AU" },
            "permission_mode": "co_pilot",
            "autopilot_threshold": 0.9,
            "data_sharing_consent": false
        }))
        .expect("an old registration deserializes");
        assert_eq!(registered, self::registered());
        let updated: ClientEvent = serde_json::from_value(serde_json::json!({
            "type": "profile_updated",
            "profile": { "name": "Acme", "industry": "fintech",
                         "company_size": "11-50", "region": "NZ" }
        }))
        .expect("an old profile update deserializes");
        assert_eq!(
            updated,
            ClientEvent::ProfileUpdated {
                profile: Profile {
                    region: text("NZ"),
                    ..profile()
                }
            }
        );
    }

    #[test]
    fn settings_events_serialize_with_the_zone_name_and_the_days() {
        let json = serde_json::to_value(ClientEvent::ProfileUpdated {
            profile: Profile {
                timezone: sydney(),
                ..profile()
            },
        })
        .expect("an event serializes");
        assert_eq!(json["profile"]["timezone"], "Australia/Sydney");
        let json = serde_json::to_value(ClientEvent::MaturityWindowsChanged {
            maturity: MaturityWindows::default(),
        })
        .expect("an event serializes");
        assert_eq!(json["type"], "maturity_windows_changed");
        assert_eq!(
            json["maturity"],
            serde_json::json!({ "reply_days": 14, "meeting_days": 30, "conversion_days": 60 })
        );
    }

    #[test]
    fn a_key_is_issued_with_its_hash_only() {
        ClientTest::with(())
            .given(vec![registered()])
            .when(ClientCommand::IssueApiKey {
                key_id: Uuid::from_u128(1),
                role: Role::Reviewer,
                label: text("ops"),
                key_hash: hash(),
            })
            .then_expect_events(vec![key_issued(1)]);
    }

    #[test]
    fn a_key_id_cannot_be_issued_twice() {
        ClientTest::with(())
            .given(vec![registered(), key_issued(1)])
            .when(ClientCommand::IssueApiKey {
                key_id: Uuid::from_u128(1),
                role: Role::Admin,
                label: text("again"),
                key_hash: hash(),
            })
            .then_expect_error(ClientError::DuplicateKey(Uuid::from_u128(1)));
    }

    #[test]
    fn a_key_hash_must_look_like_a_sha256() {
        ClientTest::with(())
            .given(vec![registered()])
            .when(ClientCommand::IssueApiKey {
                key_id: Uuid::from_u128(1),
                role: Role::Admin,
                label: text("raw"),
                key_hash: "sxk_plaintext_key".into(),
            })
            .then_expect_error(ClientError::MalformedKeyHash);
    }

    #[test]
    fn an_issued_key_can_be_revoked_once() {
        ClientTest::with(())
            .given(vec![registered(), key_issued(1)])
            .when(ClientCommand::RevokeApiKey {
                key_id: Uuid::from_u128(1),
            })
            .then_expect_events(vec![ClientEvent::ApiKeyRevoked {
                key_id: Uuid::from_u128(1),
            }]);
        ClientTest::with(())
            .given(vec![
                registered(),
                key_issued(1),
                ClientEvent::ApiKeyRevoked {
                    key_id: Uuid::from_u128(1),
                },
            ])
            .when(ClientCommand::RevokeApiKey {
                key_id: Uuid::from_u128(1),
            })
            .then_expect_error(ClientError::KeyAlreadyRevoked(Uuid::from_u128(1)));
    }

    #[test]
    fn an_unknown_key_cannot_be_revoked() {
        ClientTest::with(())
            .given(vec![registered(), key_issued(1)])
            .when(ClientCommand::RevokeApiKey {
                key_id: Uuid::from_u128(2),
            })
            .then_expect_error(ClientError::UnknownKey(Uuid::from_u128(2)));
    }

    #[test]
    fn a_webhook_secret_is_recorded_by_fingerprint_and_only_when_it_changes() {
        let set = ClientEvent::WebhookSecretSet {
            provider: Provider::Smartlead,
            fingerprint: "f1".into(),
        };
        ClientTest::with(())
            .given(vec![registered()])
            .when(ClientCommand::SetWebhookSecret {
                provider: Provider::Smartlead,
                fingerprint: "f1".into(),
            })
            .then_expect_events(vec![set.clone()]);
        ClientTest::with(())
            .given(vec![registered(), set])
            .when(ClientCommand::SetWebhookSecret {
                provider: Provider::Smartlead,
                fingerprint: "f1".into(),
            })
            .then_expect_events(vec![]);
        ClientTest::with(())
            .given(vec![registered()])
            .when(ClientCommand::SetWebhookSecret {
                provider: Provider::Smartlead,
                fingerprint: " ".into(),
            })
            .then_expect_error(ClientError::EmptyFingerprint);
    }

    #[test]
    fn a_resource_without_a_cap_gets_its_kinds_default() {
        ClientTest::with(())
            .given(vec![registered()])
            .when(ClientCommand::RegisterResource {
                kind: ResourceKind::LinkedinSeat,
                address: text("seat-1"),
                daily_cap: None,
            })
            .then_expect_events(vec![ClientEvent::ResourceRegistered {
                kind: ResourceKind::LinkedinSeat,
                address: text("seat-1"),
                daily_cap: ResourceKind::LinkedinSeat.default_daily_cap(),
            }]);
    }

    #[test]
    fn registering_a_resource_again_changes_its_cap_or_nothing() {
        let registered_mailbox = ClientEvent::ResourceRegistered {
            kind: ResourceKind::Mailbox,
            address: text("sam@acme-mail.com"),
            daily_cap: ResourceKind::Mailbox.default_daily_cap(),
        };
        let cap_30 = DailyCap::try_from(30).expect("30 is a valid daily cap");
        ClientTest::with(())
            .given(vec![registered(), registered_mailbox.clone()])
            .when(ClientCommand::RegisterResource {
                kind: ResourceKind::Mailbox,
                address: text("SAM@acme-mail.com"),
                daily_cap: Some(cap_30),
            })
            .then_expect_events(vec![ClientEvent::ResourceCapChanged {
                kind: ResourceKind::Mailbox,
                address: text("SAM@acme-mail.com"),
                daily_cap: cap_30,
            }]);
        ClientTest::with(())
            .given(vec![registered(), registered_mailbox])
            .when(ClientCommand::RegisterResource {
                kind: ResourceKind::Mailbox,
                address: text("sam@acme-mail.com"),
                daily_cap: None,
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_client_is_suspended_and_reactivated_in_turn() {
        let suspended = ClientEvent::ClientSuspended {
            reason: text("unpaid"),
        };
        ClientTest::with(())
            .given(vec![registered()])
            .when(ClientCommand::SuspendClient {
                reason: text("unpaid"),
            })
            .then_expect_events(vec![suspended.clone()]);
        ClientTest::with(())
            .given(vec![registered(), suspended.clone()])
            .when(ClientCommand::SuspendClient {
                reason: text("again"),
            })
            .then_expect_error(ClientError::AlreadySuspended);
        ClientTest::with(())
            .given(vec![registered(), suspended])
            .when(ClientCommand::ReactivateClient)
            .then_expect_events(vec![ClientEvent::ClientReactivated]);
        ClientTest::with(())
            .given(vec![registered()])
            .when(ClientCommand::ReactivateClient)
            .then_expect_error(ClientError::NotSuspended);
    }

    #[test]
    fn events_serialize_with_a_snake_case_type_tag() {
        let json = serde_json::to_value(key_issued(1)).expect("an event serializes");
        assert_eq!(json["type"], "api_key_issued");
        assert_eq!(json["role"], "reviewer");
        let back: ClientEvent = serde_json::from_value(json).expect("an event deserializes");
        assert_eq!(back, key_issued(1));
    }
}
