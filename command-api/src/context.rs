//! Context endpoints (API.md): propose an update, approve / modify / reject
//! it, roll back; and the document pathway.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use sextant_adapters::http::{
    position_only, positioned, ClientScope, OptionalJson, Problem, RequestIds, StrictJson,
};
use sextant_adapters::store::Committed;
use sextant_domain::context::{
    extract, ContextCommand, ContextEvent, DocumentSource, Insights, Policy, Source,
};
use sextant_domain::values::{Confidence, DocumentKey, Note, Rationale, Reason, Role, Title};

use crate::error::ApiError;
use crate::AppState;

/// Documents may be larger than other bodies.
pub const DOCUMENT_BODY_LIMIT: usize = 4 * 1024 * 1024;
const MAX_DOCUMENT_CHARS: usize = 1_000_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/clients/{client_id}/context/updates", post(propose))
        .route(
            "/v1/clients/{client_id}/context/updates/{update_id}/approve",
            post(approve),
        )
        .route(
            "/v1/clients/{client_id}/context/updates/{update_id}/modify",
            post(modify),
        )
        .route(
            "/v1/clients/{client_id}/context/updates/{update_id}/reject",
            post(reject),
        )
        .route("/v1/clients/{client_id}/context/rollback", post(roll_back))
        .route(
            "/v1/clients/{client_id}/documents",
            post(capture_document).layer(axum::extract::DefaultBodyLimit::max(DOCUMENT_BODY_LIMIT)),
        )
}

const PROPOSERS: &[Role] = &[Role::Ingest];
const REVIEWERS: &[Role] = &[Role::Reviewer];

/// The version the command's events created, if any.
fn new_version(committed: &Committed<ContextEvent>) -> Option<u64> {
    committed.events.iter().rev().find_map(|event| match event {
        ContextEvent::UpdateApplied { version, .. } | ContextEvent::RolledBack { version, .. } => {
            Some(*version)
        }
        _ => None,
    })
}

