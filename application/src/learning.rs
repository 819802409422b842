//! Learning: the suggestion engine (the analysis agents of the design) and
//! its schedule. At every look the engine reads the client's matured sends
//! (`pattern_sends`, older than each metric's window), estimates each
//! declared key against the rest of the sends, adjusted for the strongest
//! other features (`sextant_domain::inference`), and proposes what clears
//! its always-valid bar and the practical floor into `playbook.learned`,
//! with a plain-language rationale and its evidence; it withdraws its
//! pending suggestions whose evidence no longer holds, proposes removing
//! held verdicts and priors the data no longer supports, rollbacks of
//! context versions that do worse, and priors for new clients. It writes
//! only through commands, so everything it does is an event, and the
//! ClientContext aggregate's own rules keep it from re-proposing what is
//! pending or was rejected on the same evidence. docs/learning.md states
//! the method and what it guarantees.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
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
use sextant_domain::inference::{
    estimate, plan, stopped_holding, Cell, Estimate, Method, PendingSuggestion, Step,
};
use sextant_domain::learning::{Family, Level, Metric, PatternRow, Verdict, PUBLISHED_BENCHMARKS};
use sextant_domain::metadata::{Actor, Component};
use sextant_domain::stats::format_p;
use sextant_domain::values::{Rationale, Reason, UnitInterval};

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
    /// A pending suggestion taken back: its evidence no longer holds.
    Withdrawn,
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
            Self::Withdrawn => f.write_str("withdrawn"),
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
    /// For what other clients' data says (priors, platform practices).
    thresholds: Thresholds,
    /// For what the client's own data says.
    method: Method,
}

fn source_for(family: Family) -> Source {
    match family {
        Family::What | Family::When => Source::EmailPerformance,
        Family::How | Family::Who => Source::CrmAnalysis,
        Family::Versions => Source::ContextRegression,
    }
}

/// The rows of one family's pooled table that clear the thresholds: the
/// minimum sample on both sides and the practical floor first, then
/// Benjamini–Hochberg over the rows that passed them (a row too small or
/// too weak to act on never loosens or tightens another's bar). The rows
/// answered carry that q.
pub fn significant(rows: &[PatternRow], baseline_sends: u64, t: Thresholds) -> Vec<PatternRow> {
    let eligible: Vec<&PatternRow> = rows
        .iter()
        .filter(|r| {
            r.sends >= t.min_sample
                && baseline_sends.saturating_sub(r.sends) >= t.min_sample
                && (r.lift - 1.0).abs() >= t.min_relative_lift
        })
        .collect();
    let q = sextant_domain::stats::benjamini_hochberg(
        &eligible.iter().map(|r| r.p).collect::<Vec<_>>(),
    );
    eligible
        .into_iter()
        .zip(q)
        .filter(|(_, q)| *q < t.fdr)
        .map(|(r, q)| PatternRow { q, ..r.clone() })
        .collect()
}

fn rationale(metric: Metric, e: &Estimate) -> String {
    let (what, value) = e.key.split_once('=').unwrap_or((&e.key, ""));
    let adjusted = if e.adjusted_for.is_empty() {
        String::new()
    } else {
        format!(" adjusted for {}", e.adjusted_for.join(" and "))
    };
    format!(
        "{} {what} = {value}: {} rate {:.1}% against {:.1}% for the other sends (lift {:.2}{adjusted}, \
         95% interval {:.2}–{:.2}; always-valid p = {} against its bar {}; {} matured sends). {}",
        e.family.as_str().to_uppercase(),
        metric.as_str().replace('_', " "),
        e.rate * 100.0,
        e.rest_rate * 100.0,
        e.lift,
        e.ci_low,
        e.ci_high,
        format_p(e.always_valid_p),
        format_p(e.bar),
        e.sends,
        if e.lift > 1.0 { "Prefer it." } else { "Avoid it." }
    )
}

