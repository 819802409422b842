#!/usr/bin/env bash
# Bring the whole Sextant system up on this machine, without containers.
#
#   deploy/local/up.sh        # idempotent: run it again at any time
#   deploy/local/down.sh      # stops what this started
#   SEXTANT_PRIVATE=1 deploy/local/up.sh   # private Postgres and NATS only
#
# 1. Postgres: $DATABASE_URL when it answers; else the local server at
#    127.0.0.1:5432 (database "sextant", created when missing); else a private
#    cluster under .sextant/pg on port $SEXTANT_PG_PORT (55432).
# 2. NATS: $NATS_URL when it answers; else 127.0.0.1:4222 (when it has
#    JetStream); else a private nats-server -js on port $SEXTANT_NATS_PORT
#    (54222) storing under .sextant/nats.
#    SEXTANT_PRIVATE=1 skips steps 1 and 2's first two choices: DATABASE_URL,
#    NATS_URL and the servers at 127.0.0.1:5432 / :4222 are ignored, and the
#    private cluster and private nats-server under the state directory are
#    always used (started when not running): the "fresh machine" path, which
#    shares no database and no JetStream stream with anything else. (down.sh
#    stops them as usual; use the same SEXTANT_STATE_DIR for both.)
# 3. Builds every binary of the workspace: the services, the console, the
#    CLI (`sextant`) and the demo loader (release; SEXTANT_BUILD_PROFILE=dev
#    for a debug build; SEXTANT_SKIP_BUILD=1 to use what is already built),
#    with the same cargo command as deploy/local/test.sh, demo.sh and the
#    tests (lib.sh, build_binaries), so that one build serves them all.
# 4. Runs `sextant-command migrate`, and says when the database or the
#    JetStream stream already holds events (it is then joined, not fresh)
#    and how to start afresh with a private one.
# 5. Starts both services and the review console (sextant-console, on
#    SEXTANT_CONSOLE_BIND, 127.0.0.1:8082) in the background (pid files in
#    .sextant/run, logs in .sextant/logs), waits until every /readyz answers 200 (SEXTANT_READY_TIMEOUT,
#    60 s), writes .sextant/run/env (sourceable: it exports the URLs and the
#    operator key) and prints where everything is.
#
# Other settings: SEXTANT_COMMAND_ADDR (127.0.0.1:8080), SEXTANT_QUERY_ADDR
# (127.0.0.1:8081), SEXTANT_OPERATOR_KEY (else generated once into
# .sextant/operator_key), SEXTANT_SECRETS_KEY (else generated once into
# .sextant/secrets_key), SEXTANT_STATE_DIR (.sextant), SEXTANT_PG_USER (the OS
# user that owns a private cluster when running as root; default postgres),
# SEXTANT_PG_BIN (directory of initdb/pg_ctl). SEXTANT_LOG, SEXTANT_LOG_FORMAT,
# SEXTANT_STREAM and SEXTANT_SUBJECT_PREFIX are passed through to the services.
# Nothing is installed into the system.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

READY_TIMEOUT=${SEXTANT_READY_TIMEOUT:-60}
PRIVATE_ONLY=0
case ${SEXTANT_PRIVATE:-0} in
  1) PRIVATE_ONLY=1 ;;
  0 | '') ;;
  *) die "SEXTANT_PRIVATE=${SEXTANT_PRIVATE}: want 1 (private Postgres and NATS only) or 0" ;;
esac
COMMAND_ADDR=${SEXTANT_COMMAND_ADDR:-127.0.0.1:8080}
QUERY_ADDR=${SEXTANT_QUERY_ADDR:-127.0.0.1:8081}
CONSOLE_ADDR=${SEXTANT_CONSOLE_BIND:-127.0.0.1:8082}
SERVICES=(sextant-command sextant-query sextant-console)

# Set by the steps below.
DB_URL=
DB_SOURCE=
NATS_IN_USE=
NATS_SOURCE=
BIN_DIR=
KEY_SOURCE=
declare -A ADDR_OF=([sextant-command]=$COMMAND_ADDR [sextant-query]=$QUERY_ADDR [sextant-console]=$CONSOLE_ADDR)
declare -A PID_OF=()
declare -A FRESH=()

# ---------------------------------------------------------------- Postgres --

