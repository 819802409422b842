//! The `clients` projection: profile (with the time zone), permission
//! mode, maturity windows, report recipients, consent, status, API keys (the registry authentication reads), sending resources and
//! webhook fingerprints.

use chrono::{DateTime, Utc};
use sextant_adapters::keys;
use sextant_adapters::stream::RecordedEvent;
use sextant_domain::aggregate_types;
use sextant_domain::alert::AlertLimits;
use sextant_domain::client::{ClientEvent, Profile};
use sextant_domain::values::{
    ConfidenceThreshold, DailyCap, MaturityWindows, PermissionMode, Provider, Reason,
    ResourceAddress, ResourceKind, WindowDays,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::runtime::{Projection, ProjectionError, ProjectionName};

pub struct ClientsProjection;

#[async_trait::async_trait]
impl Projection for ClientsProjection {
    fn name(&self) -> &'static str {
        ProjectionName::Clients.as_str()
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[aggregate_types::CLIENT])
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "clients_view",
            "client_api_keys",
            "client_resources",
            "client_webhooks",
        ]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let row = Row {
            client_id: Uuid::parse_str(&event.aggregate_id)
                .map_err(|e| ProjectionError::Malformed(format!("client id: {e}")))?,
            at: event.recorded_at,
            position: event.global_position,
        };
        match event.payload.parse::<ClientEvent>()? {
            ClientEvent::ClientRegistered {
                profile,
                permission_mode,
                autopilot_threshold,
                data_sharing_consent,
                maturity,
                ..
            } => {
                client_registered(
                    conn,
                    row,
                    &profile,
                    permission_mode,
                    autopilot_threshold,
                    data_sharing_consent,
                    maturity,
                )
                .await?
            }
            ClientEvent::ProfileUpdated { profile } => profile_updated(conn, row, &profile).await?,
            ClientEvent::PermissionModeChanged {
                permission_mode,
                autopilot_threshold,
            } => permission_mode_changed(conn, row, permission_mode, autopilot_threshold).await?,
            ClientEvent::MaturityWindowsChanged { maturity } => {
                maturity_windows_changed(conn, row, maturity).await?
            }
            ClientEvent::ReportRecipientsChanged { report_recipients } => {
                report_recipients_changed(conn, row, report_recipients.into()).await?
            }
            ClientEvent::AlertLimitsChanged { alert_limits } => {
                alert_limits_changed(conn, row, alert_limits).await?
            }
            ClientEvent::DataSharingConsentGiven => {
                set_client_field(conn, row, "data_sharing_consent = true").await?
            }
            ClientEvent::DataSharingConsentWithdrawn => {
                set_client_field(conn, row, "data_sharing_consent = false").await?
            }
            ClientEvent::ClientReactivated => {
                set_client_field(conn, row, "status = 'active', suspended_reason = NULL").await?
            }
            ClientEvent::ClientSuspended { reason } => client_suspended(conn, row, &reason).await?,
            ClientEvent::ApiKeyIssued {
                key_id,
                role,
                label,
                key_hash,
            } => {
                keys::record_issued(
                    conn,
                    key_id,
                    row.client_id,
                    role,
                    label.as_str(),
                    &key_hash,
                    row.at,
                )
                .await?
            }
            ClientEvent::ApiKeyRevoked { key_id } => {
                keys::record_revoked(conn, key_id, row.at).await?
            }
            ClientEvent::WebhookSecretSet {
                provider,
                fingerprint,
            } => webhook_secret_set(conn, row, provider, fingerprint).await?,
            ClientEvent::ResourceRegistered {
                kind,
                address,
                daily_cap,
            }
            | ClientEvent::ResourceCapChanged {
                kind,
                address,
                daily_cap,
            } => resource_set(conn, row, kind, &address, daily_cap).await?,
        }
        Ok(())
    }
}

/// The client an event belongs to, when it was recorded and its position.
#[derive(Clone, Copy)]
struct Row {
    client_id: Uuid,
    at: DateTime<Utc>,
    position: i64,
}

async fn client_registered(
    conn: &mut PgConnection,
    row: Row,
    profile: &Profile,
    permission_mode: PermissionMode,
    autopilot_threshold: ConfidenceThreshold,
    data_sharing_consent: bool,
    maturity: MaturityWindows,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO clients_view (client_id, name, industry, company_size, region, \
         permission_mode, autopilot_threshold, data_sharing_consent, status, \
         registered_at, updated_at, position, timezone, reply_window_days, \
         meeting_window_days, conversion_window_days) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $9, $10, $11, $12, $13, $14)",
    )
    .bind(row.client_id)
    .bind(profile.name.as_str())
    .bind(profile.industry.as_str())
    .bind(profile.company_size.as_str())
    .bind(profile.region.as_str())
    .bind(permission_mode.as_str())
    .bind(autopilot_threshold.value())
    .bind(data_sharing_consent)
    .bind(row.at)
    .bind(row.position)
    .bind(profile.timezone.name())
    .bind(days(maturity.reply_days))
    .bind(days(maturity.meeting_days))
    .bind(days(maturity.conversion_days))
    .execute(conn)
    .await?;
    Ok(())
}

