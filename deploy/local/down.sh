#!/usr/bin/env bash
# Stop what deploy/local/up.sh started: both services, and the private
# Postgres / NATS only when up.sh started them (markers in .sextant/run).
# System services are never touched. Idempotent.
#
#   deploy/local/down.sh                  # everything up.sh started
#   deploy/local/down.sh --services-only  # keep a private Postgres/NATS running
#
# Data stays in .sextant (delete the folder to start afresh).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

services_only=0
for arg in "$@"; do
  case $arg in
    --services-only) services_only=1 ;;
    -h | --help)
      sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument: $arg (try --help)" ;;
  esac
done

stop_private_postgres() {
  local marker=$RUN_DIR/postgres.started data="" pg_bin="" owner
  if [[ ! -f $marker ]]; then
    note "private Postgres: not started by up.sh"
    return 0
  fi
  data=$(sed -n 's/^data=//p' "$marker")
  pg_bin=$(sed -n 's/^pg_bin=//p' "$marker")
  [[ -n $pg_bin && -x $pg_bin/pg_ctl ]] || pg_bin=$(pg_server_bin) ||
    die "cannot find pg_ctl to stop the private Postgres in $data (set SEXTANT_PG_BIN)"
  if [[ -z $data || ! -f $data/PG_VERSION ]]; then
    rm -f "$marker"
    note "private Postgres: no cluster at '$data'"
    return 0
  fi
  PG_OS_USER=
  owner=$(stat -c %U "$data")
  if [[ $owner != "$(id -un)" ]]; then
    [[ $(id -u) -eq 0 ]] || die "the private cluster in $data belongs to $owner; run down.sh as $owner or root"
    PG_OS_USER=$owner
  fi
  if as_pg_user "$pg_bin/pg_ctl" status -D "$data" >/dev/null 2>&1; then
    as_pg_user "$pg_bin/pg_ctl" stop -D "$data" -m fast -w -t 60 >/dev/null ||
      die "pg_ctl stop failed for $data (log: $(rel "$LOG_DIR/postgres.log"))"
    note "private Postgres: stopped ($(rel "$data"))"
  else
    note "private Postgres: not running"
  fi
  rm -f "$marker"
}

say "stopping Sextant (state in $(rel "$STATE_DIR"))"
if [[ ! -d $RUN_DIR ]]; then
  note "nothing to stop"
  exit 0
fi
# The query side first: it consumes what the command side publishes.
stop_pidfile "$RUN_DIR/sextant-console.pid" sextant-console "console"
stop_pidfile "$RUN_DIR/sextant-query.pid" sextant-query "query API"
stop_pidfile "$RUN_DIR/sextant-command.pid" sextant-command "command API"
rm -f "$RUN_DIR/settings" "$RUN_DIR/env"

if ((services_only)); then
  note "keeping any private Postgres/NATS running (--services-only)"
  exit 0
fi
if [[ -f $RUN_DIR/nats.pid ]]; then
  stop_pidfile "$RUN_DIR/nats.pid" nats-server "private NATS"
else
  note "private NATS: not started by up.sh"
fi
rm -f "$RUN_DIR/nats.port"
stop_private_postgres