/// The confidence autopilot weighs against the client's threshold: 1 − the
/// always-valid p of a suggestion from the client's own data, 1 − q of one
/// from a pooled table. Removals (a verdict that stopped holding, a prior
/// the client's data contradicts) and rollbacks carry none: a person
/// decides them under every mode.
fn confidence_of(evidence: &Value) -> Option<UnitInterval> {
    if evidence.get("check").is_some() || evidence.get("regressed_version").is_some() {
        return None;
    }
    let p = evidence
        .get("always_valid_p")
        .or_else(|| evidence.get("q"))
        .and_then(Value::as_f64)?;
    UnitInterval::try_from((1.0 - p).clamp(0.0, 1.0)).ok()
}

/// The always-valid p of a pooled row against the rest of its table (the
/// mixture SPRT over the log risk ratio, the client method's mixture), and
/// the bar it must reach: alpha over the declared features, over the
/// values its feature shows in the table, as for a client's own keys.
fn pooled_sequential(
    row: &PatternRow,
    rows: &[PatternRow],
    (baseline_sends, baseline_events): (u64, u64),
    method: &Method,
) -> (f64, f64) {
    fn feature(key: &str) -> &str {
        key.split_once('=').map_or(key, |(f, _)| f)
    }
    let values = rows
        .iter()
        .filter(|r| feature(&r.key) == feature(&row.key))
        .count()
        .max(1);
    let bar = method.alpha / (sextant_domain::inference::FEATURES.len() * values) as f64;
    let p = sextant_domain::stats::always_valid_p_risk_ratio(
        row.events,
        row.sends,
        baseline_events.saturating_sub(row.events),
        baseline_sends.saturating_sub(row.sends),
        method.mixture_variance,
    );
    (p.unwrap_or(1.0), bar)
}

/// The always-valid p of a context version's reply rate against its
/// predecessor's: the mixture SPRT over the log risk ratio, with the
/// variance of its estimate.
fn regression_p(x_now: u64, n_now: u64, x_before: u64, n_before: u64, method: &Method) -> f64 {
    sextant_domain::stats::always_valid_p_risk_ratio(
        x_now,
        n_now,
        x_before,
        n_before,
        method.mixture_variance,
    )
    // No log ratio (an arm without replies): the always-valid p of the
    // difference of the rates.
    .unwrap_or_else(|| {
        sextant_domain::stats::always_valid_p(
            x_now,
            n_now,
            x_before,
            n_before,
            sextant_domain::experiment::MIXTURE_VARIANCE,
        )
    })
}

/// The matured sends of a client (sent at or before `matured_before`),
/// grouped by the keys they carry, with how many had `metric`'s event.
async fn matured_cells(
    pool: &PgPool,
    client_id: Uuid,
    metric: Metric,
    matured_before: DateTime<Utc>,
) -> Result<Vec<Cell>, sqlx::Error> {
    let followed = crate::read_model::patterns::followed(metric);
    // `followed` is one of three constants, never input.
    let rows: Vec<(Vec<String>, i64, i64)> = sqlx::query_as(&format!(
        "SELECT keys, count(*), count({followed}) FROM pattern_sends \
         WHERE client_id = $1 AND sent_at <= $2 \
         GROUP BY keys"
    ))
    .bind(client_id)
    .bind(matured_before)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(keys, sends, events)| Cell {
            keys,
            sends: sends as u64,
            events: events as u64,
        })
        .collect())
}

/// The verdicts a document section holds, by `family|key`: the section is
/// `{family: {key: verdict}}`.
fn held_verdicts(document: Option<&Value>, pointer: &str) -> BTreeMap<String, Verdict> {
    let mut held = BTreeMap::new();
    let families = document
        .and_then(|d| d.pointer(pointer))
        .and_then(Value::as_object);
    for (family, keys) in families.into_iter().flatten() {
        for (key, verdict) in keys.as_object().into_iter().flatten() {
            if let Some(verdict) = verdict.as_str().and_then(Verdict::parse) {
                held.insert(format!("{family}|{key}"), verdict);
            }
        }
    }
    held
}

fn split_key(full_key: &str) -> Option<(Family, &str)> {
    let (family, key) = full_key.split_once('|')?;
    Some((Family::parse(family)?, key))
}

