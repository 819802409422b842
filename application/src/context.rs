//! The context ledger's use cases: propose an update, approve / modify /
//! reject it, withdraw it (Sextant itself), roll back; and the document
//! pathway (a document kept out of the log, its insights proposed as an
//! update whose values are kept by reference, erasable:
//! [`crate::insights`]). Who may propose what, routing
//! by permission mode, staleness and the version hashes are the
//! ClientContext aggregate's own: the use cases pass it the caller as a
//! [`Proposer`](sextant_domain::context::Proposer). A suspended client's keys
//! may change nothing here ([`Caller::may_change`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use sextant_adapters::http::Problem;
use sextant_adapters::store::Committed;
use sextant_domain::context::{
    extract, json, refs, ContextCommand, ContextError, ContextEvent, DocumentSource, Insights,
    Policy, Source, UpdateStatus, MAX_DOCUMENT_BYTES,
};
use sextant_domain::metadata::{Actor, Component};
use sextant_domain::values::{Confidence, DocumentKey, Note, Rationale, Reason, Title};

use crate::{execute, ApiError, App, Caller, DomainRefusal, Result};

/// The longest document, in characters.
pub const MAX_DOCUMENT_CHARS: usize = 1_000_000;

/// The version the command's events created, if any.
fn new_version(committed: &Committed<ContextEvent>) -> Option<u64> {
    committed.events.iter().rev().find_map(|event| match event {
        ContextEvent::UpdateApplied { version, .. } | ContextEvent::RolledBack { version, .. } => {
            Some(*version)
        }
        _ => None,
    })
}

/// The version a review or rollback created (none: nothing applied), and
/// where its events landed.
#[derive(Debug, Serialize)]
pub struct Versioned {
    pub version: Option<u64>,
    pub position: i64,
}

