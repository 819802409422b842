//! Client reads: the operator's list, one client's detail with its sending
//! resources, API keys and webhook secrets, and its audit trail.
//!
//! Secrets are never read back: API keys are kept as hashes and webhook
//! secrets sealed, and neither is ever answered. What is derived from them
//! (an API key's hash, a webhook secret's fingerprint) is shown only to
//! callers who manage credentials ([`Credentials::of`]): the operator and
//! admin and reviewer keys. Reader and ingest keys see neither, in a
//! client's detail or in its audit trail.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use sextant_adapters::http::{Principal, Problem};
use sextant_domain::alert::{AlertLimits, AlertRate};
use sextant_domain::inference::Windows;
use sextant_domain::values::{Role, TimeZone, Tz};

use crate::Result;

/// A client as the clients read model holds it.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ClientRow {
    pub client_id: Uuid,
    pub name: String,
    pub industry: String,
    pub company_size: String,
    pub region: String,
    pub permission_mode: String,
    pub autopilot_threshold: f64,
    pub data_sharing_consent: bool,
    /// The IANA zone the client's weeks and days are counted in.
    pub timezone: String,
    #[sqlx(flatten)]
    pub maturity: MaturityRow,
    /// Who the weekly report is e-mailed to.
    pub report_recipients: Vec<String>,
    #[sqlx(flatten)]
    pub alert_limits: AlertLimitsRow,
    pub status: String,
    pub suspended_reason: Option<String>,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A client's maturity windows, in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, FromRow)]
pub struct MaturityRow {
    #[sqlx(rename = "reply_window_days")]
    pub reply_days: i32,
    #[sqlx(rename = "meeting_window_days")]
    pub meeting_days: i32,
    #[sqlx(rename = "conversion_window_days")]
    pub conversion_days: i32,
}

/// The rates above which a sending resource of the client raises an alert.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, FromRow)]
pub struct AlertLimitsRow {
    #[sqlx(rename = "bounce_alert_rate")]
    pub bounce_rate: f64,
    #[sqlx(rename = "complaint_alert_rate")]
    pub complaint_rate: f64,
}

impl AlertLimitsRow {
    /// The limits as the domain knows them; a row the projection wrote
    /// always holds valid rates.
    pub fn limits(self) -> Result<AlertLimits, sqlx::Error> {
        let rate = |column: &str, value: f64| {
            AlertRate::try_from(value)
                .map_err(|e| sqlx::Error::Decode(format!("clients_view.{column}: {e}").into()))
        };
        Ok(AlertLimits {
            bounce_rate: rate("bounce_alert_rate", self.bounce_rate)?,
            complaint_rate: rate("complaint_alert_rate", self.complaint_rate)?,
        })
    }
}

const CLIENT_COLUMNS: &str = "client_id, name, industry, company_size, region, permission_mode, \
     autopilot_threshold, data_sharing_consent, timezone, reply_window_days, meeting_window_days, \
     conversion_window_days, report_recipients, bounce_alert_rate, complaint_alert_rate, status, \
     suspended_reason, registered_at, updated_at";

/// A page of clients, by client id.
#[derive(Debug, Clone, Serialize)]
pub struct ClientPage {
    pub items: Vec<ClientRow>,
    /// The cursor of the next page; `None` on the last.
    pub next_after: Option<Uuid>,
}

/// Up to `limit` clients after the client id `after` (from the first if
/// `None`).
pub async fn list(pool: &PgPool, after: Option<Uuid>, limit: i64) -> Result<ClientPage> {
    let mut items: Vec<ClientRow> = sqlx::query_as(&format!(
        "SELECT {CLIENT_COLUMNS} FROM clients_view WHERE client_id > $1 ORDER BY client_id LIMIT $2"
    ))
    .bind(after.unwrap_or(Uuid::nil()))
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_after = more.then(|| items.last().map(|c| c.client_id)).flatten();
    Ok(ClientPage { items, next_after })
}

/// A sending resource of a client.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ResourceRow {
    pub kind: String,
    pub address: String,
    pub daily_cap: i32,
    pub registered_at: DateTime<Utc>,
}

/// An API key of a client; never its secret.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct KeyRow {
    pub key_id: Uuid,
    pub role: String,
    pub label: String,
    pub issued_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A provider's webhook secret of a client: never the secret; its
/// fingerprint only for those who see [`Credentials::Shown`].
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct WebhookRow {
    pub provider: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_fingerprint: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// Whether a caller sees what is derived from a client's credentials: API
/// key hashes and webhook secret fingerprints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    Shown,
    Withheld,
}

