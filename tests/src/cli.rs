//! The `sextant` binary (the operator CLI) run as a person or a script runs
//! it: built beside the test binary (`target/<profile>/sextant`, brought up
//! to date once per test process, as [`crate::procs`] does for the service
//! binaries), with the URLs, key and client in its environment and a home
//! of its own (so no profile file of the machine's is read).

use std::path::{Path, PathBuf};
use std::process::Output;

use uuid::Uuid;

use crate::{Running, TestEnv};

/// `target/<profile>/sextant`, built first if stale.
pub fn binary() -> PathBuf {
    crate::procs::built("sextant")
}

impl Sextant {
    /// Waits (up to 30 s) until every projection has applied what the log
    /// holds, so that each run reads what the runs before it wrote, as for a
    /// person typing one command after another. (Within one run the CLI
    /// passes its own positions on; between runs, a script passes
    /// `--min-position`.)
    async fn settle(&self) {
        let Ok(head) = sextant_adapters::db::head_position(&self.pool).await else {
            return;
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            let mut behind = false;
            for projection in sextant_projections::all() {
                let at = sextant_projections::runtime::position_of(&self.pool, projection.name())
                    .await
                    .unwrap_or(0);
                behind |= at < head;
            }
            if !behind {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// Every variable `sextant` reads, left out of what the test inherited.
const SEXTANT_VARS: &[&str] = &[
    "SEXTANT_COMMAND_URL",
    "SEXTANT_QUERY_URL",
    "SEXTANT_KEY",
    "SEXTANT_NATS_URL",
    "SEXTANT_STREAM",
    "SEXTANT_PROFILE",
    "SEXTANT_CLIENT",
    "SEXTANT_MIN_POSITION",
    "SEXTANT_SUBJECT_PREFIX",
    "SEXTANT_WEBHOOK_SECRET",
    "XDG_CONFIG_HOME",
    "XDG_STATE_HOME",
];

/// `sextant` configured for one test's services.
pub struct Sextant {
    pub bin: PathBuf,
    /// Its home: profile file, state, and the test's files.
    pub dir: PathBuf,
    pub vars: Vec<(String, String)>,
    /// The test's database, to wait for the read models before each run.
    pool: sqlx::PgPool,
}

impl Sextant {
    /// Pointed at `app`'s APIs and `env`'s NATS stream, with `key` and, when
    /// given, `client`.
    pub fn new(app: &Running, env: &TestEnv, key: &str, client: Option<Uuid>) -> Self {
        let dir = std::env::temp_dir().join(format!("sextant-cli-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a directory for the CLI");
        let mut vars = vec![
            ("SEXTANT_COMMAND_URL".to_owned(), app.command_url.clone()),
            ("SEXTANT_QUERY_URL".to_owned(), app.query_url.clone()),
            ("SEXTANT_KEY".to_owned(), key.to_owned()),
            ("SEXTANT_NATS_URL".to_owned(), env.nats_url.clone()),
            ("SEXTANT_STREAM".to_owned(), env.stream.name.clone()),
            ("HOME".to_owned(), dir.display().to_string()),
            ("NO_COLOR".to_owned(), "1".to_owned()),
        ];
        if let Some(client) = client {
            vars.push(("SEXTANT_CLIENT".to_owned(), client.to_string()));
        }
        Self {
            bin: binary(),
            dir,
            vars,
            pool: env.pool.clone(),
        }
    }

    /// The same, with `name` set to `value` (or replaced).
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.vars.retain(|(n, _)| n != name);
        self.vars.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The same, without `name`.
    pub fn without(mut self, name: &str) -> Self {
        self.vars.retain(|(n, _)| n != name);
        self
    }

    /// A file in its directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// An `assert_cmd` command for `args`.
    pub fn command(&self, args: &[&str]) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::new(&self.bin);
        for name in SEXTANT_VARS {
            cmd.env_remove(name);
        }
        cmd.envs(self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&self.dir)
            .args(args);
        cmd
    }

    /// A tokio command for `args` (for what runs beside the test: a tail,
    /// an import to interrupt).
    pub fn spawnable(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.bin);
        for name in SEXTANT_VARS {
            cmd.env_remove(name);
        }
        cmd.envs(self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&self.dir)
            .args(args)
            .kill_on_drop(true);
        cmd
    }

    /// A plain command for `args`, for a pseudo-terminal to run.
    pub fn std_command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.bin);
        for name in SEXTANT_VARS {
            cmd.env_remove(name);
        }
        cmd.envs(self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&self.dir)
            .args(args);
        cmd
    }

    /// Runs `args` to the end (off the runtime's threads: the services run
    /// on them).
    pub async fn run(&self, args: &[&str]) -> Output {
        self.settle().await;
        let mut cmd = self.command(args);
        tokio::task::spawn_blocking(move || cmd.output().expect("run sextant"))
            .await
            .expect("the sextant run")
    }

    /// Runs `args`, expects exit 0, answers stdout as JSON.
    pub async fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.run(&all).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "sextant {args:?}: {}",
            show(&out)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("sextant {args:?} printed no JSON ({e}): {}", show(&out)))
    }
}

impl Drop for Sextant {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An output, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes `rows` sends as CSV, the columns named as the API's fields.
pub fn write_sends_csv(path: &Path, rows: impl Iterator<Item = String>) {
    use std::io::Write;
    let file = std::fs::File::create(path).expect("create the CSV");
    let mut w = std::io::BufWriter::new(file);
    writeln!(
        w,
        "provider,provider_message_id,lead.email,channel,campaign_id,step,sent_at"
    )
    .expect("write");
    for row in rows {
        writeln!(w, "{row}").expect("write");
    }
    w.flush().expect("flush");
}

/// Send row `i` of a CSV as [`write_sends_csv`] heads it.
pub fn send_row(i: usize) -> String {
    format!(
        "csv,m-{i},lead{}@example.com,email,import,{},2026-01-05T09:00:00Z",
        i % 5000,
        1 + i % 3
    )
}
