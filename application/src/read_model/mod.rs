//! Read queries: what the query API shows, some of which the command API
//! decides on too (an experiment is concluded on its results, the
//! suggestion engine proposes platform patterns). They read read models
//! only, never aggregates.
//!
//! - [`alerts`]: a client's alerts, every client's alerts.
//! - [`clients`]: the client list, one client's detail, its audit trail
//!   (filtered by actor, event type and time).
//! - [`context`]: the context document now or in the past, its versions,
//!   the approval queue of a client or of every client, one update.
//! - [`experiments`]: a client's experiments; an experiment with each
//!   variant's counts and the decision rule's verdict; its variants, for
//!   assignment.
//! - [`patterns`]: a client's own pattern tables.
//! - [`platform`]: the pooled pattern tables of consenting clients.
//! - [`sends`]: the suppression list, the sends with their outcomes (a
//!   lead's personal data only for the operator and admin keys), the
//!   dead-lettered webhook deliveries.
//! - `paging`: how a keyset query's rows become a page and its cursor.

pub mod alerts;
pub mod clients;
pub mod context;
pub mod experiments;
mod paging;
pub mod patterns;
pub mod platform;
pub mod sends;
