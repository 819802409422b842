//! `sextant-demo`: loads a simulated data set into a running Sextant over
//! its public HTTP API, for the README's tour (`deploy/local/demo.sh` runs
//! it). The same seed loads the same data, so the tour's figures are the
//! same on every fresh system.
//!
//! Eight clients: six fintech clients that share their data (Northwind
//! Capital with 10,000 sends, five more with 1,500 each) and two that do
//! not (health, SaaS), with four months of sends (July to October 2026)
//! and their replies from the simulator ([`sextant_tests::simulator`]),
//! with planted effects: a meeting call to action replies more often for
//! every fintech client, C-level leads do too at Northwind, and the two
//! others have effects of their own. Then it waits until the read models
//! have everything and runs the suggestion engine once for each client,
//! so what it proposes is in the approval queues.
//!
//! Loading twice does not load twice: when the clients are there already
//! it only reports them. `--ids FILE` writes their ids as a sourceable
//! file (`SEXTANT_DEMO_CLIENT`: Northwind Capital's).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use chrono::DateTime;
use clap::Parser;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sextant_tests::simulator::{world, Planted};

#[derive(Parser)]
#[command(
    name = "sextant-demo",
    version,
    about = "Loads Sextant's demo data set over the HTTP API"
)]
struct Args {
    /// The command API.
    #[arg(
        long,
        env = "SEXTANT_COMMAND_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    command_url: String,
    /// The query API.
    #[arg(
        long,
        env = "SEXTANT_QUERY_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    query_url: String,
    /// The operator's key.
    #[arg(long, env = "SEXTANT_OPERATOR_KEY", hide_env_values = true)]
    operator_key: String,
    /// The simulation's seed: the same seed, the same data.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Where to write the clients' ids (a sourceable file).
    #[arg(long)]
    ids: Option<PathBuf>,
}

/// One client of the data set.
struct DemoClient {
    name: &'static str,
    industry: &'static str,
    company_size: &'static str,
    region: &'static str,
    shares_data: bool,
    sends: usize,
    planted: &'static [Planted],
}

const MEETING: Planted = Planted {
    family: "what",
    feature: "cta",
    value: "meeting",
    multiplier: 1.6,
};

const FINTECH: &[Planted] = &[MEETING];

/// The client the tour reads; first, so its id is the one written out.
const NORTHWIND: &str = "Northwind Capital";

const CLIENTS: [DemoClient; 8] = [
    DemoClient {
        name: NORTHWIND,
        industry: "fintech",
        company_size: "51-200",
        region: "AU",
        shares_data: true,
        sends: 10_000,
        planted: &[
            MEETING,
            Planted {
                family: "who",
                feature: "seniority",
                value: "c_level",
                multiplier: 1.5,
            },
        ],
    },
    DemoClient {
        name: "Ledgerline",
        industry: "fintech",
        company_size: "11-50",
        region: "AU",
        shares_data: true,
        sends: 1500,
        planted: FINTECH,
    },
    DemoClient {
        name: "Harbor Pay",
        industry: "fintech",
        company_size: "201-500",
        region: "NZ",
        shares_data: true,
        sends: 1500,
        planted: FINTECH,
    },
    DemoClient {
        name: "Quayside Lending",
        industry: "fintech",
        company_size: "51-200",
        region: "AU",
        shares_data: true,
        sends: 1500,
        planted: FINTECH,
    },
    DemoClient {
        name: "Tally Works",
        industry: "fintech",
        company_size: "11-50",
        region: "SG",
        shares_data: true,
        sends: 1500,
        planted: FINTECH,
    },
    DemoClient {
        name: "Brightvault",
        industry: "fintech",
        company_size: "51-200",
        region: "AU",
        shares_data: true,
        sends: 1500,
        planted: FINTECH,
    },
    DemoClient {
        name: "Meridian Health",
        industry: "health",
        company_size: "201-500",
        region: "AU",
        shares_data: false,
        sends: 1500,
        planted: &[Planted {
            family: "what",
            feature: "angle",
            value: "compliance",
            multiplier: 1.7,
        }],
    },
    DemoClient {
        name: "Copperleaf",
        industry: "saas",
        company_size: "11-50",
        region: "US",
        shares_data: false,
        sends: 1500,
        planted: &[Planted {
            family: "what",
            feature: "cta",
            value: "call",
            multiplier: 1.5,
        }],
    },
];

