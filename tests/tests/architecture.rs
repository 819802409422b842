//! The crate graph the architecture promises, read from `cargo metadata`:
//! the command side never reaches the read side's projections, and the
//! use cases sit between the HTTP services and storage.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Every workspace crate and the workspace crates it declares as
/// dependencies (normal, dev and build alike).
fn workspace_edges() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata's JSON");
    let packages = metadata["packages"].as_array().expect("a package list");
    let names: BTreeSet<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    packages
        .iter()
        .map(|package| {
            let name = package["name"].as_str().expect("a package name").to_owned();
            let deps = package["dependencies"]
                .as_array()
                .expect("a dependency list")
                .iter()
                .filter_map(|d| d["name"].as_str())
                .filter(|d| names.contains(*d))
                .map(str::to_owned)
                .collect();
            (name, deps)
        })
        .collect()
}

/// Every workspace crate `from` reaches through declared dependencies.
fn reachable(edges: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_owned()];
    while let Some(name) = todo.pop() {
        for dep in edges.get(&name).into_iter().flatten() {
            if seen.insert(dep.clone()) {
                todo.push(dep.clone());
            }
        }
    }
    seen
}

#[test]
fn no_command_crate_depends_on_the_projections_directly_or_through_another_crate() {
    let edges = workspace_edges();
    for command_side in [
        "sextant-command-api",
        "sextant-application",
        "sextant-adapters",
        "sextant-domain",
    ] {
        assert!(
            edges.contains_key(command_side),
            "{command_side} is not a workspace crate"
        );
        let reached = reachable(&edges, command_side);
        assert!(
            !reached.contains("sextant-projections"),
            "{command_side} reaches sextant-projections: {reached:?}"
        );
    }
}

#[test]
fn the_http_services_reach_storage_through_the_use_cases() {
    let edges = workspace_edges();
    for service in ["sextant-command-api", "sextant-query-api"] {
        assert!(
            edges[service].contains("sextant-application"),
            "{service} does not depend on sextant-application"
        );
    }
    assert!(
        !reachable(&edges, "sextant-domain").contains("sextant-adapters"),
        "the domain does I/O"
    );
    assert!(
        !reachable(&edges, "sextant-adapters").contains("sextant-application"),
        "adapters depend on the use cases they serve"
    );
}
