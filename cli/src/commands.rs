//! The commands that are one or two API calls each.

use std::io::Read;
use std::path::Path;

use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::api::{seg, Api};
use crate::args::{
    Alerts, Approvals, ClientCreate, ClientUpdate, Clients, Context, Experiments, Keys, Page,
    Patterns, ReportFormat, Reports, Suggestions, Webhooks,
};
use crate::config::Settings;
use crate::diff;
use crate::error::{CliError, Result};
use crate::output::{cell, num, status, Out};

pub struct Ctx<'a> {
    pub api: &'a Api,
    pub out: &'a Out,
    pub settings: &'a Settings,
}

impl Ctx<'_> {
    fn client(&self) -> Result<String> {
        Ok(seg(self.settings.client()?))
    }

    fn client_or(&self, id: &Option<String>) -> Result<String> {
        match id {
            Some(id) => Ok(seg(id)),
            None => self.client(),
        }
    }
}

fn page_params(page: &Page, cursor_name: &str) -> Vec<(&'static str, String)> {
    let mut params = Vec::new();
    if let Some(limit) = page.limit {
        params.push(("limit", limit.to_string()));
    }
    if let Some(cursor) = &page.cursor {
        params.push((
            if cursor_name == "after" {
                "after"
            } else {
                "before"
            },
            cursor.clone(),
        ));
    }
    params
}

/// `text` after the table: where the next page starts.
fn next_page(ctx: &Ctx<'_>, body: &Value, field: &str) {
    if let Some(next) = body.get(field).filter(|v| !v.is_null()) {
        ctx.out.note(&format!("more: --cursor {}", cell(next)));
    }
}

/// A JSON object from a file (`-`: stdin).
pub fn read_json_file(path: &Path) -> Result<Value> {
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Usage(format!("cannot read stdin: {e}")))?;
        text
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?
    };
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| CliError::Usage(format!("{} is not JSON: {e}", path.display())))?;
    if !value.is_object() {
        return Err(CliError::Usage(format!(
            "{} must hold a JSON object (a merge patch)",
            path.display()
        )));
    }
    Ok(value)
}

fn put(map: &mut Map<String, Value>, name: &str, value: Option<Value>) {
    if let Some(v) = value {
        map.insert(name.to_owned(), v);
    }
}

// ---------------------------------------------------------------- whoami

pub async fn whoami(ctx: &Ctx<'_>) -> Result<()> {
    let answer = ctx.api.query("/v1/whoami", &[]).await?;
    let b = &answer.body;
    ctx.out.record(
        b,
        vec![
            ("role", cell(&b["role"])),
            ("client", cell(&b["client_id"])),
            ("key id", cell(&b["key_id"])),
            ("profile", ctx.settings.profile.clone()),
        ],
    )
}

// ---------------------------------------------------------------- clients

pub async fn clients(ctx: &Ctx<'_>, command: Clients) -> Result<()> {
    match command {
        Clients::List(page) => {
            let answer = ctx
                .api
                .query("/v1/clients", &page_params(&page, "after"))
                .await?;
            let rows = items(&answer.body)
                .map(|c| {
                    vec![
                        cell(&c["client_id"]),
                        cell(&c["name"]),
                        cell(&c["industry"]),
                        cell(&c["region"]),
                        cell(&c["permission_mode"]),
                        status(&cell(&c["status"])),
                    ]
                })
                .collect();
            ctx.out.list(
                &answer.body,
                &["client", "name", "industry", "region", "mode", "status"],
                rows,
            )?;
            next_page(ctx, &answer.body, "next_after");
            Ok(())
        }
        Clients::Create(create) => client_create(ctx, create).await,
        Clients::Show { id } => client_show(ctx, &ctx.client_or(&id)?).await,
        Clients::Update(update) => client_update(ctx, update).await,
        Clients::Suspend { id, reason } => {
            let id = ctx.client_or(&id)?;
            let answer = ctx
                .api
                .command(
                    Method::POST,
                    &format!("/v1/clients/{id}/suspend"),
                    Some(&json!({ "reason": reason })),
                )
                .await?;
            if ctx.out.json() {
                return ctx.out.value(&answer.body);
            }
            client_show(ctx, &id).await
        }
        Clients::Reactivate { id } => {
            let id = ctx.client_or(&id)?;
            let answer = ctx
                .api
                .command(Method::POST, &format!("/v1/clients/{id}/reactivate"), None)
                .await?;
            if ctx.out.json() {
                return ctx.out.value(&answer.body);
            }
            client_show(ctx, &id).await
        }
    }
}

