//! Bulk import: `sextant import sends` of a CSV export, run as the operator
//! runs it (the release `sextant` binary as a child process), timed from its
//! start until every row is committed, relayed and applied by every
//! projection; against batch ingest end to end of as many events, measured
//! in the same run (target: at least 0.8 ×).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::ingest::{caught_up, ingest_end_to_end};
use super::{Figure, Scale, Target};
use crate::cli::Sextant;
use crate::{TestEnv, OPERATOR_KEY};

/// Rows imported: 200,000 in the full run, the quick run's ingest size
/// otherwise.
fn rows(scale: Scale) -> usize {
    scale.ingest_events.min(200_000)
}

/// The CSV columns: the API's fields, as rich as the batch-ingest sends.
const HEADER: &str = "provider,provider_message_id,lead_ref,lead.email,lead.industry,\
lead.company_size,lead.seniority,lead.region,lead.tier,lead.score,channel,campaign_id,step,\
content.subject,content.body_words,content.personalized,content.cta,content.angle,\
context_version,agent,prompt_version,resource,sent_at";

/// Row `i`, the same send [`super::ingest::send_item`] posts as JSON.
fn row(i: usize) -> String {
    format!(
        "import,m-{i},lead-{i:08},lead{}@example.com,{},11-50,{},AU,warm,{},email,bench,{},\
Quick question {i}?,{},{},meeting,{},1,email_strategist,1,sam@acme-mail.com,2026-11-18T09:12:00Z",
        i % 50_000,
        ["fintech", "saas", "health"][i % 3],
        ["vp", "director", "c_level"][i % 3],
        i % 100,
        1 + i % 3,
        60 + i % 80,
        i.is_multiple_of(2),
        ["compliance", "speed"][i % 2],
    )
}

fn write_csv(path: &Path, rows: usize) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "{HEADER}")?;
    for i in 0..rows {
        writeln!(out, "{}", row(i))?;
    }
    out.flush()?;
    Ok(())
}

/// Imports the CSV end to end; answers rows per second.
async fn import(rows: usize) -> anyhow::Result<f64> {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Import bench").await;
    let cli = Sextant::new(&app, &env, OPERATOR_KEY, Some(client));
    let csv = cli.path(&format!("sends-{}.csv", Uuid::new_v4().simple()));
    write_csv(&csv, rows)?;
    let file = csv
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("a UTF-8 temp path"))?;
    let started = Instant::now();
    let out = cli
        .run(&["import", "sends", file, "--output", "json"])
        .await;
    anyhow::ensure!(
        out.status.success(),
        "the import failed: {}",
        crate::cli::show(&out)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    anyhow::ensure!(
        summary["recorded"].as_u64() == Some(rows as u64),
        "the import recorded {} of {rows} rows: {summary}; rejects: {}",
        summary["recorded"],
        std::fs::read_to_string(cli.path(&format!("{file}.rejects.csv")))
            .unwrap_or_default()
            .lines()
            .take(3)
            .collect::<Vec<_>>()
            .join(" | ")
    );
    caught_up(&env, started, Duration::from_secs(1800)).await?;
    let rate = rows as f64 / started.elapsed().as_secs_f64();
    app.stop().await;
    Ok(rate)
}

pub async fn figures(scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let rows = rows(scale);
    let same_size = Scale {
        ingest_events: rows,
        ..scale
    };
    let (ingest, _) = ingest_end_to_end(same_size).await?;
    let import = import(rows).await?;
    Ok(vec![Figure::new(
        "bulk_import_csv",
        "rows_per_second_end_to_end",
        import,
        "events/s",
    )
    .against("batch_ingest", ingest)
    .target(Target::RatioAtLeast(0.8))])
}
