//! The weekly review: a client's weekly report and the operator's platform
//! report, read from the `reports` projection's rollups (never from the
//! sends), the context ledger, the experiments and the alerts read models.
//!
//! - [`weekly`] / [`weekly_at`]: one client's week: headline with 95%
//!   intervals against the previous week and the trailing 8 weeks
//!   (two-proportion tests, Benjamini–Hochberg over the headline metrics),
//!   funnel, 12-week trend, breakdowns, what changed, what was learned,
//!   next steps ([`recommend`]), alerts.
//! - [`platform_weekly`]: every client's week on one table, sortable.
//! - [`render`]: the CSV and HTML forms of both.
//!
//! Rates are cohort rates (an outcome counts toward the week of its send).
//! Each outcome kind has its own maturity window, the client's, as the
//! learning engine reads it ([`Maturity`]): a week's reply rates are
//! `maturing` until the reply window has passed since the week ended, its
//! meeting rate until the meeting window has, its conversion rate until the
//! conversion window has. Weeks are ISO weeks in the client's time zone. No
//! report holds a lead's data.

pub mod recommend;
pub mod render;

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone as _, Utc, Weekday};
use serde::Serialize;
use serde_json::Value;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use sextant_adapters::http::Problem;
use sextant_domain::inference::Windows;
use sextant_domain::stats::{benjamini_hochberg, two_proportion_test, wilson_interval, Z_95};
use sextant_domain::values::Tz;

use crate::read_model::clients::client_settings;
use crate::Result;

pub use recommend::Recommendation;

/// An ISO week, as `2026-W48`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IsoWeek {
    monday: NaiveDate,
}

impl IsoWeek {
    /// The week `2026-W48` names; `None` if it names none.
    pub fn parse(text: &str) -> Option<Self> {
        let (year, week) = text.trim().split_once("-W")?;
        if year.len() != 4 || week.len() != 2 {
            return None;
        }
        let year: i32 = year.parse().ok()?;
        let week: u32 = week.parse().ok()?;
        NaiveDate::from_isoywd_opt(year, week, Weekday::Mon).map(|monday| Self { monday })
    }

    /// The week `day` falls in.
    pub fn containing(day: NaiveDate) -> Self {
        Self {
            monday: day - Duration::days(i64::from(day.weekday().num_days_from_monday())),
        }
    }

    /// The last complete week at `now` in `tz`.
    pub fn last_complete(now: DateTime<Utc>, tz: Tz) -> Self {
        Self::containing(now.with_timezone(&tz).date_naive()).plus(-1)
    }

    pub fn monday(self) -> NaiveDate {
        self.monday
    }

    pub fn sunday(self) -> NaiveDate {
        self.monday + Duration::days(6)
    }

    /// `weeks` later (earlier when negative).
    pub fn plus(self, weeks: i64) -> Self {
        Self {
            monday: self.monday + Duration::weeks(weeks),
        }
    }

    /// When the week starts in `tz`.
    pub fn starts(self, tz: Tz) -> DateTime<Utc> {
        local_midnight(self.monday, tz)
    }

    /// When the week ends (the next one starts) in `tz`.
    pub fn ends(self, tz: Tz) -> DateTime<Utc> {
        local_midnight(self.monday + Duration::days(7), tz)
    }
}

impl std::fmt::Display for IsoWeek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let week = self.monday.iso_week();
        write!(f, "{}-W{:02}", week.year(), week.week())
    }
}

/// The first instant of `day` in `tz` (past a gap, the first that exists).
fn local_midnight(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let mut at = day.and_time(chrono::NaiveTime::MIN);
    for _ in 0..4 {
        if let Some(t) = tz.from_local_datetime(&at).earliest() {
            return t.with_timezone(&Utc);
        }
        at += Duration::minutes(30);
    }
    Utc.from_utc_datetime(&day.and_time(chrono::NaiveTime::MIN))
}

/// The week a `week` query parameter asks for: 422 naming `week` if it
/// names none.
pub fn week_param(text: Option<&str>) -> Result<Option<IsoWeek>> {
    match text {
        None => Ok(None),
        Some(t) => IsoWeek::parse(t).map(Some).ok_or_else(|| {
            Problem::invalid_field("week", "must be an ISO week such as 2026-W48").into()
        }),
    }
}

/// When one outcome kind of a week's cohort is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WindowMaturity {
    /// The client's window for the outcome: days after the week ends.
    pub window_days: u32,
    /// The week's last local midnight plus the window.
    pub matures_at: DateTime<Utc>,
    /// Before `matures_at`: the outcome's rates of the week are still
    /// rising.
    pub maturing: bool,
}

impl WindowMaturity {
    /// `week` in `tz` under a window of `days`, as it reads at `now`.
    pub fn of(week: IsoWeek, tz: Tz, days: u32, now: DateTime<Utc>) -> Self {
        let matures_at = week.ends(tz) + Duration::days(i64::from(days));
        Self {
            window_days: days,
            matures_at,
            maturing: now < matures_at,
        }
    }
}

