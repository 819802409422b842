//! Learning: the suggestion engine (the analysis agents of the design) and
//! its schedule. The engine reads the
//! pattern tables and, where a pattern clears the client's false-discovery
//! target, the minimum sample in both arms and a meaningful lift, proposes a
//! context update into `playbook.learned` with a plain-language rationale
//! and its evidence. It writes only through commands, so everything it does
//! is an event, and the ClientContext aggregate's own rules keep it from
//! re-proposing what is pending or was rejected on the same evidence.

use std::sync::Arc;
use std::time::Duration;

use serde::{Serialize, Serializer};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use sextant_adapters::store::{CommandError, CommandMeta, CommandStore};
use sextant_domain::client::Client;
use sextant_domain::context::{
    ClientContext, ContextCommand, ContextError, Policy, Proposer, Source,
};
use sextant_domain::learning::{
    pattern_rows, Family, Level, Metric, PatternRow, Verdict, BASELINE, PUBLISHED_BENCHMARKS,
};
use sextant_domain::metadata::{Actor, Component};
use sextant_domain::stats::{benjamini_hochberg, format_p};
use sextant_domain::values::{Rationale, UnitInterval};

use crate::read_model::platform::platform_table;
use crate::App;

/// What makes a pattern worth a suggestion.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// The false-discovery target (BH q below it).
    pub fdr: f64,
    /// Sends each arm (the key, and everything else) needs.
    pub min_sample: u64,
    /// The smallest relative difference from the baseline worth acting on.
    pub min_relative_lift: f64,
}

/// Below this many sends of its own, a client is new: it starts from priors.
pub const NEW_CLIENT_SENDS: u64 = 500;

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            fdr: 0.05,
            min_sample: 100,
            min_relative_lift: 0.2,
        }
    }
}

/// One suggestion made (or refused by the aggregate, with why).
#[derive(Debug, Clone, Serialize)]
pub struct Suggested {
    /// Which level of the priors it came from.
    pub level: Level,
    pub family: Family,
    pub key: String,
    pub verdict: Verdict,
    pub update_id: Option<Uuid>,
    pub outcome: Outcome,
}

/// What became of a suggestion. Answered as one string, `proposed` or
/// `not proposed: <why>`, the shape the API documents.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Proposed,
    /// The ClientContext aggregate refused it, for this reason.
    NotProposed(String),
}

impl Outcome {
    pub fn is_proposed(&self) -> bool {
        matches!(self, Self::Proposed)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Proposed => f.write_str("proposed"),
            Self::NotProposed(why) => write!(f, "not proposed: {why}"),
        }
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

pub struct Engine {
    pool: PgPool,
    context: Arc<CommandStore<ClientContext>>,
    clients: Arc<CommandStore<Client>>,
    thresholds: Thresholds,
}

fn source_for(family: Family) -> Source {
    match family {
        Family::What | Family::When => Source::EmailPerformance,
        Family::How | Family::Who => Source::CrmAnalysis,
        Family::Versions => Source::ContextRegression,
    }
}

/// The patterns that clear the thresholds, strongest first.
pub fn significant(rows: &[PatternRow], baseline_sends: u64, t: Thresholds) -> Vec<PatternRow> {
    rows.iter()
        .filter(|r| {
            r.q < t.fdr
                && r.sends >= t.min_sample
                && baseline_sends.saturating_sub(r.sends) >= t.min_sample
                && (r.lift - 1.0).abs() >= t.min_relative_lift
        })
        .cloned()
        .collect()
}

fn rationale(family: Family, metric: Metric, row: &PatternRow, base_rate: f64) -> String {
    let (what, value) = row.key.split_once('=').unwrap_or((&row.key, ""));
    format!(
        "{} {what} = {value}: {} rate {:.1}% against {:.1}% over all sends (lift {:.2}, 95% interval {:.1}–{:.1}%, \
         q = {}, {} sends). {}",
        family.as_str().to_uppercase(),
        metric.as_str().replace('_', " "),
        row.rate * 100.0,
        base_rate * 100.0,
        row.lift,
        row.ci_low * 100.0,
        row.ci_high * 100.0,
        format_p(row.q),
        row.sends,
        if row.lift > 1.0 { "Prefer it." } else { "Avoid it." }
    )
}

impl Engine {
    pub fn new(app: &App, thresholds: Thresholds) -> Self {
        Self {
            pool: app.pool.clone(),
            context: app.context.clone(),
            clients: app.clients.clone(),
            thresholds,
        }
    }

