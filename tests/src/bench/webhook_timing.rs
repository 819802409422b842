//! Webhook refusal timing (`--only webhook_timing`): whether the time of a
//! 401 tells an attacker that another tenant exists or has a webhook secret
//! for the provider. The answer is the same by construction (one text for
//! every refusal, and a delivery without a secret is verified against a
//! decoy; see `sextant_application::webhooks::receive`); this measures the
//! time.
//!
//! The same badly-signed Smartlead delivery (the documented `email_sent`
//! payload, `X-Smartlead-Signature` under a guessed secret) is posted,
//! one request at a time over one keep-alive connection, to three targets:
//!
//! - **A**: a client with a Smartlead secret set;
//! - **B**: a client without one;
//! - **C**: a random id that is no client;
//!
//! and to **A'**, A again, as the noise reference. Each round posts to all
//! four; the order rotates by one each round so that every target holds
//! every place in the round equally often. The noise floor is how far A
//! differs from itself: A' against A, and A's second half of the rounds
//! against its first. B and C are judged indistinguishable from A when
//! their median's ratio to A's lies within that floor plus [`MARGIN`].
//! Beside the medians, each target is compared with A round by round (the
//! two were timed moments apart, so the machine's drift cancels): the
//! median of the per-round differences and the share of rounds in which
//! the target answered sooner than A, with A' as the reference (about 0 µs
//! and 50 % when nothing tells them apart). These are shown, not judged.
//! Every answer must be a 401 with the same body, or the run fails; and A's
//! secret must still verify a rightly signed delivery afterwards, so A was
//! really verified against a stored secret and not the decoy.

use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sextant_domain::values::Provider;
use uuid::Uuid;

use super::load::Latencies;
use super::{Figure, Scale, Target};
use crate::providers::{fixtures, headers_for, webhook_url};
use crate::{Parts, Running, TestEnv, OPERATOR_KEY};

/// What B's and C's median ratios to A's may differ from 1 beyond the
/// noise floor measured in the same run.
pub const MARGIN: f64 = 0.10;

/// Rounds posted before the timed ones and not counted: the connection,
/// the server's first paths and the decoy secret (made on first use) warm
/// up.
const WARM_UP_ROUNDS: usize = 200;

/// A's secret.
const SECRET: &str = "bench-smartlead-webhook-secret-0123";
/// The secret the deliveries are signed under: a guess, matching no one's.
const GUESS: &str = "a-guess-at-the-secret-00000000";

/// The fixture posted.
const FIXTURE: &str = "email_sent";

const WORKLOAD: &str = "webhook_timing";

/// The four targets, in the order of [`Timings`]' fields.
const A: usize = 0;
const B: usize = 1;
const C: usize = 2;
const A_AGAIN: usize = 3;
const NAMES: [&str; 4] = ["a_secret_set", "b_no_secret", "c_no_client", "a_again"];

/// Each target's latencies, in round order.
struct Timings {
    targets: [Vec<Duration>; 4],
    /// Answers that were a 401 with the first answer's body.
    same_refusals: usize,
    deliveries: usize,
}

impl Timings {
    fn of(&self, target: usize) -> Latencies {
        latencies(&self.targets[target])
    }
}

fn latencies(durations: &[Duration]) -> Latencies {
    let mut latencies = Latencies::default();
    for d in durations {
        latencies.push(*d);
    }
    latencies
}

fn micros(latencies: &Latencies, p: f64) -> f64 {
    latencies.percentile(p).as_secs_f64() * 1e6
}

/// One delivery, timed from sending the request to the last byte of the
/// answer; answers the time, the status and the body.
async fn deliver(
    http: &reqwest::Client,
    url: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> anyhow::Result<(Duration, StatusCode, Vec<u8>)> {
    let request = http
        .post(url)
        .headers(headers.clone())
        .body(body.to_vec())
        .build()?;
    let at = Instant::now();
    let response = http.execute(request).await?;
    let status = response.status();
    let answer = response.bytes().await?;
    let took = at.elapsed();
    Ok((took, status, answer.to_vec()))
}

fn header_map(pairs: &[(String, String)]) -> anyhow::Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in pairs {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes())?,
            HeaderValue::from_str(value)?,
        );
    }
    Ok(headers)
}