/// A week's maturity for each outcome kind, each under the client's own
/// window (`maturity` on the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Maturity {
    /// Replies and positive replies (`reply_days`); opens, clicks,
    /// unsubscribes and complaints follow the same window.
    pub reply: WindowMaturity,
    /// Meetings booked (`meeting_days`).
    pub meeting: WindowMaturity,
    /// Conversions (`conversion_days`).
    pub conversion: WindowMaturity,
}

impl Maturity {
    /// `week` in `tz` under `windows`, as it reads at `now`.
    pub fn of(week: IsoWeek, tz: Tz, windows: &Windows, now: DateTime<Utc>) -> Self {
        Self {
            reply: WindowMaturity::of(week, tz, windows.reply_days, now),
            meeting: WindowMaturity::of(week, tz, windows.meeting_days, now),
            conversion: WindowMaturity::of(week, tz, windows.conversion_days, now),
        }
    }

    /// Whether a headline metric (`meeting_rate`) or a funnel stage
    /// (`meeting`) is still maturing. Sends, deliveries and bounces are known
    /// within hours and never are.
    pub fn maturing(&self, metric: &str) -> bool {
        match metric {
            "sent" | "delivered" | "delivery_rate" | "bounce_rate" => false,
            "meeting" | "meeting_rate" => self.meeting.maturing,
            "converted" | "conversion_rate" => self.conversion.maturing,
            _ => self.reply.maturing,
        }
    }
}

/// The counts of one rollup row (or a sum of them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, FromRow)]
pub struct Counts {
    pub sends: i64,
    pub delivered: i64,
    pub opened: i64,
    pub clicked: i64,
    pub replied: i64,
    pub positive: i64,
    pub meetings: i64,
    pub conversions: i64,
    pub bounced: i64,
    pub hard_bounced: i64,
    pub unsubscribed: i64,
    pub complained: i64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.sends += o.sends;
        self.delivered += o.delivered;
        self.opened += o.opened;
        self.clicked += o.clicked;
        self.replied += o.replied;
        self.positive += o.positive;
        self.meetings += o.meetings;
        self.conversions += o.conversions;
        self.bounced += o.bounced;
        self.hard_bounced += o.hard_bounced;
        self.unsubscribed += o.unsubscribed;
        self.complained += o.complained;
    }

    /// The count a headline metric is the rate of.
    fn of(&self, metric: &str) -> i64 {
        match metric {
            "delivery_rate" => self.delivered,
            "open_rate" => self.opened,
            "click_rate" => self.clicked,
            "reply_rate" => self.replied,
            "positive_reply_rate" => self.positive,
            "meeting_rate" => self.meetings,
            "conversion_rate" => self.conversions,
            "bounce_rate" => self.bounced,
            "unsubscribe_rate" => self.unsubscribed,
            "complaint_rate" => self.complained,
            _ => 0,
        }
    }
}

const COUNT_COLUMNS: &str = "sends, delivered, opened, clicked, replied, positive, meetings, \
     conversions, bounced, hard_bounced, unsubscribed, complained";

/// The headline metrics, each a rate over the week's sends.
pub const HEADLINE: [&str; 10] = [
    "delivery_rate",
    "open_rate",
    "click_rate",
    "reply_rate",
    "positive_reply_rate",
    "meeting_rate",
    "conversion_rate",
    "bounce_rate",
    "unsubscribe_rate",
    "complaint_rate",
];

/// A change is called one when its Benjamini–Hochberg q is below this.
pub const ALPHA: f64 = 0.05;
/// Weeks of the trend.
pub const TREND_WEEKS: i64 = 12;
/// Weeks of the trailing comparison.
pub const TRAILING_WEEKS: i64 = 8;

/// A rate with its 95% Wilson interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    pub events: i64,
    pub sends: i64,
    pub rate: f64,
    pub low: f64,
    pub high: f64,
}

impl Rate {
    pub fn of(events: i64, sends: i64) -> Self {
        let (e, n) = (events.max(0) as u64, sends.max(0) as u64);
        let (low, high) = wilson_interval(e, n, Z_95);
        Self {
            events,
            sends,
            rate: if sends > 0 {
                events as f64 / sends as f64
            } else {
                0.0
            },
            low,
            high,
        }
    }
}

