//! The real service binaries as child processes, for the faults only a
//! process can suffer: `kill -9` mid-load, then a restart on the same port.
//!
//! The binaries are the ones cargo builds beside the test binary
//! (`target/<profile>/sextant-command`, `…/sextant-query`). A test run by
//! `cargo nextest run` alone would find them stale or missing, so the first
//! use in a test process asks cargo to bring them up to date ([`built`]: a
//! no-op of a second after `deploy/local/test.sh`, which builds them first
//! with the very command, [`BUILD_ARGS`], that `up.sh` and `demo.sh` run
//! too: cargo unifies features over the packages a build names, and another
//! selection would compile shared dependencies anew). The benchmark
//! harness, itself one of those binaries, uses them as built
//! ([`Binary::built_path`]) and the same environment ([`service_env`]).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::nats::free_port;
use crate::{TestEnv, OPERATOR_KEY};

/// Which binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    /// `sextant-command`: the command API, the relay and the suggestion
    /// engine.
    Command,
    /// `sextant-query`: the query API and every projector.
    Query,
}

impl Binary {
    pub const ALL: [Binary; 2] = [Binary::Command, Binary::Query];

    pub fn name(self) -> &'static str {
        match self {
            Binary::Command => "sextant-command",
            Binary::Query => "sextant-query",
        }
    }

    /// The variable that says where it listens.
    pub fn addr_var(self) -> &'static str {
        match self {
            Binary::Command => "SEXTANT_COMMAND_ADDR",
            Binary::Query => "SEXTANT_QUERY_ADDR",
        }
    }

    /// `target/<profile>/<name>` as it is: beside the running binary, or
    /// one directory up from a test binary (`target/<profile>/deps`).
    pub fn built_path(self) -> PathBuf {
        profile_dir().join(self.name())
    }

    /// [`Binary::built_path`], built first if stale.
    pub fn path(self) -> PathBuf {
        built(self.name())
    }
}

/// The command every build of the workspace's binaries runs, here, in
/// `deploy/local/test.sh`, `up.sh` and `demo.sh`: every binary of the
/// workspace, so that features are unified as in the tests' own build
/// (`cargo nextest run --workspace`) and no dependency is compiled twice
/// for a second feature set.
pub const BUILD_ARGS: [&str; 3] = ["build", "--workspace", "--bins"];

/// `target/<profile>/<name>`, a binary of the workspace, with every binary
/// brought up to date first, once per test process (a no-op of a second
/// after `deploy/local/test.sh`, which runs the same build first).
pub fn built(name: &str) -> PathBuf {
    let profile_dir = profile_dir();
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let mut cargo =
            std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .args(BUILD_ARGS);
        if profile_dir.ends_with("release") {
            cargo.arg("--release");
        }
        // What cargo set for this test binary (its package's name and
        // manifest directory, …) is not a build's environment: ring's
        // build script tracks some of these variables, so a build with
        // them rebuilds ring and all above it, and the next build from
        // a shell (deploy/local/up.sh's) rebuilds it all again.
        for (name, _) in std::env::vars_os() {
            if let Some(name) = name.to_str().filter(|n| set_by_cargo_for_a_crate(n)) {
                cargo.env_remove(name);
            }
        }
        let status = cargo.status().expect("run cargo build");
        assert!(
            status.success(),
            "cargo build of the workspace's binaries failed"
        );
    });
    let path = profile_dir.join(name);
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// Whether cargo sets `name` for the crate it compiles or the test it runs
/// (never for itself).
fn set_by_cargo_for_a_crate(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_BIN_EXE_")
        || name.starts_with("CARGO_CFG_")
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_RUSTC_CURRENT_DIR"
        )
}

fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the running binary's path");
    let dir = exe.parent().expect("target/<profile>").to_path_buf();
    if dir.ends_with("deps") {
        dir.parent().map(PathBuf::from).unwrap_or(dir)
    } else {
        dir
    }
}

/// What a service needs to run against `env`'s database and stream (its own
/// stream name and subject prefix), configured as an operator would, quiet
/// but for warnings.
pub fn service_env(env: &TestEnv) -> Vec<(String, String)> {
    vec![
        ("DATABASE_URL".into(), env.database_url.clone()),
        ("NATS_URL".into(), env.nats_url.clone()),
        ("SEXTANT_OPERATOR_KEY".into(), OPERATOR_KEY.into()),
        ("SEXTANT_SECRETS_KEY".into(), crate::SECRETS_KEY.into()),
        ("SEXTANT_STREAM".into(), env.stream.name.clone()),
        (
            "SEXTANT_SUBJECT_PREFIX".into(),
            env.stream.subject_prefix.clone(),
        ),
        ("SEXTANT_LOG".into(), "warn".into()),
    ]
}

/// One running service process.
pub struct Service {
    pub binary: Binary,
    pub port: u16,
    env: Vec<(String, String)>,
    child: Option<Child>,
    /// How many times it was killed.
    pub kills: usize,
}

impl Service {
    /// Starts `binary` against `env`'s database and stream on a free port
    /// and waits until it answers `/healthz`.
    pub async fn start(binary: Binary, env: &TestEnv) -> Self {
        Self::start_with(binary, env, &[]).await
    }

    /// As [`Service::start`], with `extra` variables set as well.
    pub async fn start_with(binary: Binary, env: &TestEnv, extra: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut vars = service_env(env);
        vars.extend([
            ("SEXTANT_DATABASE_MAX_CONNECTIONS".into(), "8".into()),
            (binary.addr_var().into(), format!("127.0.0.1:{port}")),
        ]);
        vars.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let mut service = Self {
            binary,
            port,
            env: vars,
            child: None,
            kills: 0,
        };
        service.restart().await;
        service
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The running process's id (for `/proc/<pid>/status`, say).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// (Re)starts the process on the same port and waits for `/healthz`.
    pub async fn restart(&mut self) {
        let child = Command::new(self.binary.path())
            .arg("serve")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the service");
        self.child = Some(child);
        let started = Instant::now();
        let http = reqwest::Client::new();
        loop {
            let health = http
                .get(format!("{}/healthz", self.url()))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("{} exited at start: {status}", self.binary.name());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{} did not come up",
                self.binary.name()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9`: no shutdown hook, no flush, open transactions aborted by
    /// Postgres when the socket closes.
    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("SIGKILL");
            let _ = child.wait().await;
            self.kills += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_of_the_binaries_leaves_out_what_cargo_set_for_the_test() {
        for name in [
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_EXE_sextant-bench",
        ] {
            assert!(set_by_cargo_for_a_crate(name), "{name}");
        }
        for name in [
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_JOBS",
            "CARGO_TERM_COLOR",
            "CARGO",
        ] {
            assert!(!set_by_cargo_for_a_crate(name), "{name} is the user's");
        }
    }
}
