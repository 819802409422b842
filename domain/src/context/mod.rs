//! The ClientContext aggregate: one per client (id = client id), the
//! versioned context document and the life of every update to it.
//!
//! An update is an RFC 7386 merge patch with a source, rationale, evidence
//! and confidence. Depending on the source, who proposes it and the client's
//! permission mode it is refused, applies at once or waits for a reviewer,
//! who approves, modifies (both patches are kept) or rejects it; Sextant
//! withdraws a pending update whose evidence no longer holds. An update
//! proposed against version b and approved at c applies only if no path it
//! touches changed in b..c (it is rebased otherwise); a rollback to version
//! n creates a new version equal to n. The aggregate is snapshotted: its
//! state holds the current document, one short hash per version, the recent
//! per-version changed paths and the updates' statuses — never the history
//! of documents.
//!
//! A captured document's insights are proposed by reference ([`refs`]):
//! each value stands in the patch as `"$insight:<id>"` and is kept outside
//! the log, where it can be erased. The aggregate never needs the values:
//! paths, merges and version hashes are over the references.

pub mod extract;
pub mod json;
pub mod refs;
pub mod views;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::aggregate_types;
use crate::values::{
    Confidence, ConfidenceThreshold, DocumentKey, Note, PermissionMode, Rationale, Reason, Role,
    Title,
};

/// The largest context document, serialized.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Changed paths of at least this many recent versions are kept for
/// stale-approval checks, besides those back to the oldest pending base.
const KEPT_CHANGES: usize = 1000;

/// Where an update comes from (docs/context-ledger.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    CrmAnalysis,
    EmailPerformance,
    LinkedinPerformance,
    ContextRegression,
    Document,
    Manual,
    AgentSuggestion,
    CrossClientPatterns,
    BestPractices,
}

/// The five pathways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pathway {
    Analysis,
    Human,
    AgentSuggestion,
    CrossClient,
    BestPractices,
}

impl Source {
    pub fn pathway(self) -> Pathway {
        match self {
            Self::CrmAnalysis
            | Self::EmailPerformance
            | Self::LinkedinPerformance
            | Self::ContextRegression => Pathway::Analysis,
            Self::Document | Self::Manual => Pathway::Human,
            Self::AgentSuggestion => Pathway::AgentSuggestion,
            Self::CrossClientPatterns => Pathway::CrossClient,
            Self::BestPractices => Pathway::BestPractices,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CrmAnalysis => "crm_analysis",
            Self::EmailPerformance => "email_performance",
            Self::LinkedinPerformance => "linkedin_performance",
            Self::ContextRegression => "context_regression",
            Self::Document => "document",
            Self::Manual => "manual",
            Self::AgentSuggestion => "agent_suggestion",
            Self::CrossClientPatterns => "cross_client_patterns",
            Self::BestPractices => "best_practices",
        }
    }
}

/// The client's settings the policy needs, as the command layer read them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub mode: PermissionMode,
    pub threshold: ConfidenceThreshold,
}

/// How an update takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// Human-written or platform practice: applies at once.
    Direct,
    /// Autopilot and confident enough: applies at once, listed for review
    /// after the fact.
    Autopilot,
    /// Waits for a reviewer.
    Review,
}

/// docs/context-ledger.md's policy table, per source and permission mode.
pub fn route(source: Source, policy: Policy, confidence: Option<Confidence>) -> Route {
    let confident = confidence.is_some_and(|c| c.value() >= policy.threshold.value());
    match (source.pathway(), policy.mode) {
        (Pathway::Human, _) => Route::Direct,
        (Pathway::BestPractices, PermissionMode::Manual) => Route::Review,
        (Pathway::BestPractices, _) => Route::Direct,
        (Pathway::Analysis | Pathway::AgentSuggestion, PermissionMode::Autopilot) if confident => {
            Route::Autopilot
        }
        _ => Route::Review,
    }
}

