//! NATS JetStream: the stream's configuration, subjects, and the CloudEvents
//! 1.0 envelope (structured JSON mode) every event travels in.
//!
//! [`RecordedEvent`] is an event as committed (a row of `events`); the relay
//! turns it into a [`CloudEvent`], projections turn it back. Replay reads
//! `RecordedEvent`s straight from Postgres, so live and replay feed the same
//! handlers the same values.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use sextant_domain::metadata;
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use crate::config::StreamSettings;

/// An event as committed in Postgres.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub global_position: i64,
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Payload,
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
    pub client_id: Option<Uuid>,
}

/// An event's payload as committed: its JSON text, parsed only into the
/// type a reader asks for. Going through a generic `Value` tree first (and
/// cloning it to deserialize) was the biggest cost of reading the stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Payload(Box<RawValue>);

impl Payload {
    /// The payload as `T`.
    pub fn parse<'a, T: Deserialize<'a>>(&'a self) -> serde_json::Result<T> {
        serde_json::from_str(self.0.get())
    }

    /// The payload as a generic JSON value (for tests and tools).
    pub fn to_value(&self) -> Value {
        self.parse().unwrap_or(Value::Null)
    }

    pub fn text(&self) -> &str {
        self.0.get()
    }
}

/// Equal when the JSON is, however it is spelled.
impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text() || self.to_value() == other.to_value()
    }
}

/// The columns [`RecordedEvent::from_row`] reads, for `SELECT`s of `events`.
pub const EVENT_COLUMNS: &str = "e.global_position, e.event_id, e.aggregate_type, e.aggregate_id, \
     e.sequence, e.event_type, e.event_version, e.payload, e.metadata, e.recorded_at, e.client_id";

impl RecordedEvent {
    pub fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            global_position: row.try_get("global_position")?,
            event_id: row.try_get("event_id")?,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            payload: row.try_get::<sqlx::types::Json<Payload>, _>("payload")?.0,
            metadata: row.try_get("metadata")?,
            recorded_at: row.try_get("recorded_at")?,
            client_id: row.try_get("client_id")?,
        })
    }

    fn meta(&self, key: &str) -> Option<String> {
        self.metadata
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    pub fn actor(&self) -> Option<String> {
        self.meta(metadata::ACTOR)
    }

    pub fn correlation_id(&self) -> Option<String> {
        self.meta(metadata::CORRELATION_ID)
    }

    /// `<prefix>.<client_id>.<aggregate_type>.<event_type>`; events that
    /// belong to no client use `_` in the client token.
    pub fn subject(&self, prefix: &str) -> String {
        let client = self
            .client_id
            .map(|c| c.to_string())
            .unwrap_or_else(|| "_".into());
        format!(
            "{prefix}.{client}.{}.{}",
            self.aggregate_type, self.event_type
        )
    }

    pub fn to_cloud_event(&self) -> CloudEvent {
        let client = self
            .client_id
            .map(|c| c.to_string())
            .unwrap_or_else(|| "_".into());
        CloudEvent {
            specversion: "1.0".into(),
            id: self.event_id,
            event_type: format!(
                "sextant.{}.{}.v{}",
                self.aggregate_type, self.event_type, self.event_version
            ),
            source: format!(
                "/clients/{client}/{}/{}",
                self.aggregate_type, self.aggregate_id
            ),
            subject: self.aggregate_id.clone(),
            time: self.recorded_at,
            datacontenttype: "application/json".into(),
            data: self.payload.clone(),
            sextantposition: self.global_position,
            sextantsequence: self.sequence,
            sextantclient: self.client_id,
            sextantactor: self.actor(),
            sextantcorrelation: self.correlation_id(),
            sextantcausation: self.meta(metadata::CAUSATION_ID),
            sextantaggregate: self.aggregate_type.clone(),
            sextanteventtype: self.event_type.clone(),
            sextanteventversion: self.event_version.clone(),
        }
    }
}

/// CloudEvents 1.0, structured JSON mode, with Sextant's extension
/// attributes (lower-case alphanumerics, as the spec requires).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub source: String,
    pub subject: String,
    pub time: DateTime<Utc>,
    pub datacontenttype: String,
    pub data: Payload,
    pub sextantposition: i64,
    pub sextantsequence: i64,
    pub sextantclient: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sextantactor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sextantcorrelation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sextantcausation: Option<String>,
    pub sextantaggregate: String,
    pub sextanteventtype: String,
    pub sextanteventversion: String,
}

