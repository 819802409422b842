//! The values a document's insights put into the context, kept out of the
//! log (`context_insights`, docs/decisions/erasable-insights.md). Context
//! events, snapshots and read models hold a reference in place of each
//! value ([`refs`]); this module keeps the values, resolves references for
//! every reader, and erases a document's values with its body.
//!
//! A value is written before the command whose events refer to it, so no
//! committed event ever refers to a value not yet kept; a command that is
//! refused takes its values back out (`forget`).

use std::collections::HashMap;

use serde_json::Value;
use sextant_domain::context::refs::{self, Referenced};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Keeps `values`, read from the document of `content_hash`.
pub(crate) async fn keep(
    pool: &PgPool,
    client_id: Uuid,
    content_hash: &str,
    values: &[Referenced],
) -> Result<(), sqlx::Error> {
    if values.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = values.iter().map(|v| v.id).collect();
    let paths: Vec<&str> = values.iter().map(|v| v.path.as_str()).collect();
    let texts: Vec<Value> = values.iter().map(|v| v.value.clone()).collect();
    sqlx::query(
        "INSERT INTO context_insights (client_id, insight_id, content_hash, path, value) \
         SELECT $1, u.id, $2, u.path, u.value \
         FROM UNNEST($3::uuid[], $4::text[], $5::jsonb[]) AS u(id, path, value)",
    )
    .bind(client_id)
    .bind(content_hash)
    .bind(&ids)
    .bind(&paths)
    .bind(&texts)
    .execute(pool)
    .await?;
    Ok(())
}

/// Removes values no event refers to: those of a command that was refused.
pub(crate) async fn forget(
    pool: &PgPool,
    client_id: Uuid,
    values: &[Referenced],
) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = values.iter().map(|v| v.id).collect();
    sqlx::query("DELETE FROM context_insights WHERE client_id = $1 AND insight_id = ANY($2)")
        .bind(client_id)
        .bind(&ids)
        .execute(pool)
        .await?;
    Ok(())
}

/// The values of `ids` that are still kept (an erased one is absent).
async fn values(
    pool: &PgPool,
    client_id: Uuid,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Value>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, Value)> = sqlx::query_as(
        "SELECT insight_id, value FROM context_insights WHERE client_id = $1 AND insight_id = ANY($2)",
    )
    .bind(client_id)
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// `value` as readers see it: every reference of the client's replaced by
/// its value, an erased one left out.
pub async fn resolve(pool: &PgPool, client_id: Uuid, value: &Value) -> Result<Value, sqlx::Error> {
    let mut resolved = value.clone();
    resolve_all(pool, client_id, vec![&mut resolved]).await?;
    Ok(resolved)
}

/// [`resolve`] for several values at once, in place: one query for all.
pub async fn resolve_all(
    pool: &PgPool,
    client_id: Uuid,
    items: Vec<&mut Value>,
) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = items.iter().flat_map(|v| refs::references(v)).collect();
    if ids.is_empty() {
        return Ok(());
    }
    let known = values(pool, client_id, &ids).await?;
    for item in items {
        *item = refs::resolve(item, &known);
    }
    Ok(())
}

/// What erasing documents removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ErasedDocuments {
    /// Document bodies deleted.
    pub bodies: u64,
    /// Insight values deleted.
    pub insights: u64,
}

/// Erases the documents of `content_hashes`: their bodies and every value
/// their insights put into the context. The events keep their references,
/// which resolve to nothing from now on.
pub(crate) async fn erase_documents(
    conn: &mut PgConnection,
    client_id: Uuid,
    content_hashes: &[String],
) -> Result<ErasedDocuments, sqlx::Error> {
    if content_hashes.is_empty() {
        return Ok(ErasedDocuments::default());
    }
    let bodies =
        sqlx::query("DELETE FROM document_bodies WHERE client_id = $1 AND content_hash = ANY($2)")
            .bind(client_id)
            .bind(content_hashes)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    let insights =
        sqlx::query("DELETE FROM context_insights WHERE client_id = $1 AND content_hash = ANY($2)")
            .bind(client_id)
            .bind(content_hashes)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    Ok(ErasedDocuments { bodies, insights })
}