/// Who proposes an update or captures a document: what the context ledger's
/// permission rule ([`route_for`], [`insights_route`]) decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proposer {
    /// A client key of this role.
    Key(Role),
    /// The operator key: stands in for any client's admin.
    Operator,
    /// A component of Sextant acting on its own (the suggestion engine).
    System,
}

impl Proposer {
    /// May change the context without a reviewer where the policy table
    /// allows it, and propose from every source: the people the client
    /// trusts with its context (reviewer and admin keys), the operator, and
    /// Sextant itself. An ingest key is a pipeline: it reports what analyses
    /// and agents found, and a person reviews it.
    fn is_authority(self) -> bool {
        matches!(
            self,
            Self::Key(Role::Reviewer | Role::Admin) | Self::Operator | Self::System
        )
    }

    /// May propose an update from `source` at all.
    pub fn may_propose(self, source: Source) -> bool {
        match self {
            Self::Key(Role::Reader) => false,
            Self::Key(Role::Ingest) => matches!(
                source.pathway(),
                Pathway::Analysis | Pathway::AgentSuggestion
            ),
            _ => self.is_authority(),
        }
    }
}

impl std::fmt::Display for Proposer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Key(role @ (Role::Admin | Role::Ingest)) => write!(f, "an {} key", role.as_str()),
            Self::Key(role) => write!(f, "a {} key", role.as_str()),
            Self::Operator => f.write_str("the operator key"),
            Self::System => f.write_str("Sextant"),
        }
    }
}

/// Who may propose an update from `source`, in words. By reference: the
/// error message that quotes it holds the source by reference.
fn who_may_propose(source: &Source) -> &'static str {
    match source.pathway() {
        Pathway::Analysis | Pathway::AgentSuggestion => {
            "an ingest, reviewer or admin key, or the operator key"
        }
        Pathway::Human | Pathway::BestPractices | Pathway::CrossClient => {
            "a reviewer or admin key, or the operator key"
        }
    }
}

/// The permission rule of the context ledger: whether `proposer` may
/// propose an update from `source`, and if so how it takes effect (the
/// policy table, [`route`]). An ingest key may propose only analysis
/// sources and `agent_suggestion`; `manual`, `document`, `best_practices`
/// and `cross_client_patterns` need a reviewer or admin key, the operator
/// or Sextant itself; a reader key may propose nothing.
pub fn route_for(
    source: Source,
    proposer: Proposer,
    policy: Policy,
    confidence: Option<Confidence>,
) -> Result<Route, ContextError> {
    if !proposer.may_propose(source) {
        return Err(ContextError::NotPermitted {
            proposer,
            update_source: source,
        });
    }
    Ok(route(source, policy, confidence))
}

/// How the insights of a document `proposer` captured take effect: at once
/// when it may write human sources itself, for review when an ingest key
/// captured it. A reader key may not capture documents.
pub fn insights_route(proposer: Proposer) -> Result<Route, ContextError> {
    match proposer {
        Proposer::Key(Role::Reader) => Err(ContextError::NotPermitted {
            proposer,
            update_source: Source::Document,
        }),
        _ if proposer.may_propose(Source::Document) => Ok(Route::Direct),
        _ => Ok(Route::Review),
    }
}

/// How an applied update got applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppliedVia {
    Direct,
    Autopilot,
    Approved,
    Modified,
}

impl AppliedVia {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Autopilot => "autopilot",
            Self::Approved => "approved",
            Self::Modified => "modified",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateStatus {
    Pending,
    Applied,
    Rejected,
    Superseded,
    /// Withdrawn by Sextant while pending: the evidence that supported it
    /// no longer holds.
    Withdrawn,
}

impl UpdateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Applied => "applied",
            Self::Rejected => "rejected",
            Self::Superseded => "superseded",
            Self::Withdrawn => "withdrawn",
        }
    }
}

/// Where a captured document came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentSource {
    MeetingNotes,
    StrategyDoc,
    IcpHypothesis,
    Upload,
    Other,
}