fn items(body: &Value) -> impl Iterator<Item = &Value> {
    body["items"].as_array().into_iter().flatten()
}

async fn client_create(ctx: &Ctx<'_>, c: ClientCreate) -> Result<()> {
    let mut body = Map::new();
    body.insert("name".into(), json!(c.name));
    body.insert("industry".into(), json!(c.industry));
    body.insert("company_size".into(), json!(c.company_size));
    body.insert("region".into(), json!(c.region));
    put(
        &mut body,
        "permission_mode",
        c.permission_mode.map(Value::from),
    );
    put(&mut body, "timezone", c.timezone.map(Value::from));
    if c.data_sharing {
        body.insert("data_sharing_consent".into(), json!(true));
    }
    let answer = ctx
        .api
        .command(Method::POST, "/v1/clients", Some(&Value::Object(body)))
        .await?;
    if ctx.out.json() {
        return ctx.out.value(&answer.body);
    }
    let id = cell(&answer.body["client_id"]);
    ctx.out.note(&format!("registered client {id}"));
    client_show(ctx, &seg(&id)).await
}

async fn client_show(ctx: &Ctx<'_>, id: &str) -> Result<()> {
    let answer = ctx.api.query(&format!("/v1/clients/{id}"), &[]).await?;
    let c = &answer.body;
    let keys = c["api_keys"]
        .as_array()
        .map(|k| k.iter().filter(|k| k["revoked_at"].is_null()).count())
        .unwrap_or(0);
    let webhooks: Vec<String> = c["webhooks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| cell(&w["provider"]))
        .collect();
    ctx.out.record(
        c,
        vec![
            ("client", cell(&c["client_id"])),
            ("name", cell(&c["name"])),
            ("status", status(&cell(&c["status"]))),
            ("suspended", cell(&c["suspended_reason"])),
            ("industry", cell(&c["industry"])),
            ("company size", cell(&c["company_size"])),
            ("region", cell(&c["region"])),
            ("time zone", cell(&c["timezone"])),
            ("permission mode", cell(&c["permission_mode"])),
            ("autopilot threshold", cell(&c["autopilot_threshold"])),
            ("data sharing", cell(&c["data_sharing_consent"])),
            ("maturity", cell(&c["maturity"])),
            ("active keys", keys.to_string()),
            ("webhooks", webhooks.join(", ")),
            ("registered", cell(&c["registered_at"])),
            ("updated", cell(&c["updated_at"])),
        ],
    )
}

async fn client_update(ctx: &Ctx<'_>, u: ClientUpdate) -> Result<()> {
    let id = ctx.client_or(&u.id)?;
    let mut body = Map::new();
    put(&mut body, "name", u.name.map(Value::from));
    put(&mut body, "industry", u.industry.map(Value::from));
    put(&mut body, "company_size", u.company_size.map(Value::from));
    put(&mut body, "region", u.region.map(Value::from));
    put(
        &mut body,
        "permission_mode",
        u.permission_mode.map(Value::from),
    );
    put(
        &mut body,
        "autopilot_threshold",
        u.autopilot_threshold.map(Value::from),
    );
    put(&mut body, "timezone", u.timezone.map(Value::from));
    put(
        &mut body,
        "data_sharing_consent",
        u.data_sharing.map(Value::from),
    );
    if body.is_empty() {
        return Err(CliError::Usage(
            "nothing to change: give at least one of --name, --industry, --company-size, --region, --permission-mode, --autopilot-threshold, --timezone, --data-sharing".into(),
        ));
    }
    let answer = ctx
        .api
        .command(
            Method::PATCH,
            &format!("/v1/clients/{id}"),
            Some(&Value::Object(body)),
        )
        .await?;
    if ctx.out.json() {
        return ctx.out.value(&answer.body);
    }
    client_show(ctx, &id).await
}

// ---------------------------------------------------------------- keys

pub async fn keys(ctx: &Ctx<'_>, command: Keys) -> Result<()> {
    let client = ctx.client()?;
    match command {
        Keys::Issue { role, label } => {
            let answer = ctx
                .api
                .command(
                    Method::POST,
                    &format!("/v1/clients/{client}/api-keys"),
                    Some(&json!({ "role": role, "label": label })),
                )
                .await?;
            let b = &answer.body;
            ctx.out.record(
                b,
                vec![
                    ("key id", cell(&b["key_id"])),
                    ("role", cell(&b["role"])),
                    ("label", cell(&b["label"])),
                    ("key", cell(&b["key"])),
                ],
            )?;
            ctx.out
                .note("the key is shown this once: Sextant keeps only its hash");
            Ok(())
        }
        Keys::List => {
            let answer = ctx.api.query(&format!("/v1/clients/{client}"), &[]).await?;
            let keys = answer.body["api_keys"].clone();
            let rows = keys
                .as_array()
                .into_iter()
                .flatten()
                .map(|k| {
                    vec![
                        cell(&k["key_id"]),
                        cell(&k["role"]),
                        cell(&k["label"]),
                        cell(&k["issued_at"]),
                        if k["revoked_at"].is_null() {
                            status("active")
                        } else {
                            status("revoked") + " " + &cell(&k["revoked_at"])
                        },
                    ]
                })
                .collect();
            ctx.out
                .list(&keys, &["key id", "role", "label", "issued", "state"], rows)
        }
        Keys::Revoke { key_id } => {
            let answer = ctx
                .api
                .command(
                    Method::DELETE,
                    &format!("/v1/clients/{client}/api-keys/{}", seg(&key_id)),
                    None,
                )
                .await?;
            if ctx.out.json() {
                return ctx.out.value(&answer.body);
            }
            ctx.out.line(&format!("revoked key {key_id}"))
        }
    }
}

// ---------------------------------------------------------------- webhooks

pub async fn webhooks(ctx: &Ctx<'_>, command: Webhooks) -> Result<()> {
    let client = ctx.client()?;
    match command {
        Webhooks::Set { provider, secret } => {
            let secret = match secret {
                Some(s) => s,
                None => read_secret_line(&format!("{provider} webhook secret: "))?,
            };
            let answer = ctx
                .api
                .command(
                    Method::PUT,
                    &format!("/v1/clients/{client}/webhooks/{}", seg(&provider)),
                    Some(&json!({ "secret": secret })),
                )
                .await?;
            let b = &answer.body;
            ctx.out.record(
                b,
                vec![
                    ("provider", cell(&b["provider"])),
                    ("fingerprint", cell(&b["fingerprint"])),
                ],
            )
        }
        Webhooks::Show { provider } => {
            let answer = ctx.api.query(&format!("/v1/clients/{client}"), &[]).await?;
            let hook = answer.body["webhooks"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|w| w["provider"] == provider.as_str())
                .cloned()
                .ok_or_else(|| CliError::Problem {
                    status: 404,
                    title: "Not Found".into(),
                    detail: format!("the client has no webhook secret for {provider}"),
                    errors: Vec::new(),
                })?;
            ctx.out.record(
                &hook,
                vec![
                    ("provider", cell(&hook["provider"])),
                    ("fingerprint", cell(&hook["secret_fingerprint"])),
                    ("updated", cell(&hook["updated_at"])),
                ],
            )
        }
    }
}

/// A secret from the terminal without echo, else a line of stdin.
pub fn read_secret_line(prompt: &str) -> Result<String> {
    use std::io::IsTerminal;
    let line = if std::io::stdin().is_terminal() {
        console::Term::stderr()
            .write_str(prompt)
            .and_then(|_| console::Term::stderr().read_secure_line())
            .map_err(|e| CliError::Usage(format!("cannot read the terminal: {e}")))?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| CliError::Usage(format!("cannot read stdin: {e}")))?;
        line
    };
    let line = line.trim().to_owned();
    if line.is_empty() {
        return Err(CliError::Usage("nothing was given".into()));
    }
    Ok(line)
}