url_dbname() { # the database of a postgres:// URL (empty when none is given)
  local rest=${1#*://}
  [[ $rest == */* ]] || return 0
  rest=${rest#*/}
  printf '%s\n' "${rest%%\?*}"
}

url_with_db() { # URL DB: the same URL naming another database
  local url=$1 db=$2 base query=
  if [[ $url == *\?* ]]; then
    query="?${url#*\?}"
    url=${url%%\?*}
  fi
  base=${url#*://}
  base=${base%%/*}
  printf '%s://%s/%s%s\n' "${url%%://*}" "$base" "$db" "$query"
}

# ensure_database URL: connect, creating the database when it is missing.
ensure_database() {
  local url=$1 psql createdb db
  psql=$(pg_tool psql) || die "required program 'psql' not found (Postgres client)"
  if "$psql" -X -A -t -q -d "$url" -c 'select 1' >/dev/null 2>&1; then
    return 0
  fi
  db=$(url_dbname "$url")
  [[ -n $db ]] || die "cannot connect to $(redact_url "$url")"
  createdb=$(pg_tool createdb) || die "required program 'createdb' not found (Postgres client)"
  say "creating database \"$db\""
  "$createdb" --maintenance-db="$(url_with_db "$url" postgres)" "$db" 2>&1 | sed 's/^/    /' || true
  "$psql" -X -A -t -q -d "$url" -c 'select 1' >/dev/null ||
    die "cannot connect to $(redact_url "$url") (see the message above)"
}

pick_pg_os_user() { # DATA_DIR
  local owner
  PG_OS_USER=
  [[ $(id -u) -eq 0 ]] || return 0 # initdb runs as ourselves
  owner=$(stat -c %U "$1" 2>/dev/null || true)
  if [[ -s $1/PG_VERSION && -n $owner && $owner != root ]]; then
    PG_OS_USER=$owner # an existing cluster keeps its owner
  elif [[ -n ${SEXTANT_PG_USER:-} ]]; then
    PG_OS_USER=$SEXTANT_PG_USER
  elif id postgres >/dev/null 2>&1; then
    PG_OS_USER=postgres
  elif id nobody >/dev/null 2>&1; then
    PG_OS_USER=nobody
  else
    die "running as root and there is no 'postgres' user to own a private cluster; set SEXTANT_PG_USER"
  fi
  id "$PG_OS_USER" >/dev/null 2>&1 || die "SEXTANT_PG_USER=$PG_OS_USER: no such user"
  if ! command -v runuser >/dev/null 2>&1 && ! command -v su >/dev/null 2>&1; then
    die "required program 'runuser' (or 'su') not found: needed to run initdb as $PG_OS_USER"
  fi
}

# Start (initialising once) the private cluster; sets DB_URL.
start_private_postgres() {
  local data=$STATE_DIR/pg log=$LOG_DIR/postgres.log pg_bin port=$PRIVATE_PG_PORT tool
  local why="no Postgres answers"
  ((PRIVATE_ONLY)) && why="SEXTANT_PRIVATE=1"
  pg_bin=$(pg_server_bin) || die "$why and 'initdb'/'pg_ctl' were not found (PATH, /usr/lib/postgresql/*/bin; or set SEXTANT_PG_BIN, DATABASE_URL)"
  for tool in initdb pg_ctl postgres; do
    [[ -x $pg_bin/$tool ]] || die "required program '$pg_bin/$tool' not found"
  done
  pick_pg_os_user "$data"

  if [[ ! -s $data/PG_VERSION ]]; then
    say "$why: initialising a PRIVATE cluster in $(rel "$data")"
    rm -rf "$data"
    mkdir -p "$data"
    chmod 700 "$data"
    [[ -z $PG_OS_USER ]] || chown "$PG_OS_USER:" "$data"
    as_pg_user test -w "$data" ||
      die "user $PG_OS_USER cannot write $data (a parent directory is closed to it); set SEXTANT_STATE_DIR to a directory it can reach"
    : >"$LOG_DIR/initdb.log"
    if ! as_pg_user "$pg_bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C \
      >"$LOG_DIR/initdb.log" 2>&1; then
      tail -n 20 "$LOG_DIR/initdb.log" >&2 || true
      die "initdb failed (log: $(rel "$LOG_DIR/initdb.log"))"
    fi
    # TCP on loopback only; no Unix socket (no clash with a system server,
    # no socket-path length limit).
    # shellcheck disable=SC2016 # $1 is expanded by the inner bash
    as_pg_user bash -c 'cat >>"$1"' _ "$data/postgresql.conf" <<'EOF'

# --- added by deploy/local/up.sh (private development cluster) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
EOF
  fi

  if as_pg_user "$pg_bin/pg_ctl" status -D "$data" >/dev/null 2>&1; then
    # Already running (an earlier up.sh): use the port it listens on.
    port=$(sed -n 4p "$data/postmaster.pid" 2>/dev/null || true)
    [[ $port =~ ^[0-9]+$ ]] || port=$PRIVATE_PG_PORT
    say "private Postgres already running in $(rel "$data") on port $port"
  else
    tcp_open 127.0.0.1 "$port" &&
      die "port $port is taken by another program; set SEXTANT_PG_PORT to a free port"
    say "starting a PRIVATE Postgres on 127.0.0.1:$port (data $(rel "$data"), log $(rel "$log"))"
    touch "$log"
    [[ -z $PG_OS_USER ]] || chown "$PG_OS_USER:" "$log"
    if ! as_pg_user "$pg_bin/pg_ctl" start -D "$data" -l "$log" -w -t 60 -o "-p $port" >/dev/null; then
      tail -n 20 "$log" >&2 || true
      die "the private Postgres did not start (log: $(rel "$log"))"
    fi
  fi
  # down.sh stops the private cluster only when this marker exists.
  printf 'data=%s\nport=%s\nuser=%s\npg_bin=%s\n' "$data" "$port" "${PG_OS_USER:-}" "$pg_bin" \
    >"$RUN_DIR/postgres.started"
  DB_URL=postgres://postgres@127.0.0.1:$port/sextant
  DB_SOURCE="private cluster in $(rel "$data"), started by up.sh"
}

setup_postgres() {
  local pg_isready
  pg_isready=$(pg_tool pg_isready) || die "required program 'pg_isready' not found (Postgres client; or set SEXTANT_PG_BIN)"
  if ((PRIVATE_ONLY)); then
    [[ -z ${DATABASE_URL:-} ]] || note "SEXTANT_PRIVATE=1: ignoring DATABASE_URL ($(redact_url "$DATABASE_URL"))"
    start_private_postgres
    ensure_database "$DB_URL"
    return 0
  fi
  if [[ -n ${DATABASE_URL:-} ]]; then
    if "$pg_isready" -q -t 3 -d "$DATABASE_URL"; then
      DB_URL=$DATABASE_URL
      DB_SOURCE="DATABASE_URL from the environment"
      ensure_database "$DB_URL"
      return 0
    fi
    warn "DATABASE_URL ($(redact_url "$DATABASE_URL")) does not answer; looking for another Postgres"
  fi
  if "$pg_isready" -q -t 3 -h 127.0.0.1 -p 5432; then
    DB_URL=postgres://postgres@127.0.0.1:5432/sextant
    DB_SOURCE="the Postgres already running at 127.0.0.1:5432"
    ensure_database "$DB_URL"
    return 0
  fi
  start_private_postgres
  ensure_database "$DB_URL"
}

# -------------------------------------------------------------------- NATS --

nats_binary() {
  local c
  for c in "$(command -v nats-server 2>/dev/null || true)" /usr/sbin/nats-server /usr/local/bin/nats-server; do
    if [[ -n $c && -x $c ]]; then
      printf '%s\n' "$c"
      return 0
    fi
  done
  return 1
}

start_private_nats() {
  local pidfile=$RUN_DIR/nats.pid portfile=$RUN_DIR/nats.port log=$LOG_DIR/nats.log
  local store=$STATE_DIR/nats port=$PRIVATE_NATS_PORT pid bin i why="no NATS answers"
  ((PRIVATE_ONLY)) && why="SEXTANT_PRIVATE=1"
  if pid=$(pidfile_pid "$pidfile" nats-server); then
    [[ -s $portfile ]] && port=$(<"$portfile")
    say "private NATS already running (pid $pid) on port $port"
  else
    bin=$(nats_binary) || die "$why and 'nats-server' was not found (PATH, /usr/sbin); or set NATS_URL"
    tcp_open 127.0.0.1 "$port" &&
      die "port $port is taken by another program; set SEXTANT_NATS_PORT to a free port"
    mkdir -p "$store"
    say "$why: starting a PRIVATE nats-server -js on 127.0.0.1:$port (store $(rel "$store"), log $(rel "$log"))"
    nohup "$bin" -js -a 127.0.0.1 -p "$port" -sd "$store" </dev/null >>"$log" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$pidfile"
    printf '%s\n' "$port" >"$portfile"
    for ((i = 0; i < 150; i++)); do
      nats_info 127.0.0.1 "$port" >/dev/null && break
      # Only the child's exit ends the wait early: for its first moments it
      # is still the forked shell, not yet nats-server, and checking its
      # name then gave up on a server that was about to answer.
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if ! nats_info 127.0.0.1 "$port" >/dev/null; then
      tail -n 20 "$log" >&2 || true
      die "the private NATS did not start (log: $(rel "$log"))"
    fi
  fi
  NATS_IN_USE=nats://127.0.0.1:$port
  NATS_SOURCE="private nats-server, started by up.sh"
}

setup_nats() {
  local host port info
  if ((PRIVATE_ONLY)); then
    [[ -z ${NATS_URL:-} ]] || note "SEXTANT_PRIVATE=1: ignoring NATS_URL ($(redact_url "$NATS_URL"))"
    start_private_nats
    return 0
  fi
  if [[ -n ${NATS_URL:-} ]]; then
    if read -r host port < <(nats_host_port "$NATS_URL") && info=$(nats_info "$host" "$port"); then
      [[ $info == *'"jetstream":true'* ]] ||
        warn "the NATS at NATS_URL does not announce JetStream; Sextant needs it (nats-server -js)"
      NATS_IN_USE=$NATS_URL
      NATS_SOURCE="NATS_URL from the environment"
      return 0
    fi
    warn "NATS_URL ($(redact_url "$NATS_URL")) does not answer; looking for another NATS"
  fi
  if info=$(nats_info 127.0.0.1 4222); then
    if [[ $info == *'"jetstream":true'* ]]; then
      NATS_IN_USE=nats://127.0.0.1:4222
      NATS_SOURCE="the NATS already running at 127.0.0.1:4222"
      return 0
    fi
    warn "the NATS at 127.0.0.1:4222 has no JetStream; starting a private one instead"
  fi
  start_private_nats
}

# ------------------------------------------------------------------- build --

build() {
  local profile=${SEXTANT_BUILD_PROFILE:-release} sub bin
  read -r sub _ < <(profile_args "$profile")
  if [[ ${SEXTANT_SKIP_BUILD:-0} == 1 ]]; then
    say "SEXTANT_SKIP_BUILD=1: using the binaries already built ($profile)"
  else
    command -v cargo >/dev/null 2>&1 || die "required program 'cargo' not found (install Rust with rustup, or build elsewhere and set SEXTANT_SKIP_BUILD=1)"
    say "building the services, the console, the CLI and the demo loader ($profile)"
    build_binaries "$profile" || die "the build failed"
  fi
  BIN_DIR=$(target_dir)/${CARGO_BUILD_TARGET:+$CARGO_BUILD_TARGET/}$sub
  for bin in "${SERVICES[@]}"; do
    [[ -x $BIN_DIR/$bin ]] || die "$BIN_DIR/$bin is missing (build it, or unset SEXTANT_SKIP_BUILD)"
  done
  # demo.sh builds its loader with the same profile.
  printf '%s\n' "$profile" >"$RUN_DIR/build_profile"
}

# ------------------------------------------------------------ operator key --

operator_key() {
  local file=$STATE_DIR/operator_key
  if [[ -n ${SEXTANT_OPERATOR_KEY:-} ]]; then
    KEY_SOURCE="SEXTANT_OPERATOR_KEY from the environment"
    return 0
  fi
  if [[ ! -s $file ]]; then
    (
      umask 077
      head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n' >"$file.tmp"
      mv "$file.tmp" "$file"
    )
    say "generated an operator key into $(rel "$file")"
  fi
  chmod 600 "$file"
  SEXTANT_OPERATOR_KEY=$(<"$file")
  export SEXTANT_OPERATOR_KEY
  KEY_SOURCE="$(rel "$file") (mode 600)"
}

# ------------------------------------------------------------ secrets key --

# The key that seals webhook secrets at rest: SEXTANT_SECRETS_KEY from the
# environment, else one generated once into the state directory. Losing it
# means setting every webhook secret again.
secrets_key() {
  local file=$STATE_DIR/secrets_key
  [[ -n ${SEXTANT_SECRETS_KEY:-} ]] && return 0
  if [[ ! -s $file ]]; then
    (
      umask 077
      head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n' >"$file.tmp"
      mv "$file.tmp" "$file"
    )
    say "generated a secrets key (it seals webhook secrets) into $(rel "$file")"
  fi
  chmod 600 "$file"
  SEXTANT_SECRETS_KEY=$(<"$file")
  export SEXTANT_SECRETS_KEY
}

# ------------------------------------------------- what is there already --

# nats_stream_messages HOST PORT STREAM: how many messages the JetStream
# stream holds; fails when it does not exist or the server cannot be asked
# (a NATS that wants credentials, say). Speaks the NATS protocol itself, so
# no NATS client program is needed.
nats_stream_messages() {
  local reply count
  # shellcheck disable=SC2016 # expanded by the inner bash
  reply=$(timeout 5 bash -c '
    exec 3<>"/dev/tcp/$1/$2" || exit 1
    IFS= read -r -t 2 line <&3 && [[ $line == INFO* ]] || exit 1
    printf "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB _INBOX.sextant_up 1\r\nPUB \$JS.API.STREAM.INFO.%s _INBOX.sextant_up 0\r\n\r\n" "$3" >&3
    while IFS= read -r -t 3 line <&3; do
      case $line in
        MSG*) IFS= read -r -t 3 line <&3 && printf "%s\n" "$line"; exit 0 ;;
        PING*) printf "PONG\r\n" >&3 ;;
        -ERR*) exit 1 ;;
      esac
    done
    exit 1' _ "$1" "$2" "$3" 2>/dev/null) || return 1
  [[ $reply != *'"error"'* ]] || return 1
  count=$(printf '%s\n' "$reply" | grep -o '"messages":[0-9]*' | head -n 1 | cut -d: -f2)
  [[ -n $count ]] || return 1
  printf '%s\n' "$count"
}

# Say when the database or the stream already holds events: this run then
# joins a system (someone's, or an earlier run's), which shows in every
# answer (positions, lists, platform patterns), and how to start afresh.
report_existing_events() {
  local psql events=0 messages=0 host port stream=${SEXTANT_STREAM:-SEXTANT_EVENTS} fresh down
  psql=$(pg_tool psql) || return 0
  events=$("$psql" -X -A -t -q -d "$DB_URL" -c 'SELECT count(*) FROM events' 2>/dev/null) || events=0
  [[ $events =~ ^[0-9]+$ ]] || events=0
  if read -r host port < <(nats_host_port "$NATS_IN_USE"); then
    messages=$(nats_stream_messages "$host" "$port" "$stream") || messages=0
  fi
  ((events > 0 || messages > 0)) || return 0
  ((events > 0)) &&
    say "joining a database that holds $events events already: $(redact_url "$DB_URL") ($DB_SOURCE)"
  ((messages > 0)) &&
    say "joining a JetStream stream that holds $messages messages already: $stream on $(redact_url "$NATS_IN_USE") ($NATS_SOURCE)"
  # A state directory of its own, inside .sextant (which git ignores).
  fresh=.sextant/fresh
  [[ $STATE_DIR != "$SEXTANT_ROOT/$fresh" ]] || fresh=.sextant/fresh-$(date +%s)
  down=deploy/local/down.sh
  [[ $STATE_DIR == "$SEXTANT_ROOT/.sextant" ]] || down="SEXTANT_STATE_DIR=$(rel "$STATE_DIR") $down"
  note "to start afresh instead, with a private Postgres and NATS of its own under a new state directory:"
  note "  $down && SEXTANT_PRIVATE=1 SEXTANT_STATE_DIR=$fresh deploy/local/up.sh"
}

# ---------------------------------------------------------------- services --

# What the services were started with, to notice a change on a later run.
settings_fingerprint() {
  printf '%s\n' "$DB_URL" "$NATS_IN_USE" "$BIN_DIR" "$COMMAND_ADDR" "$QUERY_ADDR" "$CONSOLE_ADDR" \
    "${SEXTANT_STREAM:-}" "${SEXTANT_SUBJECT_PREFIX:-}" "$SEXTANT_OPERATOR_KEY" | cksum | cut -d' ' -f1
}

start_service() {
  local name=$1 addr=${ADDR_OF[$1]} pidfile=$RUN_DIR/$1.pid log=$LOG_DIR/$1.log pid host port
  if pid=$(pidfile_pid "$pidfile" "$name"); then
    say "$name already running (pid $pid)"
    PID_OF[$name]=$pid
    return 0
  fi
  read -r host port < <(host_port_of "$addr") || die "cannot read the address '$addr' of $name (want host:port)"
  tcp_open "$host" "$port" &&
    die "$addr is taken by a program that up.sh did not start; stop it or set ${2}"
  say "starting $name on $addr (log $(rel "$log"))"
  printf '\n=== %s: %s serve (up.sh) ===\n' "$(date -u +%FT%TZ)" "$name" >>"$log"
  nohup "$BIN_DIR/$name" serve </dev/null >>"$log" 2>&1 &
  pid=$!
  printf '%s\n' "$pid" >"$pidfile"
  PID_OF[$name]=$pid
  FRESH[$name]=1
}

ready() { # ready NAME: does /readyz answer 200?
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$(http_base "${ADDR_OF[$1]}")/readyz" 2>/dev/null) || true
  [[ $code == 200 ]]
}

show_logs() {
  local name
  for name in "${SERVICES[@]}"; do
    printf '\n--- last lines of %s ---\n' "$(rel "$LOG_DIR/$name.log")" >&2
    tail -n 40 "$LOG_DIR/$name.log" >&2 2>/dev/null || true
  done
}

wait_ready() {
  local deadline=$((SECONDS + READY_TIMEOUT)) name pending
  say "waiting for /readyz (at most ${READY_TIMEOUT}s)"
  while :; do
    pending=()
    for name in "${SERVICES[@]}"; do
      ready "$name" && continue
      # Alive is enough: a service just started may not have exec'd yet, and
      # until it has, its name is still the shell's.
      if ! kill -0 "${PID_OF[$name]:-0}" 2>/dev/null; then
        show_logs
        die "$name exited during start-up (see its log above; deploy/local/down.sh cleans up)"
      fi
      pending+=("$name")
    done
    ((${#pending[@]} == 0)) && return 0
    if ((SECONDS >= deadline)); then
      show_logs
      die "not ready after ${READY_TIMEOUT}s: ${pending[*]} (still running; deploy/local/down.sh stops them)"
    fi
    sleep 0.5
  done
}

# A sourceable summary for people, tools and tests: `source .sextant/run/env`
# exports what the README's examples use. The operator key itself is not
# copied into it: sourcing reads the key file (or keeps the key the
# environment gave up.sh).
write_env_file() {
  local key_file=
  [[ $KEY_SOURCE == SEXTANT_OPERATOR_KEY* ]] || key_file=$STATE_DIR/operator_key
  {
    printf '# written by deploy/local/up.sh; source it to reach the running system\n'
    printf 'export SEXTANT_COMMAND_URL=%q\n' "$(http_base "$COMMAND_ADDR")"
    printf 'export SEXTANT_QUERY_URL=%q\n' "$(http_base "$QUERY_ADDR")"
    printf 'export DATABASE_URL=%q\n' "$DB_URL"
    printf 'export NATS_URL=%q\n' "$NATS_IN_USE"
    printf 'export SEXTANT_OPERATOR_KEY_FILE=%q\n' "$key_file"
    if [[ -n $key_file ]]; then
      # shellcheck disable=SC2016 # expanded when the file is sourced
      printf 'export SEXTANT_OPERATOR_KEY="$(cat %q)"\n' "$key_file"
    else
      printf '# the operator key is the SEXTANT_OPERATOR_KEY up.sh was started with\n'
      # shellcheck disable=SC2016 # expanded when the file is sourced
      printf 'export SEXTANT_OPERATOR_KEY="${SEXTANT_OPERATOR_KEY:-}"\n'
    fi
  } >"$RUN_DIR/env"
  chmod 600 "$RUN_DIR/env"
}

# -------------------------------------------------------------------- main --

main() {
  command -v curl >/dev/null 2>&1 || die "required program 'curl' not found"
  command -v timeout >/dev/null 2>&1 || die "required program 'timeout' (coreutils) not found"
  mkdir -p "$RUN_DIR" "$LOG_DIR"

  setup_postgres
  setup_nats
  build
  operator_key
  secrets_key

  export DATABASE_URL=$DB_URL NATS_URL=$NATS_IN_USE
  export SEXTANT_COMMAND_ADDR=$COMMAND_ADDR SEXTANT_QUERY_ADDR=$QUERY_ADDR
  # Their output goes to files: no colour codes (tracing-subscriber honours it).
  export NO_COLOR=${NO_COLOR:-1}

  say "applying migrations (sextant-command migrate)"
  printf '\n=== %s: sextant-command migrate (up.sh) ===\n' "$(date -u +%FT%TZ)" >>"$LOG_DIR/migrate.log"
  if ! "$BIN_DIR/sextant-command" migrate </dev/null >>"$LOG_DIR/migrate.log" 2>&1; then
    tail -n 40 "$LOG_DIR/migrate.log" >&2 || true
    die "migrations failed (log: $(rel "$LOG_DIR/migrate.log"))"
  fi
  report_existing_events

  local fingerprint old_fingerprint=
  fingerprint=$(settings_fingerprint)
  [[ -f $RUN_DIR/settings ]] && old_fingerprint=$(<"$RUN_DIR/settings")
  start_service sextant-command SEXTANT_COMMAND_ADDR
  start_service sextant-query SEXTANT_QUERY_ADDR
  # The console reaches the system through the two APIs only.
  SEXTANT_COMMAND_URL=$(http_base "$COMMAND_ADDR")
  SEXTANT_QUERY_URL=$(http_base "$QUERY_ADDR")
  export SEXTANT_CONSOLE_BIND=$CONSOLE_ADDR SEXTANT_COMMAND_URL SEXTANT_QUERY_URL
  start_service sextant-console SEXTANT_CONSOLE_BIND
  if [[ -z ${FRESH[sextant-command]:-} && -z ${FRESH[sextant-query]:-} ]]; then
    [[ -n $old_fingerprint && $old_fingerprint != "$fingerprint" ]] &&
      warn "the running services were started with other settings (database, NATS, build or addresses); run deploy/local/down.sh and up.sh again to apply these"
  else
    printf '%s\n' "$fingerprint" >"$RUN_DIR/settings"
  fi
  wait_ready
  write_env_file

  local down=deploy/local/down.sh
  [[ $STATE_DIR == "$SEXTANT_ROOT/.sextant" ]] || down="SEXTANT_STATE_DIR=$STATE_DIR $down"
  cat <<EOF

Sextant is up.
  command API   $(http_base "$COMMAND_ADDR")   (pid ${PID_OF[sextant-command]}, log $(rel "$LOG_DIR/sextant-command.log"))
  query API     $(http_base "$QUERY_ADDR")   (pid ${PID_OF[sextant-query]}, log $(rel "$LOG_DIR/sextant-query.log"))
  console       $(http_base "$CONSOLE_ADDR")   (pid ${PID_OF[sextant-console]}, log $(rel "$LOG_DIR/sextant-console.log"); sign in with a key)
  database      $(redact_url "$DB_URL")
                ($DB_SOURCE)
  NATS          $(redact_url "$NATS_IN_USE")
                ($NATS_SOURCE)
  operator key  $KEY_SOURCE
EOF
  cat <<EOF
  environment   source $(rel "$RUN_DIR/env")   (exports the URLs and SEXTANT_OPERATOR_KEY)
  demo data     $([[ $STATE_DIR == "$SEXTANT_ROOT/.sextant" ]] || printf 'SEXTANT_STATE_DIR=%s ' "$STATE_DIR")deploy/local/demo.sh
  stop with     $down
EOF
}

# Sourcing the script (for tests) defines the functions without running.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