async fn profile_updated(
    conn: &mut PgConnection,
    row: Row,
    profile: &Profile,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE clients_view SET name = $2, industry = $3, company_size = $4, region = $5, \
         timezone = $6, updated_at = $7, position = $8 WHERE client_id = $1",
    )
    .bind(row.client_id)
    .bind(profile.name.as_str())
    .bind(profile.industry.as_str())
    .bind(profile.company_size.as_str())
    .bind(profile.region.as_str())
    .bind(profile.timezone.name())
    .bind(row.at)
    .bind(row.position)
    .execute(conn)
    .await?;
    Ok(())
}

async fn permission_mode_changed(
    conn: &mut PgConnection,
    row: Row,
    permission_mode: PermissionMode,
    autopilot_threshold: ConfidenceThreshold,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE clients_view SET permission_mode = $2, autopilot_threshold = $3, \
         updated_at = $4, position = $5 WHERE client_id = $1",
    )
    .bind(row.client_id)
    .bind(permission_mode.as_str())
    .bind(autopilot_threshold.value())
    .bind(row.at)
    .bind(row.position)
    .execute(conn)
    .await?;
    Ok(())
}

async fn maturity_windows_changed(
    conn: &mut PgConnection,
    row: Row,
    maturity: MaturityWindows,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE clients_view SET reply_window_days = $2, meeting_window_days = $3, \
         conversion_window_days = $4, updated_at = $5, position = $6 WHERE client_id = $1",
    )
    .bind(row.client_id)
    .bind(days(maturity.reply_days))
    .bind(days(maturity.meeting_days))
    .bind(days(maturity.conversion_days))
    .bind(row.at)
    .bind(row.position)
    .execute(conn)
    .await?;
    Ok(())
}

async fn report_recipients_changed(
    conn: &mut PgConnection,
    row: Row,
    recipients: Vec<String>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE clients_view SET report_recipients = $2, updated_at = $3, position = $4 \
         WHERE client_id = $1",
    )
    .bind(row.client_id)
    .bind(recipients)
    .bind(row.at)
    .bind(row.position)
    .execute(conn)
    .await?;
    Ok(())
}

async fn alert_limits_changed(
    conn: &mut PgConnection,
    row: Row,
    limits: AlertLimits,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE clients_view SET bounce_alert_rate = $2, complaint_alert_rate = $3, \
         updated_at = $4, position = $5 WHERE client_id = $1",
    )
    .bind(row.client_id)
    .bind(limits.bounce_rate.value())
    .bind(limits.complaint_rate.value())
    .bind(row.at)
    .bind(row.position)
    .execute(conn)
    .await?;
    Ok(())
}

/// A window as the `int` column holds it (at most 365, so it fits).
fn days(window: WindowDays) -> i32 {
    window.value() as i32
}

async fn client_suspended(
    conn: &mut PgConnection,
    row: Row,
    reason: &Reason,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE clients_view SET status = 'suspended', suspended_reason = $2, \
         updated_at = $3, position = $4 WHERE client_id = $1",
    )
    .bind(row.client_id)
    .bind(reason.as_str())
    .bind(row.at)
    .bind(row.position)
    .execute(conn)
    .await?;
    Ok(())
}

async fn webhook_secret_set(
    conn: &mut PgConnection,
    row: Row,
    provider: Provider,
    fingerprint: String,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO client_webhooks (client_id, provider, secret_fingerprint, updated_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (client_id, provider) \
         DO UPDATE SET secret_fingerprint = EXCLUDED.secret_fingerprint, updated_at = EXCLUDED.updated_at",
    )
    .bind(row.client_id)
    .bind(provider.as_str())
    .bind(fingerprint)
    .bind(row.at)
    .execute(conn)
    .await?;
    Ok(())
}

/// `ResourceRegistered` and `ResourceCapChanged` both upsert the resource.
async fn resource_set(
    conn: &mut PgConnection,
    row: Row,
    kind: ResourceKind,
    address: &ResourceAddress,
    daily_cap: DailyCap,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO client_resources (client_id, kind, address, daily_cap, registered_at) \
         VALUES ($1, $2, lower($3), $4, $5) ON CONFLICT (client_id, kind, address) \
         DO UPDATE SET daily_cap = EXCLUDED.daily_cap",
    )
    .bind(row.client_id)
    .bind(kind.as_str())
    .bind(address.as_str())
    .bind(daily_cap.value() as i32)
    .bind(row.at)
    .execute(conn)
    .await?;
    Ok(())
}

/// For the events that set fixed values: `assignments` is a constant from
/// this file, never input.
async fn set_client_field(
    conn: &mut PgConnection,
    row: Row,
    assignments: &'static str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "UPDATE clients_view SET {assignments}, updated_at = $2, position = $3 WHERE client_id = $1"
    ))
    .bind(row.client_id)
    .bind(row.at)
    .bind(row.position)
    .execute(conn)
    .await?;
    Ok(())
}
