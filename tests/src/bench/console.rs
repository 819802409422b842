//! The review console's row: how long the console takes to answer its
//! busiest pages (the approval queue, the context and its history) with 20
//! people signed in and clicking at once, and how much a browser fetches
//! for each page (HTML, the stylesheet and the scripts).
//!
//! The data is seeded through the APIs as it would arrive: a client in
//! co-pilot with a context of many versions and a queue of pending
//! suggestions, each with evidence and a diff to show. The console runs in
//! this process on port 0 against the two APIs, as in the browser tests;
//! each simulated person signs in over HTTP (the sign-in form's CSRF
//! token, then the session cookie) and reads the three pages in turn.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::load::Latencies;
use super::{Figure, Target};
use crate::browser::Console;
use crate::{Running, TestEnv, OPERATOR_KEY};

const WORKLOAD: &str = "console";
/// People signed in at once.
const USERS: usize = 20;
/// Rounds of the three pages each person reads.
const ROUNDS: usize = 25;
/// Context versions before the suggestions.
const VERSIONS: usize = 60;
/// Suggestions waiting in the queue.
const PENDING: usize = 30;
/// What docs/console.md promises.
const P99_BELOW_MS: f64 = 50.0;
const WEIGHT_BELOW_KB: f64 = 150.0;

/// A signed-in session: a client that keeps no cookies of its own and the
/// session cookie it sends.
struct Person {
    http: reqwest::Client,
    cookie: String,
}

fn cookie_value(response: &reqwest::Response, name: &str) -> anyhow::Result<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()
                .and_then(|pair| pair.strip_prefix(&format!("{name}=")))
        })
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no {name} cookie"))
}

/// Signs in with `key` as the sign-in form would.
async fn sign_in(console: &str, key: &str) -> anyhow::Result<Person> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let form = http.get(format!("{console}/sign-in")).send().await?;
    let form_cookie = cookie_value(&form, "sextant_console_sign_in")?;
    let html = form.text().await?;
    let marker = "name=\"csrf\" value=\"";
    let at = html
        .find(marker)
        .ok_or_else(|| anyhow::anyhow!("no CSRF field on the sign-in form"))?
        + marker.len();
    let token: String = html[at..].chars().take_while(|c| *c != '"').collect();
    let answer = http
        .post(format!("{console}/sign-in"))
        .header("cookie", format!("sextant_console_sign_in={form_cookie}"))
        .form(&[("csrf", token.as_str()), ("key", key)])
        .send()
        .await?;
    anyhow::ensure!(
        answer.status() == StatusCode::SEE_OTHER,
        "sign-in answered {}",
        answer.status()
    );
    let cookie = cookie_value(&answer, "sextant_console")?;
    Ok(Person { http, cookie })
}

impl Person {
    /// The page's body and how long it took to arrive whole.
    async fn get(&self, url: &str) -> anyhow::Result<(Duration, usize)> {
        let started = Instant::now();
        let response = self
            .http
            .get(url)
            .header("cookie", format!("sextant_console={}", self.cookie))
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        anyhow::ensure!(status == StatusCode::OK, "{url} answered {status}");
        Ok((started.elapsed(), body.len()))
    }
}