    /// Looks at every family of one client once; answers what it proposed.
    pub async fn run_for(&self, client_id: Uuid) -> Result<Vec<Suggested>, anyhow::Error> {
        let client = self
            .clients
            .load(&client_id.to_string())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if !client.is_registered() {
            return Ok(Vec::new());
        }
        let policy = Policy {
            mode: client.permission_mode(),
            threshold: client.autopilot_threshold(),
        };
        let document: Option<Value> =
            sqlx::query_scalar("SELECT document FROM context_current WHERE client_id = $1")
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?;
        let learned = document
            .as_ref()
            .and_then(|d| d.pointer("/playbook/learned"))
            .cloned()
            .unwrap_or(Value::Null);
        let metric = Metric::Reply;
        let counts: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT family, key, sends, replies FROM pattern_counts WHERE client_id = $1 AND scope = 'client'",
        )
        .bind(client_id)
        .fetch_all(&self.pool)
        .await?;
        let baseline = counts
            .iter()
            .find(|(f, k, ..)| f == BASELINE.0 && k == BASELINE.1)
            .map(|(_, _, n, x)| (*n as u64, *x as u64))
            .unwrap_or((0, 0));
        let base_rate = if baseline.0 > 0 {
            baseline.1 as f64 / baseline.0 as f64
        } else {
            0.0
        };
        // The engine decides over every family at once, so its false
        // discoveries are controlled over all its decisions: Benjamini–
        // Hochberg across every row of every family (the tables' own q
        // values are per family, as docs/learning.md defines them).
        let mut all: Vec<(Family, PatternRow)> = Vec::new();
        for family in Family::ALL {
            let rows: Vec<(String, u64, u64)> = counts
                .iter()
                .filter(|(f, ..)| f == family.as_str())
                .map(|(_, k, n, x)| (k.clone(), *n as u64, *x as u64))
                .collect();
            all.extend(
                pattern_rows(&rows, baseline)
                    .into_iter()
                    .map(|r| (family, r)),
            );
        }
        let global_q = benjamini_hochberg(&all.iter().map(|(_, r)| r.p).collect::<Vec<_>>());
        for ((_, row), q) in all.iter_mut().zip(global_q) {
            row.q = q;
        }
        let mut made = Vec::new();
        for family in Family::ALL {
            let rows: Vec<PatternRow> = all
                .iter()
                .filter(|(f, _)| *f == family)
                .map(|(_, r)| r.clone())
                .collect();
            for row in significant(&rows, baseline.0, self.thresholds) {
                let verdict = Verdict::of_lift(row.lift);
                if learned.get(family.as_str()).and_then(|f| f.get(&row.key))
                    == Some(&json!(verdict.as_str()))
                {
                    continue;
                }
                let patch = json!({ "playbook": { "learned": { family.as_str(): { &row.key: verdict.as_str() } } } });
                let evidence = json!({
                    "family": family.as_str(), "key": row.key, "metric": metric.as_str(), "level": Level::Client.as_str(),
                    "sends": row.sends, "events": row.events, "rate": row.rate,
                    "interval_95": [row.ci_low, row.ci_high], "baseline_rate": base_rate,
                    "baseline_sends": baseline.0, "lift": row.lift, "p": row.p, "q": row.q,
                    "fdr_target": self.thresholds.fdr,
                    "query": format!("GET /v1/clients/{client_id}/patterns/{}?metric={}", family.as_str(), metric.as_str()),
                });
                let rationale = rationale(family, metric, &row, base_rate);
                made.push(
                    self.propose(
                        client_id,
                        policy,
                        Level::Client,
                        family,
                        &row.key,
                        verdict,
                        source_for(family),
                        patch,
                        rationale,
                        evidence,
                    )
                    .await?,
                );
            }
        }
        made.extend(
            self.regressions(client_id, policy, &counts, &document)
                .await?,
        );
        made.extend(
            self.priors(client_id, &client, policy, baseline.0, &document)
                .await?,
        );
        Ok(made)
    }

