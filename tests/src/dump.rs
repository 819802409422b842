//! A whole test database as text (`pg_dump --data-only`), for tests that
//! must show something is stored nowhere: a dump sees every table, those
//! added after the test was written included.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::process::Command;

/// `pg_dump`: under `SEXTANT_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<major>/bin` (a dump needs a `pg_dump` at least as
/// new as the server), else on the `PATH`.
fn pg_dump() -> PathBuf {
    if let Ok(dir) = std::env::var("SEXTANT_PG_BIN") {
        return PathBuf::from(dir).join("pg_dump");
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin/pg_dump");
            bin.exists().then_some((major, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .unwrap_or_else(|| PathBuf::from("pg_dump"))
}

/// Every row of every table of the database at `database_url`, as
/// `pg_dump --data-only` writes it.
pub async fn data_dump(database_url: &str) -> String {
    let program = pg_dump();
    let out = Command::new(&program)
        .args(["--data-only", "--no-owner", "--no-privileges", "--dbname"])
        .arg(database_url)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