/// The simulator's sends fall in four weeks from 2026-10-05; the demo
/// spreads them over four such blocks, the last of them the simulator's.
const BLOCKS: i64 = 4;
const BLOCK_DAYS: i64 = 28;

/// How long the read models may take to catch up with the load.
const CATCH_UP: Duration = Duration::from_secs(180);

/// The simulator's world for one client, its sends spread over months.
fn client_world(seed: u64, client: &DemoClient) -> anyhow::Result<(Vec<Value>, Vec<Value>)> {
    let (mut sends, mut outcomes) = world(seed, client.sends, client.planted);
    let mut shift_of = std::collections::HashMap::new();
    for (i, send) in sends.iter_mut().enumerate() {
        let block = i as i64 % BLOCKS;
        let shift = chrono::Duration::days((block - (BLOCKS - 1)) * BLOCK_DAYS);
        shift_time(send, "sent_at", shift)?;
        let message = send["provider_message_id"].as_str().unwrap_or_default();
        shift_of.insert(message.to_owned(), shift);
    }
    for outcome in &mut outcomes {
        let shift = *shift_of
            .get(outcome["provider_message_id"].as_str().unwrap_or_default())
            .ok_or_else(|| anyhow!("an outcome without its send"))?;
        shift_time(outcome, "occurred_at", shift)?;
    }
    Ok((sends, outcomes))
}

fn shift_time(item: &mut Value, field: &str, by: chrono::Duration) -> anyhow::Result<()> {
    let at = item[field]
        .as_str()
        .ok_or_else(|| anyhow!("the simulator gave no {field}"))?;
    let at = DateTime::parse_from_rfc3339(at).with_context(|| format!("{field} {at}"))?;
    item[field] = json!((at + by).to_rfc3339());
    Ok(())
}

struct Api {
    http: reqwest::Client,
    command_url: String,
    query_url: String,
    key: String,
}

impl Api {
    async fn call(
        &self,
        method: Method,
        url: String,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.key)
            .timeout(Duration::from_secs(120));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = answer.status();
        let text = answer
            .text()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body))
    }

    /// A command that must succeed; answers its body.
    async fn command(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.command_url);
        let (status, body) = self.call(method.clone(), url, body).await?;
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {body}");
        }
        Ok(body)
    }

    /// A query, retried until it answers 200 (a read model still catching
    /// up answers 503).
    async fn query(&self, path: &str) -> anyhow::Result<Value> {
        let started = Instant::now();
        loop {
            let (status, body) = self
                .call(Method::GET, format!("{}{path}", self.query_url), None)
                .await?;
            if status == StatusCode::OK {
                return Ok(body);
            }
            if status != StatusCode::SERVICE_UNAVAILABLE || started.elapsed() > CATCH_UP {
                bail!("GET {path} answered {status}: {body}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

fn position_of(body: &Value) -> anyhow::Result<i64> {
    body["position"]
        .as_i64()
        .ok_or_else(|| anyhow!("an answer without a position: {body}"))
}

/// The ids of the clients already registered under the demo's names.
async fn existing(api: &Api) -> anyhow::Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(after) => format!("/v1/clients?limit=500&after={after}"),
            None => "/v1/clients?limit=500".to_owned(),
        };
        let page = api.query(&path).await?;
        for item in page["items"].as_array().into_iter().flatten() {
            let name = item["name"].as_str().unwrap_or_default();
            if CLIENTS.iter().any(|c| c.name == name) {
                let id = item["client_id"].as_str().unwrap_or_default();
                found.push((name.to_owned(), id.to_owned()));
            }
        }
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return Ok(found),
        }
    }
}

