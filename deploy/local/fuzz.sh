#!/usr/bin/env bash
# Fuzzes both HTTP APIs against their OpenAPI documents with schemathesis
# (from PyPI; installed with pip when missing) and fails on any 5xx.
#
#   deploy/local/fuzz.sh [max examples per operation, default 25]
#
# Runs its own Sextant (up.sh with SEXTANT_PRIVATE=1: a private Postgres and
# NATS under .sextant/fuzz, ports 29080/29081) and stops it afterwards.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SEXTANT_ROOT"

examples=${1:-25}
export SEXTANT_STATE_DIR=${SEXTANT_FUZZ_STATE_DIR:-$SEXTANT_ROOT/.sextant/fuzz}
export SEXTANT_COMMAND_ADDR=${SEXTANT_FUZZ_COMMAND_ADDR:-127.0.0.1:29080}
export SEXTANT_QUERY_ADDR=${SEXTANT_FUZZ_QUERY_ADDR:-127.0.0.1:29081}
export SEXTANT_PG_PORT=${SEXTANT_FUZZ_PG_PORT:-25434}
export SEXTANT_NATS_PORT=${SEXTANT_FUZZ_NATS_PORT:-24224}
export SEXTANT_PRIVATE=1
export SEXTANT_BUILD_PROFILE=${SEXTANT_BUILD_PROFILE:-dev}

if ! command -v schemathesis >/dev/null 2>&1; then
  say "installing schemathesis from PyPI (pip install --user schemathesis)"
  python3 -m pip install --quiet --user schemathesis
  PATH=$HOME/.local/bin:$PATH
fi

trap 'deploy/local/down.sh >/dev/null 2>&1 || true' EXIT
deploy/local/up.sh
key=$(cat "$SEXTANT_STATE_DIR/operator_key")
status=0
for addr in "$SEXTANT_COMMAND_ADDR" "$SEXTANT_QUERY_ADDR"; do
  say "schemathesis: $(http_base "$addr")/openapi.json, $examples examples per operation, no 5xx allowed"
  if ! schemathesis run "$(http_base "$addr")/openapi.json" \
    -H "Authorization: Bearer $key" \
    --checks not_a_server_error --max-examples "$examples" --workers 1; then
    status=1
  fi
done
exit "$status"
