//! Sextant's use cases: everything between an HTTP request that has been
//! parsed and authenticated, and storage. Each use case takes typed input,
//! returns a typed result or an [`ApiError`], and owns its SQL; the HTTP
//! handlers of `command-api` and `query-api` only parse, call and render.
//!
//! One module per bounded context:
//!
//! - [`clients`]: registration, profile, API keys, webhook secrets, sending
//!   resources, suspension.
//! - [`context`]: context updates and their review, rollback, documents.
//! - [`insights`]: the values a document's insights put into the context,
//!   kept by reference out of the log, erasable.
//! - [`sends`]: batched ingest of sends and outcomes, send authorisation,
//!   erasure of a lead's personal data.
//! - [`webhooks`]: provider deliveries: verified, deduplicated, mapped onto
//!   the ingest path or dead-lettered.
//! - [`learning`]: the suggestion engine and the schedule that runs it.
//! - [`experiments`]: create an experiment, conclude it on its numbers.
//! - [`platform`]: platform practices applied to consenting clients.
//! - [`alerts`]: the alert detector and its schedule, acknowledgement.
//! - [`delivery`]: weekly reports published once per client-week on
//!   Monday morning in the client's zone, and e-mailed with retries.
//! - [`read_model`]: read queries: everything the query API answers, and
//!   what the command API decides on too (experiment results, platform
//!   tables).
//!
//! [`App`] holds what the use cases share: the pool, the command stores of
//! the aggregates cqrs-es runs, and the LLM client. [`Caller`] says who acts
//! and as part of what; every event a use case writes carries both. For a
//! caller of the HTTP APIs it also holds the key, whose role the rules of
//! the use cases weigh (who may change the context without review; what a
//! suspended client's keys may still do).
#![forbid(unsafe_code)]

pub mod alerts;
pub mod clients;
pub mod context;
pub mod delivery;
pub mod experiments;
pub mod insights;
pub mod learning;
pub mod platform;
pub mod read_model;
pub mod reports;
pub mod sends;
pub mod webhooks;

use std::sync::Arc;

use sextant_adapters::http::{Principal, Problem};
use sextant_adapters::llm::LlmClient;
use sextant_adapters::secrets::SecretsKey;
use sextant_adapters::store::{CommandMeta, CommandStore, Committed, Writer};
use sextant_domain::client::Client;
use sextant_domain::context::{ClientContext, Proposer};
use sextant_domain::experiment::Experiment;
use sextant_domain::metadata::Actor;
use sextant_domain::values::{ClientStatus, Role};
use sqlx::PgPool;
use uuid::Uuid;

pub use sextant_adapters::http::{ApiError, DomainRefusal};

/// What every use case answers.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// ClientContext histories grow without bound: a snapshot every this many
/// events keeps loading flat.
const CONTEXT_SNAPSHOT_EVERY: usize = 25;

/// What the use cases share. Cheap to clone.
#[derive(Clone)]
pub struct App {
    pub pool: PgPool,
    pub clients: Arc<CommandStore<Client>>,
    pub context: Arc<CommandStore<ClientContext>>,
    pub experiments: Arc<CommandStore<Experiment>>,
    pub alerts: Arc<CommandStore<sextant_domain::alert::Alert>>,
    pub reports: Arc<CommandStore<sextant_domain::report::Report>>,
    /// E-mails weekly reports; `None`: they are published, not e-mailed.
    pub mailer: Option<Arc<sextant_adapters::mail::Mailer>>,
    /// `None`: documents are read by the deterministic extractor, offline.
    pub llm: Option<Arc<LlmClient>>,
    /// Seals webhook secrets at rest; `None`: none can be set or verified.
    pub secrets_key: Option<SecretsKey>,
}

impl App {
    pub fn new(pool: PgPool, llm: Option<LlmClient>) -> Self {
        Self {
            clients: CommandStore::new(pool.clone(), ()),
            context: CommandStore::with_snapshots(pool.clone(), (), CONTEXT_SNAPSHOT_EVERY),
            experiments: CommandStore::new(pool.clone(), ()),
            alerts: CommandStore::new(pool.clone(), ()),
            reports: CommandStore::new(pool.clone(), ()),
            mailer: None,
            llm: llm.map(Arc::new),
            secrets_key: None,
            pool,
        }
    }

