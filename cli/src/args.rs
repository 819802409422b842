//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::output::OutputMode;

/// Sextant's operator command line: a client of the command and query APIs
/// and of the event stream.
///
/// Settings come from flags, then the environment, then the profile file
/// that `sextant login` writes ($XDG_CONFIG_HOME/sextant/config.toml).
///
/// Exit codes: 0 ok, 1 error (401/403 too), 2 usage, 3 not found (404),
/// 4 conflict or stale (409/412), 5 unavailable (503, nothing listening),
/// 130 interrupted.
#[derive(Debug, Parser)]
#[command(name = "sextant", version)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The command API's base URL.
    #[arg(long, global = true, env = "SEXTANT_COMMAND_URL", value_name = "URL")]
    pub command_url: Option<String>,
    /// The query API's base URL.
    #[arg(long, global = true, env = "SEXTANT_QUERY_URL", value_name = "URL")]
    pub query_url: Option<String>,
    /// The API key (the operator key or a client's key). Never printed.
    #[arg(
        long,
        global = true,
        env = "SEXTANT_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub key: Option<String>,
    /// NATS, for `events tail`.
    #[arg(long, global = true, env = "SEXTANT_NATS_URL", value_name = "URL")]
    pub nats_url: Option<String>,
    /// The JetStream stream, for `events tail`.
    #[arg(long, global = true, env = "SEXTANT_STREAM", value_name = "NAME")]
    pub stream: Option<String>,
    /// Which profile of the profile file.
    #[arg(long, global = true, env = "SEXTANT_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    /// The client that client-scoped commands act on.
    #[arg(long, global = true, env = "SEXTANT_CLIENT", value_name = "ID")]
    pub client: Option<String>,
    /// Tables for a person, or the API's JSON for a script.
    #[arg(long, global = true, value_enum, default_value_t = OutputMode::Table)]
    pub output: OutputMode,
    /// Reads wait until the read models reached this position (the
    /// `position` a command answered).
    #[arg(
        long,
        global = true,
        env = "SEXTANT_MIN_POSITION",
        value_name = "POSITION"
    )]
    pub min_position: Option<i64>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Save URLs, a key and a default client as a named profile.
    Login(Login),
    /// Who the key is (role, client).
    Whoami,
    /// Clients (operator): list, register, show, change, suspend.
    #[command(subcommand)]
    Clients(Clients),
    /// A client's API keys.
    #[command(subcommand)]
    Keys(Keys),
    /// A client's webhook secrets.
    #[command(subcommand)]
    Webhooks(Webhooks),
    /// The context ledger: the document, its versions, proposals.
    #[command(subcommand)]
    Context(Context),
    /// The review queue.
    #[command(subcommand)]
    Approvals(Approvals),
    /// A pattern table of one detector family.
    Patterns(Patterns),
    /// The suggestion engine.
    #[command(subcommand)]
    Suggestions(Suggestions),
    /// Experiments.
    #[command(subcommand)]
    Experiments(Experiments),
    /// Reports.
    #[command(subcommand)]
    Reports(Reports),
    /// Alerts.
    #[command(subcommand)]
    Alerts(Alerts),
    /// The event stream.
    #[command(subcommand)]
    Events(Events),
    /// Bulk import of sends or outcomes from CSV or JSON lines.
    Import(Import),
    /// Shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct Login {
    /// Which profile to write (default: `--profile`, else `default`).
    #[arg(long = "name", value_name = "NAME")]
    pub name: Option<String>,
    /// Also make it the default profile.
    #[arg(long)]
    pub make_default: bool,
    /// Save without checking the key against the query API.
    #[arg(long)]
    pub no_verify: bool,
}

#[derive(Debug, Subcommand)]
pub enum Clients {
    /// A page of clients (operator).
    List(Page),
    /// Register a client (operator).
    Create(ClientCreate),
    /// One client (default: --client).
    Show { id: Option<String> },
    /// Change a client's profile and settings.
    Update(ClientUpdate),
    /// Suspend a client (operator).
    Suspend {
        id: Option<String>,
        #[arg(long)]
        reason: String,
    },
    /// Reactivate a suspended client (operator).
    Reactivate { id: Option<String> },
}

