//! An agent reading its context view: the read every outbound step makes,
//! so it must be quick at a steady rate. Driven open loop at
//! `context_read_rate` over the harness's pooled keep-alive connections,
//! once fetching the view (200) and once revalidating it with its ETag
//! (304).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::load::{expect_success, open_loop_for, position_field, send_json};
use super::{Figure, Scale};
use crate::{TestEnv, OPERATOR_KEY};

const AGENT_VIEW: &str = "context/agents/email_strategist";
/// Driven, unmeasured, before each measured run.
const WARM_UP: Duration = Duration::from_secs(1);

pub async fn figures(scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, _) = app.register_client("Reader").await;
    let key = app.issue_key(client, "reader").await;
    let body = serde_json::to_vec(&json!({
        "source": "manual", "rationale": "kick-off notes",
        "patch": {
            "company": { "value_proposition": "close the books in 2 days" },
            "icp": { "industries": ["fintech", "saas"], "regions": ["AU", "NZ"] },
            "messaging": { "tone": "plain", "avoid": ["jargon", "hype"] },
            "playbook": { "subject_patterns": ["question", "number"], "best_send_hour": 9 },
            "prompts": { "email_strategist": { "instructions": "be brief; one ask" } }
        }
    }))?;
    let answer = send_json(
        &app.http,
        Method::POST,
        format!("{}/v1/clients/{client}/context/updates", app.command_url),
        OPERATOR_KEY,
        body,
    )
    .await?;
    let url = format!("{}/v1/clients/{client}/{AGENT_VIEW}", app.query_url);
    let first = app
        .http
        .get(format!("{url}?min_position={}", position_field(&answer)?))
        .bearer_auth(&key);
    let (headers, _) = expect_success(first).await?;
    let etag = headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow::anyhow!("the agent view has no ETag"))?
        .to_owned();

    let workload = "context_read";
    let mut figures = Vec::new();
    for (what, etag, expected) in [
        ("agent_view", None, StatusCode::OK),
        ("agent_view_304", Some(etag), StatusCode::NOT_MODIFIED),
    ] {
        let read = |_| {
            let mut request = app.http.get(&url).bearer_auth(&key);
            if let Some(etag) = &etag {
                request = request.header("if-none-match", etag);
            }
            async move {
                let response = request.send().await?;
                let status = response.status();
                // Read to the end: the connection goes back to the pool.
                response.bytes().await?;
                anyhow::ensure!(status == expected, "answered {status}, not {expected}");
                Ok(1)
            }
        };
        // Connections opened and caches filled before the clock starts.
        open_loop_for(scale.context_read_rate, WARM_UP, &read).await;
        let duration = Duration::from_secs(scale.context_read_seconds);
        let load = open_loop_for(scale.context_read_rate, duration, &read).await;
        figures.extend(load.latencies.figures(workload, what, Some(5.0)));
        figures.push(Figure::new(
            workload,
            &format!("{what}_requests_per_second"),
            load.per_second(),
            "requests/s",
        ));
        figures.push(Figure::new(
            workload,
            &format!("{what}_failed_requests"),
            load.errors as f64,
            "requests",
        ));
    }
    app.stop().await;
    Ok(figures)
}
