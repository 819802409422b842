//! Keys of the string map cqrs-es stores beside every event. The event store
//! derives its `client_id` and `command_id` columns from the first two, the
//! relay copies the rest into CloudEvents extension attributes.

/// The tenant the event belongs to (a UUID).
pub const CLIENT_ID: &str = "client_id";
/// One id per executed command (a UUID): finds the position of its events.
pub const COMMAND_ID: &str = "command_id";
/// Who caused it: `operator`, `key:<key id>`, `webhook:<provider>`, `system:<component>`.
pub const ACTOR: &str = "actor";
/// The request or workflow this belongs to, carried across services.
pub const CORRELATION_ID: &str = "correlation_id";
/// The event or request that directly caused this one.
pub const CAUSATION_ID: &str = "causation_id";