/// `rounds` timed rounds (after the warm-up) of the same delivery to the
/// four targets, over one keep-alive connection, one request at a time.
async fn time_refusals(
    app: &Running,
    urls: &[String; 4],
    headers: &HeaderMap,
    body: &[u8],
    rounds: usize,
) -> anyhow::Result<Timings> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .build()?;
    let mut timings = Timings {
        targets: Default::default(),
        same_refusals: 0,
        deliveries: 0,
    };
    let mut first: Option<Vec<u8>> = None;
    let mut odd: Option<String> = None;
    for round in 0..WARM_UP_ROUNDS + rounds {
        for place in 0..4 {
            let target = (round + place) % 4;
            let (took, status, answer) = deliver(&http, &urls[target], headers, body).await?;
            let first = first.get_or_insert_with(|| answer.clone());
            if status == StatusCode::UNAUTHORIZED && answer == *first {
                timings.same_refusals += 1;
            } else if odd.is_none() {
                odd = Some(format!(
                    "{}: {status} {}",
                    NAMES[target],
                    String::from_utf8_lossy(&answer)
                ));
            }
            timings.deliveries += 1;
            if round >= WARM_UP_ROUNDS {
                timings.targets[target].push(took);
            }
        }
    }
    let first = first.unwrap_or_default();
    anyhow::ensure!(
        odd.is_none(),
        "every refusal must be a 401 with one body ({}); first told apart: {}",
        String::from_utf8_lossy(&first),
        odd.unwrap_or_default()
    );
    // A's secret opens and verifies: A took the stored secret's path.
    let url = &urls[A];
    let signed = header_map(&headers_for(
        Provider::Smartlead,
        SECRET,
        FIXTURE,
        url,
        body,
        Utc::now(),
    ))?;
    let (_, status, answer) = deliver(&app.http, url, &signed, body).await?;
    anyhow::ensure!(
        status.is_success(),
        "A's own secret must verify: {status} {}",
        String::from_utf8_lossy(&answer)
    );
    Ok(timings)
}

/// Registers A (with a Smartlead secret) and B (without); answers the four
/// targets' URLs (C a random id).
async fn targets(app: &Running) -> anyhow::Result<[String; 4]> {
    let (a, _) = app.register_client("Webhook timing: with a secret").await;
    let (b, _) = app
        .register_client("Webhook timing: without a secret")
        .await;
    let set = app
        .command(
            Method::PUT,
            &format!("/v1/clients/{a}/webhooks/{}", Provider::Smartlead.as_str()),
            Some(OPERATOR_KEY),
            Some(json!({ "secret": SECRET })),
        )
        .await;
    anyhow::ensure!(set.status == StatusCode::OK, "setting A's secret: {set:?}");
    let c = Uuid::new_v4();
    let url = |client| webhook_url(app, Provider::Smartlead, client);
    Ok([url(a), url(b), url(c), url(a)])
}

/// The median of `target - a`, round by round, in µs; and the share of
/// rounds in which `target` was the sooner, in %.
fn paired(target: &[Duration], a: &[Duration]) -> (f64, f64) {
    let mut differences: Vec<f64> = target
        .iter()
        .zip(a)
        .map(|(t, a)| (t.as_secs_f64() - a.as_secs_f64()) * 1e6)
        .collect();
    if differences.is_empty() {
        return (0.0, 0.0);
    }
    differences.sort_by(f64::total_cmp);
    let sooner = differences.iter().filter(|d| **d < 0.0).count();
    (
        differences[differences.len() / 2],
        100.0 * sooner as f64 / differences.len() as f64,
    )
}

/// How far a ratio may lie from 1 and still be judged indistinguishable.
fn tolerance(noise_floor: f64, halves: f64) -> f64 {
    (noise_floor - 1.0).abs().max((halves - 1.0).abs()) + MARGIN
}