// ---------------------------------------------------------------- context

pub async fn context(ctx: &Ctx<'_>, command: Context) -> Result<()> {
    let client = ctx.client()?;
    match command {
        Context::Show { at, version, agent } => {
            let answer = match agent {
                Some(agent) => {
                    ctx.api
                        .query(
                            &format!("/v1/clients/{client}/context/agents/{}", seg(&agent)),
                            &[],
                        )
                        .await?
                }
                None => {
                    let mut params = Vec::new();
                    if let Some(at) = at {
                        params.push(("at", at));
                    }
                    if let Some(v) = version {
                        params.push(("version", v.to_string()));
                    }
                    ctx.api
                        .query(&format!("/v1/clients/{client}/context"), &params)
                        .await?
                }
            };
            if ctx.out.json() {
                return ctx.out.value(&answer.body);
            }
            let b = &answer.body;
            ctx.out.note(&format!(
                "version {} ({})",
                cell(&b["version"]),
                cell(&b["updated_at"])
            ));
            let doc = b.get("document").or_else(|| b.get("context")).unwrap_or(b);
            ctx.out.value(doc)
        }
        Context::History(page) => {
            let answer = ctx
                .api
                .query(
                    &format!("/v1/clients/{client}/context/versions"),
                    &page_params(&page, "before"),
                )
                .await?;
            let rows = items(&answer.body)
                .map(|v| {
                    let paths: Vec<String> = v["paths"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(cell)
                        .collect();
                    vec![
                        cell(&v["version"]),
                        cell(&v["created_at"]),
                        cell(&v["source"]),
                        cell(&v["actor"]),
                        paths.join(" "),
                        cell(if v["rationale"].is_null() {
                            &v["reason"]
                        } else {
                            &v["rationale"]
                        }),
                    ]
                })
                .collect();
            ctx.out.list(
                &answer.body,
                &["version", "created", "source", "actor", "paths", "why"],
                rows,
            )?;
            next_page(ctx, &answer.body, "next_before");
            Ok(())
        }
        Context::Diff { from, to } => {
            let answer = ctx
                .api
                .query(
                    &format!("/v1/clients/{client}/context/diff"),
                    &[("from", from.to_string()), ("to", to.to_string())],
                )
                .await?;
            if ctx.out.json() {
                return ctx.out.value(&answer.body);
            }
            ctx.out.line(diff::render(&answer.body).trim_end())
        }
        Context::Propose {
            file,
            rationale,
            source,
            base_version,
            confidence,
            evidence,
        } => {
            let patch = read_json_file(&file)?;
            let mut body = Map::new();
            body.insert("source".into(), json!(source));
            body.insert("patch".into(), patch);
            body.insert("rationale".into(), json!(rationale));
            put(&mut body, "base_version", base_version.map(Value::from));
            put(&mut body, "confidence", confidence.map(Value::from));
            if let Some(evidence) = evidence {
                let evidence: Value = serde_json::from_str(&evidence)
                    .map_err(|e| CliError::Usage(format!("--evidence is not JSON: {e}")))?;
                body.insert("evidence".into(), evidence);
            }
            let answer = ctx
                .api
                .command(
                    Method::POST,
                    &format!("/v1/clients/{client}/context/updates"),
                    Some(&Value::Object(body)),
                )
                .await?;
            if ctx.out.json() {
                return ctx.out.value(&answer.body);
            }
            let b = &answer.body;
            ctx.out.line(&format!(
                "update {}: {}{}",
                cell(&b["update_id"]),
                status(&cell(&b["status"])),
                if b["version"].is_null() {
                    String::new()
                } else {
                    format!(" as version {}", cell(&b["version"]))
                }
            ))
        }
        Context::Rollback { version, reason } => {
            let answer = ctx
                .api
                .command(
                    Method::POST,
                    &format!("/v1/clients/{client}/context/rollback"),
                    Some(&json!({ "to_version": version, "reason": reason })),
                )
                .await?;
            if ctx.out.json() {
                return ctx.out.value(&answer.body);
            }
            ctx.out.line(&format!(
                "rolled back to version {version}: now version {}",
                cell(&answer.body["version"])
            ))
        }
        Context::Upload {
            file,
            key,
            title,
            source,
            captured_at,
        } => {
            let content = std::fs::read_to_string(&file)
                .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "document".into());
            let captured_at = captured_at.unwrap_or_else(|| {
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            });
            let body = json!({
                "key": key.unwrap_or_else(|| name.clone()),
                "title": title.unwrap_or(name),
                "source": source,
                "content": content,
                "captured_at": captured_at,
            });
            let answer = ctx
                .api
                .command(
                    Method::POST,
                    &format!("/v1/clients/{client}/documents"),
                    Some(&body),
                )
                .await?;
            if ctx.out.json() {
                return ctx.out.value(&answer.body);
            }
            let b = &answer.body;
            if b["changed"] == false {
                return ctx.out.line("unchanged: this document was captured before");
            }
            let update = &b["update"];
            if update.is_null() {
                return ctx.out.line(&format!(
                    "captured ({}): no insights",
                    cell(&b["extractor"])
                ));
            }
            ctx.out.line(&format!(
                "captured ({}): update {} {}",
                cell(&b["extractor"]),
                cell(&update["update_id"]),
                status(&cell(&update["status"]))
            ))
        }
    }
}