    /// A context version significantly worse than its predecessor: propose
    /// going back (`context_regression`), as the update that turns the
    /// current document into the predecessor's.
    async fn regressions(
        &self,
        client_id: Uuid,
        policy: Policy,
        counts: &[(String, String, i64, i64)],
        document: &Option<Value>,
    ) -> Result<Vec<Suggested>, anyhow::Error> {
        let current: Option<i64> =
            sqlx::query_scalar("SELECT version FROM context_current WHERE client_id = $1")
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?;
        let (Some(current), Some(document)) = (current, document) else {
            return Ok(Vec::new());
        };
        let by_version = |v: i64| {
            counts
                .iter()
                .find(|(f, k, ..)| f == "versions" && *k == format!("context_version={v}"))
                .map(|(_, _, n, x)| (*n as u64, *x as u64))
        };
        let (Some((n_now, x_now)), Some((n_before, x_before))) =
            (by_version(current), by_version(current - 1))
        else {
            return Ok(Vec::new());
        };
        if n_now < self.thresholds.min_sample || n_before < self.thresholds.min_sample {
            return Ok(Vec::new());
        }
        let (_, p) = sextant_domain::stats::two_proportion_test(x_now, n_now, x_before, n_before);
        let (rate_now, rate_before) = (
            x_now as f64 / n_now as f64,
            x_before as f64 / n_before as f64,
        );
        let worse =
            rate_before > 0.0 && rate_now / rate_before <= 1.0 - self.thresholds.min_relative_lift;
        if !(worse && p < self.thresholds.fdr) {
            return Ok(Vec::new());
        }
        let previous: Option<Value> = sqlx::query_scalar(
            "SELECT document FROM context_versions WHERE client_id = $1 AND version = $2",
        )
        .bind(client_id)
        .bind(current - 1)
        .fetch_optional(&self.pool)
        .await?;
        let Some(previous) = previous else {
            return Ok(Vec::new());
        };
        let patch = sextant_domain::context::json::patch_between(document, &previous);
        if patch.as_object().is_none_or(|m| m.is_empty()) {
            return Ok(Vec::new());
        }
        let key = format!("context_version={current}");
        let rationale = format!(
            "Version {current} replies at {:.1}% against {:.1}% for version {} ({} and {} sends, p = {}): \
             go back to version {}.",
            rate_now * 100.0,
            rate_before * 100.0,
            current - 1,
            n_now,
            n_before,
            format_p(p),
            current - 1
        );
        let evidence = json!({
            "level": Level::Client.as_str(), "family": "versions", "key": key, "regressed_version": current,
            "back_to_version": current - 1, "sends": [n_now, n_before], "replies": [x_now, x_before],
            "rates": [rate_now, rate_before], "p": p,
            "query": format!("GET /v1/clients/{client_id}/patterns/versions?metric=reply"),
        });
        Ok(vec![
            self.propose(
                client_id,
                policy,
                Level::Client,
                Family::Versions,
                &key,
                Verdict::RollBack,
                Source::ContextRegression,
                patch,
                rationale,
                evidence,
            )
            .await?,
        ])
    }

