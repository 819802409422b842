//! Sends reads: the suppression list.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::Result;

/// A lead the client may not send to, and since when.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Suppressed {
    pub lead_ref: String,
    pub reason: String,
    pub send_id: Uuid,
    pub since: DateTime<Utc>,
}

/// A page of the suppression list, by lead ref.
#[derive(Debug, Clone, Serialize)]
pub struct SuppressionPage {
    pub items: Vec<Suppressed>,
    /// The cursor of the next page; `None` on the last.
    pub next_after: Option<String>,
}

/// Up to `limit` suppressed leads of the client after the lead ref `after`
/// (from the first if `None`).
pub async fn suppression(
    pool: &PgPool,
    client_id: Uuid,
    after: Option<&str>,
    limit: i64,
) -> Result<SuppressionPage> {
    let mut items: Vec<Suppressed> = sqlx::query_as(
        "SELECT lead_ref, reason, send_id, since FROM suppression_view \
         WHERE client_id = $1 AND lead_ref > $2 ORDER BY lead_ref LIMIT $3",
    )
    .bind(client_id)
    .bind(after.unwrap_or_default())
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_after = more
        .then(|| items.last().map(|r| r.lead_ref.clone()))
        .flatten();
    Ok(SuppressionPage { items, next_after })
}