/// Registers every client and posts its sends and replies; answers the
/// ids, in [`CLIENTS`] order, and the last position written.
async fn load(api: &Api, seed: u64) -> anyhow::Result<(Vec<String>, i64)> {
    let mut ids = Vec::new();
    let mut position = 0;
    for (index, client) in CLIENTS.iter().enumerate() {
        let registered = api
            .command(
                Method::POST,
                "/v1/clients",
                Some(json!({ "name": client.name, "industry": client.industry,
                    "company_size": client.company_size, "region": client.region })),
            )
            .await?;
        let id = registered["client_id"]
            .as_str()
            .ok_or_else(|| anyhow!("a registration without a client_id: {registered}"))?
            .to_owned();
        let (sends, outcomes) = client_world(seed * 100 + index as u64, client)?;
        // Every send before any reply, the replies in one batch: a client's
        // pattern tables go from no replies at all to every reply in one
        // step, so the suggestion engine's schedule (every minute) has
        // nothing of a client half loaded to learn from.
        for (kind, items) in [("sends", &sends), ("outcomes", &outcomes)] {
            for chunk in items.chunks(1000) {
                let answer = api
                    .command(
                        Method::POST,
                        &format!("/v1/clients/{id}/{kind}"),
                        Some(json!({ kind: chunk })),
                    )
                    .await?;
                if answer["errors"].as_u64().unwrap_or(0) > 0 {
                    bail!("{} {kind}: some were refused: {answer}", client.name);
                }
                position = position.max(position_of(&answer)?);
            }
        }
        tracing::info!(
            client = client.name,
            sends = sends.len(),
            replies = outcomes.len(),
            "loaded"
        );
        ids.push(id);
    }
    // Consent last: until every client is loaded, no platform figure
    // exists for the schedule to learn from.
    for (client, id) in CLIENTS.iter().zip(&ids) {
        if client.shares_data {
            let answer = api
                .command(
                    Method::PATCH,
                    &format!("/v1/clients/{id}"),
                    Some(json!({ "data_sharing_consent": true })),
                )
                .await?;
            position = position.max(position_of(&answer)?);
        }
    }
    Ok((ids, position))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let api = Api {
        http: reqwest::Client::new(),
        command_url: args.command_url.trim_end_matches('/').to_owned(),
        query_url: args.query_url.trim_end_matches('/').to_owned(),
        key: args.operator_key,
    };
    let started = Instant::now();
    let found = existing(&api).await?;
    let ids: Vec<String> = if found.is_empty() {
        let (ids, position) = load(&api, args.seed).await?;
        // Every read model the engine and the tour read has it all.
        api.query(&format!(
            "/v1/patterns/platform/what?min_position={position}"
        ))
        .await?;
        for id in &ids {
            api.query(&format!(
                "/v1/clients/{id}/patterns/what?min_position={position}"
            ))
            .await?;
        }
        let mut proposed = 0;
        for id in &ids {
            let run = api
                .command(
                    Method::POST,
                    &format!("/v1/clients/{id}/suggestions/run"),
                    None,
                )
                .await?;
            proposed += run["suggestions"]
                .as_array()
                .map(|s| s.iter().filter(|x| x["outcome"] == "proposed").count())
                .unwrap_or(0);
        }
        let sends: usize = CLIENTS.iter().map(|c| c.sends).sum();
        tracing::info!(
            clients = ids.len(),
            sends,
            suggestions = proposed,
            seconds = started.elapsed().as_secs(),
            "demo data loaded"
        );
        ids
    } else {
        let ids: Vec<String> = CLIENTS
            .iter()
            .filter_map(|c| {
                found
                    .iter()
                    .find(|(name, _)| name == c.name)
                    .map(|(_, id)| id.clone())
            })
            .collect();
        if ids.len() != CLIENTS.len() || found.len() != CLIENTS.len() {
            bail!(
                "{} of the demo's {} clients are there already (an interrupted load, or \
                 clients of the same names): load it into a system of its own instead \
                 (SEXTANT_PRIVATE=1 and a fresh SEXTANT_STATE_DIR for deploy/local/up.sh)",
                found.len(),
                CLIENTS.len()
            );
        }
        tracing::info!("the demo data is loaded already");
        ids
    };
    if let Some(path) = args.ids {
        let mut text = String::from("# written by deploy/local/demo.sh: the demo's clients\n");
        text.push_str(&format!("export SEXTANT_DEMO_CLIENT={}\n", ids[0]));
        text.push_str(&format!(
            "export SEXTANT_DEMO_CLIENTS=\"{}\"\n",
            ids.join(" ")
        ));
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let logs = sextant_adapters::telemetry::init_tracing(
        &std::env::var("SEXTANT_LOG").unwrap_or_else(|_| "info".into()),
        sextant_adapters::config::LogFormat::Pretty,
    );
    let result = match logs {
        Ok(()) => run(args).await,
        Err(err) => Err(err.into()),
    };
    sextant_adapters::service::exit_on_error(result)
}