    /// What a client learns from others: for a new client (too few sends of
    /// its own), the first level that knows anything of industry (consenting
    /// clients of its industry), platform (all consenting clients) and
    /// published benchmarks; for an established client that shares its
    /// data, the platform's patterns too. Cross-client suggestions go only
    /// to clients that share (who gives, gets).
    async fn priors(
        &self,
        client_id: Uuid,
        client: &Client,
        policy: Policy,
        own_sends: u64,
        document: &Option<Value>,
    ) -> Result<Vec<Suggested>, anyhow::Error> {
        let new_client = own_sends < NEW_CLIENT_SENDS;
        let sharing = client.data_sharing_consent();
        let mut made = Vec::new();
        let industry = client.profile().map(|p| p.industry.as_str().to_owned());
        let mut found_any = false;
        if sharing {
            let levels: Vec<(Level, Option<String>)> = if new_client {
                vec![(Level::Industry, industry.clone()), (Level::Platform, None)]
            } else {
                vec![(Level::Platform, None)]
            };
            for (level, industry) in levels {
                let mut candidates = Vec::new();
                for family in Family::ALL {
                    let table =
                        platform_table(&self.pool, family, Metric::Reply, industry.as_deref())
                            .await?;
                    // A withheld table (k-anonymity) has nothing to learn from.
                    let Some(baseline_sends) = table.baseline_sends else {
                        continue;
                    };
                    for row in significant(
                        &table
                            .rows
                            .iter()
                            .map(|r| r.stats.clone())
                            .collect::<Vec<_>>(),
                        baseline_sends,
                        self.thresholds,
                    ) {
                        // The evidence names the clients behind the row
                        // itself: each of at least five with fifty sends of
                        // its key, as the platform table shows it.
                        let Some(clients) = table
                            .rows
                            .iter()
                            .find(|r| r.stats.key == row.key)
                            .map(|r| r.clients)
                        else {
                            continue;
                        };
                        candidates.push((family, row, clients));
                    }
                }
                if candidates.is_empty() {
                    continue;
                }
                found_any = true;
                for (family, row, contributors) in candidates {
                    let verdict = Verdict::of_lift(row.lift);
                    if document
                        .as_ref()
                        .and_then(|d| d.pointer(&format!("/playbook/priors/{}", family.as_str())))
                        .and_then(|f| f.get(&row.key))
                        == Some(&json!(verdict.as_str()))
                    {
                        continue;
                    }
                    let evidence = json!({
                        "level": level.as_str(), "industry": industry, "family": family.as_str(), "key": row.key,
                        "clients": contributors, "sends": row.sends, "events": row.events, "rate": row.rate,
                        "interval_95": [row.ci_low, row.ci_high], "lift": row.lift, "p": row.p, "q": row.q,
                        "query": format!("GET /v1/patterns/platform/{}?metric=reply{}", family.as_str(),
                            industry.as_ref().map(|i| format!("&industry={i}")).unwrap_or_default()),
                    });
                    let rationale = format!(
                        "Across {contributors} clients that share data{}: {} (lift {:.2}, q = {}, {} sends). {}",
                        industry.as_ref().map(|i| format!(" in {i}")).unwrap_or_default(),
                        row.key, row.lift, format_p(row.q), row.sends,
                        if verdict == Verdict::Prefer { "Prefer it." } else { "Avoid it." }
                    );
                    let patch = json!({ "playbook": { "priors": { family.as_str(): { &row.key: verdict.as_str() } } } });
                    made.push(
                        self.propose(
                            client_id,
                            policy,
                            level,
                            family,
                            &row.key,
                            verdict,
                            Source::CrossClientPatterns,
                            patch,
                            rationale,
                            evidence,
                        )
                        .await?,
                    );
                }
                break;
            }
        }
        if new_client && !found_any {
            for (family, key, verdict, why) in PUBLISHED_BENCHMARKS {
                if document
                    .as_ref()
                    .and_then(|d| d.pointer("/best_practices/benchmarks"))
                    .and_then(|b| b.get(format!("{}:{key}", family.as_str())))
                    == Some(&json!(verdict.as_str()))
                {
                    continue;
                }
                let patch = json!({ "best_practices": { "benchmarks": { format!("{}:{key}", family.as_str()): verdict.as_str() } } });
                let evidence = json!({ "level": Level::Benchmark.as_str(), "family": family.as_str(), "key": key, "basis": why });
                let rationale = format!("No data yet from this client, its industry or the platform; a published benchmark: {why}.");
                made.push(
                    self.propose(
                        client_id,
                        policy,
                        Level::Benchmark,
                        family,
                        key,
                        verdict,
                        Source::BestPractices,
                        patch,
                        rationale,
                        evidence,
                    )
                    .await?,
                );
            }
        }
        Ok(made)
    }