#[derive(Debug, Args, Default)]
pub struct Page {
    /// At most this many (the API's default when absent).
    #[arg(long)]
    pub limit: Option<u32>,
    /// The cursor of the next page (`next_after` / `next_before`).
    #[arg(long)]
    pub cursor: Option<String>,
}

#[derive(Debug, Args)]
pub struct ClientCreate {
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub industry: String,
    /// 1-10, 11-50, 51-200, 201-500, 501-1000, 1001-5000, 5001+.
    #[arg(long)]
    pub company_size: String,
    #[arg(long)]
    pub region: String,
    /// manual, co_pilot, autopilot.
    #[arg(long)]
    pub permission_mode: Option<String>,
    /// An IANA time zone.
    #[arg(long)]
    pub timezone: Option<String>,
    /// Consent to feed cross-client patterns.
    #[arg(long)]
    pub data_sharing: bool,
}

#[derive(Debug, Args)]
pub struct ClientUpdate {
    /// Default: --client.
    pub id: Option<String>,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub industry: Option<String>,
    #[arg(long)]
    pub company_size: Option<String>,
    #[arg(long)]
    pub region: Option<String>,
    #[arg(long)]
    pub permission_mode: Option<String>,
    #[arg(long)]
    pub autopilot_threshold: Option<f64>,
    #[arg(long)]
    pub timezone: Option<String>,
    #[arg(long)]
    pub data_sharing: Option<bool>,
}

#[derive(Debug, Subcommand)]
pub enum Keys {
    /// Issue a key; it is shown this once.
    Issue {
        /// admin, reviewer, ingest, reader.
        #[arg(long)]
        role: String,
        #[arg(long)]
        label: String,
    },
    /// Every key issued (never the key itself).
    List,
    /// Revoke a key at once.
    Revoke { key_id: String },
}

#[derive(Debug, Subcommand)]
pub enum Webhooks {
    /// Set the secret a provider signs with (read from stdin when not given).
    Set {
        provider: String,
        #[arg(long, hide_env_values = true, env = "SEXTANT_WEBHOOK_SECRET")]
        secret: Option<String>,
    },
    /// The provider's webhook: its fingerprint and when it was set.
    Show { provider: String },
}