/// This week's rate against another's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub against: Rate,
    /// This week's rate less the other's.
    pub difference: f64,
    pub z: f64,
    pub p: f64,
    /// Benjamini–Hochberg over the headline metrics of this comparison.
    pub q: f64,
    pub significant: bool,
    /// `significant increase`, `significant decrease` or `no significant
    /// change`.
    pub verdict: &'static str,
    /// This week's figure of the metric is still maturing: part of a
    /// difference may be outcomes still to come.
    pub maturing: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeadlineMetric {
    pub metric: &'static str,
    #[serde(flatten)]
    pub rate: Rate,
    /// The metric is still maturing by its own window (see [`Maturity`]).
    pub maturing: bool,
    pub previous_week: Comparison,
    pub trailing_8_weeks: Comparison,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Volume {
    pub sends: i64,
    pub previous_week: i64,
    /// The mean of the 8 weeks before.
    pub trailing_8_weeks_mean: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Headline {
    pub volume: Volume,
    pub metrics: Vec<HeadlineMetric>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunnelStage {
    pub stage: &'static str,
    pub count: i64,
    /// Of the sends, with its 95% interval.
    #[serde(flatten)]
    pub rate: Rate,
    /// The stage is still maturing by its own window (see [`Maturity`]).
    pub maturing: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendPoint {
    pub week: String,
    pub starts_on: NaiveDate,
    pub sends: i64,
    pub reply_rate: Rate,
    pub positive_reply_rate: Rate,
    /// The week's replies are still maturing (the reply window).
    pub maturing: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakdownRow {
    pub dimension: &'static str,
    /// `(none)` for sends without one.
    pub value: String,
    #[serde(flatten)]
    pub counts: Counts,
    pub reply_rate: Rate,
    pub positive_reply_rate: Rate,
    pub bounce_rate: Rate,
    pub complaint_rate: Rate,
    /// The week's replies are still maturing (the reply window).
    pub maturing: bool,
    /// The week's meetings are still maturing (the meeting window).
    pub meetings_maturing: bool,
    /// The week's conversions are still maturing (the conversion window).
    pub conversions_maturing: bool,
}

/// A context version applied in the week.
#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
pub struct VersionChange {
    pub version: i64,
    pub applied_at: DateTime<Utc>,
    /// Which pathway: the update's source, or `rollback`.
    pub source: String,
    /// Who or what made it.
    pub actor: Option<String>,
    /// `direct`, `autopilot`, `approved` or `modified`; none for rollbacks.
    pub via: Option<String>,
    pub update_id: Option<Uuid>,
    pub proposed_by: Option<String>,
    /// Who approved it, when it was reviewed.
    pub decided_by: Option<String>,
    pub rationale: Option<String>,
    pub reason: Option<String>,
    pub rolled_back_to: Option<i64>,
    /// The diff against the version before.
    #[sqlx(skip)]
    pub diff: String,
}

/// A suggestion rejected or withdrawn in the week.
#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
pub struct Declined {
    pub update_id: Uuid,
    pub source: String,
    pub status: String,
    pub proposed_by: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Changes {
    pub versions: Vec<VersionChange>,
    pub declined: Vec<Declined>,
}

/// A pattern the suggestion engine found significant and proposed.
#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
pub struct LearnedPattern {
    pub update_id: Uuid,
    pub source: String,
    pub proposed_at: DateTime<Utc>,
    pub rationale: String,
    pub confidence: Option<f64>,
    pub status: String,
}

/// A suggestion waiting for review when the week ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitingSuggestion {
    pub update_id: Uuid,
    pub source: String,
    pub proposed_by: Option<String>,
    pub proposed_at: DateTime<Utc>,
    pub waiting_days: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
pub struct ExperimentEntry {
    pub experiment_id: Uuid,
    pub name: String,
    pub metric: String,
    pub status: String,
    pub winner: Option<String>,
    pub decision: Option<String>,
    pub created_at: DateTime<Utc>,
    pub concluded_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Learned {
    pub patterns: Vec<LearnedPattern>,
    pub waiting: Vec<WaitingSuggestion>,
    pub experiments_started: Vec<ExperimentEntry>,
    pub experiments_concluded: Vec<ExperimentEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
pub struct OpenAlert {
    pub alert_id: Uuid,
    pub condition: String,
    pub subject: String,
    pub raised_at: DateTime<Utc>,
    pub acknowledged: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alerts {
    pub open: i64,
    pub raised_this_week: i64,
    pub items: Vec<OpenAlert>,
}

/// One client's week.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeeklyReport {
    pub client_id: Uuid,
    pub client_name: String,
    pub week: String,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub timezone: String,
    pub reply_window_days: u32,
    /// The week's sends are younger than the reply window: its reply rates
    /// are still rising (`maturity.reply.maturing`).
    pub maturing: bool,
    /// `maturity.reply.matures_at`.
    pub matures_at: DateTime<Utc>,
    /// The week's maturity for each outcome kind under its own window.
    pub maturity: Maturity,
    pub generated_at: DateTime<Utc>,
    pub headline: Headline,
    pub funnel: Vec<FunnelStage>,
    pub trend: Vec<TrendPoint>,
    /// What happened this week, whatever week it was sent in.
    pub activity: Counts,
    pub breakdowns: Vec<BreakdownRow>,
    pub changes: Changes,
    pub learned: Learned,
    pub next_steps: Vec<Recommendation>,
    pub alerts: Alerts,
}

/// The weekly report of `week` (default: the last complete week in the
/// client's time zone).
pub async fn weekly(pool: &PgPool, client_id: Uuid, week: Option<IsoWeek>) -> Result<WeeklyReport> {
    weekly_at(pool, client_id, week, Utc::now()).await
}

/// [`weekly`] as it reads at `now`.
pub async fn weekly_at(
    pool: &PgPool,
    client_id: Uuid,
    week: Option<IsoWeek>,
    now: DateTime<Utc>,
) -> Result<WeeklyReport> {
    let (tz, windows) = client_settings(pool, client_id)
        .await?
        .ok_or_else(Problem::client_not_found)?;
    let name: String = sqlx::query_scalar("SELECT name FROM clients_view WHERE client_id = $1")
        .bind(client_id)
        .fetch_one(pool)
        .await?;
    let week = week.unwrap_or_else(|| IsoWeek::last_complete(now, tz));
    let maturity = Maturity::of(week, tz, &windows, now);
    let maturing = |w: IsoWeek| WindowMaturity::of(w, tz, windows.reply_days, now).maturing;

    let first = week.plus(-(TREND_WEEKS - 1));
    let rows: Vec<(NaiveDate, Counts)> = overall(pool, client_id, "cohort", first, week).await?;
    let by_week: HashMap<NaiveDate, Counts> = rows.into_iter().collect();
    let at = |w: IsoWeek| by_week.get(&w.monday()).copied().unwrap_or_default();
    let this = at(week);
    let previous = at(week.plus(-1));
    let mut trailing = Counts::default();
    for i in 1..=TRAILING_WEEKS {
        trailing.add(&at(week.plus(-i)));
    }
    let activity = overall(pool, client_id, "activity", week, week)
        .await?
        .into_iter()
        .map(|(_, c)| c)
        .next()
        .unwrap_or_default();

    let headline = headline(&this, &previous, &trailing, &maturity);
    let funnel = funnel(&this, &maturity);
    let trend = (0..TREND_WEEKS)
        .map(|i| {
            let w = first.plus(i);
            let c = at(w);
            TrendPoint {
                week: w.to_string(),
                starts_on: w.monday(),
                sends: c.sends,
                reply_rate: Rate::of(c.replied, c.sends),
                positive_reply_rate: Rate::of(c.positive, c.sends),
                maturing: maturing(w),
            }
        })
        .collect();
    let breakdowns = breakdowns(pool, client_id, week, &maturity).await?;

    let (starts, ends) = (week.starts(tz), week.ends(tz));
    let as_of = ends.min(now);
    let changes = changes(pool, client_id, starts, ends).await?;
    let waiting = waiting(pool, client_id, as_of).await?;
    let learned = learned(pool, client_id, starts, ends, &waiting).await?;
    let facts = recommend::Facts {
        waiting,
        resources: breakdowns
            .iter()
            .filter(|r| r.dimension == "resource" && r.value != NONE)
            .map(|r| recommend::ResourceWeek {
                resource: r.value.clone(),
                sends: r.counts.sends.max(0) as u64,
                bounced: r.counts.bounced.max(0) as u64,
                complained: r.counts.complained.max(0) as u64,
            })
            .collect(),
    };
    let next_steps = recommend::recommend(&facts);
    let alerts = alerts(pool, client_id, starts, ends).await?;
    Ok(WeeklyReport {
        client_id,
        client_name: name,
        week: week.to_string(),
        starts_on: week.monday(),
        ends_on: week.sunday(),
        timezone: tz.name().to_owned(),
        reply_window_days: maturity.reply.window_days,
        maturing: maturity.reply.maturing,
        matures_at: maturity.reply.matures_at,
        maturity,
        generated_at: now,
        headline,
        funnel,
        trend,
        activity,
        breakdowns,
        changes,
        learned,
        next_steps,
        alerts,
    })
}

/// The overall rows of `basis` from week `from` to `to`.
async fn overall(
    pool: &PgPool,
    client_id: Uuid,
    basis: &str,
    from: IsoWeek,
    to: IsoWeek,
) -> Result<Vec<(NaiveDate, Counts)>> {
    #[derive(FromRow)]
    struct Row {
        period: NaiveDate,
        #[sqlx(flatten)]
        counts: Counts,
    }
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT period, {COUNT_COLUMNS} FROM report_rollups \
         WHERE client_id = $1 AND grain = 'week' AND basis = $2 AND period BETWEEN $3 AND $4 \
           AND dim = 'all' AND value = ''"
    ))
    .bind(client_id)
    .bind(basis)
    .bind(from.monday())
    .bind(to.monday())
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.period, r.counts)).collect())
}

fn compare(this: &Counts, other: &Counts, metric: &str) -> (Rate, f64, f64, f64) {
    let (x1, n1) = (this.of(metric), this.sends);
    let (x2, n2) = (other.of(metric), other.sends);
    let (z, p) = two_proportion_test(
        x1.max(0) as u64,
        n1.max(0) as u64,
        x2.max(0) as u64,
        n2.max(0) as u64,
    );
    let against = Rate::of(x2, n2);
    (against, Rate::of(x1, n1).rate - against.rate, z, p)
}

fn headline(this: &Counts, previous: &Counts, trailing: &Counts, maturity: &Maturity) -> Headline {
    let build = |other: &Counts| {
        let raw: Vec<_> = HEADLINE.iter().map(|m| compare(this, other, m)).collect();
        let q = benjamini_hochberg(&raw.iter().map(|r| r.3).collect::<Vec<_>>());
        raw.into_iter()
            .zip(q)
            .zip(HEADLINE)
            .map(|(((against, difference, z, p), q), metric)| {
                let significant = q < ALPHA && difference != 0.0;
                Comparison {
                    against,
                    difference,
                    z,
                    p,
                    q,
                    significant,
                    verdict: match (significant, difference > 0.0) {
                        (false, _) => "no significant change",
                        (true, true) => "significant increase",
                        (true, false) => "significant decrease",
                    },
                    maturing: maturity.maturing(metric),
                }
            })
            .collect::<Vec<_>>()
    };
    let vs_previous = build(previous);
    let vs_trailing = build(trailing);
    let metrics = HEADLINE
        .iter()
        .zip(vs_previous.into_iter().zip(vs_trailing))
        .map(
            |(metric, (previous_week, trailing_8_weeks))| HeadlineMetric {
                metric,
                rate: Rate::of(this.of(metric), this.sends),
                maturing: maturity.maturing(metric),
                previous_week,
                trailing_8_weeks,
            },
        )
        .collect();
    Headline {
        volume: Volume {
            sends: this.sends,
            previous_week: previous.sends,
            trailing_8_weeks_mean: trailing.sends as f64 / TRAILING_WEEKS as f64,
        },
        metrics,
    }
}

fn funnel(c: &Counts, maturity: &Maturity) -> Vec<FunnelStage> {
    [
        ("sent", c.sends),
        ("delivered", c.delivered),
        ("opened", c.opened),
        ("replied", c.replied),
        ("positive", c.positive),
        ("meeting", c.meetings),
        ("converted", c.conversions),
    ]
    .into_iter()
    .map(|(stage, count)| FunnelStage {
        stage,
        count,
        rate: Rate::of(count, c.sends),
        maturing: maturity.maturing(stage),
    })
    .collect()
}

/// How a rollup's empty value shows.
pub const NONE: &str = "(none)";

const DIMENSIONS: [&str; 6] = [
    "channel",
    "campaign",
    "agent",
    "context_version",
    "provider",
    "resource",
];

async fn breakdowns(
    pool: &PgPool,
    client_id: Uuid,
    week: IsoWeek,
    maturity: &Maturity,
) -> Result<Vec<BreakdownRow>> {
    #[derive(FromRow)]
    struct Row {
        dim: String,
        value: String,
        #[sqlx(flatten)]
        counts: Counts,
    }
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT dim, value, {COUNT_COLUMNS} FROM report_rollups \
         WHERE client_id = $1 AND grain = 'week' AND basis = 'cohort' AND period = $2 \
           AND dim <> 'all' AND sends > 0"
    ))
    .bind(client_id)
    .bind(week.monday())
    .fetch_all(pool)
    .await?;
    let mut out: Vec<BreakdownRow> = rows
        .into_iter()
        .filter_map(|r| {
            let dimension = DIMENSIONS.iter().find(|d| **d == r.dim)?;
            let c = r.counts;
            Some(BreakdownRow {
                dimension,
                value: if r.value.is_empty() {
                    NONE.to_owned()
                } else {
                    r.value
                },
                reply_rate: Rate::of(c.replied, c.sends),
                positive_reply_rate: Rate::of(c.positive, c.sends),
                bounce_rate: Rate::of(c.bounced, c.sends),
                complaint_rate: Rate::of(c.complained, c.sends),
                counts: c,
                maturing: maturity.reply.maturing,
                meetings_maturing: maturity.meeting.maturing,
                conversions_maturing: maturity.conversion.maturing,
            })
        })
        .collect();
    let order = |d: &str| DIMENSIONS.iter().position(|x| *x == d).unwrap_or(0);
    out.sort_by(|a, b| {
        order(a.dimension)
            .cmp(&order(b.dimension))
            .then(b.counts.sends.cmp(&a.counts.sends))
            .then(a.value.cmp(&b.value))
    });
    Ok(out)
}

async fn changes(
    pool: &PgPool,
    client_id: Uuid,
    starts: DateTime<Utc>,
    ends: DateTime<Utc>,
) -> Result<Changes> {
    let mut versions: Vec<VersionChange> = sqlx::query_as(
        "SELECT v.version, v.created_at AS applied_at, v.source, v.actor, v.via, v.update_id, \
                u.proposed_by, u.decided_by, v.rationale, v.reason, v.rolled_back_to \
         FROM context_versions v LEFT JOIN context_updates u ON u.update_id = v.update_id \
         WHERE v.client_id = $1 AND v.created_at >= $2 AND v.created_at < $3 \
         ORDER BY v.version",
    )
    .bind(client_id)
    .bind(starts)
    .bind(ends)
    .fetch_all(pool)
    .await?;
    for v in &mut versions {
        v.diff = format!(
            "/v1/clients/{client_id}/context/diff?from={}&to={}",
            (v.version - 1).max(0),
            v.version
        );
    }
    let declined: Vec<Declined> = sqlx::query_as(
        "SELECT update_id, source, status, proposed_by, decided_by, decided_at, reason \
         FROM context_updates \
         WHERE client_id = $1 AND status IN ('rejected', 'withdrawn') \
           AND decided_at >= $2 AND decided_at < $3 ORDER BY decided_at, update_id",
    )
    .bind(client_id)
    .bind(starts)
    .bind(ends)
    .fetch_all(pool)
    .await?;
    Ok(Changes { versions, declined })
}

/// update id, source, proposed by, rationale, confidence, proposed at.
type WaitingRow = (
    Uuid,
    String,
    Option<String>,
    String,
    Option<f64>,
    DateTime<Utc>,
);

/// Updates proposed before `as_of` and not decided by then.
async fn waiting(
    pool: &PgPool,
    client_id: Uuid,
    as_of: DateTime<Utc>,
) -> Result<Vec<recommend::Waiting>> {
    let rows: Vec<WaitingRow> = sqlx::query_as(
        "SELECT update_id, source, proposed_by, rationale, confidence, proposed_at \
             FROM context_updates WHERE client_id = $1 AND proposed_at < $2 \
               AND (status = 'pending' OR (decided_at IS NOT NULL AND decided_at >= $2)) \
             ORDER BY proposed_at, update_id",
    )
    .bind(client_id)
    .bind(as_of)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(update_id, source, proposed_by, rationale, confidence, at)| recommend::Waiting {
                update_id,
                source,
                proposed_by,
                rationale,
                confidence,
                waiting_days: (as_of - at).num_seconds() as f64 / 86_400.0,
            },
        )
        .collect())
}