    #[allow(clippy::too_many_arguments)]
    async fn propose(
        &self,
        client_id: Uuid,
        policy: Policy,
        level: Level,
        family: Family,
        key: &str,
        verdict: Verdict,
        source: Source,
        patch: Value,
        rationale: String,
        evidence: Value,
    ) -> Result<Suggested, anyhow::Error> {
        // The confidence autopilot weighs: 1 - q where there is a q.
        let confidence = evidence
            .get("q")
            .and_then(Value::as_f64)
            .and_then(|q| UnitInterval::try_from((1.0 - q).clamp(0.0, 1.0)).ok());
        let update_id = Uuid::now_v7();
        let command = ContextCommand::ProposeUpdate {
            update_id,
            source,
            patch,
            base_version: None,
            rationale: Rationale::try_from(rationale).map_err(|e| anyhow::anyhow!(e))?,
            evidence,
            confidence,
            policy,
            proposer: Proposer::System,
        };
        let meta = CommandMeta::new(
            client_id,
            Actor::System(Component::SuggestionEngine),
            format!("suggest:{update_id}"),
        );
        let outcome = match self
            .context
            .execute(&client_id.to_string(), command, &meta)
            .await
        {
            Ok(_) => Outcome::Proposed,
            Err(CommandError::Rejected(
                e @ (ContextError::DuplicatePending(_) | ContextError::DuplicateOfRejected(_)),
            )) => Outcome::NotProposed(e.to_string()),
            Err(e) => return Err(anyhow::anyhow!("{e}")),
        };
        Ok(Suggested {
            level,
            family,
            key: key.to_owned(),
            verdict,
            update_id: outcome.is_proposed().then_some(update_id),
            outcome,
        })
    }

    /// The engine's schedule, a process manager of its own: every `every`,
    /// until shutdown, it runs over every client with patterns. Safe to run
    /// in several replicas at once: the ClientContext aggregate refuses a
    /// proposal already pending or rejected on the same evidence.
    pub async fn run(self, every: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let clients: Result<Vec<Uuid>, _> =
                sqlx::query_scalar("SELECT DISTINCT client_id FROM pattern_counts")
                    .fetch_all(&self.pool)
                    .await;
            match clients {
                Ok(clients) => {
                    for client in clients {
                        if let Err(err) = self.run_for(client).await {
                            tracing::warn!(%client, error = %err, "suggestion run failed");
                        }
                    }
                }
                Err(err) => tracing::warn!(error = %err, "suggestion engine cannot read patterns"),
            }
        }
    }
}

/// What one run of the engine for one client proposed.
#[derive(Debug, Serialize)]
pub struct Suggestions {
    pub suggestions: Vec<Suggested>,
    /// The log's head after the run: every proposal is at or below it.
    pub position: i64,
}

/// Runs the engine for one client now, with the default thresholds.
pub async fn suggest_now(app: &App, client_id: Uuid) -> crate::Result<Suggestions> {
    app.registered_client(client_id).await?;
    let suggestions = Engine::new(app, Thresholds::default())
        .run_for(client_id)
        .await?;
    let position = sextant_adapters::db::head_position(&app.pool).await?;
    Ok(Suggestions {
        suggestions,
        position,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suggestion_is_answered_with_its_names_and_its_outcome_as_one_string() {
        let suggested = |outcome| Suggested {
            level: Level::Benchmark,
            family: Family::Versions,
            key: "context_version=7".into(),
            verdict: Verdict::RollBack,
            update_id: None,
            outcome,
        };
        assert_eq!(
            serde_json::to_value(suggested(Outcome::Proposed)).expect("serializes"),
            json!({ "level": "benchmark", "family": "versions", "key": "context_version=7",
                    "verdict": "roll_back", "update_id": null, "outcome": "proposed" })
        );
        let refused = Outcome::NotProposed("the same patch is already pending".into());
        assert_eq!(
            serde_json::to_value(suggested(refused)).expect("serializes")["outcome"],
            "not proposed: the same patch is already pending"
        );
    }
}