// ---------------------------------------------------------------- approvals

pub async fn approvals(ctx: &Ctx<'_>, command: Approvals) -> Result<()> {
    match command {
        Approvals::List {
            status: wanted,
            all_clients,
            page,
        } => {
            let mut params = page_params(&page, "after");
            if let Some(s) = wanted {
                params.push(("status", s));
            }
            let path = if all_clients {
                "/v1/approvals".to_owned()
            } else {
                format!("/v1/clients/{}/approvals", ctx.client()?)
            };
            let answer = ctx.api.query(&path, &params).await?;
            let rows = items(&answer.body)
                .map(|u| {
                    vec![
                        cell(&u["update_id"]),
                        cell(&u["client_id"]),
                        cell(&u["source"]),
                        status(&cell(&u["status"])),
                        u["paths"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(cell)
                            .collect::<Vec<_>>()
                            .join(" "),
                        num(&u["confidence"], 2),
                        cell(&u["proposed_at"]),
                    ]
                })
                .collect();
            ctx.out.list(
                &answer.body,
                &[
                    "update",
                    "client",
                    "source",
                    "status",
                    "paths",
                    "confidence",
                    "proposed",
                ],
                rows,
            )?;
            next_page(ctx, &answer.body, "next_after");
            Ok(())
        }
        Approvals::Show { update_id } => {
            let client = ctx.client()?;
            let answer = ctx
                .api
                .query(
                    &format!("/v1/clients/{client}/context/updates/{}", seg(&update_id)),
                    &[],
                )
                .await?;
            if ctx.out.json() {
                return ctx.out.value(&answer.body);
            }
            ctx.out.line(&describe_update(&answer.body))
        }
        Approvals::Approve { update_id, note } => {
            decide(ctx, &update_id, "approve", json!({ "note": note })).await
        }
        Approvals::Modify {
            update_id,
            file,
            note,
        } => {
            let patch = read_json_file(&file)?;
            decide(
                ctx,
                &update_id,
                "modify",
                json!({ "patch": patch, "note": note }),
            )
            .await
        }
        Approvals::Reject { update_id, reason } => {
            decide(ctx, &update_id, "reject", json!({ "reason": reason })).await
        }
        Approvals::Review => crate::review::run(ctx).await,
    }
}

/// Approve, modify or reject; answers the API's JSON.
pub async fn decide_raw(ctx: &Ctx<'_>, update_id: &str, verb: &str, body: Value) -> Result<Value> {
    let client = ctx.client()?;
    let answer = ctx
        .api
        .command(
            Method::POST,
            &format!(
                "/v1/clients/{client}/context/updates/{}/{verb}",
                seg(update_id)
            ),
            Some(&body),
        )
        .await?;
    Ok(answer.body)
}

async fn decide(ctx: &Ctx<'_>, update_id: &str, verb: &str, body: Value) -> Result<()> {
    let answer = decide_raw(ctx, update_id, verb, body).await?;
    if ctx.out.json() {
        return ctx.out.value(&answer);
    }
    let done = match verb {
        "approve" => "approved",
        "modify" => "modified",
        _ => "rejected",
    };
    ctx.out
        .line(&match answer.get("version").filter(|v| !v.is_null()) {
            Some(v) => format!("{done} {update_id}: version {}", cell(v)),
            None => format!("{done} {update_id}"),
        })
}

/// An update as a person reviews it: what, why, the evidence and the patch.
pub fn describe_update(u: &Value) -> String {
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    let mut text = format!(
        "{} {}  {}  {}\n",
        crate::output::bold("update"),
        cell(&u["update_id"]),
        status(&cell(&u["status"])),
        cell(&u["source"])
    );
    text.push_str(&format!(
        "proposed by {} at {} on version {}, confidence {}\n",
        cell(&u["proposed_by"]),
        cell(&u["proposed_at"]),
        cell(&u["base_version"]),
        num(&u["confidence"], 2)
    ));
    text.push_str(&format!("rationale: {}\n", cell(&u["rationale"])));
    text.push_str(&format!("evidence:\n{}\n", pretty(&u["evidence"])));
    text.push_str("patch:\n");
    text.push_str(&diff::patch_lines(&u["patch"]));
    if !u["modified_patch"].is_null() {
        text.push_str("modified patch:\n");
        text.push_str(&diff::patch_lines(&u["modified_patch"]));
    }
    text
}

// ---------------------------------------------------------------- patterns

pub async fn patterns(ctx: &Ctx<'_>, p: Patterns) -> Result<()> {
    let client = ctx.client()?;
    let mut params = Vec::new();
    if let Some(m) = p.metric {
        params.push(("metric", m));
    }
    if let Some(s) = p.scope {
        params.push(("scope", s));
    }
    let answer = ctx
        .api
        .query(
            &format!("/v1/clients/{client}/patterns/{}", seg(&p.family)),
            &params,
        )
        .await?;
    let b = &answer.body;
    if !ctx.out.json() {
        ctx.out.note(&format!(
            "{} / {} / {}: baseline {} of {} ({}), matured before {}",
            cell(&b["family"]),
            cell(&b["metric"]),
            cell(&b["scope"]),
            cell(&b["baseline"]["events"]),
            cell(&b["baseline"]["sends"]),
            num(&b["baseline"]["rate"], 4),
            cell(&b["matured_before"]),
        ));
    }
    let rows = b["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                cell(&r["key"]),
                cell(&r["sends"]),
                cell(&r["events"]),
                num(&r["rate"], 4),
                format!("{}–{}", num(&r["ci_low"], 4), num(&r["ci_high"], 4)),
                num(&r["lift"], 2),
                num(&r["p"], 4),
                num(&r["q"], 4),
            ]
        })
        .collect();
    ctx.out.list(
        b,
        &["key", "sends", "events", "rate", "95% ci", "lift", "p", "q"],
        rows,
    )
}