async fn learned(
    pool: &PgPool,
    client_id: Uuid,
    starts: DateTime<Utc>,
    ends: DateTime<Utc>,
    waiting: &[recommend::Waiting],
) -> Result<Learned> {
    let patterns: Vec<LearnedPattern> = sqlx::query_as(
        "SELECT update_id, source, proposed_at, rationale, confidence, status FROM context_updates \
         WHERE client_id = $1 AND proposed_by = $2 AND proposed_at >= $3 AND proposed_at < $4 \
         ORDER BY proposed_at, update_id",
    )
    .bind(client_id)
    .bind(recommend::ENGINE)
    .bind(starts)
    .bind(ends)
    .fetch_all(pool)
    .await?;
    let proposed_at: HashMap<Uuid, DateTime<Utc>> = sqlx::query_as::<_, (Uuid, DateTime<Utc>)>(
        "SELECT update_id, proposed_at FROM context_updates WHERE update_id = ANY($1)",
    )
    .bind(waiting.iter().map(|w| w.update_id).collect::<Vec<_>>())
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    let waiting = waiting
        .iter()
        .filter_map(|w| {
            Some(WaitingSuggestion {
                update_id: w.update_id,
                source: w.source.clone(),
                proposed_by: w.proposed_by.clone(),
                proposed_at: *proposed_at.get(&w.update_id)?,
                waiting_days: (w.waiting_days * 10.0).round() / 10.0,
            })
        })
        .collect();
    Ok(Learned {
        patterns,
        waiting,
        experiments_started: experiments(pool, client_id, "created_at", starts, ends).await?,
        experiments_concluded: experiments(pool, client_id, "concluded_at", starts, ends).await?,
    })
}

