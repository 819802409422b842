//! How answers are shown: tables for a person, the API's own JSON for a
//! script (`--output json`). Colour only on a terminal (console decides:
//! it also honours `NO_COLOR` and `CLICOLOR_FORCE`).

use std::io::{IsTerminal, Write};

use clap::ValueEnum;
use comfy_table::{presets, ContentArrangement, Table};
use serde_json::Value;

use crate::error::{CliError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputMode {
    /// Readable tables.
    #[default]
    Table,
    /// The API's JSON, as it answered.
    Json,
}

pub struct Out {
    pub mode: OutputMode,
}

impl Out {
    pub fn json(&self) -> bool {
        self.mode == OutputMode::Json
    }

    /// The API's JSON, pretty-printed, on stdout.
    pub fn value(&self, value: &Value) -> Result<()> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| CliError::failed(format!("cannot print JSON: {e}")))?;
        self.line(&text)
    }

    pub fn line(&self, text: &str) -> Result<()> {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{text}").map_err(stdout_error)
    }

    pub fn bytes(&self, bytes: &[u8]) -> Result<()> {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(bytes).map_err(stdout_error)?;
        stdout.flush().map_err(stdout_error)
    }

    /// Rows under headers; in JSON mode, `json` as given.
    pub fn list(&self, json: &Value, headers: &[&str], rows: Vec<Vec<String>>) -> Result<()> {
        if self.json() {
            return self.value(json);
        }
        if rows.is_empty() {
            return self.line("(none)");
        }
        self.line(&table(headers, rows).to_string())
    }

    /// Field / value pairs; in JSON mode, `json` as given.
    pub fn record(&self, json: &Value, fields: Vec<(&str, String)>) -> Result<()> {
        if self.json() {
            return self.value(json);
        }
        let rows = fields
            .into_iter()
            .map(|(k, v)| vec![style_dim(k), v])
            .collect();
        let mut t = table(&[], rows);
        t.load_preset(presets::NOTHING);
        self.line(&t.to_string())
    }

    /// A note for a person (stderr, never in JSON output).
    pub fn note(&self, text: &str) {
        if !self.json() {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }
}

fn stdout_error(e: std::io::Error) -> CliError {
    CliError::failed(format!("cannot write to stdout: {e}"))
}

pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> Table {
    let mut t = Table::new();
    if std::io::stdout().is_terminal() {
        t.load_preset(presets::UTF8_HORIZONTAL_ONLY);
        t.set_content_arrangement(ContentArrangement::Dynamic);
    } else {
        t.load_preset(presets::NOTHING);
    }
    if !headers.is_empty() {
        t.set_header(headers.iter().map(|h| h.to_uppercase()));
    }
    for row in rows {
        t.add_row(row);
    }
    t
}

/// A JSON value as a cell: strings bare, null as `-`, the rest as JSON.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A number with at most `digits` decimals.
pub fn num(v: &Value, digits: usize) -> String {
    match v.as_f64() {
        Some(f) if v.is_f64() => format!("{f:.digits$}"),
        _ => cell(v),
    }
}

pub fn style_dim(s: &str) -> String {
    console::style(s).dim().to_string()
}

pub fn red(s: &str) -> String {
    console::style(s).red().to_string()
}

pub fn green(s: &str) -> String {
    console::style(s).green().to_string()
}

pub fn cyan(s: &str) -> String {
    console::style(s).cyan().to_string()
}

pub fn bold(s: &str) -> String {
    console::style(s).bold().to_string()
}

/// A status word, coloured by what it means.
pub fn status(s: &str) -> String {
    match s {
        "active" | "applied" | "auto_applied" | "running" | "recorded" | "resolved" => green(s),
        "pending" | "open" => console::style(s).yellow().to_string(),
        "suspended" | "rejected" | "withdrawn" | "superseded" | "error" => red(s),
        _ => s.to_owned(),
    }
}