// ---------------------------------------------------------------- suggestions

pub async fn suggestions(ctx: &Ctx<'_>, command: Suggestions) -> Result<()> {
    let client = ctx.client()?;
    match command {
        Suggestions::Run => {
            let answer = ctx
                .api
                .command(
                    Method::POST,
                    &format!("/v1/clients/{client}/suggestions/run"),
                    None,
                )
                .await?;
            let rows = answer.body["suggestions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    vec![
                        cell(&s["level"]),
                        cell(&s["family"]),
                        cell(&s["key"]),
                        cell(&s["verdict"]),
                        cell(&s["outcome"]),
                        cell(&s["update_id"]),
                    ]
                })
                .collect();
            ctx.out.list(
                &answer.body,
                &["level", "family", "key", "verdict", "outcome", "update"],
                rows,
            )
        }
    }
}

// ---------------------------------------------------------------- experiments

pub async fn experiments(ctx: &Ctx<'_>, command: Experiments) -> Result<()> {
    let client = ctx.client()?;
    match command {
        Experiments::List { status: s, page } => {
            let mut params = page_params(&page, "before");
            if let Some(s) = s {
                params.push(("status", s));
            }
            let answer = ctx
                .api
                .query(&format!("/v1/clients/{client}/experiments"), &params)
                .await?;
            let rows = items(&answer.body).map(experiment_row).collect();
            ctx.out.list(
                &answer.body,
                &[
                    "experiment",
                    "name",
                    "metric",
                    "variants",
                    "status",
                    "winner",
                    "created",
                ],
                rows,
            )?;
            next_page(ctx, &answer.body, "next_before");
            Ok(())
        }
        Experiments::Show { experiment_id } => {
            let answer = ctx
                .api
                .query(
                    &format!("/v1/clients/{client}/experiments/{}", seg(&experiment_id)),
                    &[],
                )
                .await?;
            if ctx.out.json() {
                return ctx.out.value(&answer.body);
            }
            let e = &answer.body["experiment"];
            let r = &answer.body["results"];
            ctx.out
                .line(&crate::output::table(&[], vec![experiment_row(e)]).to_string())?;
            ctx.out.note(&format!(
                "decision: {} (winner {}), sample ratio p {}",
                cell(&r["decision"]),
                cell(&r["winner"]),
                num(&r["sample_ratio_p"], 4)
            ));
            let rows = r["variants"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| {
                    vec![
                        cell(&v["id"]),
                        num(&v["weight"], 2),
                        cell(&v["sends"]),
                        cell(&v["events"]),
                        num(&v["rate"], 4),
                        format!("{}–{}", num(&v["ci_low"], 4), num(&v["ci_high"], 4)),
                        num(&v["always_valid_p"], 4),
                    ]
                })
                .collect();
            ctx.out.list(
                &answer.body,
                &[
                    "variant", "weight", "sends", "events", "rate", "95% ci", "p",
                ],
                rows,
            )
        }
        Experiments::Create {
            name,
            variants,
            metric,
        } => {
            let variants = variants
                .iter()
                .map(|v| parse_variant(v))
                .collect::<Result<Vec<_>>>()?;
            let answer = ctx
                .api
                .command(
                    Method::POST,
                    &format!("/v1/clients/{client}/experiments"),
                    Some(&json!({ "name": name, "variants": variants, "metric": metric })),
                )
                .await?;
            if ctx.out.json() {
                return ctx.out.value(&answer.body);
            }
            ctx.out.line(&format!(
                "created experiment {}",
                cell(&answer.body["experiment_id"])
            ))
        }
        Experiments::Conclude { experiment_id } => {
            let answer = ctx
                .api
                .command(
                    Method::POST,
                    &format!(
                        "/v1/clients/{client}/experiments/{}/conclude",
                        seg(&experiment_id)
                    ),
                    None,
                )
                .await?;
            let b = &answer.body;
            ctx.out.record(
                b,
                vec![
                    ("decision", cell(&b["decision"])),
                    ("winner", cell(&b["winner"])),
                    ("update", cell(&b["update_id"])),
                ],
            )
        }
        Experiments::Assign {
            experiment_id,
            lead,
        } => {
            let answer = ctx
                .api
                .query(
                    &format!(
                        "/v1/clients/{client}/experiments/{}/assignment",
                        seg(&experiment_id)
                    ),
                    &[("lead_ref", lead)],
                )
                .await?;
            let b = &answer.body;
            ctx.out.record(
                b,
                vec![
                    ("experiment", cell(&b["experiment_id"])),
                    ("lead", cell(&b["lead_ref"])),
                    ("variant", cell(&b["variant"])),
                ],
            )
        }
    }
}