/// The client's experiments whose `column` time falls in the week.
async fn experiments(
    pool: &PgPool,
    client_id: Uuid,
    column: &'static str,
    starts: DateTime<Utc>,
    ends: DateTime<Utc>,
) -> Result<Vec<ExperimentEntry>> {
    let sql = format!(
        "SELECT experiment_id, name, metric, status, winner, decision, created_at, concluded_at \
         FROM experiments_view WHERE client_id = $1 AND {column} >= $2 AND {column} < $3 \
         ORDER BY {column}, experiment_id"
    );
    Ok(sqlx::query_as(&sql)
        .bind(client_id)
        .bind(starts)
        .bind(ends)
        .fetch_all(pool)
        .await?)
}

/// Whether the alerts read model exists in this database.
async fn has_alerts(pool: &PgPool) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT to_regclass('public.alerts_view') IS NOT NULL")
            .fetch_one(pool)
            .await?,
    )
}

async fn alerts(
    pool: &PgPool,
    client_id: Uuid,
    starts: DateTime<Utc>,
    ends: DateTime<Utc>,
) -> Result<Alerts> {
    if !has_alerts(pool).await? {
        return Ok(Alerts {
            open: 0,
            raised_this_week: 0,
            items: Vec::new(),
        });
    }
    let items: Vec<OpenAlert> = sqlx::query_as(
        "SELECT alert_id, condition, subject, raised_at, acknowledged_at IS NOT NULL AS acknowledged \
         FROM alerts_view WHERE client_id = $1 AND status = 'open' ORDER BY raised_at, alert_id",
    )
    .bind(client_id)
    .fetch_all(pool)
    .await?;
    let raised_this_week: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM alerts_view WHERE client_id = $1 AND raised_at >= $2 AND raised_at < $3",
    )
    .bind(client_id)
    .bind(starts)
    .bind(ends)
    .fetch_one(pool)
    .await?;
    Ok(Alerts {
        open: items.len() as i64,
        raised_this_week,
        items,
    })
}

