//! Clients: registration, profile and settings (time zone, maturity
//! windows, report recipients), API keys, webhook secrets, sending
//! resources, suspension. Each is a command on the Client aggregate; keys
//! and secrets also have an after-commit write of their own, so that they
//! take effect before the stream delivers the event. A suspended client's
//! keys may not issue keys ([`Caller::may_change`]).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use sextant_adapters::http::Problem;
use sextant_adapters::keys;
use sextant_domain::alert::AlertLimitsChange;
use sextant_domain::client::{ClientCommand, MaturityWindowsChange, Profile, ProfileChange};
use sextant_domain::report::ReportRecipients;
use sextant_domain::values::{
    ClientName, CompanySize, ConfidenceThreshold, DailyCap, Industry, KeyLabel, MaturityWindows,
    PermissionMode, Provider, Reason, Region, ResourceAddress, ResourceKind, Role, TimeZone,
};

use crate::{execute, App, Caller, Result};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterClient {
    pub name: ClientName,
    pub industry: Industry,
    pub company_size: CompanySize,
    pub region: Region,
    #[serde(default)]
    pub permission_mode: PermissionMode,
    #[serde(default)]
    pub data_sharing_consent: bool,
    /// The zone the client's weeks and days are counted in (default UTC).
    #[serde(default)]
    pub timezone: TimeZone,
    /// Any of the windows; those left out take their defaults.
    #[serde(default)]
    pub maturity: MaturityWindowsChange,
}

#[derive(Debug, Serialize)]
pub struct Registered {
    pub client_id: Uuid,
    pub position: i64,
}