fn experiment_row(e: &Value) -> Vec<String> {
    let variants: Vec<String> = e["variants"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| format!("{}:{}", cell(&v["id"]), cell(&v["weight"])))
        .collect();
    vec![
        cell(&e["experiment_id"]),
        cell(&e["name"]),
        cell(&e["metric"]),
        variants.join(" "),
        status(&cell(&e["status"])),
        cell(&e["winner"]),
        cell(&e["created_at"]),
    ]
}

/// `id` (weight 1) or `id:weight`.
fn parse_variant(v: &str) -> Result<Value> {
    match v.rsplit_once(':') {
        Some((id, weight)) => {
            let weight: f64 = weight.parse().map_err(|_| {
                CliError::Usage(format!(
                    "--variant {v}: the weight after ':' must be a number"
                ))
            })?;
            Ok(json!({ "id": id, "weight": weight }))
        }
        None => Ok(json!({ "id": v, "weight": 1 })),
    }
}

// ---------------------------------------------------------------- reports

pub async fn reports(ctx: &Ctx<'_>, command: Reports) -> Result<()> {
    match command {
        Reports::Weekly {
            week,
            format,
            out,
            all_clients,
        } => {
            let path = if all_clients {
                "/v1/reports/weekly".to_owned()
            } else {
                format!("/v1/clients/{}/reports/weekly", ctx.client()?)
            };
            let format = format.unwrap_or(ReportFormat::Json);
            let mut params = Vec::new();
            if let Some(w) = week {
                params.push(("week", w));
            }
            params.push((
                "format",
                match format {
                    ReportFormat::Json => "json",
                    ReportFormat::Csv => "csv",
                    ReportFormat::Html => "html",
                }
                .to_owned(),
            ));
            let answer = ctx.api.query(&path, &params).await?;
            let bytes = if format == ReportFormat::Json {
                let pretty = serde_json::to_vec_pretty(&answer.body)
                    .map_err(|e| CliError::failed(format!("cannot print JSON: {e}")))?;
                let mut pretty = pretty;
                pretty.push(b'\n');
                pretty
            } else {
                answer.bytes
            };
            match out {
                Some(file) => {
                    std::fs::write(&file, &bytes).map_err(|e| {
                        CliError::failed(format!("cannot write {}: {e}", file.display()))
                    })?;
                    ctx.out.note(&format!("wrote {}", file.display()));
                    Ok(())
                }
                None => ctx.out.bytes(&bytes),
            }
        }
    }
}