impl From<Committed<ContextEvent>> for Versioned {
    fn from(committed: Committed<ContextEvent>) -> Self {
        Self {
            version: new_version(&committed),
            position: committed.position,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposeUpdate {
    pub source: Source,
    pub patch: Value,
    pub base_version: Option<u64>,
    pub rationale: Rationale,
    #[serde(default)]
    pub evidence: Value,
    pub confidence: Option<Confidence>,
}

#[derive(Debug, Serialize)]
pub struct Proposed {
    pub update_id: Uuid,
    /// Pending (waits for review) or applied at once.
    pub status: UpdateStatus,
    pub version: Option<u64>,
    pub position: i64,
}

pub async fn propose(
    app: &App,
    caller: &Caller,
    client_id: Uuid,
    input: ProposeUpdate,
) -> Result<Proposed> {
    let client = app.changeable_client(client_id, caller).await?;
    let update_id = Uuid::now_v7();
    let evidence = if input.evidence.is_null() {
        json!({})
    } else {
        input.evidence
    };
    let command = ContextCommand::ProposeUpdate {
        update_id,
        source: input.source,
        patch: input.patch,
        base_version: input.base_version,
        rationale: input.rationale,
        evidence,
        confidence: input.confidence,
        policy: Policy {
            mode: client.permission_mode(),
            threshold: client.autopilot_threshold(),
        },
        proposer: caller.proposer(),
    };
    let committed = execute(&app.context, client_id, caller, command).await?;
    let version = new_version(&committed);
    Ok(Proposed {
        update_id,
        status: if version.is_some() {
            UpdateStatus::Applied
        } else {
            UpdateStatus::Pending
        },
        version,
        position: committed.position,
    })
}

pub async fn approve(
    app: &App,
    caller: &Caller,
    client_id: Uuid,
    update_id: Uuid,
    note: Option<Note>,
) -> Result<Versioned> {
    app.changeable_client(client_id, caller).await?;
    let command = ContextCommand::ApproveUpdate { update_id, note };
    Ok(execute(&app.context, client_id, caller, command)
        .await?
        .into())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Modify {
    pub patch: Value,
    pub note: Option<Note>,
}

pub async fn modify(
    app: &App,
    caller: &Caller,
    client_id: Uuid,
    update_id: Uuid,
    input: Modify,
) -> Result<Versioned> {
    app.changeable_client(client_id, caller).await?;
    let command = ContextCommand::ModifyUpdate {
        update_id,
        patch: input.patch,
        note: input.note,
    };
    Ok(execute(&app.context, client_id, caller, command)
        .await?
        .into())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reject {
    pub reason: Reason,
}

/// Answers the position of the rejection.
pub async fn reject(
    app: &App,
    caller: &Caller,
    client_id: Uuid,
    update_id: Uuid,
    input: Reject,
) -> Result<i64> {
    app.changeable_client(client_id, caller).await?;
    let command = ContextCommand::RejectUpdate {
        update_id,
        reason: input.reason,
    };
    Ok(execute(&app.context, client_id, caller, command)
        .await?
        .position)
}

/// The suggestion engine withdraws a pending update whose evidence no
/// longer holds; `evidence` is what shows it, and is carried on the event.
/// Only Sextant withdraws: no HTTP endpoint issues this. Refused like a
/// rejection when the update is unknown (404) or no longer pending (409).
/// Answers the position of the withdrawal.
pub async fn withdraw_as_system(
    app: &App,
    client_id: Uuid,
    update_id: Uuid,
    reason: Reason,
    evidence: Value,
) -> Result<i64> {
    let caller = Caller::new(
        Actor::System(Component::SuggestionEngine),
        format!("withdraw:{update_id}"),
    );
    let command = ContextCommand::WithdrawUpdate {
        update_id,
        reason,
        evidence,
    };
    Ok(execute(&app.context, client_id, &caller, command)
        .await?
        .position)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollBack {
    pub to_version: u64,
    pub reason: Reason,
}

pub async fn roll_back(
    app: &App,
    caller: &Caller,
    client_id: Uuid,
    input: RollBack,
) -> Result<Versioned> {
    app.changeable_client(client_id, caller).await?;
    let target = historic_document(app, client_id, input.to_version).await?;
    let command = ContextCommand::RollBack {
        to_version: input.to_version,
        target,
        reason: input.reason,
    };
    Ok(execute(&app.context, client_id, caller, command)
        .await?
        .into())
}

/// Version `version`'s document from the versions read model, waiting a
/// little for it (versions never change once written). The aggregate checks
/// it against the version's recorded hash.
async fn historic_document(app: &App, client_id: Uuid, version: u64) -> Result<Option<Value>> {
    // Version 0 is the empty document every client starts from: in no
    // table, and the query side shows it all the same.
    if version == 0 {
        return Ok(Some(json!({})));
    }
    let Ok(version) = i64::try_from(version) else {
        return Ok(None);
    };
    for _ in 0..20 {
        let document: Option<Value> = sqlx::query_scalar(
            "SELECT document FROM context_versions WHERE client_id = $1 AND version = $2",
        )
        .bind(client_id)
        .bind(version)
        .fetch_optional(&app.pool)
        .await?;
        if document.is_some() {
            return Ok(document);
        }
        let newest: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM context_versions WHERE client_id = $1")
                .bind(client_id)
                .fetch_one(&app.pool)
                .await?;
        if newest.unwrap_or(0) >= version || version < 1 {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(None)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureDocument {
    pub key: DocumentKey,
    pub title: Title,
    pub source: DocumentSource,
    pub content: String,
    pub captured_at: DateTime<Utc>,
}

/// The update a document's insights became.
#[derive(Debug, Serialize)]
pub struct DocumentUpdate {
    pub update_id: Uuid,
    pub status: UpdateStatus,
    pub version: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct Captured {
    /// False when the same content was already captured under this key.
    pub changed: bool,
    pub content_hash: String,
    /// Which extractor read it (absent when nothing changed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extractor: Option<String>,
    pub update: Option<DocumentUpdate>,
    pub position: i64,
}

pub async fn capture_document(
    app: &App,
    caller: &Caller,
    client_id: Uuid,
    input: CaptureDocument,
) -> Result<Captured> {
    if input.content.trim().is_empty() {
        return Err(Problem::invalid_field("content", "must not be empty").into());
    }
    if input.content.chars().count() > MAX_DOCUMENT_CHARS {
        return Err(Problem::invalid_field(
            "content",
            format!("must be at most {MAX_DOCUMENT_CHARS} characters"),
        )
        .into());
    }
    // The window of sends and outcomes, with 5 minutes of skew: nothing
    // Postgres cannot store reaches the log, where the projection would
    // have to park on it.
    sextant_domain::send::input::check_time(
        input.captured_at,
        Utc::now(),
        chrono::Duration::minutes(5),
    )
    .map_err(|message| Problem::invalid_field("captured_at", message))?;
    app.changeable_client(client_id, caller).await?;
    let content_hash = sextant_adapters::keys::sha256_hex(&input.content);
    let context = app.context.load(&client_id.to_string()).await?;
    if context.document_hash(input.key.as_str()) == Some(content_hash.as_str()) {
        let position = sextant_adapters::db::head_position(&app.pool).await?;
        return Ok(Captured {
            changed: false,
            content_hash,
            extractor: None,
            update: None,
            position,
        });
    }
    // The body is kept first, out of the log: whatever happens next, the
    // document is not lost.
    sqlx::query(
        "INSERT INTO document_bodies (client_id, content_hash, content) VALUES ($1, $2, $3) \
         ON CONFLICT (client_id, content_hash) DO NOTHING",
    )
    .bind(client_id)
    .bind(&content_hash)
    .bind(&input.content)
    .execute(&app.pool)
    .await?;
    let (patch, extractor) = read_insights(app, client_id, &input.content).await;
    let update_id = Uuid::now_v7();
    // What the document says goes into the log only by reference: the
    // values are kept, erasable, before the command that refers to them.
    let mut kept = Vec::new();
    let insights = match patch {
        Some(patch) => {
            let rationale =
                Rationale::try_from(format!("insights from document \"{}\"", input.title))
                    .map_err(|e| Problem::invalid_field("title", e))?;
            within_size(app, client_id, context.document(), &patch).await?;
            let (patch, values) = refs::by_reference(&patch, Uuid::now_v7);
            crate::insights::keep(&app.pool, client_id, &content_hash, &values).await?;
            kept = values;
            Some(Insights {
                update_id,
                patch,
                rationale,
                extractor: extractor.clone(),
            })
        }
        None => None,
    };
    let has_insights = insights.is_some();
    let command = ContextCommand::CaptureDocument {
        key: input.key,
        title: input.title,
        source: input.source,
        content_hash: content_hash.clone(),
        captured_at: input.captured_at,
        insights,
        proposer: caller.proposer(),
    };
    let committed = match execute(&app.context, client_id, caller, command).await {
        Ok(committed) => committed,
        // A refusal wrote no event: nothing refers to the values. (Any
        // other failure may come after the commit; the values stay.)
        Err(err @ ApiError::Problem(_)) => {
            if let Err(forget) = crate::insights::forget(&app.pool, client_id, &kept).await {
                tracing::warn!(error = %forget, "the insights of a refused document stay stored");
            }
            return Err(err);
        }
        Err(err) => return Err(err),
    };
    let version = new_version(&committed);
    Ok(Captured {
        changed: true,
        content_hash,
        extractor: Some(extractor),
        // Applied at once, or pending when an ingest key captured it.
        update: has_insights.then_some(DocumentUpdate {
            update_id,
            status: if version.is_some() {
                UpdateStatus::Applied
            } else {
                UpdateStatus::Pending
            },
            version,
        }),
        position: committed.position,
    })
}

/// Refuses insights that would take the document, values resolved, past
/// [`MAX_DOCUMENT_BYTES`]: the aggregate, which holds references, cannot
/// tell how large the values are.
async fn within_size(app: &App, client_id: Uuid, current: &Value, patch: &Value) -> Result<()> {
    let mut document = crate::insights::resolve(&app.pool, client_id, current).await?;
    json::merge_patch(&mut document, patch);
    let bytes = serde_json::to_vec(&document).map_or(usize::MAX, |b| b.len());
    if bytes > MAX_DOCUMENT_BYTES {
        return Err(ApiError::Problem(
            ContextError::DocumentTooLarge { bytes }.problem(),
        ));
    }
    Ok(())
}

/// Insights through the LLM when one is configured; the deterministic
/// extractor otherwise, or when the LLM fails (the reason is kept in the
/// extractor's name).
async fn read_insights(app: &App, client_id: Uuid, content: &str) -> (Option<Value>, String) {
    if let Some(llm) = &app.llm {
        match llm.extract(&app.pool, client_id, content).await {
            Ok(extraction) => return (extraction.patch, format!("llm:{}", llm.model())),
            Err(err) => {
                tracing::warn!(error = %err, "LLM extraction failed; using the deterministic extractor");
                metrics::counter!("sextant_llm_fallbacks_total").increment(1);
                return (
                    extract::extract(content),
                    format!("deterministic (llm failed: {err})"),
                );
            }
        }
    }
    (extract::extract(content), "deterministic".into())
}