/// One look at a client's matured sends.
struct Look {
    metric: Metric,
    matured_before: DateTime<Utc>,
    all_sends: u64,
    maturing_sends: u64,
    cells: Vec<Cell>,
    estimates: Vec<Estimate>,
}

impl Look {
    /// The matured sends and events of one `family|key`, unadjusted.
    fn crude(&self, full_key: &str) -> Option<(u64, u64)> {
        let (mut sends, mut events) = (0, 0);
        for cell in self
            .cells
            .iter()
            .filter(|c| c.keys.iter().any(|k| k == full_key))
        {
            sends += cell.sends;
            events += cell.events;
        }
        (sends > 0).then_some((sends, events))
    }

    /// The evidence of a suggestion or withdrawal: the estimate's numbers,
    /// the method and what it did not count yet, and `extra`.
    fn evidence(&self, client_id: Uuid, e: &Estimate, extra: Value, method: &Method) -> Value {
        let mut evidence = json!({
            "family": e.family.as_str(), "key": e.key, "metric": self.metric.as_str(), "level": Level::Client.as_str(),
            "sends": e.sends, "events": e.events, "rate": e.rate,
            "rest_sends": e.rest_sends, "rest_events": e.rest_events, "rest_rate": e.rest_rate,
            "crude_lift": e.crude_lift, "lift": e.lift, "lift_interval_95": [e.ci_low, e.ci_high],
            "adjusted_for": e.adjusted_for, "p": e.p, "always_valid_p": e.always_valid_p, "bar": e.bar,
            "alpha": method.alpha, "matured_before": self.matured_before, "maturing_sends": self.maturing_sends,
            "method": "matured cohorts; Mantel-Haenszel risk ratio against the rest, stratified by the strongest other features; \
                       mixture SPRT (always-valid) p; Bonferroni over declared features and their values",
            "query": format!("GET /v1/clients/{client_id}/patterns/{}?metric={}", e.family.as_str(), self.metric.as_str()),
        });
        if let (Some(target), Some(extra)) = (evidence.as_object_mut(), extra.as_object()) {
            target.extend(extra.clone());
        }
        evidence
    }
}