impl CloudEvent {
    /// Back to the committed form. The metadata map is rebuilt from the
    /// extension attributes (the only metadata projections may rely on).
    pub fn into_recorded(self) -> RecordedEvent {
        let mut meta = serde_json::Map::new();
        let mut put = |key: &str, value: Option<String>| {
            if let Some(v) = value {
                meta.insert(key.to_owned(), Value::String(v));
            }
        };
        put(
            metadata::CLIENT_ID,
            self.sextantclient.map(|c| c.to_string()),
        );
        put(metadata::ACTOR, self.sextantactor);
        put(metadata::CORRELATION_ID, self.sextantcorrelation);
        put(metadata::CAUSATION_ID, self.sextantcausation);
        RecordedEvent {
            global_position: self.sextantposition,
            event_id: self.id,
            aggregate_type: self.sextantaggregate,
            aggregate_id: self.subject,
            sequence: self.sextantsequence,
            event_type: self.sextanteventtype,
            event_version: self.sextanteventversion,
            payload: self.data,
            metadata: Value::Object(meta),
            recorded_at: self.time,
            client_id: self.sextantclient,
        }
    }
}

/// Connects to NATS without waiting for it: the client keeps reconnecting in
/// the background, so a service starts (and degrades) while NATS is down.
pub async fn connect(url: &str) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .name("sextant")
        .connect(url)
        .await
}

pub fn jetstream(client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(5))
        .build(client)
}

/// The stream's configuration: file storage, every subject under the prefix,
/// no expiry (the stream is a log, not a cache), a duplicate window well
/// above the relay's worst retry time.
pub fn stream_config(settings: &StreamSettings) -> stream::Config {
    stream::Config {
        name: settings.name.clone(),
        subjects: vec![format!("{}.>", settings.subject_prefix)],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        max_age: Duration::ZERO,
        max_messages: -1,
        max_bytes: -1,
        duplicate_window: settings.duplicate_window,
        allow_direct: true,
        ..Default::default()
    }
}

/// A stream's description names the event store it belongs to. (Stream
/// metadata would be the natural place, but needs nats-server 2.10; the
/// description works on every server with JetStream.)
const OWNER_PREFIX: &str = "sextant event store ";

fn owner_of(description: Option<&str>) -> Option<&str> {
    description.and_then(|d| d.strip_prefix(OWNER_PREFIX))
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("stream {stream} belongs to event store {owner}, not to this one ({ours}); give this store its own stream (SEXTANT_STREAM, SEXTANT_SUBJECT_PREFIX)")]
    Foreign {
        stream: String,
        owner: String,
        ours: Uuid,
    },
    #[error("jetstream: {0}")]
    JetStream(String),
}

fn js_error(err: impl std::fmt::Display) -> StreamError {
    StreamError::JetStream(err.to_string())
}

/// Creates the stream stamped (in its description) with `store_id`, or brings an existing one to
/// our configuration, refusing one that another event store stamped.
pub async fn ensure_stream(
    js: &jetstream::Context,
    settings: &StreamSettings,
    store_id: Uuid,
) -> Result<stream::Stream, StreamError> {
    let mut config = stream_config(settings);
    config.description = Some(format!("{OWNER_PREFIX}{store_id}"));
    for _ in 0..3 {
        match js.get_stream(&settings.name).await {
            Ok(mut existing) => {
                let info = existing.info().await.map_err(js_error)?;
                if let Some(owner) = owner_of(info.config.description.as_deref()) {
                    if owner != store_id.to_string() {
                        return Err(StreamError::Foreign {
                            stream: settings.name.clone(),
                            owner: owner.to_owned(),
                            ours: store_id,
                        });
                    }
                }
                js.update_stream(&config).await.map_err(js_error)?;
                return js.get_stream(&settings.name).await.map_err(js_error);
            }
            // Several processes start at once: whoever loses the race to
            // create the stream goes round again and finds the winner's.
            Err(_) => {
                if js.create_stream(config.clone()).await.is_ok() {
                    return js.get_stream(&settings.name).await.map_err(js_error);
                }
            }
        }
    }
    Err(StreamError::JetStream(format!(
        "could neither find nor create stream {}",
        settings.name
    )))
}

/// Where the stream ends: its last sequence, and the position of the event
/// stored there (0 when it holds none: never written, or purged, for the
/// last sequence stays after a purge).
pub async fn stream_end(stream: &mut stream::Stream) -> Result<(u64, i64), anyhow::Error> {
    let state = &stream.info().await?.state;
    let (last, messages) = (state.last_sequence, state.messages);
    if last == 0 || messages == 0 {
        return Ok((last, 0));
    }
    let message = stream.get_raw_message(last).await?;
    let event: CloudEvent = serde_json::from_slice(&message.payload)?;
    Ok((last, event.sextantposition))
}
