//! `sextant approvals review`: the pending updates one at a time, each with
//! its rationale, evidence and patch, decided by a key press: `a` approve,
//! `r` reject (asks the reason), `m` modify (the patch in `$EDITOR`), `s`
//! skip, `q` quit. Needs a terminal.

use std::io::IsTerminal;

use console::{Key, Term};
use serde_json::{json, Value};

use crate::commands::{decide_raw, describe_update, Ctx};
use crate::error::{CliError, Result};
use crate::output::cell;

pub async fn run(ctx: &Ctx<'_>) -> Result<()> {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(CliError::Usage(
            "approvals review needs a terminal; use approvals list / approve / reject in scripts"
                .into(),
        ));
    }
    let client = crate::api::seg(ctx.settings.client()?);
    let term = Term::stderr();
    let io = |e: std::io::Error| CliError::failed(format!("the terminal failed: {e}"));
    let mut after: Option<String> = None;
    let (mut approved, mut rejected, mut modified, mut skipped) = (0, 0, 0, 0);
    'pages: loop {
        let mut params = vec![("status", "pending".to_owned())];
        if let Some(a) = &after {
            params.push(("after", a.clone()));
        }
        let page = ctx
            .api
            .query(&format!("/v1/clients/{client}/approvals"), &params)
            .await?
            .body;
        let items: Vec<Value> = page["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            break;
        }
        for update in &items {
            let id = cell(&update["update_id"]);
            term.clear_screen().map_err(io)?;
            term.write_line(&describe_update(update)).map_err(io)?;
            term.write_line("[a]pprove  [r]eject  [m]odify  [s]kip  [q]uit")
                .map_err(io)?;
            loop {
                let key = term.read_key().map_err(io)?;
                let outcome = match key {
                    Key::Char('a') => Some(
                        decide_raw(ctx, &id, "approve", json!({}))
                            .await
                            .map(|_| approved += 1),
                    ),
                    Key::Char('r') => {
                        term.write_str("reason: ").map_err(io)?;
                        let reason = term.read_line().map_err(io)?;
                        Some(
                            decide_raw(ctx, &id, "reject", json!({ "reason": reason }))
                                .await
                                .map(|_| rejected += 1),
                        )
                    }
                    Key::Char('m') => {
                        let patch = edit_patch(&update["patch"])?;
                        Some(
                            decide_raw(ctx, &id, "modify", json!({ "patch": patch }))
                                .await
                                .map(|_| modified += 1),
                        )
                    }
                    Key::Char('s') => {
                        skipped += 1;
                        break;
                    }
                    Key::Char('q') | Key::Escape => break 'pages,
                    _ => None,
                };
                match outcome {
                    None => continue,
                    Some(Ok(())) => break,
                    Some(Err(e)) => {
                        term.write_line(&e.line()).map_err(io)?;
                        term.write_line("press a key").map_err(io)?;
                        term.read_key().map_err(io)?;
                        break;
                    }
                }
            }
        }
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    ctx.out.line(&format!(
        "approved {approved}, modified {modified}, rejected {rejected}, skipped {skipped}"
    ))
}

/// The patch in `$EDITOR` (`vi` without one); answers what was saved.
fn edit_patch(patch: &Value) -> Result<Value> {
    let path = std::env::temp_dir().join(format!("sextant-patch-{}.json", std::process::id()));
    let text = serde_json::to_string_pretty(patch).unwrap_or_else(|_| "{}".into());
    std::fs::write(&path, text)
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", path.display())))?;
    let editor = std::env::var("EDITOR").unwrap_or_else(|_| "vi".into());
    let status = std::process::Command::new(&editor)
        .arg(&path)
        .status()
        .map_err(|e| CliError::failed(format!("cannot run {editor}: {e}")))?;
    let edited = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    if !status.success() {
        return Err(CliError::failed(format!("{editor} exited with {status}")));
    }
    let edited = edited.map_err(|e| CliError::failed(format!("cannot read the patch: {e}")))?;
    serde_json::from_str(&edited)
        .map_err(|e| CliError::Usage(format!("the patch is not JSON: {e}")))
}