// ---------------------------------------------------------------- alerts

pub async fn alerts(ctx: &Ctx<'_>, command: Alerts) -> Result<()> {
    match command {
        Alerts::List {
            status: s,
            all_clients,
            page,
        } => {
            let mut params = page_params(&page, "before");
            if let Some(s) = s {
                params.push(("status", s));
            }
            let path = if all_clients {
                "/v1/alerts".to_owned()
            } else {
                format!("/v1/clients/{}/alerts", ctx.client()?)
            };
            let answer = ctx.api.query(&path, &params).await?;
            let rows = items(&answer.body)
                .map(|a| {
                    vec![
                        cell(&a["alert_id"]),
                        cell(&a["client_id"]),
                        cell(&a["condition"]),
                        cell(&a["subject"]),
                        status(&cell(&a["status"])),
                        cell(&a["raised_at"]),
                        if a["acknowledged_at"].is_null() {
                            "-".into()
                        } else {
                            cell(&a["acknowledged_by"])
                        },
                    ]
                })
                .collect();
            ctx.out.list(
                &answer.body,
                &[
                    "alert",
                    "client",
                    "condition",
                    "subject",
                    "status",
                    "raised",
                    "acknowledged",
                ],
                rows,
            )?;
            next_page(ctx, &answer.body, "next_before");
            Ok(())
        }
        Alerts::Ack { alert_id, note } => {
            let client = ctx.client()?;
            let mut body = Map::new();
            put(&mut body, "note", note.map(Value::from));
            let answer = ctx
                .api
                .command(
                    Method::POST,
                    &format!("/v1/clients/{client}/alerts/{}/acknowledge", seg(&alert_id)),
                    Some(&Value::Object(body)),
                )
                .await?;
            if ctx.out.json() {
                return ctx.out.value(&answer.body);
            }
            ctx.out.line(&format!(
                "acknowledged {alert_id} as {}",
                cell(&answer.body["acknowledged_by"])
            ))
        }
    }
}
