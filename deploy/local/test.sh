#!/usr/bin/env bash
# The project's test command (README, .ci/run):
#
#   ./deploy/local/test.sh [extra cargo-nextest arguments]
#
# 1. cargo nextest run --workspace --no-fail-fast against a real Postgres and
#    NATS: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres)
#    and NATS_URL (default nats://127.0.0.1:4222).
# 2. A smoke test of the bring-up commands, on the "fresh machine" path:
#    SEXTANT_PRIVATE=1 SEXTANT_BUILD_PROFILE=dev deploy/local/up.sh (a private
#    Postgres cluster and a private nats-server, initialised afresh under the
#    smoke state directory, so no database or JetStream stream is shared with
#    anything else); GET /readyz on both services; a round trip with the
#    operator key up.sh generated (POST /v1/clients on the command API -> 201
#    with a position, then GET /v1/clients/<id>?min_position=<position> on the
#    query API -> 200 with the name); deploy/local/down.sh, checking that no
#    process it started is left. It runs with its own state (.sextant/smoke;
#    SEXTANT_SMOKE_STATE_DIR) and ports (127.0.0.1:28080, :28081 and :28082
#    for the console, Postgres 25433, NATS 24223; SEXTANT_SMOKE_COMMAND_ADDR,
#    SEXTANT_SMOKE_QUERY_ADDR, SEXTANT_SMOKE_CONSOLE_ADDR,
#    SEXTANT_SMOKE_PG_PORT, SEXTANT_SMOKE_NATS_PORT), so a system brought up
#    by hand is left alone. The ports lie below Linux's ephemeral range
#    (32768-60999): there, the sockets the tests just closed (TIME_WAIT for
#    60 s) could hold one of them and make a listener fail with "Address
#    already in use". SEXTANT_SKIP_SMOKE=1 skips it.
# 3. On the smoke test's system, before down.sh: deploy/local/demo.sh (the
#    demo data), deploy/local/tour.sh (the README's tour, its answers
#    checked), and up.sh once more, which must say that the database and the
#    stream it joins hold events, and how to start afresh.
#
# SEXTANT_SMOKE_ONLY=1 runs steps 2 and 3 alone (no cargo nextest).
# The service binaries are built once, by the same cargo command here, in
# up.sh and in the tests (tests/src/procs.rs).
# Exits non-zero when any step fails.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SEXTANT_ROOT"

export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}

SMOKE_ONLY=0
case ${SEXTANT_SMOKE_ONLY:-0} in
  1) SMOKE_ONLY=1 ;;
  0 | '') ;;
  *) die "SEXTANT_SMOKE_ONLY=${SEXTANT_SMOKE_ONLY}: want 1 (the smoke test, demo and tour alone) or 0" ;;
esac
if ((SMOKE_ONLY)) && [[ ${SEXTANT_SKIP_SMOKE:-0} == 1 ]]; then
  die "SEXTANT_SMOKE_ONLY=1 and SEXTANT_SKIP_SMOKE=1 leave nothing to run"
fi

command -v cargo >/dev/null 2>&1 || die "required program 'cargo' not found"
((SMOKE_ONLY)) || cargo nextest --version >/dev/null 2>&1 ||
  die "cargo-nextest is not installed (cargo install cargo-nextest --locked)"

# ------------------------------------------------------------ smoke test --

# json_field FILE FIELD: a top-level string or number field of a JSON object.
json_field() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c '
import json, sys
value = json.load(open(sys.argv[1])).get(sys.argv[2])
if isinstance(value, bool) or not isinstance(value, (str, int)):
    sys.exit(1)
print(value)' "$1" "$2" 2>/dev/null
  else
    local value
    value=$(sed -nE 's/.*"'"$2"'"[[:space:]]*:[[:space:]]*("([^"]*)"|(-?[0-9]+)).*/\2\3/p' "$1" | head -n 1)
    [[ -n $value ]] && printf '%s\n' "$value"
  fi
}

# alive PID: is the process there (zombies, which nobody reaped, are gone)?
alive() {
  local stat
  if [[ -r /proc/$1/stat ]]; then
    stat=$(<"/proc/$1/stat") 2>/dev/null || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
  else
    kill -0 "$1" 2>/dev/null
  fi
}

# http METHOD URL OUT [curl args...]: print the status code, body into OUT.
http() {
  local method=$1 url=$2 out=$3
  shift 3
  curl -sS --max-time 30 -X "$method" -o "$out" -w '%{http_code}' "$@" "$url" || true # curl then wrote 000
}