fn update_id_from_path(text: &str) -> Result<Uuid, Problem> {
    Uuid::try_parse(text).map_err(|_| Problem::not_found("no such update"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposeUpdate {
    source: Source,
    patch: Value,
    base_version: Option<u64>,
    rationale: Rationale,
    #[serde(default)]
    evidence: Value,
    confidence: Option<Confidence>,
}

async fn propose(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
    }: ClientScope,
    ids: RequestIds,
    StrictJson(body): StrictJson<ProposeUpdate>,
) -> Result<Response, ApiError> {
    principal.authorize(client_id, PROPOSERS)?;
    let client = state.registered_client(client_id).await?;
    let update_id = Uuid::now_v7();
    let evidence = if body.evidence.is_null() {
        json!({})
    } else {
        body.evidence
    };
    let command = ContextCommand::ProposeUpdate {
        update_id,
        source: body.source,
        patch: body.patch,
        base_version: body.base_version,
        rationale: body.rationale,
        evidence,
        confidence: body.confidence,
        policy: Policy {
            mode: client.permission_mode(),
            threshold: client.autopilot_threshold(),
        },
    };
    let committed = crate::execute(&state.context, client_id, &principal, &ids, command).await?;
    let version = new_version(&committed);
    Ok(positioned(
        StatusCode::ACCEPTED,
        &json!({
            "update_id": update_id,
            "status": if version.is_some() { "applied" } else { "pending" },
            "version": version,
            "position": committed.position,
        }),
        committed.position,
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approve {
    note: Option<Note>,
}

async fn approve(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
    }: ClientScope,
    Path((_, update_id)): Path<(String, String)>,
    ids: RequestIds,
    OptionalJson(body): OptionalJson<Approve>,
) -> Result<Response, ApiError> {
    principal.authorize(client_id, REVIEWERS)?;
    let update_id = update_id_from_path(&update_id)?;
    let note = body.and_then(|b| b.note);
    let committed = crate::execute(
        &state.context,
        client_id,
        &principal,
        &ids,
        ContextCommand::ApproveUpdate { update_id, note },
    )
    .await?;
    Ok(version_answer(&committed))
}

fn version_answer(committed: &Committed<ContextEvent>) -> Response {
    positioned(
        StatusCode::OK,
        &json!({ "version": new_version(committed), "position": committed.position }),
        committed.position,
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Modify {
    patch: Value,
    note: Option<Note>,
}

async fn modify(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
    }: ClientScope,
    Path((_, update_id)): Path<(String, String)>,
    ids: RequestIds,
    StrictJson(body): StrictJson<Modify>,
) -> Result<Response, ApiError> {
    principal.authorize(client_id, REVIEWERS)?;
    let update_id = update_id_from_path(&update_id)?;
    let command = ContextCommand::ModifyUpdate {
        update_id,
        patch: body.patch,
        note: body.note,
    };
    let committed = crate::execute(&state.context, client_id, &principal, &ids, command).await?;
    Ok(version_answer(&committed))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reject {
    reason: Reason,
}

async fn reject(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
    }: ClientScope,
    Path((_, update_id)): Path<(String, String)>,
    ids: RequestIds,
    StrictJson(body): StrictJson<Reject>,
) -> Result<Response, ApiError> {
    principal.authorize(client_id, REVIEWERS)?;
    let update_id = update_id_from_path(&update_id)?;
    let command = ContextCommand::RejectUpdate {
        update_id,
        reason: body.reason,
    };
    let committed = crate::execute(&state.context, client_id, &principal, &ids, command).await?;
    Ok(position_only(StatusCode::OK, committed.position))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollBack {
    to_version: u64,
    reason: Reason,
}

async fn roll_back(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
    }: ClientScope,
    ids: RequestIds,
    StrictJson(body): StrictJson<RollBack>,
) -> Result<Response, ApiError> {
    principal.authorize(client_id, REVIEWERS)?;
    state.registered_client(client_id).await?;
    let target = historic_document(&state, client_id, body.to_version).await?;
    let command = ContextCommand::RollBack {
        to_version: body.to_version,
        target,
        reason: body.reason,
    };
    let committed = crate::execute(&state.context, client_id, &principal, &ids, command).await?;
    Ok(version_answer(&committed))
}

/// Version `version`'s document from the versions read model, waiting a
/// little for it (versions never change once written). The aggregate checks
/// it against the version's recorded hash.
async fn historic_document(
    state: &AppState,
    client_id: Uuid,
    version: u64,
) -> Result<Option<Value>, ApiError> {
    let Ok(version) = i64::try_from(version) else {
        return Ok(None);
    };
    for _ in 0..20 {
        let document: Option<Value> = sqlx::query_scalar(
            "SELECT document FROM context_versions WHERE client_id = $1 AND version = $2",
        )
        .bind(client_id)
        .bind(version)
        .fetch_optional(&state.pool)
        .await?;
        if document.is_some() {
            return Ok(document);
        }
        let newest: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM context_versions WHERE client_id = $1")
                .bind(client_id)
                .fetch_one(&state.pool)
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
    key: DocumentKey,
    title: Title,
    source: DocumentSource,
    content: String,
    captured_at: DateTime<Utc>,
}

async fn capture_document(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
    }: ClientScope,
    ids: RequestIds,
    StrictJson(body): StrictJson<CaptureDocument>,
) -> Result<Response, ApiError> {
    principal.authorize(client_id, PROPOSERS)?;
    if body.content.trim().is_empty() {
        return Err(Problem::invalid_field("content", "must not be empty").into());
    }
    if body.content.chars().count() > MAX_DOCUMENT_CHARS {
        return Err(Problem::invalid_field(
            "content",
            format!("must be at most {MAX_DOCUMENT_CHARS} characters"),
        )
        .into());
    }
    if body.captured_at > Utc::now() + chrono::Duration::minutes(5) {
        return Err(Problem::invalid_field("captured_at", "must not be in the future").into());
    }
    state.registered_client(client_id).await?;
    let content_hash = sextant_adapters::keys::sha256_hex(&body.content);
    let context = state.context.load(&client_id.to_string()).await?;
    if context.document_hash(body.key.as_str()) == Some(content_hash.as_str()) {
        let position = sextant_adapters::db::head_position(&state.pool).await?;
        return Ok(positioned(
            StatusCode::OK,
            &json!({ "changed": false, "content_hash": content_hash, "update": null, "position": position }),
            position,
        ));
    }
    // The body is kept first, out of the log: whatever happens next, the
    // document is not lost.
    sqlx::query(
        "INSERT INTO document_bodies (client_id, content_hash, content) VALUES ($1, $2, $3) \
         ON CONFLICT (client_id, content_hash) DO NOTHING",
    )
    .bind(client_id)
    .bind(&content_hash)
    .bind(&body.content)
    .execute(&state.pool)
    .await?;
    let (patch, extractor) = read_insights(&state, client_id, &body.content).await;
    let update_id = Uuid::now_v7();
    let insights = match patch {
        Some(patch) => Some(Insights {
            update_id,
            patch,
            rationale: Rationale::try_from(format!("insights from document \"{}\"", body.title))
                .map_err(|e| Problem::invalid_field("title", e))?,
            extractor: extractor.clone(),
        }),
        None => None,
    };
    let has_insights = insights.is_some();
    let command = ContextCommand::CaptureDocument {
        key: body.key,
        title: body.title,
        source: body.source,
        content_hash: content_hash.clone(),
        captured_at: body.captured_at,
        insights,
    };
    let committed = crate::execute(&state.context, client_id, &principal, &ids, command).await?;
    let version = new_version(&committed);
    Ok(positioned(
        StatusCode::CREATED,
        &json!({
            "changed": true,
            "content_hash": content_hash,
            "extractor": extractor,
            "update": if has_insights { json!({ "update_id": update_id, "status": "applied", "version": version }) } else { Value::Null },
            "position": committed.position,
        }),
        committed.position,
    ))
}

/// Insights through the LLM when one is configured; the deterministic
/// extractor otherwise, or when the LLM fails (the reason is kept in the
/// extractor's name).
async fn read_insights(
    state: &AppState,
    client_id: Uuid,
    content: &str,
) -> (Option<Value>, String) {
    if let Some(llm) = &state.llm {
        match llm.extract(&state.pool, client_id, content).await {
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