/// One client's row of the platform report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlatformRow {
    pub client_id: Uuid,
    pub name: String,
    pub status: String,
    pub timezone: String,
    pub sends: i64,
    pub previous_sends: i64,
    pub reply_rate: Rate,
    pub previous_reply_rate: Rate,
    /// This week's reply rate less the previous week's.
    pub reply_rate_change: f64,
    pub reply_rate_p: f64,
    /// Benjamini–Hochberg over the clients of the report.
    pub reply_rate_q: f64,
    pub reply_rate_verdict: &'static str,
    pub bounce_rate: Rate,
    pub complaint_rate: Rate,
    /// The week's replies are still maturing for the client (its reply
    /// window): the row shows no meeting or conversion figure.
    pub maturing: bool,
    pub open_alerts: i64,
    pub pending_approvals: i64,
    /// The last local day with sends.
    pub last_activity: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlatformReport {
    pub week: String,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub sort: String,
    pub generated_at: DateTime<Utc>,
    pub clients: Vec<PlatformRow>,
}

/// The columns the platform report sorts by (`-` before one: descending).
pub const PLATFORM_SORTS: [&str; 9] = [
    "name",
    "sends",
    "reply_rate",
    "reply_rate_change",
    "bounce_rate",
    "complaint_rate",
    "open_alerts",
    "pending_approvals",
    "last_activity",
];

