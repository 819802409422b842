//! Alerts: the detector that looks at every client's conditions and raises
//! or resolves their alerts, its schedule, and acknowledgement.
//!
//! The detector reads what the rules of `sextant_domain::alert` judge (the
//! sends and outcomes read models, the pattern cohorts, the approval queue,
//! LLM spend), and writes only through the Alert aggregate: a condition
//! that holds is raised unless its alert is open, one that cleared resolves
//! the open alert, one in between the two thresholds changes nothing. The
//! aggregate's id comes from the client and the condition, so replicas
//! running the detector at once converge on one alert: the second writer
//! loses the optimistic-concurrency race, decides again against the first
//! one's event and is refused (already open).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use sextant_adapters::http::Problem;
use sextant_adapters::store::{CommandError, CommandMeta};
use sextant_domain::alert::{
    condition_id, condition_key, no_sends_signal, rate_signal, reply_rate_signal, stale_signal,
    AlertCommand, AlertError, AlertEvent, Condition, Signal, Thresholds,
};
use sextant_domain::metadata::{Actor, Component};
use sextant_domain::values::Note;

use crate::read_model::clients::{client_settings, AlertLimitsRow};
use crate::{ApiError, App, Caller, Result};

/// How far back a resource's last sends are looked for: a resource idle
/// longer than this is judged on nothing (its alerts resolve).
const RESOURCE_LOOKBACK_DAYS: i64 = 90;
/// Resources are found among this many of a client's latest sends, beside
/// the resources it registered.
const RECENT_SENDS_FOR_RESOURCES: i64 = 5000;

/// One condition as the detector sees it for one client now.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub condition: Condition,
    pub subject: String,
    pub signal: Signal,
    pub evidence: Value,
}

impl Observation {
    fn key(&self) -> String {
        condition_key(self.condition, &self.subject)
    }
}

/// An alert the detector raised or resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub client_id: Uuid,
    pub alert_id: Uuid,
    pub condition: Condition,
    pub subject: String,
}

/// What one run of the detector did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Detection {
    pub raised: Vec<Change>,
    pub resolved: Vec<Change>,
    /// The log's head after the run: every change is at or below it.
    pub position: i64,
}

/// An alert that is open now, as the event log says.
#[derive(Debug, Clone)]
struct OpenAlert {
    key: String,
}

/// Every open alert, by client: the latest raise-or-resolve event of each
/// Alert aggregate is a raise.
async fn open_alerts(pool: &PgPool) -> Result<HashMap<Uuid, Vec<OpenAlert>>, sqlx::Error> {
    let rows: Vec<(Option<Uuid>, String, Value)> = sqlx::query_as(
        "SELECT client_id, event_type, payload FROM ( \
           SELECT DISTINCT ON (aggregate_id) client_id, event_type, payload FROM events \
           WHERE aggregate_type = $1 AND event_type IN ('alert_raised', 'alert_resolved') \
           ORDER BY aggregate_id, sequence DESC) latest \
         WHERE event_type = 'alert_raised'",
    )
    .bind(sextant_domain::aggregate_types::ALERT)
    .fetch_all(pool)
    .await?;
    let mut open: HashMap<Uuid, Vec<OpenAlert>> = HashMap::new();
    for (client, _, payload) in rows {
        let (Some(client), Some(key)) = (client, payload.get("key").and_then(Value::as_str)) else {
            continue;
        };
        open.entry(client).or_default().push(OpenAlert {
            key: key.to_owned(),
        });
    }
    Ok(open)
}

/// The detector: the rules' thresholds and the LLM spend limit it judges
/// spend against (none when no LLM is configured).
pub struct Detector {
    app: App,
    thresholds: Thresholds,
}

impl Detector {
    pub fn new(app: &App, thresholds: Thresholds) -> Self {
        Self {
            app: app.clone(),
            thresholds,
        }
    }

