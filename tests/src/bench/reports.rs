//! The weekly report's performance row: a client with 1,000,000 sends over
//! 26 weeks (p99 of the JSON and the HTML weekly report) and the operator's
//! platform report over 500 clients (p99).
//!
//! The rollups are inserted directly, as the `reports` projection would
//! have left them (weekly and daily rows, cohort and activity, overall and
//! by every dimension), not ingested through the API: the row measures the
//! reads, which never touch the sends.

use std::time::{Duration, Instant};

use chrono::Utc;
use sextant_application::reports::IsoWeek;
use sextant_domain::values::Tz;

use super::ingest::ingest_projecting;
use super::{Figure, Scale, Target};
use crate::{Parts, TestEnv, OPERATOR_KEY};

/// Requests timed per form.
const REQUESTS: usize = 200;
const CLIENTS: usize = 500;
const SENDS: i64 = 1_000_000;
const WEEKS: i64 = 26;

fn p99(mut samples: Vec<Duration>) -> f64 {
    samples.sort_unstable();
    let index = ((samples.len() as f64) * 0.99).ceil() as usize - 1;
    samples[index.min(samples.len() - 1)].as_secs_f64() * 1000.0
}

/// Inserts a client's rollups: `per_week` sends a week for the 26 weeks
/// to `last`, spread over `values` values of each dimension.
async fn seed(
    pool: &sqlx::PgPool,
    client: uuid::Uuid,
    last: IsoWeek,
    per_week: i64,
    values: i32,
) -> anyhow::Result<()> {
    let first = last.plus(-(WEEKS - 1)).monday();
    sqlx::query(
        "INSERT INTO report_rollups (client_id, grain, basis, period, dim, value, sends, delivered, \
            opened, clicked, replied, positive, meetings, conversions, bounced, hard_bounced, \
            unsubscribed, complained) \
         SELECT $1, g.grain, b.basis, p.period, d.dim, \
                CASE WHEN d.dim = 'all' THEN '' ELSE d.dim || '-' || v.v END, \
                s.n, s.n * 97 / 100, s.n * 45 / 100, s.n * 8 / 100, s.n * 6 / 100, s.n * 2 / 100, \
                s.n / 100, s.n / 300, s.n * 3 / 100, s.n / 100, s.n / 200, s.n / 2000 \
         FROM (VALUES ('week', 7), ('day', 1)) AS g(grain, days) \
         CROSS JOIN (VALUES ('cohort'), ('activity')) AS b(basis) \
         CROSS JOIN LATERAL (SELECT ($2::date + (i * g.days)::int) AS period \
             FROM generate_series(0, ($3 * 7 / g.days) - 1) AS i) p \
         CROSS JOIN (VALUES ('all'), ('channel'), ('campaign'), ('agent'), ('context_version'), \
             ('provider'), ('resource')) AS d(dim) \
         CROSS JOIN LATERAL (SELECT generate_series(1, CASE WHEN d.dim = 'all' THEN 1 ELSE $5 END) AS v) v \
         CROSS JOIN LATERAL (SELECT GREATEST(1, $4 * g.days / 7 / CASE WHEN d.dim = 'all' THEN 1 ELSE $5 END)::bigint AS n) s \
         ON CONFLICT DO NOTHING",
    )
    .bind(client)
    .bind(first)
    .bind(WEEKS)
    .bind(per_week)
    .bind(values)
    .execute(pool)
    .await?;
    Ok(())
}

async fn timed(http: &reqwest::Client, url: &str) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(REQUESTS);
    // Warm up the connection and the caches first.
    for _ in 0..5 {
        http.get(url)
            .bearer_auth(OPERATOR_KEY)
            .send()
            .await?
            .bytes()
            .await?;
    }
    for _ in 0..REQUESTS {
        let started = Instant::now();
        let response = http.get(url).bearer_auth(OPERATOR_KEY).send().await?;
        anyhow::ensure!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        response.bytes().await?;
        samples.push(started.elapsed());
    }
    Ok(samples)
}

/// The row's three figures.
pub async fn weekly_reports() -> anyhow::Result<Vec<Figure>> {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let mut clients = Vec::with_capacity(CLIENTS);
    let mut position = 0;
    for i in 0..CLIENTS {
        let (client, at) = app.register_client(&format!("Bench client {i:03}")).await;
        clients.push(client);
        position = position.max(at);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while env.checkpoint("clients").await < position {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the clients projection did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last = IsoWeek::last_complete(Utc::now(), Tz::UTC);
    // The big client: 1,000,000 sends, 50 values per dimension.
    seed(&env.pool, clients[0], last, SENDS / WEEKS, 50).await?;
    for client in &clients[1..] {
        seed(&env.pool, *client, last, 2_000, 3).await?;
    }
    sqlx::query("ANALYZE report_rollups")
        .execute(&env.pool)
        .await?;
    let base = format!("{}/v1/clients/{}/reports/weekly", app.query_url, clients[0]);
    let json = p99(timed(&app.http, &base).await?);
    let html = p99(timed(&app.http, &format!("{base}?format=html")).await?);
    let platform = p99(timed(
        &app.http,
        &format!("{}/v1/reports/weekly?sort=-sends", app.query_url),
    )
    .await?);
    app.stop().await;
    let w = "weekly_report";
    Ok(vec![
        Figure::new(w, "json_p99_1m_sends_26_weeks", json, "ms").target(Target::Below(100.0)),
        Figure::new(w, "html_p99_1m_sends_26_weeks", html, "ms").target(Target::Below(250.0)),
        Figure::new(w, "platform_p99_500_clients", platform, "ms").target(Target::Below(500.0)),
    ])
}

/// Runs of each side of the ingest comparison, alternated so that whatever
/// else the machine does falls on both.
const INGEST_RUNS: usize = 3;

/// Batch ingest end to end (posted, committed, relayed, applied by every
/// projection) with the `reports` projection running, against the same
/// ingest without it: the projection may cost at most 10%. Each side is
/// its best of [`INGEST_RUNS`] alternated runs.
pub async fn ingest_alongside(scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let mut with = 0.0_f64;
    let mut without = 0.0_f64;
    for _ in 0..INGEST_RUNS {
        let others = sextant_projections::all()
            .into_iter()
            .filter(|p| p.name() != "reports")
            .collect();
        without = without.max(ingest_projecting(scale, Parts::all(), others).await?.0);
        let every = sextant_projections::all();
        with = with.max(ingest_projecting(scale, Parts::all(), every).await?.0);
    }
    Ok(vec![Figure::new(
        "batch_ingest_with_reports",
        "events_per_second_end_to_end",
        with,
        "events/s",
    )
    .against("batch_ingest_without_reports", without)
    .target(Target::RatioAtLeast(0.9))])
}