# show_answer LABEL CODE FILE: one line for the log (bodies trimmed).
show_answer() {
  local body
  body=$(head -c 600 "$3" 2>/dev/null | tr -d '\n')
  note "$1 -> $2 $body"
}

# The smoke test proper. Runs in a subshell (it exports and sets traps).
smoke() {
  export SEXTANT_STATE_DIR=${SEXTANT_SMOKE_STATE_DIR:-$SEXTANT_ROOT/.sextant/smoke}
  # Below the ephemeral port range: see the header.
  export SEXTANT_COMMAND_ADDR=${SEXTANT_SMOKE_COMMAND_ADDR:-127.0.0.1:28080}
  export SEXTANT_QUERY_ADDR=${SEXTANT_SMOKE_QUERY_ADDR:-127.0.0.1:28081}
  export SEXTANT_CONSOLE_BIND=${SEXTANT_SMOKE_CONSOLE_ADDR:-127.0.0.1:28082}
  export SEXTANT_PG_PORT=${SEXTANT_SMOKE_PG_PORT:-25433}
  export SEXTANT_NATS_PORT=${SEXTANT_SMOKE_NATS_PORT:-24223}
  export SEXTANT_PRIVATE=1 SEXTANT_BUILD_PROFILE=dev
  # The key up.sh generates into the smoke state, not one from outside.
  unset SEXTANT_OPERATOR_KEY
  local state=$SEXTANT_STATE_DIR run=$SEXTANT_STATE_DIR/run pg_pid=
  local pids=() pid name leftover=() key code client_id position started demo_seconds

  # Start afresh: stop what an interrupted run may have left, then drop its
  # data (never from under a Postgres that still runs there).
  deploy/local/down.sh | sed 's/^/    /'
  if [[ -f $state/pg/postmaster.pid ]]; then
    pg_pid=$(head -n 1 "$state/pg/postmaster.pid")
    if [[ $pg_pid =~ ^[0-9]+$ ]] && alive "$pg_pid"; then
      die "a Postgres (pid $pg_pid) still runs in $(rel "$state/pg"); stop it first"
    fi
  fi
  rm -rf "$state/pg" "$state/nats"

  trap 'deploy/local/down.sh || true' EXIT
  trap 'exit 130' INT TERM
  deploy/local/up.sh

  # Every process up.sh started, to check that down.sh stops them all.
  for name in sextant-command sextant-query nats; do
    pid=$(<"$run/$name.pid") || die "up.sh wrote no $(rel "$run/$name.pid")"
    pids+=("$name:$pid")
  done
  [[ -f $run/postgres.started ]] || die "up.sh did not start the private Postgres"
  pid=$(head -n 1 "$state/pg/postmaster.pid") || die "no $(rel "$state/pg/postmaster.pid")"
  pids+=("postgres:$pid")

  for addr in "$SEXTANT_COMMAND_ADDR" "$SEXTANT_QUERY_ADDR" "$SEXTANT_CONSOLE_BIND"; do
    url="$(http_base "$addr")/readyz"
    printf '    GET %s -> ' "$url"
    curl -fsS --max-time 10 "$url"
    echo
  done

  # A round trip: write through the command API, read it back (read-your-
  # writes) from the query API.
  # shellcheck source=/dev/null # written by up.sh
  source "$run/env"
  [[ -n ${SEXTANT_OPERATOR_KEY_FILE:-} && -s $SEXTANT_OPERATOR_KEY_FILE ]] ||
    die "up.sh generated no operator key (SEXTANT_OPERATOR_KEY_FILE in $(rel "$run/env"))"
  key=$(<"$SEXTANT_OPERATOR_KEY_FILE")
  tmp=$(mktemp -d) # global: the EXIT trap removes it
  trap 'rm -rf "$tmp"; deploy/local/down.sh || true' EXIT
  # The key goes in through a pipe, not on a command line.
  code=$(http POST "$SEXTANT_COMMAND_URL/v1/clients" "$tmp/register.json" \
    -H 'Content-Type: application/json' -H @<(printf 'Authorization: Bearer %s\n' "$key") \
    --data '{"name":"Smoke","industry":"fintech","company_size":"11-50","region":"AU"}')
  show_answer "POST $SEXTANT_COMMAND_URL/v1/clients" "$code" "$tmp/register.json"
  [[ $code == 201 ]] || die "POST /v1/clients answered $code, not 201"
  client_id=$(json_field "$tmp/register.json" client_id) ||
    die "POST /v1/clients answered no client_id"
  position=$(json_field "$tmp/register.json" position) ||
    die "POST /v1/clients answered no position"
  [[ $position =~ ^[0-9]+$ ]] || die "POST /v1/clients answered position '$position', not a number"

  url="$SEXTANT_QUERY_URL/v1/clients/$client_id?min_position=$position"
  code=$(http GET "$url" "$tmp/detail.json" -H @<(printf 'Authorization: Bearer %s\n' "$key"))
  show_answer "GET $url" "$code" "$tmp/detail.json"
  [[ $code == 200 ]] || die "GET /v1/clients/$client_id answered $code, not 200"
  [[ $(json_field "$tmp/detail.json" name) == Smoke ]] ||
    die "GET /v1/clients/$client_id did not answer \"name\":\"Smoke\""
  [[ $(json_field "$tmp/detail.json" client_id) == "$client_id" ]] ||
    die "GET /v1/clients/$client_id answered another client_id"

  # The demo data and the README's tour, on the same system.
  started=$SECONDS
  deploy/local/demo.sh
  demo_seconds=$((SECONDS - started))
  started=$SECONDS
  deploy/local/tour.sh
  note "demo data loaded in ${demo_seconds} s (with its build); the tour ran in $((SECONDS - started)) s"

  # up.sh again, on a system that holds events now: it says so, and how to
  # start afresh.
  deploy/local/up.sh >"$tmp/up-again.log"
  grep -E 'joining a database that holds [0-9]+ events already' "$tmp/up-again.log" |
    sed 's/^/    /' || die "up.sh did not say that the database holds events"
  grep -qE 'joining a JetStream stream that holds [0-9]+ messages already' "$tmp/up-again.log" ||
    die "up.sh did not say that the stream holds messages"
  grep -qF 'SEXTANT_PRIVATE=1 SEXTANT_STATE_DIR=' "$tmp/up-again.log" ||
    die "up.sh did not say how to start afresh"

  # down.sh must stop the services, the private NATS and the private Postgres.
  rm -rf "$tmp"
  trap - EXIT
  deploy/local/down.sh
  for pid in "${pids[@]}"; do
    alive "${pid#*:}" && leftover+=("$pid")
  done
  ((${#leftover[@]} == 0)) || die "still running after down.sh (name:pid): ${leftover[*]}"
  note "no process left (name:pid checked: ${pids[*]})"
}

mkdir -p "$LOG_DIR"
nextest_log=$LOG_DIR/nextest.log

tests_rc=0
if ((SMOKE_ONLY)); then
  say "SEXTANT_SMOKE_ONLY=1: no cargo nextest"
  : >"$nextest_log"
else
  # The fault suite kill -9s the real binaries and the CLI's tests run
  # `sextant`: every binary is built here, before the tests, with the one
  # build up.sh, demo.sh and tests/src/procs.rs run too (lib.sh,
  # build_binaries), whose features are the tests' own: nothing is compiled
  # twice.
  say "cargo build --workspace --bins (the services, console, CLI and demo loader the tests and the smoke test run)"
  build_binaries dev

  say "cargo nextest run --workspace --no-fail-fast${*:+ $*} (DATABASE_URL=$(redact_url "$DATABASE_URL"), NATS_URL=$(redact_url "$NATS_URL"))"
  set +e
  cargo nextest run --workspace --no-fail-fast "$@" 2>&1 | tee "$nextest_log"
  tests_rc=${PIPESTATUS[0]}
  set -e
fi

smoke_rc=0
smoke_result=skipped
if [[ ${SEXTANT_SKIP_SMOKE:-0} == 1 ]]; then
  say "smoke test skipped (SEXTANT_SKIP_SMOKE=1)"
else
  say "smoke test: SEXTANT_PRIVATE=1 up.sh, /readyz, a client round trip, demo.sh, tour.sh, down.sh"
  set +e
  (
    set -euo pipefail
    smoke
  )
  smoke_rc=$?
  set -e
  if ((smoke_rc == 0)); then smoke_result=passed; else smoke_result="FAILED (exit $smoke_rc)"; fi
fi

# The test runner's summary comes last, where CI and people look for it.
echo
say "smoke test, demo and tour: $smoke_result"
if ((SMOKE_ONLY)); then
  say "cargo nextest: skipped (SEXTANT_SMOKE_ONLY=1)"
elif ((tests_rc == 0)); then
  say "cargo nextest: passed"
else
  say "cargo nextest: FAILED (exit $tests_rc)"
fi
summary=$(sed -n '/^[[:space:]]*Summary \[/,$p' "$nextest_log")
if [[ -n $summary ]]; then
  printf '%s\n' "$summary"
fi
if ((tests_rc != 0)); then exit "$tests_rc"; fi
exit "$smoke_rc"
