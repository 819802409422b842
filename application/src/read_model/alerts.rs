//! Alert reads: a client's alerts, and every client's for the operator,
//! newest first, paged by the position each was raised at.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::Result;

/// Which alerts a list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilter {
    /// Raised and not resolved.
    #[default]
    Open,
    Resolved,
    All,
}

impl StatusFilter {
    fn status(self) -> Option<&'static str> {
        match self {
            Self::Open => Some("open"),
            Self::Resolved => Some("resolved"),
            Self::All => None,
        }
    }
}

/// One alert: one episode of a client's condition.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct AlertRow {
    pub alert_id: Uuid,
    pub client_id: Uuid,
    pub condition: String,
    pub condition_key: String,
    pub subject: String,
    pub episode: i32,
    /// `open` or `resolved`.
    pub status: String,
    /// What the detector saw when it raised the alert.
    pub evidence: Value,
    pub raised_at: DateTime<Utc>,
    /// The position of its `alert_raised` event: the lists' cursor.
    pub raised_position: i64,
    pub resolved_at: Option<DateTime<Utc>>,
    /// What the detector saw when it resolved the alert.
    pub resolution_evidence: Option<Value>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    /// The note given with the acknowledgement.
    pub acknowledgement: Option<String>,
    /// The position of the last event applied to it.
    pub position: i64,
}

/// A page of alerts, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct AlertPage {
    pub items: Vec<AlertRow>,
    /// The cursor of the next page (`before`); `None` on the last.
    pub next_before: Option<i64>,
}

/// Up to `limit` alerts raised below position `before` (from the newest
/// if `None`), of one client or (`None`) of every client, in `status`.
pub async fn list(
    pool: &PgPool,
    client_id: Option<Uuid>,
    status: StatusFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<AlertPage> {
    let mut items: Vec<AlertRow> = sqlx::query_as(
        "SELECT alert_id, client_id, condition, condition_key, subject, episode, status, evidence, \
         raised_at, raised_position, resolved_at, resolution_evidence, acknowledged_at, acknowledged_by, \
         acknowledgement, position FROM alerts_view \
         WHERE ($1::uuid IS NULL OR client_id = $1) AND ($2::text IS NULL OR status = $2) \
           AND raised_position < $3 \
         ORDER BY raised_position DESC LIMIT $4",
    )
    .bind(client_id)
    .bind(status.status())
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_before = more
        .then(|| items.last().map(|r| r.raised_position))
        .flatten();
    Ok(AlertPage { items, next_before })
}