/// Checks a `sort` parameter: 422 naming `sort` if it names no column.
pub fn sort_param(text: Option<&str>) -> Result<String> {
    let sort = text.unwrap_or("name").trim().to_owned();
    if PLATFORM_SORTS.contains(&sort.trim_start_matches('-')) {
        Ok(sort)
    } else {
        Err(Problem::invalid_field(
            "sort",
            format!(
                "must be one of {} (prefix - for descending)",
                PLATFORM_SORTS.join(", ")
            ),
        )
        .into())
    }
}

/// Every client's `week` (default: the last complete week in UTC), each in
/// its own time zone's week, sorted by `sort`.
pub async fn platform_weekly(
    pool: &PgPool,
    week: Option<IsoWeek>,
    sort: &str,
) -> Result<PlatformReport> {
    platform_weekly_at(pool, week, sort, Utc::now()).await
}

/// [`platform_weekly`] as it reads at `now`.
pub async fn platform_weekly_at(
    pool: &PgPool,
    week: Option<IsoWeek>,
    sort: &str,
    now: DateTime<Utc>,
) -> Result<PlatformReport> {
    let week = week.unwrap_or_else(|| IsoWeek::last_complete(now, Tz::UTC));
    let clients: Vec<(Uuid, String, String, String, i32)> = sqlx::query_as(
        "SELECT client_id, name, status, timezone, reply_window_days FROM clients_view",
    )
    .fetch_all(pool)
    .await?;
    #[derive(FromRow)]
    struct Row {
        client_id: Uuid,
        period: NaiveDate,
        #[sqlx(flatten)]
        counts: Counts,
    }
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT client_id, period, {COUNT_COLUMNS} FROM report_rollups \
         WHERE grain = 'week' AND basis = 'cohort' AND period IN ($1, $2) AND dim = 'all' AND value = ''"
    ))
    .bind(week.monday())
    .bind(week.plus(-1).monday())
    .fetch_all(pool)
    .await?;
    let mut weeks: HashMap<(Uuid, NaiveDate), Counts> = HashMap::new();
    for r in rows {
        weeks.insert((r.client_id, r.period), r.counts);
    }
    let pending: HashMap<Uuid, i64> = sqlx::query_as(
        "SELECT client_id, count(*) FROM context_updates WHERE status = 'pending' GROUP BY client_id",
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    let open: HashMap<Uuid, i64> = if has_alerts(pool).await? {
        sqlx::query_as(
            "SELECT client_id, count(*) FROM alerts_view WHERE status = 'open' GROUP BY client_id",
        )
        .fetch_all(pool)
        .await?
        .into_iter()
        .collect()
    } else {
        HashMap::new()
    };
    let last: HashMap<Uuid, NaiveDate> = sqlx::query_as(
        "SELECT c.client_id, l.period FROM clients_view c CROSS JOIN LATERAL ( \
             SELECT period FROM report_rollups r WHERE r.client_id = c.client_id \
               AND r.grain = 'day' AND r.basis = 'cohort' AND r.dim = 'all' AND r.value = '' \
             ORDER BY period DESC LIMIT 1) l",
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    let mut rows: Vec<PlatformRow> = Vec::with_capacity(clients.len());
    let mut p_values = Vec::with_capacity(clients.len());
    for (client_id, name, status, timezone, reply_days) in clients {
        let tz: Tz = timezone.parse().unwrap_or(Tz::UTC);
        let this = weeks
            .get(&(client_id, week.monday()))
            .copied()
            .unwrap_or_default();
        let previous = weeks
            .get(&(client_id, week.plus(-1).monday()))
            .copied()
            .unwrap_or_default();
        let (previous_reply_rate, change, _, p) = compare(&this, &previous, "reply_rate");
        p_values.push(p);
        rows.push(PlatformRow {
            client_id,
            name,
            status,
            timezone,
            sends: this.sends,
            previous_sends: previous.sends,
            reply_rate: Rate::of(this.replied, this.sends),
            previous_reply_rate,
            reply_rate_change: change,
            reply_rate_p: p,
            reply_rate_q: 1.0,
            reply_rate_verdict: "no significant change",
            bounce_rate: Rate::of(this.bounced, this.sends),
            complaint_rate: Rate::of(this.complained, this.sends),
            maturing: now < week.ends(tz) + Duration::days(i64::from(reply_days)),
            open_alerts: open.get(&client_id).copied().unwrap_or(0),
            pending_approvals: pending.get(&client_id).copied().unwrap_or(0),
            last_activity: last.get(&client_id).copied(),
        });
    }
    for (row, q) in rows.iter_mut().zip(benjamini_hochberg(&p_values)) {
        row.reply_rate_q = q;
        if q < ALPHA && row.reply_rate_change != 0.0 {
            row.reply_rate_verdict = if row.reply_rate_change > 0.0 {
                "significant increase"
            } else {
                "significant decrease"
            };
        }
    }
    sort_rows(&mut rows, sort);
    Ok(PlatformReport {
        week: week.to_string(),
        starts_on: week.monday(),
        ends_on: week.sunday(),
        sort: sort.to_owned(),
        generated_at: now,
        clients: rows,
    })
}

fn sort_rows(rows: &mut [PlatformRow], sort: &str) {
    let descending = sort.starts_with('-');
    let column = sort.trim_start_matches('-');
    rows.sort_by(|a, b| {
        let order = match column {
            "sends" => a.sends.cmp(&b.sends),
            "reply_rate" => a.reply_rate.rate.total_cmp(&b.reply_rate.rate),
            "reply_rate_change" => a.reply_rate_change.total_cmp(&b.reply_rate_change),
            "bounce_rate" => a.bounce_rate.rate.total_cmp(&b.bounce_rate.rate),
            "complaint_rate" => a.complaint_rate.rate.total_cmp(&b.complaint_rate.rate),
            "open_alerts" => a.open_alerts.cmp(&b.open_alerts),
            "pending_approvals" => a.pending_approvals.cmp(&b.pending_approvals),
            "last_activity" => a.last_activity.cmp(&b.last_activity),
            _ => a.name.cmp(&b.name),
        };
        let order = if descending { order.reverse() } else { order };
        order.then(a.client_id.cmp(&b.client_id))
    });
}

/// The report as a JSON value (for the CSV and HTML forms and for
/// `report_published`).
pub fn to_value<T: Serialize>(report: &T) -> Value {
    serde_json::to_value(report).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_iso_week_reads_and_prints_the_same() {
        let week = IsoWeek::parse("2026-W48").expect("a week");
        assert_eq!(
            week.monday(),
            NaiveDate::from_ymd_opt(2026, 11, 23).expect("a date")
        );
        assert_eq!(week.to_string(), "2026-W48");
        assert_eq!(
            IsoWeek::parse("2020-W53").expect("a week").to_string(),
            "2020-W53"
        );
        for bad in ["2026-48", "2026-W60", "W48", "2026-W4", "", "2026-W00"] {
            assert!(IsoWeek::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_last_complete_week_is_the_one_before_the_current_local_week() {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 29, 23, 30, 0)
            .single()
            .expect("a time");
        assert_eq!(IsoWeek::last_complete(now, Tz::UTC).to_string(), "2026-W47");
        assert_eq!(
            IsoWeek::last_complete(now, Tz::Australia__Sydney).to_string(),
            "2026-W48"
        );
    }

    #[test]
    fn a_week_across_the_end_of_daylight_time_is_169_hours_long() {
        // Sydney leaves daylight time on 5 April 2026.
        let week = IsoWeek::parse("2026-W14").expect("a week");
        let hours =
            (week.ends(Tz::Australia__Sydney) - week.starts(Tz::Australia__Sydney)).num_hours();
        assert_eq!(hours, 169);
    }

    #[test]
    fn each_outcome_kind_matures_by_its_own_window() {
        let week = IsoWeek::parse("2026-W40").expect("a week");
        // The week ends Monday 5 October 2026; twenty days later replies
        // (14 days) have matured, meetings (30) and conversions (60) not.
        let now = Utc
            .with_ymd_and_hms(2026, 10, 25, 0, 0, 0)
            .single()
            .expect("a time");
        let m = Maturity::of(week, Tz::UTC, &Windows::default(), now);
        assert!(!m.reply.maturing);
        assert!(m.meeting.maturing);
        assert!(m.conversion.maturing);
        assert_eq!(m.meeting.window_days, 30);
        assert_eq!(
            m.meeting.matures_at,
            Utc.with_ymd_and_hms(2026, 11, 4, 0, 0, 0)
                .single()
                .expect("a time")
        );
        for (metric, maturing) in [
            ("delivery_rate", false),
            ("bounce_rate", false),
            ("reply_rate", false),
            ("open_rate", false),
            ("meeting_rate", true),
            ("conversion_rate", true),
            ("sent", false),
            ("replied", false),
            ("meeting", true),
            ("converted", true),
        ] {
            assert_eq!(m.maturing(metric), maturing, "{metric}");
        }
        let short = Windows::from_days(14, 7, 60);
        assert!(!Maturity::of(week, Tz::UTC, &short, now).meeting.maturing);
    }

    #[test]
    fn an_unknown_sort_names_the_sort_parameter() {
        assert!(sort_param(Some("-sends")).is_ok());
        assert!(sort_param(None).is_ok());
        assert!(sort_param(Some("lead_email")).is_err());
    }
}
