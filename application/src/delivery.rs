//! Delivery of the weekly review: every Monday at 08:00 in each client's
//! time zone, the last complete ISO week's report is published as a
//! `report_published` event carrying its summary, and e-mailed to the
//! client's `report_recipients` when a mail server is configured.
//!
//! Once per client-week, whatever the number of replicas, restarts or
//! clock jumps: the week's Report aggregate has an id derived from the
//! client and the week (`sextant_domain::report::report_id`) and refuses a
//! second publication, so replicas that find the same week due at once
//! converge on one event (the second writer loses the optimistic-concurrency
//! race, decides again and is refused). A week older than the client's
//! latest published week is never published, so a clock that jumps back
//! publishes nothing. After downtime only the last complete week is
//! published, not every week missed.
//!
//! Delivery lives on the same aggregate: each attempt holds a transaction
//! advisory lock on the report, so one replica sends at a time; a failed
//! attempt is recorded as `report_delivery_failed` (its number, the error
//! without credentials) and retried with backoff by later runs; a
//! successful one as `report_delivered`, after which nothing is sent again.
//! A replica that stops between the server's acceptance and the record of
//! it leaves the week undelivered: the next attempt sends it again (at
//! least once there, as SMTP offers nothing better).

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use sextant_adapters::mail::{Mail, MailAttachment};
use sextant_adapters::retry::{Backoff, Jitter};
use sextant_adapters::store::{CommandError, CommandMeta};
use sextant_domain::metadata::{Actor, Component};
use sextant_domain::report::{report_id, Report, ReportCommand, ReportError};
use sextant_domain::values::Tz;

use crate::reports::{self, IsoWeek, WeeklyReport};
use crate::{App, Result};

/// The local hour of Monday at which the last week is published.
pub const PUBLISH_HOUR: i64 = 8;
/// Delivery attempts per report; after the last failure it is left
/// undelivered (its events say why).
pub const MAX_ATTEMPTS: u32 = 8;
/// Reports published longer ago than this are no longer delivered.
pub const DELIVERY_HORIZON_DAYS: i64 = 7;

/// The pause before delivery attempt `attempt` (the first is at once): one
/// minute doubling to an hour, so eight attempts span about two hours.
pub fn retry_delay(attempt: u32) -> Duration {
    let mut backoff = Backoff::new(
        StdDuration::from_secs(60),
        StdDuration::from_secs(3600),
        2,
        Jitter::None,
    );
    let mut delay = StdDuration::ZERO;
    for _ in 1..attempt {
        delay = backoff.next_delay();
    }
    Duration::from_std(delay).unwrap_or(Duration::MAX)
}

/// The week due at `now` in `tz`: the last complete week whose Monday
/// 08:00 (local) has come. Before 08:00 on a Monday that is still the week
/// before last.
pub fn due_week(now: DateTime<Utc>, tz: Tz) -> IsoWeek {
    let local = now.with_timezone(&tz).naive_local() - Duration::hours(PUBLISH_HOUR);
    IsoWeek::containing(local.date()).plus(-1)
}

/// What `POST /v1/reports/publish` may say.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// The instant to act as of (default: now). An instant later than now
    /// publishes weeks that have not ended: meant for rehearsals.
    pub at: Option<DateTime<Utc>>,
}

/// Now, for callers without a clock crate of their own.
pub fn chrono_now() -> DateTime<Utc> {
    Utc::now()
}

/// A week this run published.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Publication {
    pub client_id: Uuid,
    pub report_id: Uuid,
    pub week: String,
}

/// A delivery attempt this run made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub client_id: Uuid,
    pub report_id: Uuid,
    pub week: String,
    pub attempt: u32,
    pub recipients: u32,
    /// `None`: delivered.
    pub error: Option<String>,
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Published {
    pub published: Vec<Publication>,
    pub delivered: Vec<Attempt>,
    pub failed: Vec<Attempt>,
    /// The log's head after the run: every event it wrote is at or below it.
    pub position: i64,
}

fn meta(client_id: Uuid, report: Uuid) -> CommandMeta {
    CommandMeta::new(
        client_id,
        Actor::System(Component::ReportPublisher),
        format!("report:{report}"),
    )
}