impl Credentials {
    /// Shown to the operator and to admin and reviewer keys, who manage or
    /// check a client's set-up; withheld from reader and ingest keys, which
    /// have no use for them.
    pub fn of(principal: &Principal) -> Self {
        match principal {
            Principal::Operator => Self::Shown,
            Principal::Key { role, .. } => match role {
                Role::Admin | Role::Reviewer => Self::Shown,
                Role::Ingest | Role::Reader => Self::Withheld,
            },
        }
    }
}

/// Fields of the client events that are derived from a credential.
const CREDENTIAL_FIELDS: [&str; 2] = ["key_hash", "fingerprint"];

/// `data` of an audit entry without what is derived from credentials.
fn withhold_credentials(data: &mut Value) {
    if let Value::Object(fields) = data {
        for field in CREDENTIAL_FIELDS {
            fields.remove(field);
        }
    }
}

/// A client with what it has registered.
#[derive(Debug, Clone, Serialize)]
pub struct ClientDetail {
    #[serde(flatten)]
    pub client: ClientRow,
    pub resources: Vec<ResourceRow>,
    pub api_keys: Vec<KeyRow>,
    pub webhooks: Vec<WebhookRow>,
}

/// The client with its resources, keys and webhook secrets (fingerprints
/// as `credentials` allows); 404 if the clients read model does not know
/// it.
pub async fn detail(
    pool: &PgPool,
    client_id: Uuid,
    credentials: Credentials,
) -> Result<ClientDetail> {
    let client: ClientRow = sqlx::query_as(&format!(
        "SELECT {CLIENT_COLUMNS} FROM clients_view WHERE client_id = $1"
    ))
    .bind(client_id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(Problem::client_not_found)?;
    let resources: Vec<ResourceRow> = sqlx::query_as(
        "SELECT kind, address, daily_cap, registered_at FROM client_resources \
         WHERE client_id = $1 ORDER BY kind, address",
    )
    .bind(client_id)
    .fetch_all(pool)
    .await?;
    let api_keys: Vec<KeyRow> = sqlx::query_as(
        "SELECT key_id, role, label, issued_at, revoked_at FROM client_api_keys \
         WHERE client_id = $1 ORDER BY issued_at, key_id",
    )
    .bind(client_id)
    .fetch_all(pool)
    .await?;
    let mut webhooks: Vec<WebhookRow> = sqlx::query_as(
        "SELECT provider, secret_fingerprint, updated_at FROM client_webhooks \
         WHERE client_id = $1 ORDER BY provider",
    )
    .bind(client_id)
    .fetch_all(pool)
    .await?;
    if credentials == Credentials::Withheld {
        for webhook in &mut webhooks {
            webhook.secret_fingerprint = None;
        }
    }
    Ok(ClientDetail {
        client,
        resources,
        api_keys,
        webhooks,
    })
}

/// 404 unless the clients read model knows the client.
pub async fn known(pool: &PgPool, client_id: Uuid) -> Result<()> {
    let known: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM clients_view WHERE client_id = $1)")
            .bind(client_id)
            .fetch_one(pool)
            .await?;
    if known {
        Ok(())
    } else {
        Err(Problem::client_not_found().into())
    }
}

/// Whether the client gave data-sharing consent (`false` if the clients
/// read model does not know it).
pub async fn shares_data(pool: &PgPool, client_id: Uuid) -> Result<bool> {
    let consents: Option<bool> =
        sqlx::query_scalar("SELECT data_sharing_consent FROM clients_view WHERE client_id = $1")
            .bind(client_id)
            .fetch_optional(pool)
            .await?;
    Ok(consents == Some(true))
}

/// The client's time zone and maturity windows as the clients read model
/// holds them; `None` if it does not know the client.
pub async fn client_settings(
    pool: &PgPool,
    client_id: Uuid,
) -> Result<Option<(Tz, Windows)>, sqlx::Error> {
    let row: Option<(String, i32, i32, i32)> = sqlx::query_as(
        "SELECT timezone, reply_window_days, meeting_window_days, conversion_window_days \
         FROM clients_view WHERE client_id = $1",
    )
    .bind(client_id)
    .fetch_optional(pool)
    .await?;
    let Some((timezone, reply, meeting, conversion)) = row else {
        return Ok(None);
    };
    let timezone = TimeZone::try_from(timezone.as_str()).map_err(|e| {
        sqlx::Error::Decode(format!("clients_view.timezone {timezone:?}: {e}").into())
    })?;
    let days = |column: &str, value: i32| {
        u32::try_from(value)
            .map_err(|e| sqlx::Error::Decode(format!("clients_view.{column}: {e}").into()))
    };
    Ok(Some((
        timezone.tz(),
        Windows::from_days(
            days("reply_window_days", reply)?,
            days("meeting_window_days", meeting)?,
            days("conversion_window_days", conversion)?,
        ),
    )))
}