    /// Looks at every client once, as of `now`.
    pub async fn detect(&self, now: DateTime<Utc>) -> Result<Detection> {
        let clients: Vec<(Uuid, String, AlertLimitsRow)> = sqlx::query_as(
            "SELECT client_id, status, bounce_alert_rate, complaint_alert_rate \
             FROM clients_view ORDER BY client_id",
        )
        .fetch_all(&self.app.pool)
        .await?
        .into_iter()
        .map(|(client, status, bounce_rate, complaint_rate)| {
            let limits = AlertLimitsRow {
                bounce_rate,
                complaint_rate,
            };
            (client, status, limits)
        })
        .collect();
        let mut open = open_alerts(&self.app.pool).await?;
        let mut detection = Detection::default();
        for (client, status, limits) in clients {
            let open = open.remove(&client).unwrap_or_default();
            let thresholds = self.thresholds.with_limits(limits.limits()?);
            match self
                .detect_for(client, status == "active", &thresholds, &open, now)
                .await
            {
                Ok((raised, resolved)) => {
                    detection.raised.extend(raised);
                    detection.resolved.extend(resolved);
                }
                Err(err) => {
                    tracing::warn!(%client, error = %err, "alert detection failed");
                }
            }
        }
        detection.position = sextant_adapters::db::head_position(&self.app.pool).await?;
        Ok(detection)
    }

    async fn detect_for(
        &self,
        client_id: Uuid,
        active: bool,
        thresholds: &Thresholds,
        open: &[OpenAlert],
        now: DateTime<Utc>,
    ) -> Result<(Vec<Change>, Vec<Change>), anyhow::Error> {
        let observations = self.observe(client_id, active, thresholds, now).await?;
        let open_keys: HashSet<&str> = open.iter().map(|a| a.key.as_str()).collect();
        let mut raised = Vec::new();
        let mut resolved = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for observation in &observations {
            let key = observation.key();
            seen.insert(key.clone());
            match observation.signal {
                Signal::Raise if !open_keys.contains(key.as_str()) => {
                    raised.extend(self.raise(client_id, observation).await?);
                }
                Signal::Clear if open_keys.contains(key.as_str()) => {
                    resolved.extend(
                        self.resolve(client_id, &key, observation.evidence.clone())
                            .await?,
                    );
                }
                _ => {}
            }
        }
        // An open alert whose condition is no longer observed at all (the
        // suggestion was decided, the resource sends no more) has cleared.
        for alert in open.iter().filter(|a| !seen.contains(&a.key)) {
            let evidence =
                json!({ "cleared_because": "the condition is no longer observed", "at": now });
            resolved.extend(self.resolve(client_id, &alert.key, evidence).await?);
        }
        Ok((raised, resolved))
    }

    fn meta(client_id: Uuid, aggregate: Uuid) -> CommandMeta {
        CommandMeta::new(
            client_id,
            Actor::System(Component::AlertDetector),
            format!("alert:{aggregate}"),
        )
    }

    async fn raise(
        &self,
        client_id: Uuid,
        observation: &Observation,
    ) -> Result<Option<Change>, anyhow::Error> {
        let aggregate = condition_id(client_id, &observation.key());
        let command = AlertCommand::Raise {
            client_id,
            condition: observation.condition,
            subject: observation.subject.clone(),
            evidence: observation.evidence.clone(),
        };
        match self
            .app
            .alerts
            .execute(
                &aggregate.to_string(),
                command,
                &Self::meta(client_id, aggregate),
            )
            .await
        {
            Ok(committed) => Ok(committed.events.into_iter().find_map(|e| match e {
                AlertEvent::AlertRaised {
                    alert_id,
                    condition,
                    subject,
                    ..
                } => Some(Change {
                    client_id,
                    alert_id,
                    condition,
                    subject,
                }),
                _ => None,
            })),
            // Another replica raised it first.
            Err(CommandError::Rejected(AlertError::AlreadyOpen)) => Ok(None),
            Err(e) => Err(anyhow::anyhow!("{e}")),
        }
    }

    async fn resolve(
        &self,
        client_id: Uuid,
        key: &str,
        evidence: Value,
    ) -> Result<Option<Change>, anyhow::Error> {
        let aggregate = condition_id(client_id, key);
        match self
            .app
            .alerts
            .execute(
                &aggregate.to_string(),
                AlertCommand::Resolve { evidence },
                &Self::meta(client_id, aggregate),
            )
            .await
        {
            Ok(committed) => Ok(committed.events.into_iter().find_map(|e| match e {
                AlertEvent::AlertResolved {
                    alert_id,
                    condition,
                    subject,
                    ..
                } => Some(Change {
                    client_id,
                    alert_id,
                    condition,
                    subject,
                }),
                _ => None,
            })),
            // Another replica resolved it first.
            Err(CommandError::Rejected(AlertError::NotOpen)) => Ok(None),
            Err(e) => Err(anyhow::anyhow!("{e}")),
        }
    }