/// The summary `report_published` carries: the week and its headline
/// numbers, no lead's data.
pub fn summary(report: &WeeklyReport) -> Value {
    let metrics: Vec<Value> = report
        .headline
        .metrics
        .iter()
        .map(|m| {
            json!({
                "metric": m.metric,
                "events": m.rate.events,
                "sends": m.rate.sends,
                "rate": m.rate.rate,
                "low": m.rate.low,
                "high": m.rate.high,
                "maturing": m.maturing,
                "previous_week": m.previous_week.verdict,
                "trailing_8_weeks": m.trailing_8_weeks.verdict,
            })
        })
        .collect();
    json!({
        "week": report.week,
        "starts_on": report.starts_on,
        "ends_on": report.ends_on,
        "timezone": report.timezone,
        "maturing": report.maturing,
        "matures_at": report.matures_at,
        "sends": report.headline.volume.sends,
        "previous_week_sends": report.headline.volume.previous_week,
        "trailing_8_weeks_mean_sends": report.headline.volume.trailing_8_weeks_mean,
        "metrics": metrics,
        "open_alerts": report.alerts.open,
        "next_steps": report.next_steps.iter().map(|s| s.rule).collect::<Vec<_>>(),
    })
}

/// Publishes every active client's due week that is not published yet,
/// as of `now`, then makes the delivery attempts that are due. Safe in
/// several replicas at once (see the module).
pub async fn publish_due(app: &App, now: DateTime<Utc>) -> Result<Published> {
    let mut run = Published::default();
    let clients: Vec<(Uuid, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT client_id, timezone, registered_at FROM clients_view WHERE status = 'active' \
         ORDER BY client_id",
    )
    .fetch_all(&app.pool)
    .await?;
    let latest: HashMap<Uuid, String> = sqlx::query_as::<_, (Uuid, String)>(
        "SELECT client_id, max(payload ->> 'week') FROM events \
         WHERE aggregate_type = 'report' AND event_type = 'report_published' \
         AND client_id IS NOT NULL GROUP BY client_id",
    )
    .fetch_all(&app.pool)
    .await?
    .into_iter()
    .collect();
    for (client_id, timezone, registered_at) in clients {
        let tz: Tz = timezone.parse().unwrap_or(Tz::UTC);
        let week = due_week(now, tz);
        let name = week.to_string();
        // A week that ended before the client existed has nothing to say;
        // one at or before the latest published week is done (or passed
        // over: a clock that jumped back).
        if week.ends(tz) <= registered_at
            || latest
                .get(&client_id)
                .is_some_and(|l| l.as_str() >= name.as_str())
        {
            continue;
        }
        match publish(app, client_id, week, now).await {
            Ok(Some(publication)) => run.published.push(publication),
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(%client_id, week = %name, error = %err, "report publication failed");
            }
        }
    }
    if app.mailer.is_some() {
        deliver_due(app, now, &mut run).await?;
    }
    run.position = sextant_adapters::db::head_position(&app.pool).await?;
    Ok(run)
}

async fn publish(
    app: &App,
    client_id: Uuid,
    week: IsoWeek,
    now: DateTime<Utc>,
) -> Result<Option<Publication>, anyhow::Error> {
    let report = reports::weekly_at(&app.pool, client_id, Some(week), now)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let name = week.to_string();
    let id = report_id(client_id, &name);
    let command = ReportCommand::Publish {
        client_id,
        week: name.clone(),
        starts_on: week.monday(),
        ends_on: week.sunday(),
        published_at: now,
        summary: summary(&report),
    };
    match app
        .reports
        .execute(&id.to_string(), command, &meta(client_id, id))
        .await
    {
        Ok(_) => Ok(Some(Publication {
            client_id,
            report_id: id,
            week: name,
        })),
        // Another replica published it first.
        Err(CommandError::Rejected(ReportError::AlreadyPublished)) => Ok(None),
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}

/// Reports published within the horizon and not delivered.
async fn undelivered(app: &App, now: DateTime<Utc>) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT aggregate_id FROM events WHERE aggregate_type = 'report' \
         GROUP BY aggregate_id \
         HAVING bool_or(event_type = 'report_published') \
            AND NOT bool_or(event_type = 'report_delivered') \
            AND max(recorded_at) > $1 \
         ORDER BY aggregate_id",
    )
    .bind(now.min(Utc::now()) - Duration::days(DELIVERY_HORIZON_DAYS))
    .fetch_all(&app.pool)
    .await
}

async fn deliver_due(app: &App, now: DateTime<Utc>, run: &mut Published) -> Result<()> {
    for id in undelivered(app, now).await? {
        match deliver(app, &id, now).await {
            Ok(Some(attempt)) if attempt.error.is_none() => run.delivered.push(attempt),
            Ok(Some(attempt)) => run.failed.push(attempt),
            Ok(None) => {}
            Err(err) => tracing::warn!(report = %id, error = %err, "report delivery failed"),
        }
    }
    Ok(())
}

/// Whether `report` is due for its next delivery attempt at `now`.
fn attempt_due(report: &Report, now: DateTime<Utc>) -> bool {
    if !report.is_published() || report.is_delivered() || report.failures() >= MAX_ATTEMPTS {
        return false;
    }
    match report.last_failed_at() {
        None => true,
        Some(failed_at) => now >= failed_at + retry_delay(report.next_attempt()),
    }
}