/// The insights a captured document yielded, as an update to apply. Its
/// patch is by reference ([`refs`]): what a document says may be personal
/// data, and the values are kept in an erasable table, never in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Insights {
    pub update_id: Uuid,
    pub patch: refs::ByReference,
    pub rationale: Rationale,
    /// `llm:<model>` or `deterministic`.
    pub extractor: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ContextCommand {
    ProposeUpdate {
        update_id: Uuid,
        source: Source,
        patch: Value,
        base_version: Option<u64>,
        rationale: Rationale,
        evidence: Value,
        confidence: Option<Confidence>,
        policy: Policy,
        proposer: Proposer,
    },
    ApproveUpdate {
        update_id: Uuid,
        note: Option<Note>,
    },
    ModifyUpdate {
        update_id: Uuid,
        patch: Value,
        note: Option<Note>,
    },
    RejectUpdate {
        update_id: Uuid,
        reason: Reason,
    },
    /// Sextant takes back a pending update it no longer stands behind (the
    /// suggestion engine, when the evidence behind a pending suggestion no
    /// longer holds); `evidence` is what shows it. No HTTP endpoint issues
    /// it. Unlike a rejection, it does not hold back a later proposal of
    /// the same patch.
    WithdrawUpdate {
        update_id: Uuid,
        reason: Reason,
        evidence: Value,
    },
    /// `target` is version `to_version`'s document as the versions read
    /// model holds it (checked against the version's hash); `None` when the
    /// read model has not caught up with it yet.
    RollBack {
        to_version: u64,
        target: Option<Value>,
        reason: Reason,
    },
    CaptureDocument {
        key: DocumentKey,
        title: Title,
        source: DocumentSource,
        content_hash: String,
        captured_at: DateTime<Utc>,
        insights: Option<Insights>,
        proposer: Proposer,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContextEvent {
    UpdateProposed {
        update_id: Uuid,
        source: Source,
        patch: Value,
        base_version: u64,
        rationale: Rationale,
        evidence: Value,
        confidence: Option<Confidence>,
        paths: Vec<String>,
        route: Route,
    },
    UpdateApproved {
        update_id: Uuid,
        note: Option<Note>,
    },
    UpdateModified {
        update_id: Uuid,
        /// The reviewer's patch; the proposed one stays in `UpdateProposed`.
        patch: Value,
        paths: Vec<String>,
        note: Option<Note>,
    },
    UpdateApplied {
        update_id: Uuid,
        version: u64,
        /// The patch that was applied (the modified one, if modified).
        patch: Value,
        via: AppliedVia,
        document_hash: String,
    },
    UpdateRejected {
        update_id: Uuid,
        reason: Reason,
    },
    UpdateSuperseded {
        update_id: Uuid,
        by: Uuid,
    },
    UpdateWithdrawn {
        update_id: Uuid,
        reason: Reason,
        /// What shows that the update's evidence no longer holds.
        evidence: Value,
    },
    RolledBack {
        to_version: u64,
        version: u64,
        /// The merge patch from the previous version to version `to_version`.
        patch: Value,
        reason: Reason,
        document_hash: String,
    },
    DocumentCaptured {
        key: DocumentKey,
        title: Title,
        source: DocumentSource,
        content_hash: String,
        previous_hash: Option<String>,
        captured_at: DateTime<Utc>,
        extractor: Option<String>,
    },
}

impl DomainEvent for ContextEvent {
    fn event_type(&self) -> String {
        match self {
            Self::UpdateProposed { .. } => "update_proposed",
            Self::UpdateApproved { .. } => "update_approved",
            Self::UpdateModified { .. } => "update_modified",
            Self::UpdateApplied { .. } => "update_applied",
            Self::UpdateRejected { .. } => "update_rejected",
            Self::UpdateSuperseded { .. } => "update_superseded",
            Self::UpdateWithdrawn { .. } => "update_withdrawn",
            Self::RolledBack { .. } => "rolled_back",
            Self::DocumentCaptured { .. } => "document_captured",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ContextError {
    #[error("patch must be a non-empty JSON object")]
    PatchNotObject,
    #[error("base_version {base} is ahead of the current version {current}")]
    BaseVersionInFuture { base: u64, current: u64 },
    #[error("the resulting document would be {bytes} bytes; the limit is {MAX_DOCUMENT_BYTES}")]
    DocumentTooLarge { bytes: usize },
    #[error("update {0} does not exist")]
    UnknownUpdate(Uuid),
    #[error("update {update_id} is {status}, not pending")]
    NotPending {
        update_id: Uuid,
        status: &'static str,
    },
    #[error("stale: paths changed since version {base}: {}", conflicts.join(", "))]
    Stale { base: u64, conflicts: Vec<String> },
    #[error("the same patch is already pending as update {0}")]
    DuplicatePending(Uuid),
    #[error(
        "the same patch was rejected as update {0} and its evidence has not changed materially"
    )]
    DuplicateOfRejected(Uuid),
    #[error("version {0} does not exist")]
    NoSuchVersion(u64),
    #[error("the context is already at version {0}")]
    AlreadyAtVersion(u64),
    #[error("version {0}'s document is not readable yet; retry shortly")]
    VersionNotReadable(u64),
    #[error("the document given for version {0} does not match its recorded hash")]
    VersionMismatch(u64),
    #[error("update {0} already exists")]
    DuplicateUpdateId(Uuid),
    #[error(
        "{proposer} may not propose an update from source `{}`; it needs {}",
        .update_source.as_str(),
        who_may_propose(.update_source)
    )]
    NotPermitted {
        proposer: Proposer,
        update_source: Source,
    },
}

/// An update's life as far as the aggregate needs to remember it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UpdateState {
    status: UpdateStatus,
    source: Source,
    base_version: u64,
    paths: Vec<String>,
    patch_hash: String,
    evidence_fingerprint: String,
    /// Kept only while pending.
    patch: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct VersionChange {
    version: u64,
    paths: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientContext {
    document: Value,
    version: u64,
    /// Short hash of each version's document, version 1 first.
    version_hashes: Vec<String>,
    recent_changes: Vec<VersionChange>,
    updates: BTreeMap<Uuid, UpdateState>,
    documents: BTreeMap<String, String>,
}

impl Default for ClientContext {
    fn default() -> Self {
        Self {
            document: Value::Object(serde_json::Map::new()),
            version: 0,
            version_hashes: Vec::new(),
            recent_changes: Vec::new(),
            updates: BTreeMap::new(),
            documents: BTreeMap::new(),
        }
    }
}

/// The short form of a document hash kept per version.
pub fn short_hash(document: &Value) -> String {
    json::hash(document)[..16].to_owned()
}

impl ClientContext {
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn document(&self) -> &Value {
        &self.document
    }

    /// The content hash a document key was last captured with.
    pub fn document_hash(&self, key: &str) -> Option<&str> {
        self.documents.get(key).map(String::as_str)
    }

    /// The document after `patch`, if it stays within bounds.
    fn patched(&self, patch: &Value) -> Result<Value, ContextError> {
        let mut next = self.document.clone();
        json::merge_patch(&mut next, patch);
        let bytes = serde_json::to_vec(&next)
            .map(|b| b.len())
            .unwrap_or(usize::MAX);
        if bytes > MAX_DOCUMENT_BYTES {
            return Err(ContextError::DocumentTooLarge { bytes });
        }
        Ok(next)
    }

    /// Paths changed after version `base` that overlap `paths`.
    fn conflicts(&self, base: u64, paths: &[String]) -> Result<(), ContextError> {
        if base >= self.version {
            return Ok(());
        }
        let oldest_known = self
            .recent_changes
            .first()
            .map(|c| c.version)
            .unwrap_or(self.version + 1);
        if base + 1 < oldest_known {
            return Err(ContextError::Stale {
                base,
                conflicts: vec!["(history before this base was pruned; propose again)".into()],
            });
        }
        let mut conflicts: Vec<String> = self
            .recent_changes
            .iter()
            .filter(|c| c.version > base)
            .flat_map(|c| c.paths.iter())
            .filter(|changed| paths.iter().any(|p| json::paths_overlap(p, changed)))
            .cloned()
            .collect();
        conflicts.sort();
        conflicts.dedup();
        if conflicts.is_empty() {
            Ok(())
        } else {
            Err(ContextError::Stale { base, conflicts })
        }
    }

    fn applied(
        &self,
        update_id: Uuid,
        patch: Value,
        via: AppliedVia,
    ) -> Result<ContextEvent, ContextError> {
        let next = self.patched(&patch)?;
        Ok(ContextEvent::UpdateApplied {
            update_id,
            version: self.version + 1,
            patch,
            via,
            document_hash: short_hash(&next),
        })
    }

    fn pending(&self, update_id: Uuid) -> Result<&UpdateState, ContextError> {
        let update = self
            .updates
            .get(&update_id)
            .ok_or(ContextError::UnknownUpdate(update_id))?;
        if update.status != UpdateStatus::Pending {
            return Err(ContextError::NotPending {
                update_id,
                status: update.status.as_str(),
            });
        }
        Ok(update)
    }

    /// The pure decision: which events a command produces from this state.
    pub fn decide(&self, command: ContextCommand) -> Result<Vec<ContextEvent>, ContextError> {
        match command {
            ContextCommand::ProposeUpdate {
                update_id,
                source,
                patch,
                base_version,
                rationale,
                evidence,
                confidence,
                policy,
                proposer,
            } => {
                // Who may propose what comes before anything else is looked at.
                let route = route_for(source, proposer, policy, confidence)?;
                self.propose(
                    update_id,
                    source,
                    patch,
                    base_version,
                    rationale,
                    evidence,
                    confidence,
                    route,
                )
            }
            ContextCommand::ApproveUpdate { update_id, note } => {
                let update = self.pending(update_id)?;
                self.conflicts(update.base_version, &update.paths)?;
                let patch = update.patch.clone().unwrap_or(Value::Null);
                Ok(vec![
                    ContextEvent::UpdateApproved { update_id, note },
                    self.applied(update_id, patch, AppliedVia::Approved)?,
                ])
            }
            ContextCommand::ModifyUpdate {
                update_id,
                patch,
                note,
            } => {
                let update = self.pending(update_id)?;
                let paths = validated_paths(&patch)?;
                self.conflicts(update.base_version, &paths)?;
                Ok(vec![
                    ContextEvent::UpdateModified {
                        update_id,
                        patch: patch.clone(),
                        paths,
                        note,
                    },
                    self.applied(update_id, patch, AppliedVia::Modified)?,
                ])
            }
            ContextCommand::RejectUpdate { update_id, reason } => {
                self.pending(update_id)?;
                Ok(vec![ContextEvent::UpdateRejected { update_id, reason }])
            }
            ContextCommand::WithdrawUpdate {
                update_id,
                reason,
                evidence,
            } => {
                self.pending(update_id)?;
                Ok(vec![ContextEvent::UpdateWithdrawn {
                    update_id,
                    reason,
                    evidence,
                }])
            }
            ContextCommand::RollBack {
                to_version,
                target,
                reason,
            } => {
                if to_version > self.version {
                    return Err(ContextError::NoSuchVersion(to_version));
                }
                if to_version == self.version {
                    return Err(ContextError::AlreadyAtVersion(to_version));
                }
                let target = target.ok_or(ContextError::VersionNotReadable(to_version))?;
                // Version 0, the empty document every client starts from,
                // has no event of its own to record its hash.
                let recorded = match to_version {
                    0 => Some(short_hash(&Value::Object(serde_json::Map::new()))),
                    v => self.version_hashes.get(v as usize - 1).cloned(),
                };
                if recorded.as_ref() != Some(&short_hash(&target)) {
                    return Err(ContextError::VersionMismatch(to_version));
                }
                let patch = json::patch_between(&self.document, &target);
                Ok(vec![ContextEvent::RolledBack {
                    to_version,
                    version: self.version + 1,
                    patch,
                    reason,
                    document_hash: short_hash(&target),
                }])
            }
            ContextCommand::CaptureDocument {
                key,
                title,
                source,
                content_hash,
                captured_at,
                insights,
                proposer,
            } => {
                let route = insights_route(proposer)?;
                let previous_hash = self.documents.get(key.as_str()).cloned();
                if previous_hash.as_deref() == Some(content_hash.as_str()) {
                    return Ok(Vec::new());
                }
                let mut events = vec![ContextEvent::DocumentCaptured {
                    key,
                    title,
                    source,
                    content_hash,
                    previous_hash,
                    captured_at,
                    extractor: insights.as_ref().map(|i| i.extractor.clone()),
                }];
                if let Some(insights) = insights {
                    let patch = insights.patch.into_patch();
                    let paths = validated_paths(&patch)?;
                    self.patched(&patch)?;
                    events.push(ContextEvent::UpdateProposed {
                        update_id: insights.update_id,
                        source: Source::Document,
                        patch: patch.clone(),
                        base_version: self.version,
                        rationale: insights.rationale,
                        evidence: serde_json::json!({ "extractor": insights.extractor }),
                        confidence: None,
                        paths,
                        route,
                    });
                    if route == Route::Direct {
                        events.push(self.applied(insights.update_id, patch, AppliedVia::Direct)?);
                    }
                }
                Ok(events)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn propose(
        &self,
        update_id: Uuid,
        source: Source,
        patch: Value,
        base_version: Option<u64>,
        rationale: Rationale,
        evidence: Value,
        confidence: Option<Confidence>,
        route: Route,
    ) -> Result<Vec<ContextEvent>, ContextError> {
        if self.updates.contains_key(&update_id) {
            return Err(ContextError::DuplicateUpdateId(update_id));
        }
        let paths = validated_paths(&patch)?;
        let base = base_version.unwrap_or(self.version);
        if base > self.version {
            return Err(ContextError::BaseVersionInFuture {
                base,
                current: self.version,
            });
        }
        self.patched(&patch)?;
        let patch_hash = json::hash(&patch);
        let fingerprint = json::material_fingerprint(&evidence);
        for (id, update) in &self.updates {
            if update.patch_hash != patch_hash {
                continue;
            }
            match update.status {
                UpdateStatus::Pending => return Err(ContextError::DuplicatePending(*id)),
                UpdateStatus::Rejected if update.evidence_fingerprint == fingerprint => {
                    return Err(ContextError::DuplicateOfRejected(*id))
                }
                // Only a pending update, or one rejected on the same
                // evidence, holds a proposal back: a withdrawn one never does.
                UpdateStatus::Rejected
                | UpdateStatus::Applied
                | UpdateStatus::Superseded
                | UpdateStatus::Withdrawn => {}
            }
        }
        let mut events = vec![ContextEvent::UpdateProposed {
            update_id,
            source,
            patch: patch.clone(),
            base_version: base,
            rationale,
            evidence,
            confidence,
            paths: paths.clone(),
            route,
        }];
        match route {
            Route::Review => {
                // A newer proposal from the same source for the same paths
                // replaces the older one in the queue.
                for (id, update) in &self.updates {
                    if update.status == UpdateStatus::Pending
                        && update.source == source
                        && same_paths(&update.paths, &paths)
                    {
                        events.push(ContextEvent::UpdateSuperseded {
                            update_id: *id,
                            by: update_id,
                        });
                    }
                }
            }
            Route::Direct | Route::Autopilot => {
                self.conflicts(base, &paths)?;
                let via = if route == Route::Direct {
                    AppliedVia::Direct
                } else {
                    AppliedVia::Autopilot
                };
                events.push(self.applied(update_id, patch, via)?);
            }
        }
        Ok(events)
    }

    fn record_version(&mut self, version: u64, paths: Vec<String>, document_hash: String) {
        self.version = version;
        self.version_hashes.push(document_hash);
        self.recent_changes.push(VersionChange { version, paths });
        let oldest_pending_base = self
            .updates
            .values()
            .filter(|u| u.status == UpdateStatus::Pending)
            .map(|u| u.base_version)
            .min()
            .unwrap_or(version);
        let keep_from = oldest_pending_base.min(version.saturating_sub(KEPT_CHANGES as u64));
        self.recent_changes.retain(|c| c.version > keep_from);
    }
}

fn validated_paths(patch: &Value) -> Result<Vec<String>, ContextError> {
    match patch {
        Value::Object(map) if !map.is_empty() => Ok(json::touched_paths(patch)),
        _ => Err(ContextError::PatchNotObject),
    }
}

fn same_paths(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

impl Aggregate for ClientContext {
    const TYPE: &'static str = aggregate_types::CLIENT_CONTEXT;
    type Command = ContextCommand;
    type Event = ContextEvent;
    type Error = ContextError;
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
            ContextEvent::UpdateProposed {
                update_id,
                source,
                patch,
                base_version,
                evidence,
                paths,
                ..
            } => {
                self.updates.insert(
                    update_id,
                    UpdateState {
                        status: UpdateStatus::Pending,
                        source,
                        base_version,
                        paths,
                        patch_hash: json::hash(&patch),
                        evidence_fingerprint: json::material_fingerprint(&evidence),
                        patch: Some(patch),
                    },
                );
            }
            ContextEvent::UpdateApproved { .. } => {}
            ContextEvent::UpdateModified {
                update_id, paths, ..
            } => {
                if let Some(update) = self.updates.get_mut(&update_id) {
                    update.paths = paths;
                }
            }
            ContextEvent::UpdateApplied {
                update_id,
                version,
                patch,
                document_hash,
                ..
            } => {
                json::merge_patch(&mut self.document, &patch);
                if let Some(update) = self.updates.get_mut(&update_id) {
                    update.status = UpdateStatus::Applied;
                    update.patch = None;
                }
                self.record_version(version, json::touched_paths(&patch), document_hash);
            }
            ContextEvent::UpdateRejected { update_id, .. } => {
                if let Some(update) = self.updates.get_mut(&update_id) {
                    update.status = UpdateStatus::Rejected;
                    update.patch = None;
                }
            }
            ContextEvent::UpdateSuperseded { update_id, .. } => {
                if let Some(update) = self.updates.get_mut(&update_id) {
                    update.status = UpdateStatus::Superseded;
                    update.patch = None;
                }
            }
            ContextEvent::UpdateWithdrawn { update_id, .. } => {
                if let Some(update) = self.updates.get_mut(&update_id) {
                    update.status = UpdateStatus::Withdrawn;
                    update.patch = None;
                }
            }
            ContextEvent::RolledBack {
                version,
                patch,
                document_hash,
                ..
            } => {
                json::merge_patch(&mut self.document, &patch);
                self.record_version(version, json::touched_paths(&patch), document_hash);
            }
            ContextEvent::DocumentCaptured {
                key, content_hash, ..
            } => {
                self.documents.insert(key.into(), content_hash);
            }
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod name_tests {
    use super::{AppliedVia, UpdateStatus};

    #[test]
    fn statuses_and_ways_of_applying_are_named_as_they_serialize() {
        for status in [
            UpdateStatus::Pending,
            UpdateStatus::Applied,
            UpdateStatus::Rejected,
            UpdateStatus::Superseded,
            UpdateStatus::Withdrawn,
        ] {
            assert_eq!(
                serde_json::to_value(status).expect("serializes"),
                status.as_str()
            );
        }
        for via in [
            AppliedVia::Direct,
            AppliedVia::Autopilot,
            AppliedVia::Approved,
            AppliedVia::Modified,
        ] {
            assert_eq!(serde_json::to_value(via).expect("serializes"), via.as_str());
        }
    }
}
