//! `sextant events tail`: follows the JetStream stream as a downstream
//! service would, through an ephemeral ordered consumer (nothing is left on
//! the server when it stops), filtered by subject
//! (`<prefix>.<client>.<aggregate>.<event>`), one CloudEvent (JSON) per
//! line on stdout.
//!
//! Without `--since` it starts with the events that arrive after it
//! started. `--since POSITION` starts at the first event at or after that
//! global position, `--since TIME` at the first recorded at or after that
//! time: the stream is in position order, so the first such message is
//! found by bisecting the stream's sequences.

use std::io::Write;

use async_nats::jetstream::{self, consumer, stream::Stream};
use futures::StreamExt;
use serde_json::Value;

use crate::config::Settings;
use crate::error::{CliError, Result};

pub struct Tail {
    pub client: Option<String>,
    pub types: Vec<String>,
    pub since: Option<String>,
    pub limit: Option<u64>,
    pub subject_prefix: Option<String>,
}

enum Since {
    Position(i64),
    Time(chrono::DateTime<chrono::Utc>),
}

fn parse_since(since: &str) -> Result<Since> {
    if let Ok(p) = since.parse::<i64>() {
        return Ok(Since::Position(p));
    }
    chrono::DateTime::parse_from_rfc3339(since)
        .map(|t| Since::Time(t.with_timezone(&chrono::Utc)))
        .map_err(|_| {
            CliError::Usage(format!(
                "--since {since}: give a global position (a number) or an RFC 3339 time"
            ))
        })
}

/// The subjects to follow.
pub fn filter_subjects(prefix: &str, client: Option<&str>, types: &[String]) -> Vec<String> {
    let client = client.unwrap_or("*");
    if types.is_empty() {
        return vec![format!("{prefix}.{client}.>")];
    }
    types
        .iter()
        .map(|t| match t.split_once('.') {
            Some((aggregate, event)) => format!("{prefix}.{client}.{aggregate}.{event}"),
            None => format!("{prefix}.{client}.*.{t}"),
        })
        .collect()
}

pub async fn run(settings: &Settings, tail: Tail) -> Result<()> {
    let since = tail.since.as_deref().map(parse_since).transpose()?;
    let unreachable = |e: &dyn std::fmt::Display| CliError::Unreachable {
        what: "NATS",
        url: settings.nats_url.clone(),
        reason: e.to_string(),
    };
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(std::time::Duration::from_secs(5))
        .connect(settings.nats_url.as_str())
        .await
        .map_err(|e| unreachable(&e))?;
    let js = jetstream::new(client);
    let mut stream = js.get_stream(&settings.stream).await.map_err(|e| {
        CliError::failed(format!(
            "no stream {} on {}: {e} (set --stream / SEXTANT_STREAM)",
            settings.stream, settings.nats_url
        ))
    })?;
    let info = stream
        .info()
        .await
        .map_err(|e| CliError::failed(format!("cannot read the stream: {e}")))?
        .clone();
    let prefix = match tail.subject_prefix {
        Some(p) => p,
        None => info
            .config
            .subjects
            .iter()
            .find_map(|s| s.strip_suffix(".>"))
            .map(str::to_owned)
            .ok_or_else(|| {
                CliError::Usage(
                    "the stream's subjects are not `<prefix>.>`: pass --subject-prefix".into(),
                )
            })?,
    };
    let subjects = filter_subjects(&prefix, tail.client.as_deref(), &tail.types);

    let deliver_policy = match &since {
        None => consumer::DeliverPolicy::New,
        Some(since) => {
            let first = info.state.first_sequence;
            let last = info.state.last_sequence;
            match first_at_or_after(&stream, first, last, since).await {
                Some(start_sequence) => consumer::DeliverPolicy::ByStartSequence { start_sequence },
                None => consumer::DeliverPolicy::New,
            }
        }
    };
    let mut config = consumer::pull::OrderedConfig {
        deliver_policy,
        ..Default::default()
    };
    if subjects.len() == 1 {
        config.filter_subject = subjects[0].clone();
    } else {
        config.filter_subjects = subjects.clone();
    }
    let consumer = stream
        .create_consumer(config)
        .await
        .map_err(|e| CliError::failed(format!("cannot follow the stream: {e}")))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| CliError::failed(format!("cannot follow the stream: {e}")))?;
    // Said once the consumer exists: from here on nothing is missed.
    eprintln!("following {} ({})", settings.stream, subjects.join(", "));

    let min_position = match since {
        Some(Since::Position(p)) => p,
        _ => i64::MIN,
    };
    let mut seen = 0u64;
    let mut stdout = std::io::stdout();
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        if tail.limit.is_some_and(|limit| seen >= limit) {
            return Ok(());
        }
        let message = tokio::select! {
            _ = &mut stop => return Ok(()),
            message = messages.next() => message,
        };
        let Some(message) = message else {
            return Err(CliError::failed("the stream ended"));
        };
        let message =
            message.map_err(|e| CliError::failed(format!("reading the stream failed: {e}")))?;
        let payload: Value = match serde_json::from_slice(&message.payload) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if payload["sextantposition"].as_i64().unwrap_or(i64::MAX) < min_position {
            continue;
        }
        let line = serde_json::to_string(&payload)
            .map_err(|e| CliError::failed(format!("cannot print an event: {e}")))?;
        writeln!(stdout, "{line}")
            .and_then(|_| stdout.flush())
            .map_err(|e| CliError::failed(format!("cannot write to stdout: {e}")))?;
        seen += 1;
    }
}

/// The first stream sequence in `first..=last` whose event is at or after
/// `since` (None: none is).
async fn first_at_or_after(stream: &Stream, first: u64, last: u64, since: &Since) -> Option<u64> {
    if last == 0 || last < first {
        return None;
    }
    let (mut lo, mut hi) = (first, last + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let before = match stream.get_raw_message(mid).await {
            Ok(m) => is_before(&m.payload, since),
            // A deleted message: look further on.
            Err(_) => true,
        };
        if before {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    (lo <= last).then_some(lo)
}

fn is_before(payload: &[u8], since: &Since) -> bool {
    let Ok(event) = serde_json::from_slice::<Value>(payload) else {
        return true;
    };
    match since {
        Since::Position(p) => event["sextantposition"].as_i64().is_some_and(|x| x < *p),
        Since::Time(t) => event["time"]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .is_some_and(|x| x < *t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_prefix_client_aggregate_event_layout() {
        assert_eq!(
            filter_subjects("p.events", Some("c1"), &[]),
            vec!["p.events.c1.>"]
        );
        assert_eq!(
            filter_subjects(
                "p.events",
                None,
                &["send_recorded".into(), "context.update_proposed".into()]
            ),
            vec![
                "p.events.*.*.send_recorded",
                "p.events.*.context.update_proposed"
            ]
        );
    }
}
