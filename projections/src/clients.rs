//! The `clients` projection: profile, permission mode, consent, status,
//! API keys (the registry authentication reads), sending resources and
//! webhook fingerprints.

use sextant_adapters::keys;
use sextant_adapters::stream::RecordedEvent;
use sextant_domain::aggregate_types;
use sextant_domain::client::ClientEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::runtime::{Projection, ProjectionError};

pub struct ClientsProjection;

#[async_trait::async_trait]
impl Projection for ClientsProjection {
    fn name(&self) -> &'static str {
        "clients"
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
        let client_id = Uuid::parse_str(&event.aggregate_id)
            .map_err(|e| ProjectionError::Malformed(format!("client id: {e}")))?;
        let at = event.recorded_at;
        let position = event.global_position;
        match event.payload.parse::<ClientEvent>()? {
            ClientEvent::ClientRegistered {
                profile,
                permission_mode,
                autopilot_threshold,
                data_sharing_consent,
                ..
            } => {
                sqlx::query(
                    "INSERT INTO clients_view (client_id, name, industry, company_size, region, \
                     permission_mode, autopilot_threshold, data_sharing_consent, status, \
                     registered_at, updated_at, position) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $9, $10)",
                )
                .bind(client_id)
                .bind(profile.name.as_str())
                .bind(profile.industry.as_str())
                .bind(profile.company_size.as_str())
                .bind(profile.region.as_str())
                .bind(permission_mode.as_str())
                .bind(autopilot_threshold.value())
                .bind(data_sharing_consent)
                .bind(at)
                .bind(position)
                .execute(conn)
                .await?;
            }
            ClientEvent::ProfileUpdated { profile } => {
                sqlx::query(
                    "UPDATE clients_view SET name = $2, industry = $3, company_size = $4, region = $5, \
                     updated_at = $6, position = $7 WHERE client_id = $1",
                )
                .bind(client_id)
                .bind(profile.name.as_str())
                .bind(profile.industry.as_str())
                .bind(profile.company_size.as_str())
                .bind(profile.region.as_str())
                .bind(at)
                .bind(position)
                .execute(conn)
                .await?;
            }
            ClientEvent::PermissionModeChanged {
                permission_mode,
                autopilot_threshold,
            } => {
                sqlx::query(
                    "UPDATE clients_view SET permission_mode = $2, autopilot_threshold = $3, \
                     updated_at = $4, position = $5 WHERE client_id = $1",
                )
                .bind(client_id)
                .bind(permission_mode.as_str())
                .bind(autopilot_threshold.value())
                .bind(at)
                .bind(position)
                .execute(conn)
                .await?;
            }
            ClientEvent::DataSharingConsentGiven => {
                set_client_field(conn, client_id, "data_sharing_consent = true", at, position)
                    .await?
            }
            ClientEvent::DataSharingConsentWithdrawn => {
                set_client_field(
                    conn,
                    client_id,
                    "data_sharing_consent = false",
                    at,
                    position,
                )
                .await?
            }
            ClientEvent::ClientReactivated => {
                set_client_field(
                    conn,
                    client_id,
                    "status = 'active', suspended_reason = NULL",
                    at,
                    position,
                )
                .await?
            }
            ClientEvent::ClientSuspended { reason } => {
                sqlx::query(
                    "UPDATE clients_view SET status = 'suspended', suspended_reason = $2, \
                     updated_at = $3, position = $4 WHERE client_id = $1",
                )
                .bind(client_id)
                .bind(reason.as_str())
                .bind(at)
                .bind(position)
                .execute(conn)
                .await?;
            }
            ClientEvent::ApiKeyIssued {
                key_id,
                role,
                label,
                key_hash,
            } => {
                keys::record_issued(conn, key_id, client_id, role, label.as_str(), &key_hash, at)
                    .await?;
            }
            ClientEvent::ApiKeyRevoked { key_id } => keys::record_revoked(conn, key_id, at).await?,
            ClientEvent::WebhookSecretSet {
                provider,
                fingerprint,
            } => {
                sqlx::query(
                    "INSERT INTO client_webhooks (client_id, provider, secret_fingerprint, updated_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (client_id, provider) \
                     DO UPDATE SET secret_fingerprint = EXCLUDED.secret_fingerprint, updated_at = EXCLUDED.updated_at",
                )
                .bind(client_id)
                .bind(provider.as_str())
                .bind(fingerprint)
                .bind(at)
                .execute(conn)
                .await?;
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
                sqlx::query(
                    "INSERT INTO client_resources (client_id, kind, address, daily_cap, registered_at) \
                     VALUES ($1, $2, lower($3), $4, $5) ON CONFLICT (client_id, kind, address) \
                     DO UPDATE SET daily_cap = EXCLUDED.daily_cap",
                )
                .bind(client_id)
                .bind(kind.as_str())
                .bind(address.as_str())
                .bind(daily_cap.value() as i32)
                .bind(at)
                .execute(conn)
                .await?;
            }
        }
        Ok(())
    }
}

/// For the events that set fixed values: `assignments` is a constant from
/// this file, never input.
async fn set_client_field(
    conn: &mut PgConnection,
    client_id: Uuid,
    assignments: &'static str,
    at: chrono::DateTime<chrono::Utc>,
    position: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "UPDATE clients_view SET {assignments}, updated_at = $2, position = $3 WHERE client_id = $1"
    ))
    .bind(client_id)
    .bind(at)
    .bind(position)
    .execute(conn)
    .await?;
    Ok(())
}
