//! Keys of the string map cqrs-es stores beside every event. The event store
//! derives its `client_id` and `command_id` columns from the first two, the
//! relay copies the rest into CloudEvents extension attributes.

use std::fmt;

use uuid::Uuid;

use crate::values::Provider;

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

/// Who caused an event, as [`ACTOR`] records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Actor {
    /// The platform operator (the operator key).
    Operator,
    /// A client's API key, by its id.
    Key(Uuid),
    /// A provider's webhook, verified by the client's secret.
    Webhook(Provider),
    /// A component of Sextant acting on its own.
    System(Component),
}

/// The parts of Sextant that act on their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    SuggestionEngine,
    AlertDetector,
    ReportPublisher,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SuggestionEngine => "suggestion-engine",
            Self::AlertDetector => "alert-detector",
            Self::ReportPublisher => "report-publisher",
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Operator => f.write_str("operator"),
            Self::Key(key_id) => write!(f, "key:{key_id}"),
            Self::Webhook(provider) => write!(f, "webhook:{}", provider.as_str()),
            Self::System(component) => write!(f, "system:{}", component.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_read_as_the_metadata_records_them() {
        assert_eq!(Actor::Operator.to_string(), "operator");
        assert_eq!(
            Actor::Key(Uuid::from_u128(1)).to_string(),
            "key:00000000-0000-0000-0000-000000000001"
        );
        assert_eq!(
            Actor::Webhook(Provider::Smartlead).to_string(),
            "webhook:smartlead"
        );
        assert_eq!(
            Actor::System(Component::SuggestionEngine).to_string(),
            "system:suggestion-engine"
        );
    }
}