/// An event of a client's audit trail.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct AuditEntry {
    pub position: i64,
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub actor: Option<String>,
    pub correlation_id: Option<String>,
    pub recorded_at: DateTime<Utc>,
    pub data: Value,
}

/// A page of a client's audit trail, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    /// The cursor of the next page; `None` on the last.
    pub next_before: Option<i64>,
}

/// Every event type Sextant records (as docs/asyncapi.yaml lists them):
/// what an audit trail may be filtered by.
pub const EVENT_TYPES: [&str; 37] = [
    "client_registered",
    "profile_updated",
    "permission_mode_changed",
    "maturity_windows_changed",
    "alert_limits_changed",
    "data_sharing_consent_given",
    "data_sharing_consent_withdrawn",
    "api_key_issued",
    "api_key_revoked",
    "webhook_secret_set",
    "resource_registered",
    "resource_cap_changed",
    "client_suspended",
    "client_reactivated",
    "update_proposed",
    "update_approved",
    "update_modified",
    "update_applied",
    "update_rejected",
    "update_superseded",
    "update_withdrawn",
    "rolled_back",
    "document_captured",
    "send_recorded",
    "outcome_recorded",
    "reply_classified",
    "authorization_decided",
    "lead_erased",
    "experiment_created",
    "experiment_concluded",
    "alert_raised",
    "alert_resolved",
    "alert_acknowledged",
    "report_recipients_changed",
    "report_published",
    "report_delivery_failed",
    "report_delivered",
];

/// Which events of an audit trail a page holds; every given part must
/// hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// As the event's metadata records it (`operator`, `key:<key id>`,
    /// `webhook:<provider>`, `system:<component>`).
    pub actor: Option<String>,
    /// One of [`EVENT_TYPES`].
    pub event_type: Option<&'static str>,
    /// Recorded at or after.
    pub since: Option<DateTime<Utc>>,
    /// Recorded before.
    pub until: Option<DateTime<Utc>>,
}

/// Up to `limit` events of the client's audit trail that `filter` admits,
/// below the position `before` (from the newest if `None`), key hashes and
/// secret fingerprints as `credentials` allows.
pub async fn audit(
    pool: &PgPool,
    client_id: Uuid,
    filter: &AuditFilter,
    before: Option<i64>,
    limit: i64,
    credentials: Credentials,
) -> Result<AuditPage> {
    let mut items: Vec<AuditEntry> = sqlx::query_as(
        // The trail holds references; the events are read from the log.
        "SELECT e.global_position AS position, e.event_id, e.aggregate_type, e.aggregate_id, e.sequence, \
         e.event_type, e.event_version, e.metadata->>$4 AS actor, \
         e.metadata->>$5 AS correlation_id, e.recorded_at, e.payload AS data \
         FROM audit_log a JOIN events e ON e.global_position = a.global_position \
         WHERE a.client_id = $1 AND a.global_position < $2 \
           AND ($6::text IS NULL OR e.metadata->>$4 = $6) AND ($7::text IS NULL OR e.event_type = $7) \
           AND e.recorded_at >= COALESCE($8::timestamptz, '-infinity'::timestamptz) \
           AND e.recorded_at < COALESCE($9::timestamptz, 'infinity'::timestamptz) \
         ORDER BY a.global_position DESC LIMIT $3",
    )
    .bind(client_id)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit + 1)
    .bind(sextant_domain::metadata::ACTOR)
    .bind(sextant_domain::metadata::CORRELATION_ID)
    .bind(filter.actor.as_deref())
    .bind(filter.event_type)
    .bind(filter.since)
    .bind(filter.until)
    .fetch_all(pool)
    .await?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    if credentials == Credentials::Withheld {
        for item in &mut items {
            if item.aggregate_type == sextant_domain::aggregate_types::CLIENT {
                withhold_credentials(&mut item.data);
            }
        }
    }
    let next_before = more.then(|| items.last().map(|r| r.position)).flatten();
    Ok(AuditPage { items, next_before })
}
