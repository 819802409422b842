//! Sextant's adapters: everything that talks to the outside world.
//!
//! - [`config`]: typed configuration: flags, else the environment, else
//!   defaults; secrets wrapped.
//! - [`service`]: what both service binaries share: command line, start-up.
//! - [`telemetry`]: tracing (pretty or JSON) and the Prometheus recorder.
//! - [`db`]: the Postgres pool, migrations, and "is the database down?".
//! - [`store`]: cqrs-es on postgres-es, command metadata, positions.
//! - [`stream`]: NATS JetStream: the stream's configuration, subjects and
//!   the CloudEvents envelope.
//! - [`relay`]: drains the outbox to JetStream, gap-safe, one active leader.
//! - [`llm`]: insight extraction through an OpenAI-compatible API, with
//!   spend limits, retries and a circuit breaker.
//! - [`mail`]: e-mail over SMTP (weekly reports), TLS by rustls.
//! - [`retry`]: the backoff policies and the circuit breaker every retry loop uses.
//! - [`keys`]: API key format, hashing and the key registry the APIs read.
//! - [`http`]: plumbing both HTTP services share: problem+json, the strict
//!   JSON extractor, request ids, positions, auth principals, health.
//! - [`memory`]: the services' allocator, and the reclaimer that returns
//!   what a burst freed (the crate's one `unsafe` call).
//! - [`webhooks`]: provider webhooks: signatures, delivery ids, mapping to sends and outcomes.
#![deny(unsafe_code)]

pub mod config;
pub mod db;
pub mod http;
pub mod keys;
pub mod llm;
pub mod mail;
pub mod memory;
pub mod relay;
pub mod retry;
pub mod secrets;
pub mod service;
pub mod store;
pub mod stream;
pub mod telemetry;
pub mod webhooks;