/// One delivery attempt of the report `id`, if one is due and no other
/// replica is making it.
async fn deliver(
    app: &App,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<Attempt>, anyhow::Error> {
    let Some(mailer) = app.mailer.clone() else {
        return Ok(None);
    };
    let mut lock = app.pool.begin().await?;
    let locked: bool = sqlx::query_scalar(
        "SELECT pg_try_advisory_xact_lock(hashtext('sextant.report-delivery'), hashtext($1))",
    )
    .bind(id)
    .fetch_one(&mut *lock)
    .await?;
    if !locked {
        return Ok(None);
    }
    // Read under the lock: another replica may have just finished.
    let report = app
        .reports
        .load(id)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(client_id) = report.client_id() else {
        return Ok(None);
    };
    if !attempt_due(&report, now) {
        return Ok(None);
    }
    let client = app
        .registered_client(client_id)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let recipients: Vec<String> = client
        .report_recipients()
        .addresses()
        .iter()
        .map(|a| a.as_str().to_owned())
        .collect();
    if recipients.is_empty() {
        return Ok(None);
    }
    let week = IsoWeek::parse(report.week())
        .ok_or_else(|| anyhow::anyhow!("report {id} has no readable week"))?;
    let weekly = reports::weekly_at(&app.pool, client_id, Some(week), now)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mail = mail(&weekly, recipients.clone())?;
    let attempt = report.next_attempt();
    let count = recipients.len() as u32;
    let outcome = mailer.send(&mail).await;
    let error = outcome.err().map(|e| e.0);
    let command = match &error {
        None => ReportCommand::RecordDelivery {
            attempt,
            recipients: count,
            delivered_at: now,
        },
        Some(error) => ReportCommand::RecordDeliveryFailure {
            attempt,
            recipients: count,
            error: error.clone(),
            failed_at: now,
        },
    };
    let report_uuid = Uuid::parse_str(id)?;
    app.reports
        .execute(id, command, &meta(client_id, report_uuid))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    lock.commit().await?;
    Ok(Some(Attempt {
        client_id,
        report_id: report_uuid,
        week: report.week().to_owned(),
        attempt,
        recipients: count,
        error,
    }))
}

/// The e-mail of a week: the HTML report inline, a plain-text summary
/// beside it, every table as one CSV attached.
pub fn mail(report: &WeeklyReport, to: Vec<String>) -> Result<Mail, anyhow::Error> {
    let csv = reports::render::csv_all(report).map_err(|e| anyhow::anyhow!("CSV: {e}"))?;
    let html = reports::render::weekly_html(report);
    let volume = &report.headline.volume;
    let mut text = format!(
        "Weekly report for {} — {} ({} to {}, {}).\n\nSends: {} (previous week {}).\n",
        report.client_name,
        report.week,
        report.starts_on,
        report.ends_on,
        report.timezone,
        volume.sends,
        volume.previous_week
    );
    for metric in &report.headline.metrics {
        text.push_str(&format!(
            "{}: {:.1}% ({}{})\n",
            metric.metric,
            metric.rate.rate * 100.0,
            metric.previous_week.verdict,
            if metric.maturing { "; maturing" } else { "" }
        ));
    }
    text.push_str(&maturity_text(&report.maturity));
    text.push_str("\nThe full report is in the HTML part; every table is in the CSV attached.\n");
    Ok(Mail {
        to,
        subject: format!("Weekly report {} — {}", report.week, report.client_name),
        text,
        html,
        attachments: vec![MailAttachment {
            filename: format!("sextant-report-{}.csv", report.week),
            content_type: "text/csv; charset=utf-8".into(),
            body: csv.into_bytes(),
        }],
    })
}

/// The plain-text lines on the outcome kinds of the week still maturing,
/// each with the date its window closes; empty when all have matured.
pub fn maturity_text(maturity: &reports::Maturity) -> String {
    let kinds = [
        (
            "Replies (and opens, clicks, unsubscribes and complaints)",
            &maturity.reply,
        ),
        ("Meetings", &maturity.meeting),
        ("Conversions", &maturity.conversion),
    ];
    let lines: Vec<String> = kinds
        .iter()
        .filter(|(_, window)| window.maturing)
        .map(|(what, window)| {
            format!(
                "- {what} may still come until {} ({}-day window).\n",
                window.matures_at.format("%Y-%m-%d %H:%M UTC"),
                window.window_days
            )
        })
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "\nThe week is still maturing: outcomes of its sends may still come, so the rates \
         marked maturing are still rising.\n{}",
        lines.concat()
    )
}

