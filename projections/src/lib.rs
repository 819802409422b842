//! Sextant's read side: projections that turn the event stream into read
//! models, the runtime that feeds them, and replay.
//!
//! - [`runtime`]: the [`Projection`] trait, the live projector (one durable
//!   JetStream pull consumer per group of projections; read model and checkpoint in one
//!   transaction; ack after commit; redeliveries skipped by position) and
//!   poison-event parking.
//! - [`replay`]: rebuilds a projection from the `events` table into shadow
//!   tables and swaps them in while queries keep serving; checksums of read
//!   models, so tests can prove replay equals live.
//! - [`clients`], [`audit`], [`context`], [`sends`], [`patterns`]: the
//!   projections.
//! - [`platform`]: cross-client patterns of consenting clients, pooled.
//! - [`suggestions`]: the suggestion engine, proposing context updates from
//!   significant patterns through commands.
#![forbid(unsafe_code)]

pub mod audit;
pub mod clients;
pub mod context;
pub mod experiments;
pub mod patterns;
pub mod platform;
pub mod replay;
pub mod runtime;
pub mod sends;
pub mod suggestions;

pub use runtime::{Projection, ProjectionError, Projector};

use std::sync::Arc;

/// Every projection this build knows, by name.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(clients::ClientsProjection),
        Arc::new(audit::AuditProjection),
        Arc::new(context::ContextProjection),
        Arc::new(sends::SendsProjection),
        Arc::new(patterns::PatternsProjection),
        Arc::new(experiments::ExperimentsProjection),
    ]
}

pub fn by_name(name: &str) -> Option<Arc<dyn Projection>> {
    all().into_iter().find(|p| p.name() == name)
}