impl Engine {
    pub fn new(app: &App, thresholds: Thresholds) -> Self {
        Self {
            pool: app.pool.clone(),
            context: app.context.clone(),
            clients: app.clients.clone(),
            thresholds,
            method: Method::default(),
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
        let now = Utc::now();
        let look = self.look(client_id, now).await?;
        let mut made = self
            .learned(client_id, policy, &look, document.as_ref())
            .await?;
        made.extend(
            self.health(client_id, policy, &look, document.as_ref())
                .await?,
        );
        made.extend(
            self.priors_against_evidence(client_id, policy, &look, document.as_ref())
                .await?,
        );
        made.extend(
            self.regressions(client_id, policy, &look, &document)
                .await?,
        );
        made.extend(
            self.priors(client_id, &client, policy, look.all_sends, &document)
                .await?,
        );
        Ok(made)
    }

    /// What the client's matured sends say now: the cells the estimates are
    /// computed from, and the estimates.
    async fn look(&self, client_id: Uuid, now: DateTime<Utc>) -> Result<Look, anyhow::Error> {
        let metric = Metric::Reply;
        let windows = crate::read_model::clients::client_settings(&self.pool, client_id)
            .await?
            .map(|(_, windows)| windows)
            .unwrap_or_default();
        let matured_before = windows.matured_by(metric, now);
        let cells = matured_cells(&self.pool, client_id, metric, matured_before).await?;
        let (all_sends, maturing_sends): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE sent_at > $2) FROM pattern_sends WHERE client_id = $1",
        )
        .bind(client_id)
        .bind(matured_before)
        .fetch_one(&self.pool)
        .await?;
        let estimates = estimate(&cells, &self.method);
        Ok(Look {
            metric,
            matured_before,
            all_sends: all_sends as u64,
            maturing_sends: maturing_sends as u64,
            cells,
            estimates,
        })
    }

    /// The client's own patterns: propose what the matured evidence shows,
    /// withdraw the engine's pending suggestions it no longer supports.
    async fn learned(
        &self,
        client_id: Uuid,
        policy: Policy,
        look: &Look,
        document: Option<&Value>,
    ) -> Result<Vec<Suggested>, anyhow::Error> {
        let held = held_verdicts(document, "/playbook/learned");
        let pending = self.pending_suggestions(client_id).await?;
        let mut made = Vec::new();
        for step in plan(&look.estimates, &pending, &held, &self.method) {
            match step {
                Step::Propose(e) => {
                    let verdict = e.verdict();
                    let patch = json!({ "playbook": { "learned": { e.family.as_str(): { &e.key: verdict.as_str() } } } });
                    let rationale = rationale(look.metric, e);
                    let evidence = look.evidence(
                        client_id,
                        e,
                        json!({ "verdict": verdict.as_str() }),
                        &self.method,
                    );
                    made.push(
                        self.propose(
                            client_id,
                            policy,
                            Level::Client,
                            e.family,
                            &e.key,
                            verdict,
                            source_for(e.family),
                            patch,
                            rationale,
                            evidence,
                        )
                        .await?,
                    );
                }
                Step::Withdraw { id, estimate, why } => {
                    let Some(suggestion) = pending.iter().find(|s| s.id == id) else {
                        continue;
                    };
                    let evidence = match estimate {
                        Some(e) => look.evidence(
                            client_id,
                            e,
                            json!({ "withdrawn_because": why }),
                            &self.method,
                        ),
                        None => {
                            json!({ "withdrawn_because": why, "matured_before": look.matured_before })
                        }
                    };
                    made.push(self.withdraw(client_id, suggestion, &why, evidence).await?);
                }
            }
        }
        Ok(made)
    }

    /// Pattern health: a learned verdict the context holds that no longer
    /// holds on the matured sends made since it was applied (under the
    /// context version that applied it or a later one: its adjusted
    /// interval falls short of the practical floor) is proposed for
    /// removal, with that evidence.
    async fn health(
        &self,
        client_id: Uuid,
        policy: Policy,
        look: &Look,
        document: Option<&Value>,
    ) -> Result<Vec<Suggested>, anyhow::Error> {
        let mut made = Vec::new();
        for (full_key, verdict) in held_verdicts(document, "/playbook/learned") {
            let Some((family, key)) = split_key(&full_key) else {
                continue;
            };
            // Since it was applied: the sends made under a context version
            // that held it.
            let applied_in: Option<i64> = sqlx::query_scalar(
                "SELECT version FROM context_updates \
                 WHERE client_id = $1 AND status = 'applied' AND version IS NOT NULL \
                   AND COALESCE(modified_patch, patch) #> ARRAY['playbook', 'learned', $2] ? $3 \
                 ORDER BY version DESC LIMIT 1",
            )
            .bind(client_id)
            .bind(family.as_str())
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
            let Some(applied_in) = applied_in else {
                continue;
            };
            let since: Vec<Cell> = look
                .cells
                .iter()
                .filter(|c| {
                    c.keys.iter().any(|k| {
                        k.strip_prefix("versions|context_version=")
                            .and_then(|v| v.parse::<i64>().ok())
                            .is_some_and(|v| v >= applied_in)
                    })
                })
                .cloned()
                .collect();
            let estimates = estimate(&since, &self.method);
            let Some(e) = estimates
                .iter()
                .find(|e| e.family == family && e.key == key)
            else {
                continue;
            };
            let Some(why) = stopped_holding(e, verdict, self.method.min_relative_lift) else {
                continue;
            };
            let patch = json!({ "playbook": { "learned": { family.as_str(): { key: null } } } });
            let evidence = look.evidence(client_id, e, json!({
                "check": "pattern_health", "held_verdict": verdict.as_str(), "since_version": applied_in,
                "stopped_holding_because": why,
            }), &self.method);
            let rationale = format!(
                "{} {key} was learned as \"{}\", but since it was applied it no longer holds: {why}. Remove it.",
                family.as_str().to_uppercase(),
                verdict.as_str()
            );
            made.push(
                self.propose(
                    client_id,
                    policy,
                    Level::Client,
                    family,
                    key,
                    verdict,
                    source_for(family),
                    patch,
                    rationale,
                    evidence,
                )
                .await?,
            );
        }
        Ok(made)
    }

    /// Priors yield to evidence: a prior or best practice the context holds
    /// that the client's own matured data contradicts significantly (its
    /// adjusted 95% interval entirely on the other side of 1) is proposed
    /// for removal, with that evidence.
    async fn priors_against_evidence(
        &self,
        client_id: Uuid,
        policy: Policy,
        look: &Look,
        document: Option<&Value>,
    ) -> Result<Vec<Suggested>, anyhow::Error> {
        let mut held: Vec<(Value, String, Verdict)> = Vec::new();
        for (full_key, verdict) in held_verdicts(document, "/playbook/priors") {
            if let Some((family, key)) = split_key(&full_key) {
                let patch = json!({ "playbook": { "priors": { family.as_str(): { key: null } } } });
                held.push((patch, full_key.clone(), verdict));
            }
        }
        for section in ["benchmarks", "platform"] {
            let entries = document
                .and_then(|d| d.pointer(&format!("/best_practices/{section}")))
                .and_then(Value::as_object);
            for (name, verdict) in entries.into_iter().flatten() {
                let (Some((family, key)), Some(verdict)) = (
                    name.split_once(':'),
                    verdict.as_str().and_then(Verdict::parse),
                ) else {
                    continue;
                };
                let patch = json!({ "best_practices": { section: { name: null } } });
                held.push((patch, format!("{family}|{key}"), verdict));
            }
        }
        let mut made = Vec::new();
        for (patch, full_key, verdict) in held {
            let Some(e) = look.estimates.iter().find(|e| e.full_key() == full_key) else {
                continue;
            };
            let Some(why) = stopped_holding(e, verdict, 0.0) else {
                continue;
            };
            let evidence = look.evidence(
                client_id,
                e,
                json!({
                    "check": "prior_against_evidence", "held_verdict": verdict.as_str(),
                    "contradicted_because": why,
                }),
                &self.method,
            );
            let rationale = format!(
                "A prior says {} should be {}, but this client's own matured data says otherwise: {why}. Remove it.",
                e.key,
                if verdict == Verdict::Prefer { "preferred" } else { "avoided" }
            );
            made.push(
                self.propose(
                    client_id,
                    policy,
                    Level::Client,
                    e.family,
                    &e.key,
                    verdict,
                    source_for(e.family),
                    patch,
                    rationale,
                    evidence,
                )
                .await?,
            );
        }
        Ok(made)
    }

    /// The engine's own suggestions of learned patterns still waiting for a
    /// reviewer, with the key and verdict their patch sets.
    async fn pending_suggestions(
        &self,
        client_id: Uuid,
    ) -> Result<Vec<PendingSuggestion<Uuid>>, anyhow::Error> {
        let rows: Vec<(Uuid, Value)> = sqlx::query_as(
            "SELECT update_id, patch FROM context_updates \
             WHERE client_id = $1 AND status = 'pending' AND proposed_by = $2 \
               AND patch #> ARRAY['playbook', 'learned'] IS NOT NULL",
        )
        .bind(client_id)
        .bind(Actor::System(Component::SuggestionEngine).to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut pending = Vec::new();
        for (id, patch) in rows {
            let learned = held_verdicts(Some(&patch), "/playbook/learned");
            // A suggestion sets one key; a removal (null) is not a verdict.
            if let [(full_key, verdict)] = learned.into_iter().collect::<Vec<_>>().as_slice() {
                if let Some((family, key)) = split_key(full_key) {
                    pending.push(PendingSuggestion {
                        id,
                        family,
                        key: key.to_owned(),
                        verdict: *verdict,
                    });
                }
            }
        }
        Ok(pending)
    }

    async fn withdraw(
        &self,
        client_id: Uuid,
        suggestion: &PendingSuggestion<Uuid>,
        why: &str,
        evidence: Value,
    ) -> Result<Suggested, anyhow::Error> {
        let reason = Reason::try_from(format!("The evidence no longer holds: {why}."))
            .map_err(|e| anyhow::anyhow!(e))?;
        let command = ContextCommand::WithdrawUpdate {
            update_id: suggestion.id,
            reason,
            evidence,
        };
        let meta = CommandMeta::new(
            client_id,
            Actor::System(Component::SuggestionEngine),
            format!("withdraw:{}", suggestion.id),
        );
        let outcome = match self
            .context
            .execute(&client_id.to_string(), command, &meta)
            .await
        {
            Ok(_) => Outcome::Withdrawn,
            // Decided by a reviewer meanwhile: nothing to withdraw.
            Err(CommandError::Rejected(e @ ContextError::NotPending { .. })) => {
                Outcome::NotProposed(e.to_string())
            }
            Err(e) => return Err(anyhow::anyhow!("{e}")),
        };
        Ok(Suggested {
            level: Level::Client,
            family: suggestion.family,
            key: suggestion.key.clone(),
            verdict: suggestion.verdict,
            update_id: Some(suggestion.id),
            outcome,
        })
    }

    /// A context version significantly worse than its predecessor: propose
    /// going back (`context_regression`), as the update that turns the
    /// current document into the predecessor's.
    async fn regressions(
        &self,
        client_id: Uuid,
        policy: Policy,
        look: &Look,
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
        // Matured cohorts only: a version's young sends have not failed,
        // their replies have not come yet.
        let by_version = |v: i64| look.crude(&format!("versions|context_version={v}"));
        let (Some((n_now, x_now)), Some((n_before, x_before))) =
            (by_version(current), by_version(current - 1))
        else {
            return Ok(Vec::new());
        };
        if n_now < self.thresholds.min_sample || n_before < self.thresholds.min_sample {
            return Ok(Vec::new());
        }
        let (rate_now, rate_before) = (
            x_now as f64 / n_now as f64,
            x_before as f64 / n_before as f64,
        );
        // Looked at every minute, so judged by the always-valid p of the
        // log risk ratio (the method's mixture), not a fixed-horizon test
        // that would cross by chance if read often enough.
        let p = regression_p(x_now, n_now, x_before, n_before, &self.method);
        let worse =
            rate_before > 0.0 && rate_now / rate_before <= 1.0 - self.thresholds.min_relative_lift;
        if !(worse && p < self.method.alpha) {
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
            "Version {current} replies at {:.1}% against {:.1}% for version {} ({} and {} matured sends, \
             always-valid p = {}): go back to version {}.",
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
            "rates": [rate_now, rate_before], "always_valid_p": p, "alpha": self.method.alpha,
            "method": "matured cohorts; mixture SPRT (always-valid) p of the log risk ratio",
            "matured_before": look.matured_before,
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
                    let (Some(baseline_sends), Some(baseline_events)) =
                        (table.baseline_sends, table.baseline_events)
                    else {
                        continue;
                    };
                    let rows: Vec<PatternRow> =
                        table.rows.iter().map(|r| r.stats.clone()).collect();
                    for row in significant(&rows, baseline_sends, self.thresholds) {
                        // Read at every look while the client is new: the
                        // row must also clear the always-valid bar the
                        // client's own keys do.
                        let (always_valid_p, bar) = pooled_sequential(
                            &row,
                            &rows,
                            (baseline_sends, baseline_events),
                            &self.method,
                        );
                        if always_valid_p > bar {
                            continue;
                        }
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
                        candidates.push((family, row, clients, always_valid_p, bar));
                    }
                }
                if candidates.is_empty() {
                    continue;
                }
                found_any = true;
                for (family, row, contributors, always_valid_p, bar) in candidates {
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
                        "always_valid_p": always_valid_p, "bar": bar,
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
        let confidence = confidence_of(&evidence);
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

    fn row(key: &str, sends: u64, lift: f64, p: f64) -> PatternRow {
        PatternRow {
            key: key.into(),
            sends,
            events: sends / 10,
            rate: 0.1,
            ci_low: 0.09,
            ci_high: 0.11,
            lift,
            p,
            q: 1.0,
        }
    }

    #[test]
    fn the_floor_and_the_sample_are_applied_before_the_false_discovery_correction() {
        // Strong rows below the practical floor, counted among the family,
        // push a noisy row beyond it up the ranks and under the bar (q
        // 0.041); with the floor and the sample applied first, it is judged
        // among the rows worth acting on only (q 0.0525) and fails.
        let rows = [
            row("a=1", 5_000, 1.10, 1e-9),
            row("a=2", 5_000, 0.92, 1e-8),
            row("a=3", 5_000, 1.05, 1e-6),
            row("d=1", 2_000, 1.50, 1e-6),
            row("c=1", 50, 2.00, 1e-4),
            row("b=1", 400, 1.60, 0.035),
            row("b=2", 200, 1.30, 0.5),
        ];
        let all_q = sextant_domain::stats::benjamini_hochberg(
            &rows.iter().map(|r| r.p).collect::<Vec<_>>(),
        );
        assert!(
            all_q[5] < 0.05,
            "corrected among all rows, b=1 would pass: {all_q:?}"
        );
        let found = significant(&rows, 20_000, Thresholds::default());
        let keys: Vec<&str> = found.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["d=1"], "{found:?}");
        assert!(
            (found[0].q - 3e-6).abs() < 1e-15,
            "q among the three eligible rows: {found:?}"
        );
    }

    #[test]
    fn a_suggestion_from_the_clients_own_data_carries_one_minus_its_always_valid_p_and_a_removal_none(
    ) {
        let own = json!({ "always_valid_p": 1e-6, "p": 1e-9 });
        let confidence = confidence_of(&own).expect("a confidence");
        assert!((f64::from(confidence) - (1.0 - 1e-6)).abs() < 1e-12);
        let pooled = json!({ "q": 0.01 });
        assert!((f64::from(confidence_of(&pooled).expect("a confidence")) - 0.99).abs() < 1e-12);
        let removal = json!({ "always_valid_p": 1e-6, "check": "pattern_health" });
        assert!(confidence_of(&removal).is_none());
        let rollback = json!({ "always_valid_p": 1e-6, "regressed_version": 3 });
        assert!(confidence_of(&rollback).is_none());
        assert!(confidence_of(&json!({ "basis": "a benchmark" })).is_none());
    }

    #[test]
    fn a_pooled_row_read_at_every_look_must_clear_the_always_valid_bar_of_its_feature() {
        let method = Method::default();
        let with = |sends: u64, events: u64| PatternRow {
            events,
            ..row("cta=meeting", sends, 1.0, 0.0)
        };
        let family = |r: &PatternRow| vec![r.clone(), row("cta=call", 1_000, 1.0, 1.0)];
        // 11% against 8% on 1,000 and 9,000 sends: p 0.0011 at a fixed
        // horizon, 0.025 always-valid, not below 0.05 / (11 x 2).
        let marginal = with(1_000, 110);
        let (p, bar) = pooled_sequential(&marginal, &family(&marginal), (10_000, 830), &method);
        assert!((bar - 0.05 / 22.0).abs() < 1e-12, "{bar}");
        assert!(p > bar, "{p} against {bar}");
        // 16% against 8% on 2,000 and 8,000: clear however often it is read.
        let clear = with(2_000, 320);
        let (p, bar) = pooled_sequential(&clear, &family(&clear), (10_000, 960), &method);
        assert!(p < bar, "{p} against {bar}");
    }

    #[test]
    fn a_regression_is_judged_by_an_always_valid_p_stricter_than_a_fixed_horizon_one() {
        let method = Method::default();
        // 8% against 10% on 2,000 matured sends each: p 0.028 at a fixed
        // horizon, not enough for a test that is read every minute.
        let (_, fixed) = sextant_domain::stats::two_proportion_test(160, 2_000, 200, 2_000);
        assert!(fixed < 0.05, "{fixed}");
        assert!(regression_p(160, 2_000, 200, 2_000, &method) > 0.05);
        // 6% against 10% on 4,000 each is clear however often it is read.
        assert!(regression_p(240, 4_000, 400, 4_000, &method) < 1e-4);
    }

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