#[derive(Debug, Subcommand)]
pub enum Context {
    /// The document now, at a time, at a version, or as an agent sees it.
    Show {
        /// An RFC 3339 time.
        #[arg(long, conflicts_with_all = ["version", "agent"])]
        at: Option<String>,
        /// A version number (0 is the empty document).
        #[arg(long, conflicts_with = "agent")]
        version: Option<i64>,
        /// The slice one agent reads.
        #[arg(long)]
        agent: Option<String>,
    },
    /// The versions, newest first.
    History(Page),
    /// What changed from version A to version B.
    Diff { from: i64, to: i64 },
    /// Propose a JSON merge patch.
    Propose {
        /// The merge patch (a JSON object); `-` for stdin.
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        rationale: String,
        /// manual, document, crm_analysis, ... (default manual).
        #[arg(long, default_value = "manual")]
        source: String,
        #[arg(long)]
        base_version: Option<i64>,
        #[arg(long)]
        confidence: Option<f64>,
        /// Evidence as JSON (inline).
        #[arg(long)]
        evidence: Option<String>,
    },
    /// Make an earlier version current again.
    Rollback {
        version: i64,
        #[arg(long)]
        reason: String,
    },
    /// Capture a document; its insights apply or wait for review.
    Upload {
        file: PathBuf,
        /// The document's key (default: the file name).
        #[arg(long)]
        key: Option<String>,
        /// Default: the file name.
        #[arg(long)]
        title: Option<String>,
        /// meeting_notes, strategy_doc, icp_hypothesis, upload, other.
        #[arg(long, default_value = "upload")]
        source: String,
        /// RFC 3339 (default: now).
        #[arg(long)]
        captured_at: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum Approvals {
    /// The queue (pending unless --status).
    List {
        /// pending, applied, auto_applied, rejected, superseded, withdrawn, all.
        #[arg(long)]
        status: Option<String>,
        /// Every client's queue (operator).
        #[arg(long)]
        all_clients: bool,
        #[command(flatten)]
        page: Page,
    },
    /// One update, with its evidence and patch.
    Show { update_id: String },
    Approve {
        update_id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Apply a reviewer's patch instead of the proposed one.
    Modify {
        update_id: String,
        /// The merge patch (a JSON object); `-` for stdin.
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        note: Option<String>,
    },
    Reject {
        update_id: String,
        #[arg(long)]
        reason: String,
    },
    /// Go through the pending updates one by one: a(pprove), r(eject),
    /// m(odify in $EDITOR), s(kip), q(uit).
    Review,
}

#[derive(Debug, Args)]
pub struct Patterns {
    /// what, when, how, who, versions.
    pub family: String,
    /// reply, positive_reply, meeting.
    #[arg(long)]
    pub metric: Option<String>,
    /// client, or industry:<name>.
    #[arg(long)]
    pub scope: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Suggestions {
    /// Run the suggestion engine for the client now.
    Run,
}

#[derive(Debug, Subcommand)]
pub enum Experiments {
    List {
        /// running, concluded, all.
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    /// One experiment with its results.
    Show {
        experiment_id: String,
    },
    Create {
        #[arg(long)]
        name: String,
        /// `id` or `id:weight`, at least two.
        #[arg(long = "variant", required = true, num_args = 1)]
        variants: Vec<String>,
        /// reply, positive_reply, meeting.
        #[arg(long)]
        metric: String,
    },
    Conclude {
        experiment_id: String,
    },
    /// The variant a lead is assigned.
    Assign {
        experiment_id: String,
        #[arg(long)]
        lead: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Json,
    Csv,
    Html,
}

#[derive(Debug, Subcommand)]
pub enum Reports {
    /// The weekly report.
    Weekly {
        /// `YYYY-Www` (default: the last full week).
        #[arg(long)]
        week: Option<String>,
        #[arg(long, value_enum)]
        format: Option<ReportFormat>,
        /// Write to this file instead of stdout.
        #[arg(long = "out", short = 'o', value_name = "FILE")]
        out: Option<PathBuf>,
        /// Every client's report (operator).
        #[arg(long)]
        all_clients: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum Alerts {
    List {
        /// open, resolved, all.
        #[arg(long)]
        status: Option<String>,
        /// Every client's alerts (operator).
        #[arg(long)]
        all_clients: bool,
        #[command(flatten)]
        page: Page,
    },
    /// Acknowledge an alert.
    Ack {
        alert_id: String,
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum Events {
    /// Follow the stream as a downstream service would, one CloudEvent
    /// (JSON) per line.
    Tail {
        /// Only this event type (`send_recorded`) or `aggregate.event`
        /// (`send.send_recorded`); repeatable.
        #[arg(long = "type", value_name = "TYPE")]
        types: Vec<String>,
        /// Start at a global position (a number) or a time (RFC 3339)
        /// instead of at the events that arrive from now on.
        #[arg(long)]
        since: Option<String>,
        /// Stop after this many events.
        #[arg(long)]
        limit: Option<u64>,
        /// The stream's subject prefix (default: read from the stream).
        #[arg(long, env = "SEXTANT_SUBJECT_PREFIX")]
        subject_prefix: Option<String>,
        /// Every client's events, not only --client's.
        #[arg(long)]
        all_clients: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportKind {
    Sends,
    Outcomes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    Csv,
    Jsonl,
}

#[derive(Debug, Args)]
pub struct Import {
    #[arg(value_enum)]
    pub kind: ImportKind,
    pub file: PathBuf,
    /// Default: from the file name (`.jsonl`, `.ndjson`: jsonl; else csv).
    #[arg(long, value_enum)]
    pub format: Option<InputFormat>,
    /// A vendor's CSV export: smartlead, instantly, lemlist. Any other name
    /// is the `provider` of every row (with --mapping).
    #[arg(long)]
    pub provider: Option<String>,
    /// A TOML mapping of columns to fields, with fixed values.
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// Where refused rows go (default: FILE.rejects.csv).
    #[arg(long)]
    pub rejects: Option<PathBuf>,
    /// Where progress is saved (default: FILE.checkpoint beside the input,
    /// else under ~/.local/state/sextant).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Ignore a saved checkpoint and start from the first row.
    #[arg(long)]
    pub restart: bool,
    /// Rows per request (at most 1000).
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