    /// With the key that seals webhook secrets (`SEXTANT_SECRETS_KEY`).
    pub fn with_secrets_key(self, secrets_key: Option<SecretsKey>) -> Self {
        Self {
            secrets_key,
            ..self
        }
    }

    /// With the mail server weekly reports are e-mailed through.
    pub fn with_mailer(self, mailer: Option<sextant_adapters::mail::Mailer>) -> Self {
        Self {
            mailer: mailer.map(Arc::new),
            ..self
        }
    }

    /// The client, which must exist. Read from its aggregate, not a
    /// projection: policies must see the client as it is now.
    pub async fn registered_client(&self, client_id: Uuid) -> Result<Client> {
        let client = self.clients.load(&client_id.to_string()).await?;
        if client.is_registered() {
            Ok(client)
        } else {
            Err(Problem::client_not_found().into())
        }
    }

    /// The client, which must exist and which `caller` may change
    /// ([`Caller::may_change`]).
    pub async fn changeable_client(&self, client_id: Uuid, caller: &Caller) -> Result<Client> {
        let client = self.registered_client(client_id).await?;
        caller.may_change(&client)?;
        Ok(client)
    }
}

/// Who acts, and as part of what (the correlation id of the request or
/// workflow).
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    pub correlation_id: String,
    /// The authenticated key of a caller of the HTTP APIs, whose role the
    /// use cases' own rules weigh; `None` for Sextant's own workflows and
    /// provider webhooks.
    pub principal: Option<Principal>,
}

impl Caller {
    pub fn new(actor: Actor, correlation_id: impl Into<String>) -> Self {
        Self {
            actor,
            correlation_id: correlation_id.into(),
            principal: None,
        }
    }

    /// An authenticated caller of the HTTP APIs.
    pub fn principal(principal: &Principal, correlation_id: impl Into<String>) -> Self {
        Self {
            principal: Some(principal.clone()),
            ..Self::new(principal.actor(), correlation_id)
        }
    }

    /// Who proposes, for the context ledger's permission rule.
    pub fn proposer(&self) -> Proposer {
        match (&self.principal, self.actor) {
            (Some(Principal::Operator), _) | (None, Actor::Operator) => Proposer::Operator,
            (Some(Principal::Key { role, .. }), _) => Proposer::Key(*role),
            (None, Actor::System(_)) => Proposer::System,
            // A key whose role is not known, or a webhook: the least a key
            // may do.
            (None, Actor::Key(_) | Actor::Webhook(_)) => Proposer::Key(Role::Reader),
        }
    }

    /// A suspended client's keys may not change its context or issue keys
    /// (403); the operator, and Sextant itself, still may.
    pub fn may_change(&self, client: &Client) -> Result<()> {
        let key = matches!(self.proposer(), Proposer::Key(_));
        if key && client.status() == ClientStatus::Suspended {
            return Err(Problem::forbidden(
                "the client is suspended: its keys may not change its context or issue keys \
                 until the operator reactivates it",
            )
            .into());
        }
        Ok(())
    }

    /// Metadata of a command on one of `client_id`'s aggregates.
    pub fn meta(&self, client_id: Uuid) -> CommandMeta {
        CommandMeta::new(client_id, self.actor, self.correlation_id.clone())
    }

    /// Metadata of events appended outside cqrs-es.
    pub fn writer(&self, client_id: Uuid) -> Writer {
        Writer {
            client_id,
            actor: self.actor,
            correlation_id: self.correlation_id.clone(),
        }
    }
}

/// Executes `command` on the client-keyed aggregate of `store` (its id is
/// the client's) on behalf of `caller`.
pub(crate) async fn execute<A>(
    store: &CommandStore<A>,
    client_id: Uuid,
    caller: &Caller,
    command: A::Command,
) -> Result<Committed<A::Event>>
where
    A: cqrs_es::Aggregate,
    A::Command: Clone,
    A::Error: DomainRefusal,
{
    Ok(store
        .execute(&client_id.to_string(), command, &caller.meta(client_id))
        .await?)
}
