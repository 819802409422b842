#!/usr/bin/env bash
# Runs the fault suite and prints the figures docs/operations.md quotes.
#
#   deploy/local/faults.sh [extra cargo-nextest arguments]
#
# The suite (tests/tests/faults.rs, plus the poison-event test in
# tests/tests/projector.rs) runs load against the real system and breaks it
# on purpose: kill -9 of sextant-command (command API + relay) and of
# sextant-query (query API + every projector), NATS stopped for 30 s under
# load, NATS killed and restarted on its storage, a private Postgres stopped
# with -m immediate under load, a storm of repeated and shuffled webhooks,
# reviewers approving, rejecting and rolling back one client's context at
# once. Each test proves by counting that nothing was lost or duplicated and
# writes its figures to target/faults/<name>.json; this script tabulates
# them. The same tests run in .ci/run with every other test.
#
# Needs the Postgres server binaries (initdb, pg_ctl) and nats-server
# installed, and Postgres/NATS on DATABASE_URL / NATS_URL for the tests that
# do not run private ones. SEXTANT_FAULT_NATS_OUTAGE_SECS shortens the 30 s
# NATS outage for a quick local run.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SEXTANT_ROOT"

say "cargo build --bins (the suite kill -9s the real binaries)"
cargo build --bins -p sextant-command-api -p sextant-query-api
rm -rf target/faults
say "cargo nextest run -p sextant-tests --test faults --test projector${*:+ $*}"
cargo nextest run -p sextant-tests --test faults --test projector --no-fail-fast "$@"

say "fault figures (target/faults/*.json)"
python3 - <<'EOF'
import glob, json
rows = [json.load(open(f)) for f in sorted(glob.glob("target/faults/*.json"))]
print("| fault | injected | events under load | failed attempts (retried) | events lost | duplicates |")
print("|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['fault']} | {r['faults_injected']} | {r['events_under_load']} | "
          f"{r['failed_attempts']} | {r['events_lost']} | {r['duplicates']} |")
print(f"| **total** | {sum(r['faults_injected'] for r in rows)} | "
      f"{sum(r['events_under_load'] for r in rows)} | {sum(r['failed_attempts'] for r in rows)} | "
      f"{sum(r['events_lost'] for r in rows)} | {sum(r['duplicates'] for r in rows)} |")
EOF