pub async fn register(app: &App, caller: &Caller, input: RegisterClient) -> Result<Registered> {
    let client_id = Uuid::now_v7();
    let command = ClientCommand::RegisterClient {
        client_id,
        profile: Profile {
            name: input.name,
            industry: input.industry,
            company_size: input.company_size,
            region: input.region,
            timezone: input.timezone,
        },
        permission_mode: input.permission_mode,
        data_sharing_consent: input.data_sharing_consent,
        maturity: input.maturity.applied_to(MaturityWindows::default()),
    };
    let committed = execute(&app.clients, client_id, caller, command).await?;
    Ok(Registered {
        client_id,
        position: committed.position,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateClient {
    pub name: Option<ClientName>,
    pub industry: Option<Industry>,
    pub company_size: Option<CompanySize>,
    pub region: Option<Region>,
    pub permission_mode: Option<PermissionMode>,
    /// The name reads and events use; `autopilot_confidence_threshold`, the
    /// name this field had first, is read as the same field.
    #[serde(alias = "autopilot_confidence_threshold")]
    pub autopilot_threshold: Option<ConfidenceThreshold>,
    pub data_sharing_consent: Option<bool>,
    pub timezone: Option<TimeZone>,
    /// Any of the windows; those left out stay as they are.
    pub maturity: Option<MaturityWindowsChange>,
    /// Who the weekly report is e-mailed to, all at once (at most 20;
    /// empty: no one).
    pub report_recipients: Option<ReportRecipients>,
    /// Either alert limit of the client's sending resources; one left out
    /// stays as it is.
    pub alert_limits: Option<AlertLimitsChange>,
}

/// Answers the position of the change.
pub async fn update(
    app: &App,
    caller: &Caller,
    client_id: Uuid,
    input: UpdateClient,
) -> Result<i64> {
    let command = ClientCommand::UpdateClient {
        profile: ProfileChange {
            name: input.name,
            industry: input.industry,
            company_size: input.company_size,
            region: input.region,
            timezone: input.timezone,
        },
        permission_mode: input.permission_mode,
        autopilot_threshold: input.autopilot_threshold,
        data_sharing_consent: input.data_sharing_consent,
        maturity: input.maturity,
        report_recipients: input.report_recipients,
        alert_limits: input.alert_limits,
    };
    Ok(execute(&app.clients, client_id, caller, command)
        .await?
        .position)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueKey {
    pub role: Role,
    pub label: KeyLabel,
}

/// A key just issued: the only time its secret is shown.
#[derive(Debug, Serialize)]
pub struct IssuedKey {
    pub key_id: Uuid,
    pub key: String,
    pub role: Role,
    pub label: KeyLabel,
    pub position: i64,
}

pub async fn issue_key(
    app: &App,
    caller: &Caller,
    client_id: Uuid,
    input: IssueKey,
) -> Result<IssuedKey> {
    app.changeable_client(client_id, caller).await?;
    let minted = keys::mint();
    let command = ClientCommand::IssueApiKey {
        key_id: minted.key_id,
        role: input.role,
        label: input.label.clone(),
        key_hash: minted.hash.clone(),
    };
    let committed = execute(&app.clients, client_id, caller, command).await?;
    // After-commit, idempotent: the key works at once, before the stream
    // delivers the event to the `clients` projection (which writes the same
    // row with the same values).
    if let Some(at) = committed.recorded_at {
        keys::record_issued(
            &app.pool,
            minted.key_id,
            client_id,
            input.role,
            input.label.as_str(),
            &minted.hash,
            at,
        )
        .await?;
    }
    Ok(IssuedKey {
        key_id: minted.key_id,
        key: minted.key,
        role: input.role,
        label: input.label,
        position: committed.position,
    })
}

/// Answers the position of the revocation.
pub async fn revoke_key(app: &App, caller: &Caller, client_id: Uuid, key_id: Uuid) -> Result<i64> {
    let committed = execute(
        &app.clients,
        client_id,
        caller,
        ClientCommand::RevokeApiKey { key_id },
    )
    .await?;
    // After-commit, idempotent: revocation takes effect now, not when the
    // projection catches up.
    if let Some(at) = committed.recorded_at {
        keys::record_revoked(&app.pool, key_id, at).await?;
    }
    Ok(committed.position)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSecret {
    pub secret: String,
}

#[derive(Debug, Serialize)]
pub struct SecretSet {
    pub provider: Provider,
    pub fingerprint: String,
    pub position: i64,
}

/// Sets the client's secret for `provider`. The secret is stored sealed
/// under the secrets key, bound to the client and provider
/// ([`webhook_secret_context`]); the event carries only a fingerprint keyed
/// by the same key. Without a secrets key nothing is stored: 503.
pub async fn set_webhook_secret(
    app: &App,
    caller: &Caller,
    client_id: Uuid,
    provider: Provider,
    input: WebhookSecret,
) -> Result<SecretSet> {
    let secret = input.secret.trim();
    if secret.len() < 16 || secret.len() > 512 {
        return Err(Problem::invalid_field("secret", "must be 16 to 512 characters").into());
    }
    let Some(key) = &app.secrets_key else {
        return Err(Problem::unavailable(
            "webhook secrets cannot be stored: the command API has no SEXTANT_SECRETS_KEY \
             (see docs/operations.md, Secrets at rest)",
        )
        .into());
    };
    let sealed = key
        .seal(
            secret.as_bytes(),
            &webhook_secret_context(client_id, provider),
        )
        .map_err(|e| Problem::invalid_field("secret", e.to_string()))?;
    let fingerprint = key.fingerprint(secret.as_bytes());
    let command = ClientCommand::SetWebhookSecret {
        provider,
        fingerprint: fingerprint.clone(),
    };
    let committed = execute(&app.clients, client_id, caller, command).await?;
    // The secret itself stays out of the event log. Written after the event
    // commits; should this write fail the caller gets an error and retries
    // (the command is idempotent), and a delivery is verified only with the
    // secret stored here, never with one the event merely names.
    sqlx::query(
        "INSERT INTO webhook_secrets (client_id, provider, sealed, key_id) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (client_id, provider) DO UPDATE SET sealed = EXCLUDED.sealed, \
              key_id = EXCLUDED.key_id, updated_at = now()",
    )
    .bind(client_id)
    .bind(provider.as_str())
    .bind(&sealed)
    .bind(key.id())
    .execute(&app.pool)
    .await?;
    Ok(SecretSet {
        provider,
        fingerprint,
        position: committed.position,
    })
}

/// What a sealed webhook secret is bound to: it opens only for the client
/// and provider it was set for.
pub fn webhook_secret_context(client_id: Uuid, provider: Provider) -> Vec<u8> {
    format!("webhook secret\n{client_id}\n{}", provider.as_str()).into_bytes()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterResource {
    pub kind: ResourceKind,
    pub address: ResourceAddress,
    pub daily_cap: Option<DailyCap>,
}

#[derive(Debug, Serialize)]
pub struct ResourceRegistered {
    pub kind: ResourceKind,
    pub address: ResourceAddress,
    pub daily_cap: DailyCap,
    pub position: i64,
}

pub async fn register_resource(
    app: &App,
    caller: &Caller,
    client_id: Uuid,
    input: RegisterResource,
) -> Result<ResourceRegistered> {
    let daily_cap = input
        .daily_cap
        .unwrap_or_else(|| input.kind.default_daily_cap());
    let command = ClientCommand::RegisterResource {
        kind: input.kind,
        address: input.address.clone(),
        daily_cap: Some(daily_cap),
    };
    let committed = execute(&app.clients, client_id, caller, command).await?;
    Ok(ResourceRegistered {
        kind: input.kind,
        address: input.address,
        daily_cap,
        position: committed.position,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suspend {
    pub reason: Reason,
}

/// Answers the position of the suspension.
pub async fn suspend(app: &App, caller: &Caller, client_id: Uuid, input: Suspend) -> Result<i64> {
    let command = ClientCommand::SuspendClient {
        reason: input.reason,
    };
    Ok(execute(&app.clients, client_id, caller, command)
        .await?
        .position)
}

/// Answers the position of the reactivation.
pub async fn reactivate(app: &App, caller: &Caller, client_id: Uuid) -> Result<i64> {
    Ok(execute(
        &app.clients,
        client_id,
        caller,
        ClientCommand::ReactivateClient,
    )
    .await?
    .position)
}