/// The publisher's schedule: every `every`, until shutdown, it publishes
/// what is due and makes the delivery attempts that are due. Safe in
/// several replicas at once (see the module).
pub struct Publisher {
    app: App,
}

impl Publisher {
    pub fn new(app: &App) -> Self {
        Self { app: app.clone() }
    }

    pub async fn run(self, every: StdDuration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(err) = publish_due(&self.app, Utc::now()).await {
                tracing::warn!(error = ?err, "report publication failed");
            }
        }
    }
}

/// A published week as the `report_deliveries` read model holds it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeliveryRow {
    pub report_id: Uuid,
    pub client_id: Uuid,
    pub week: String,
    pub starts_on: chrono::NaiveDate,
    pub ends_on: chrono::NaiveDate,
    pub published_at: DateTime<Utc>,
    /// `published` (not e-mailed, or not yet), `failing` (the last attempt
    /// failed) or `delivered`.
    pub status: String,
    pub attempts: i32,
    pub recipients: Option<i32>,
    pub last_error: Option<String>,
    pub last_failed_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub summary: Value,
    /// The position of its `report_published` event: the page cursor.
    pub published_position: i64,
}

/// A page of a client's published weeks, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryRow>,
    /// The cursor of the next page; `None` on the last.
    pub next_before: Option<i64>,
}

/// Up to `limit` of `client_id`'s published weeks published before the
/// position `before` (from the newest if `None`).
pub async fn deliveries(
    pool: &sqlx::PgPool,
    client_id: Uuid,
    before: Option<i64>,
    limit: i64,
) -> Result<DeliveryPage> {
    let mut items: Vec<DeliveryRow> = sqlx::query_as(
        "SELECT report_id, client_id, week, starts_on, ends_on, published_at, status, attempts, \
         recipients, last_error, last_failed_at, delivered_at, summary, published_position \
         FROM report_deliveries_view WHERE client_id = $1 AND published_position < $2 \
         ORDER BY published_position DESC LIMIT $3",
    )
    .bind(client_id)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_before = more
        .then(|| items.last().map(|r| r.published_position))
        .flatten();
    Ok(DeliveryPage { items, next_before })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("a valid instant")
    }

    #[test]
    fn the_due_week_turns_at_eight_on_monday_local_time() {
        // Monday 2026-11-30 is in 2026-W49.
        let utc_zone = Tz::UTC;
        assert_eq!(
            due_week(utc(2026, 11, 30, 7, 59), utc_zone).to_string(),
            "2026-W47"
        );
        assert_eq!(
            due_week(utc(2026, 11, 30, 8, 0), utc_zone).to_string(),
            "2026-W48"
        );
        assert_eq!(
            due_week(utc(2026, 12, 6, 23, 59), utc_zone).to_string(),
            "2026-W48"
        );
    }

    #[test]
    fn a_sunday_evening_in_utc_is_monday_morning_in_sydney() {
        // Sunday 2026-11-29 23:30 UTC is Monday 10:30 in Sydney (UTC+11).
        let at = utc(2026, 11, 29, 23, 30);
        let sydney: Tz = "Australia/Sydney".parse().expect("a zone");
        assert_eq!(due_week(at, sydney).to_string(), "2026-W48");
        assert_eq!(due_week(at, Tz::UTC).to_string(), "2026-W47");
    }

    #[test]
    fn the_mail_names_each_outcome_kind_still_maturing_with_its_date() {
        let week = IsoWeek::parse("2026-W40").expect("a week");
        // Twenty days after the week: replies (14 days) have matured,
        // meetings (30) and conversions (60) not.
        let now = utc(2026, 10, 25, 0, 0);
        let windows = sextant_domain::inference::Windows::default();
        let text = maturity_text(&reports::Maturity::of(week, Tz::UTC, &windows, now));
        assert!(!text.contains("Replies"), "{text}");
        assert!(
            text.contains("- Meetings may still come until 2026-11-04 00:00 UTC (30-day window)."),
            "{text}"
        );
        assert!(
            text.contains(
                "- Conversions may still come until 2026-12-04 00:00 UTC (60-day window)."
            ),
            "{text}"
        );
        let later = utc(2027, 1, 1, 0, 0);
        assert_eq!(
            maturity_text(&reports::Maturity::of(week, Tz::UTC, &windows, later)),
            ""
        );
    }

    #[test]
    fn delivery_retries_wait_one_minute_doubling_to_an_hour() {
        let minutes: Vec<i64> = (1..=9).map(|a| retry_delay(a).num_minutes()).collect();
        assert_eq!(minutes, [0, 1, 2, 4, 8, 16, 32, 60, 60]);
    }
}