/// A client with a long context history and a full queue; answers its id,
/// a reviewer key and the position of the last write.
async fn seed(app: &Running) -> anyhow::Result<(uuid::Uuid, String, i64)> {
    let (client, _) = app.register_client("Console bench").await;
    let mode = app
        .command(
            Method::PATCH,
            &format!("/v1/clients/{client}"),
            Some(OPERATOR_KEY),
            Some(json!({ "permission_mode": "co_pilot" })),
        )
        .await;
    anyhow::ensure!(mode.status.is_success(), "{mode:?}");
    let reviewer = app.issue_key(client, "reviewer").await;
    let mut position = mode.position();
    let updates = format!("/v1/clients/{client}/context/updates");
    for v in 0..VERSIONS {
        let answer = app
            .command(
                Method::POST,
                &updates,
                Some(OPERATOR_KEY),
                Some(json!({ "source": "manual", "rationale": format!("edit {v}"), "confidence": 1.0,
                    "patch": { "messaging": { "tone": format!("tone {v}") },
                               "icp": { "regions": ["AU", "NZ"], "titles": [format!("title {}", v % 7)] },
                               "limits": { "daily_max": 40 + v } } })),
            )
            .await;
        anyhow::ensure!(answer.status.is_success(), "{answer:?}");
        position = position.max(answer.position());
    }
    for s in 0..PENDING {
        let answer = app
            .command(
                Method::POST,
                &updates,
                Some(OPERATOR_KEY),
                Some(json!({ "source": "crm_analysis", "confidence": 0.6,
                    "rationale": format!("won deals point at segment {s}"),
                    "patch": { "playbook": { format!("segment_{s}"): { "angle": "compliance", "cta": "meeting" } } },
                    "evidence": { "sends": 1200 + s, "reply_rate": { "segment": 0.061, "others": 0.032 },
                                  "won_deals": 14, "window_days": 90 } })),
            )
            .await;
        anyhow::ensure!(answer.status.is_success(), "{answer:?}");
        position = position.max(answer.position());
    }
    Ok((client, reviewer, position))
}

/// The bytes a browser fetches for a page: its HTML and every stylesheet
/// and script it refers to (none is cached between pages here).
async fn weight(person: &Person, console: &str, html_bytes: usize) -> anyhow::Result<usize> {
    let mut total = html_bytes;
    for asset in ["console.css", "htmx.min.js", "console.js"] {
        let (_, bytes) = person.get(&format!("{console}/static/{asset}")).await?;
        total += bytes;
    }
    Ok(total)
}

pub async fn figures() -> anyhow::Result<Vec<Figure>> {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, reviewer, position) = seed(&app).await?;
    // The console's pages read at whatever the read models have reached:
    // wait until they have it all.
    let caught_up = app
        .query(
            &format!("/v1/clients/{client}/approvals?min_position={position}"),
            Some(&reviewer),
        )
        .await;
    anyhow::ensure!(caught_up.status == StatusCode::OK, "{caught_up:?}");
    let console = Console::start(&app).await;
    let base = console.url.clone();
    let pages = [
        ("queue_page", format!("{base}/clients/{client}/approvals")),
        ("context_page", format!("{base}/clients/{client}/context")),
        (
            "history_page",
            format!("{base}/clients/{client}/context/history"),
        ),
    ];

    let mut people = Vec::with_capacity(USERS);
    for _ in 0..USERS {
        people.push(sign_in(&base, &reviewer).await?);
    }
    // One warm-up round, untimed, and the page weights from it.
    let mut weights = Vec::new();
    for (name, url) in &pages {
        let (_, html) = people[0].get(url).await?;
        weights.push((*name, weight(&people[0], &base, html).await?));
    }
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(USERS);
    for (i, person) in people.into_iter().enumerate() {
        let pages = pages.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen: Vec<Latencies> = vec![Latencies::default(); pages.len()];
            for round in 0..ROUNDS {
                // Each person starts on another page, so that the three are
                // read side by side throughout.
                for k in 0..pages.len() {
                    let at = (i + round + k) % pages.len();
                    let (latency, _) = person.get(&pages[at].1).await?;
                    seen[at].push(latency);
                }
            }
            anyhow::Ok(seen)
        }));
    }
    let mut latencies: Vec<Latencies> = vec![Latencies::default(); pages.len()];
    for task in tasks {
        for (all, one) in latencies.iter_mut().zip(task.await??) {
            all.extend(one);
        }
    }
    tracing::info!(elapsed = ?started.elapsed(), "console pages read");
    let mut figures = Vec::new();
    for ((name, _), seen) in pages.iter().zip(&latencies) {
        figures.extend(seen.figures(WORKLOAD, name, Some(P99_BELOW_MS)));
    }
    for (name, bytes) in weights {
        figures.push(
            Figure::new(
                WORKLOAD,
                &format!("{name}_weight_kb"),
                bytes as f64 / 1024.0,
                "KB",
            )
            .target(Target::Below(WEIGHT_BELOW_KB)),
        );
    }
    console.stop().await;
    app.stop().await;
    Ok(figures)
}
