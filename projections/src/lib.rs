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
#![forbid(unsafe_code)]

pub mod alerts;
pub mod audit;
pub mod clients;
pub mod context;
pub mod experiments;
pub mod patterns;
pub mod replay;
pub mod report_deliveries;
pub mod reports;
pub mod runtime;
pub mod sends;

pub use runtime::{Projection, ProjectionError, ProjectionName, Projector};

use std::sync::Arc;

/// The projection of that name.
pub fn projection(name: ProjectionName) -> Arc<dyn Projection> {
    match name {
        ProjectionName::Clients => Arc::new(clients::ClientsProjection),
        ProjectionName::Audit => Arc::new(audit::AuditProjection),
        ProjectionName::Context => Arc::new(context::ContextProjection),
        ProjectionName::Sends => Arc::new(sends::SendsProjection),
        ProjectionName::Patterns => Arc::new(patterns::PatternsProjection),
        ProjectionName::Experiments => Arc::new(experiments::ExperimentsProjection),
        ProjectionName::Reports => Arc::new(reports::ReportsProjection),
        ProjectionName::Alerts => Arc::new(alerts::AlertsProjection),
        ProjectionName::ReportDeliveries => Arc::new(report_deliveries::ReportDeliveriesProjection),
    }
}

/// Every projection this build knows, in [`ProjectionName::ALL`] order.
pub fn all() -> Vec<Arc<dyn Projection>> {
    ProjectionName::ALL.into_iter().map(projection).collect()
}

/// The projection named `name`, if this build has one.
pub fn by_name(name: &str) -> Option<Arc<dyn Projection>> {
    ProjectionName::parse(name).map(projection)
}