    /// Every condition of one client as of `now`.
    pub async fn observe(
        &self,
        client_id: Uuid,
        active: bool,
        thresholds: &Thresholds,
        now: DateTime<Utc>,
    ) -> Result<Vec<Observation>, anyhow::Error> {
        let mut observations = self.resources(client_id, thresholds, now).await?;
        observations.extend(self.reply_rate(client_id, now).await?);
        observations.extend(self.pending_updates(client_id, now).await?);
        if active {
            observations.extend(self.silence(client_id, now).await?);
        }
        observations.extend(self.llm_spend(client_id, now).await?);
        Ok(observations)
    }

    /// Bounce and complaint rates of each sending resource over its last
    /// sends, against the client's own limits (`t`).
    async fn resources(
        &self,
        client_id: Uuid,
        t: &Thresholds,
        now: DateTime<Utc>,
    ) -> Result<Vec<Observation>, anyhow::Error> {
        let since = now - chrono::Duration::days(RESOURCE_LOOKBACK_DAYS);
        let resources: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT resource FROM ( \
               (SELECT resource FROM sends_view WHERE client_id = $1 AND resource IS NOT NULL \
                ORDER BY sent_at DESC LIMIT $2) \
               UNION ALL SELECT lower(address) FROM client_resources WHERE client_id = $1) r",
        )
        .bind(client_id)
        .bind(RECENT_SENDS_FOR_RESOURCES)
        .fetch_all(&self.app.pool)
        .await?;
        if resources.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT r.resource, count(*), \
               count(*) FILTER (WHERE EXISTS (SELECT 1 FROM send_outcomes o \
                 WHERE o.send_id = s.send_id AND o.kind = 'bounced')), \
               count(*) FILTER (WHERE EXISTS (SELECT 1 FROM send_outcomes o \
                 WHERE o.send_id = s.send_id AND o.kind = 'bounced' AND o.bounce_type = 'hard')), \
               count(*) FILTER (WHERE EXISTS (SELECT 1 FROM send_outcomes o \
                 WHERE o.send_id = s.send_id AND o.kind = 'complained')) \
             FROM unnest($2::text[]) AS r(resource) \
             CROSS JOIN LATERAL (SELECT send_id FROM sends_view \
               WHERE client_id = $1 AND resource = r.resource AND sent_at <= $3 AND sent_at > $4 \
               ORDER BY sent_at DESC LIMIT $5) s \
             GROUP BY r.resource",
        )
        .bind(client_id)
        .bind(&resources)
        .bind(now)
        .bind(since)
        .bind(t.resource_window as i64)
        .fetch_all(&self.app.pool)
        .await?;
        let mut observations = Vec::new();
        for (resource, sends, bounces, hard, complaints) in rows {
            let (sends, bounces, hard, complaints) =
                (sends as u64, bounces as u64, hard as u64, complaints as u64);
            let rate = |x: u64| {
                if sends == 0 {
                    0.0
                } else {
                    x as f64 / sends as f64
                }
            };
            let evidence = |what: &str, events: u64, raise: f64, resolve: f64| {
                json!({
                    "resource": resource, "sends": sends, what: events, "rate": rate(events),
                    "hard_bounces": hard, "window": t.resource_window, "min_sends": t.resource_min_sends,
                    "raise_above": raise, "resolve_below": resolve, "at": now,
                })
            };
            observations.push(Observation {
                condition: Condition::BounceRate,
                subject: resource.clone(),
                signal: rate_signal(
                    bounces,
                    sends,
                    t.resource_min_sends,
                    t.bounce_raise,
                    t.bounce_resolve,
                ),
                evidence: evidence("bounces", bounces, t.bounce_raise, t.bounce_resolve),
            });
            observations.push(Observation {
                condition: Condition::ComplaintRate,
                subject: resource.clone(),
                signal: rate_signal(
                    complaints,
                    sends,
                    t.resource_min_sends,
                    t.complaint_raise,
                    t.complaint_resolve,
                ),
                evidence: evidence(
                    "complaints",
                    complaints,
                    t.complaint_raise,
                    t.complaint_resolve,
                ),
            });
        }
        Ok(observations)
    }

    /// The latest matured seven days of sends against the matured weeks
    /// before them: sends younger than the client's reply window are not
    /// looked at, their replies have not all come yet.
    async fn reply_rate(
        &self,
        client_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<Observation>, anyhow::Error> {
        let t = &self.thresholds;
        let Some((_, windows)) = client_settings(&self.app.pool, client_id).await? else {
            return Ok(Vec::new());
        };
        let matured_before = windows.matured_by(sextant_domain::learning::Metric::Reply, now);
        let week = chrono::Duration::days(7);
        let recent_from = matured_before - week;
        let trailing_from = recent_from - week * t.reply_trailing_weeks as i32;
        let (recent_sends, recent_replies, trailing_sends, trailing_replies): (i64, i64, i64, i64) =
            sqlx::query_as(
                "SELECT count(*) FILTER (WHERE sent_at > $3), \
                        count(replied_at) FILTER (WHERE sent_at > $3), \
                        count(*) FILTER (WHERE sent_at <= $3), \
                        count(replied_at) FILTER (WHERE sent_at <= $3) \
                 FROM pattern_sends WHERE client_id = $1 AND sent_at <= $2 AND sent_at > $4",
            )
            .bind(client_id)
            .bind(matured_before)
            .bind(recent_from)
            .bind(trailing_from)
            .fetch_one(&self.app.pool)
            .await?;
        let recent = (recent_replies as u64, recent_sends as u64);
        let trailing = (trailing_replies as u64, trailing_sends as u64);
        let (signal, z, p) = reply_rate_signal(recent, trailing, t);
        let rate = |(x, n): (u64, u64)| if n == 0 { 0.0 } else { x as f64 / n as f64 };
        Ok(vec![Observation {
            condition: Condition::ReplyRateDrop,
            subject: "client".into(),
            signal,
            evidence: json!({
                "recent": { "from": recent_from, "to": matured_before, "sends": recent.1, "replies": recent.0, "rate": rate(recent) },
                "trailing": { "from": trailing_from, "to": recent_from, "weeks": t.reply_trailing_weeks,
                              "sends": trailing.1, "replies": trailing.0, "rate": rate(trailing) },
                "z": z, "p": p, "raise_at_z": t.reply_z_raise, "resolve_above_z": t.reply_z_resolve,
                "reply_window_days": windows.reply_days,
                "method": "matured cohorts only; two-proportion z-test (pooled) of the latest matured seven days against the weeks before",
                "at": now,
            }),
        }])
    }

    /// From the approval queue: pattern-health removals and context
    /// regressions waiting for review, and updates waiting too long.
    async fn pending_updates(
        &self,
        client_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<Observation>, anyhow::Error> {
        let rows: Vec<(Uuid, String, Value, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT update_id, source, evidence, rationale, proposed_at FROM context_updates \
             WHERE client_id = $1 AND status = 'pending' ORDER BY proposed_at, update_id",
        )
        .bind(client_id)
        .fetch_all(&self.app.pool)
        .await?;
        let mut observations = Vec::new();
        for (update_id, source, evidence, rationale, proposed_at) in rows {
            let query = format!("GET /v1/clients/{client_id}/approvals");
            let text = |name: &str| {
                evidence
                    .get(name)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            if text("check").as_deref() == Some("pattern_health") {
                let subject = match (text("family"), text("key")) {
                    (Some(family), Some(key)) => format!("{family}|{key}"),
                    _ => update_id.to_string(),
                };
                observations.push(Observation {
                    condition: Condition::PatternHealth,
                    subject,
                    signal: Signal::Raise,
                    evidence: json!({
                        "update_id": update_id, "rationale": rationale, "suggestion": evidence, "query": query,
                    }),
                });
            }
            if source == "context_regression" {
                let subject = evidence
                    .get("regressed_version")
                    .and_then(Value::as_i64)
                    .map(|v| format!("context_version={v}"))
                    .unwrap_or_else(|| update_id.to_string());
                observations.push(Observation {
                    condition: Condition::ContextRegression,
                    subject,
                    signal: Signal::Raise,
                    evidence: json!({
                        "update_id": update_id, "rationale": rationale, "suggestion": evidence, "query": query,
                    }),
                });
            }
            let signal = stale_signal(proposed_at, now, &self.thresholds);
            if signal == Signal::Raise {
                observations.push(Observation {
                    condition: Condition::StaleSuggestion,
                    subject: update_id.to_string(),
                    signal,
                    evidence: json!({
                        "update_id": update_id, "source": source, "proposed_at": proposed_at,
                        "waiting_days": (now - proposed_at).num_hours() as f64 / 24.0,
                        "limit_days": self.thresholds.stale_suggestion_days, "query": query, "at": now,
                    }),
                });
            }
        }
        Ok(observations)
    }

    /// An active client that sent before and has sent nothing lately.
    async fn silence(
        &self,
        client_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<Observation>, anyhow::Error> {
        let last: Option<DateTime<Utc>> =
            sqlx::query_scalar("SELECT max(sent_at) FROM sends_view WHERE client_id = $1")
                .bind(client_id)
                .fetch_one(&self.app.pool)
                .await?;
        if last.is_none() {
            return Ok(Vec::new());
        }
        Ok(vec![Observation {
            condition: Condition::NoSends,
            subject: "client".into(),
            signal: no_sends_signal(last, now, &self.thresholds),
            evidence: json!({
                "last_send_at": last, "limit_hours": self.thresholds.no_sends_hours, "at": now,
            }),
        }])
    }

    /// The client's LLM spend on `now`'s day (UTC) against the daily limit.
    async fn llm_spend(
        &self,
        client_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<Observation>, anyhow::Error> {
        let Some(llm) = &self.app.llm else {
            return Ok(Vec::new());
        };
        let limit = llm.daily_limit_usd();
        let day = now.date_naive();
        let spent: Option<f64> =
            sqlx::query_scalar("SELECT cost_usd FROM llm_spend WHERE client_id = $1 AND day = $2")
                .bind(client_id)
                .bind(day)
                .fetch_optional(&self.app.pool)
                .await?;
        let spent = spent.unwrap_or(0.0);
        Ok(vec![Observation {
            condition: Condition::LlmSpendLimit,
            subject: "client".into(),
            signal: if spent >= limit {
                Signal::Raise
            } else {
                Signal::Clear
            },
            evidence: json!({ "day": day, "spent_usd": spent, "daily_limit_usd": limit }),
        }])
    }

    /// The detector's schedule: every `every`, until shutdown, it looks at
    /// every client. Safe in several replicas at once (see the module).
    pub async fn run(self, every: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(err) = self.detect(Utc::now()).await {
                tracing::warn!(error = ?err, "alert detection failed");
            }
        }
    }
}

/// Runs the detector over every client now, with the default thresholds.
pub async fn detect_now(app: &App) -> Result<Detection> {
    Detector::new(app, Thresholds::default())
        .detect(Utc::now())
        .await
}

/// What an acknowledgement answers.
#[derive(Debug, Clone, Serialize)]
pub struct Acknowledged {
    pub alert_id: Uuid,
    pub acknowledged_by: String,
    pub position: i64,
}

fn refusal(err: CommandError<AlertError>) -> ApiError {
    match err {
        CommandError::Rejected(e) => {
            let detail = e.to_string();
            match e {
                AlertError::Unknown => Problem::not_found("no such alert"),
                AlertError::AlreadyOpen
                | AlertError::NotOpen
                | AlertError::Superseded
                | AlertError::AlreadyAcknowledged => Problem::conflict(detail),
            }
            .into()
        }
        CommandError::Conflict => {
            Problem::conflict("another change to the same alert won the race; retry").into()
        }
        CommandError::Unavailable => ApiError::Unavailable,
        CommandError::Store(message) => ApiError::Internal(anyhow::anyhow!(message)),
    }
}

/// Acknowledges `alert_id` of `client_id` on behalf of `caller`: a person
/// has seen it. Once per alert; an alert a later one of the same condition
/// superseded is not acknowledged.
pub async fn acknowledge(
    app: &App,
    caller: &Caller,
    client_id: Uuid,
    alert_id: Uuid,
    note: Option<Note>,
) -> Result<Acknowledged> {
    app.registered_client(client_id).await?;
    let aggregate: Option<String> = sqlx::query_scalar(
        "SELECT aggregate_id FROM events WHERE aggregate_type = $1 AND event_type = 'alert_raised' \
         AND client_id = $2 AND payload ->> 'alert_id' = $3 LIMIT 1",
    )
    .bind(sextant_domain::aggregate_types::ALERT)
    .bind(client_id)
    .bind(alert_id.to_string())
    .fetch_optional(&app.pool)
    .await?;
    let aggregate = aggregate.ok_or_else(|| Problem::not_found("no such alert"))?;
    let by = caller.actor.to_string();
    let command = AlertCommand::Acknowledge {
        alert_id,
        by: by.clone(),
        note,
    };
    let committed = app
        .alerts
        .execute(&aggregate, command, &caller.meta(client_id))
        .await
        .map_err(refusal)?;
    Ok(Acknowledged {
        alert_id,
        acknowledged_by: by,
        position: committed.position,
    })
}
