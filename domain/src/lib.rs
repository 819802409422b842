//! Sextant's domain: aggregates, their commands (imperative) and events (past
//! tense), and the pure rules around them. Nothing here does I/O; everything
//! here is unit-tested with cqrs-es' given/when/then framework.
//!
//! Layout:
//! - [`alert`]: alert conditions, their rules with hysteresis, and the
//!   Alert aggregate that raises, resolves and acknowledges them.
//! - [`client`]: the tenant: profile, permission mode, consent, API keys,
//!   webhook secrets (fingerprints only), sending resources, suspension.
//! - [`context`]: the versioned context document of a client, the life of
//!   every proposed update (policy per source and permission mode, approval,
//!   modification, rejection, supersession, stale-approval conflicts),
//!   rollback, captured documents, and the views shaped for each agent.
//! - [`experiment`]: A/B experiments, deterministic assignment, conclusion.
//! - [`learning`]: the pattern families and the keys a send is counted by.
//! - [`inference`]: how the suggestion engine weighs matured evidence:
//!   adjusted estimates, always-valid tests, retraction.
//! - [`send`]: sends and outcomes, suppression and channel rules.
//! - [`stats`]: the statistics learning uses, as pure functions.
//! - [`values`]: the parsed value types shared by aggregates and the HTTP
//!   layers (parse, don't validate: a value of these types is valid).
//! - [`metadata`]: the keys every event carries in its metadata.
//! - [`report`]: a client's weekly report published once per week and
//!   delivered at most once; its recipients.
#![forbid(unsafe_code)]

pub mod alert;
pub mod client;
pub mod context;
pub mod experiment;
pub mod inference;
pub mod learning;
pub mod metadata;
pub mod report;
pub mod send;
pub mod stats;
pub mod values;

/// Aggregate type names as they appear in the `events` table, in stream
/// subjects and in CloudEvents `type`s. Stable: changing one is a migration.
pub mod aggregate_types {
    pub const CLIENT: &str = "client";
    pub const CLIENT_CONTEXT: &str = "client_context";
    pub const SEND: &str = "send";
    pub const EXPERIMENT: &str = "experiment";
    /// One event per send authorisation asked for.
    pub const AUTHORIZATION: &str = "authorization";
    /// A lead's erasure.
    pub const LEAD: &str = "lead";
    /// One client's alert condition through its episodes.
    pub const ALERT: &str = "alert";
    /// One client's weekly report: its publication and delivery.
    pub const REPORT: &str = "report";
}