pub async fn figures(scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let env = TestEnv::new().await;
    let app = env.start_with(Parts::apis_only()).await;
    let urls = targets(&app).await?;
    let body = fixtures(Provider::Smartlead)
        .into_iter()
        .find(|(name, _)| name == FIXTURE)
        .map(|(_, body)| body)
        .ok_or_else(|| anyhow::anyhow!("the smartlead fixture {FIXTURE}"))?;
    // Smartlead signs the body alone: the one set of headers serves every
    // target.
    let headers = header_map(&headers_for(
        Provider::Smartlead,
        GUESS,
        FIXTURE,
        &urls[A],
        &body,
        Utc::now(),
    ))?;
    let timings = time_refusals(&app, &urls, &headers, &body, scale.webhook_rounds).await;
    app.stop().await;
    let timings = timings?;

    let a = timings.of(A);
    let half = timings.targets[A].len() / 2;
    let (first_half, second_half) = timings.targets[A].split_at(half);
    let (first_half, second_half) = (latencies(first_half), latencies(second_half));
    let a_median = micros(&a, 50.0);
    let a_p90 = micros(&a, 90.0);
    let ratio = |l: &Latencies| micros(l, 50.0) / a_median;
    let noise_floor = ratio(&timings.of(A_AGAIN));
    let halves = micros(&second_half, 50.0) / micros(&first_half, 50.0);
    let allowed = tolerance(noise_floor, halves);

    let median_against_a = format!("{}_median", NAMES[A]);
    let p90_against_a = format!("{}_p90", NAMES[A]);
    let mut figures = vec![
        Figure::new(WORKLOAD, &format!("{}_median_us", NAMES[A]), a_median, "µs"),
        Figure::new(WORKLOAD, &format!("{}_p90_us", NAMES[A]), a_p90, "µs"),
        Figure::new(
            WORKLOAD,
            &format!("{}_second_half_median_us", NAMES[A]),
            micros(&second_half, 50.0),
            "µs",
        )
        .against(
            &format!("{}_first_half_median", NAMES[A]),
            micros(&first_half, 50.0),
        ),
    ];
    for target in [A_AGAIN, B, C] {
        let latencies = timings.of(target);
        let mut median = Figure::new(
            WORKLOAD,
            &format!("{}_median_us", NAMES[target]),
            micros(&latencies, 50.0),
            "µs",
        )
        .against(&median_against_a, a_median);
        if target != A_AGAIN {
            median = median.target(Target::Indistinguishable(allowed));
        }
        figures.push(median);
        figures.push(
            Figure::new(
                WORKLOAD,
                &format!("{}_p90_us", NAMES[target]),
                micros(&latencies, 90.0),
                "µs",
            )
            .against(&p90_against_a, a_p90),
        );
        let (difference, sooner) = paired(&timings.targets[target], &timings.targets[A]);
        figures.push(Figure::new(
            WORKLOAD,
            &format!("{}_minus_a_paired_median_us", NAMES[target]),
            difference,
            "µs",
        ));
        figures.push(Figure::new(
            WORKLOAD,
            &format!("{}_sooner_than_a", NAMES[target]),
            sooner,
            "% of rounds",
        ));
    }
    figures.push(
        Figure::new(
            WORKLOAD,
            "refusals_401_with_one_body",
            timings.same_refusals as f64,
            "answers",
        )
        .against("deliveries", timings.deliveries as f64)
        .target(Target::RatioAtLeast(1.0)),
    );
    tracing::info!(
        rounds = scale.webhook_rounds,
        noise_floor,
        halves,
        allowed,
        "webhook timing measured"
    );
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_differences_are_taken_round_by_round() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|m| Duration::from_micros(*m))
                .collect::<Vec<_>>()
        };
        let (difference, sooner) = paired(&ms(&[90, 200, 95]), &ms(&[100, 100, 100]));
        assert!((difference - -5.0).abs() < 1e-6, "{difference}");
        assert!((sooner - 200.0 / 3.0).abs() < 1e-9, "{sooner}");
    }

    #[test]
    fn the_tolerance_is_the_larger_self_difference_of_a_plus_the_margin() {
        assert!((tolerance(1.03, 0.98) - (0.03 + MARGIN)).abs() < 1e-9);
        assert!((tolerance(0.99, 1.05) - (0.05 + MARGIN)).abs() < 1e-9);
    }
}
