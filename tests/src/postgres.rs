//! A Postgres cluster of one test's own, made with the installed `initdb`
//! under a temporary directory on a free port, so a test can crash and
//! restart Postgres without disturbing every other test on the shared one.
//!
//! Postgres refuses to run as root; when the tests do, the cluster is made
//! and run as the `postgres` OS user through `runuser` (as
//! `deploy/local/up.sh` does for a private cluster).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::nats::{free_port, wait_until_listening};

pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

/// The directory holding `initdb` and `pg_ctl`: `SEXTANT_PG_BIN`, else the
/// newest `/usr/lib/postgresql/<major>/bin`.
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SEXTANT_PG_BIN") {
        return dir.into();
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("no SEXTANT_PG_BIN and no /usr/lib/postgresql")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("pg_ctl").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().expect("no Postgres server binaries found")
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// `program args…`, as the `postgres` OS user when we are root.
fn as_cluster_owner(program: &Path) -> Command {
    if running_as_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd.current_dir("/");
        cmd
    } else {
        Command::new(program)
    }
}

async fn run(mut cmd: Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("{what}: {e}"))
        .expect("the command starts");
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PrivatePostgres {
    /// Makes and starts a fresh cluster (trust auth, user `postgres`).
    pub async fn start() -> Self {
        let dir =
            std::env::temp_dir().join(format!("sextant-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        if running_as_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres:"]).arg(&dir);
                    c
                },
                "chown the cluster dir",
            )
            .await;
        }
        let pg = Self {
            port: free_port(),
            bin: bin_dir(),
            dir,
        };
        let mut initdb = as_cluster_owner(&pg.bin.join("initdb"));
        initdb
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(pg.dir.join("data"));
        run(initdb, "initdb").await;
        pg.start_server().await;
        pg
    }

    pub fn admin_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    fn pg_ctl(&self, action: &str) -> Command {
        let mut cmd = as_cluster_owner(&self.bin.join("pg_ctl"));
        cmd.arg(action).arg("-D").arg(self.dir.join("data"));
        cmd
    }

    /// Starts the server and waits until it accepts connections.
    pub async fn start_server(&self) {
        let mut cmd = self.pg_ctl("start");
        cmd.args(["-w", "-t", "30", "-l"])
            .arg(self.dir.join("log"))
            .arg("-o")
            .arg(format!(
                "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c max_connections=100",
                self.port,
                self.dir.display()
            ));
        run(cmd, "pg_ctl start").await;
        wait_until_listening(self.port, "Postgres", Duration::from_secs(30)).await;
    }

    /// Stops the server the way a crash would (`-m immediate`: no
    /// checkpoint, every connection dropped; recovery replays the WAL on
    /// the next start).
    pub async fn crash(&self) {
        let mut cmd = self.pg_ctl("stop");
        cmd.args(["-m", "immediate", "-w"]);
        run(cmd, "pg_ctl stop").await;
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let mut cmd = if running_as_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&pg_ctl);
            c
        } else {
            std::process::Command::new(&pg_ctl)
        };
        let _ = cmd
            .args(["stop", "-m", "immediate", "-D"])
            .arg(self.dir.join("data"))
            .current_dir("/")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
