# shellcheck shell=bash disable=SC2034,SC2016
# (SC2034: the variables are used by the scripts that source this file;
#  SC2016: the single-quoted snippets are run by an inner bash.)
# Helpers shared by the scripts of deploy/local (up, down, test, demo, tour).
# Sourced, never run.
#
# State lives under $SEXTANT_STATE_DIR (default: <repo>/.sextant):
#   run/   pid files, the "we started it" markers, env (a sourceable summary)
#   logs/  one log per process
#   pg/    the private Postgres cluster (only when one was needed, or with
#          SEXTANT_PRIVATE=1)
#   nats/  the private NATS JetStream store (likewise)

SEXTANT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE_DIR=${SEXTANT_STATE_DIR:-$SEXTANT_ROOT/.sextant}
case $STATE_DIR in
  /*) ;;
  *) STATE_DIR=$PWD/$STATE_DIR ;;
esac
RUN_DIR=$STATE_DIR/run
LOG_DIR=$STATE_DIR/logs

# Ports of the private Postgres / NATS that up.sh starts when none answers.
PRIVATE_PG_PORT=${SEXTANT_PG_PORT:-55432}
PRIVATE_NATS_PORT=${SEXTANT_NATS_PORT:-54222}

say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# Path relative to the repository root when it lies inside it (for messages).
rel() {
  case $1 in
    "$SEXTANT_ROOT"/*) printf '%s\n' "${1#"$SEXTANT_ROOT"/}" ;;
    *) printf '%s\n' "$1" ;;
  esac
}

# Hide the password of a URL (scheme://user:password@host/...).
redact_url() {
  printf '%s\n' "$1" | sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#'
}

# pidfile_pid FILE NAME: print the pid recorded in FILE when that process is
# alive and its command line mentions NAME (guards against reused pids and
# zombies, whose command line is empty). Fails otherwise.
pidfile_pid() {
  local file=$1 name=$2 pid cmdline
  [[ -f $file ]] || return 1
  pid=$(<"$file")
  pid=${pid//[!0-9]/}
  [[ -n $pid ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r /proc/$pid/cmdline ]]; then
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmdline == *"$name"* ]] || return 1
  fi
  printf '%s\n' "$pid"
}

# stop_pidfile FILE NAME LABEL: TERM the process, wait, KILL if it lingers,
# remove the pid file. Quiet success when nothing runs.
stop_pidfile() {
  local file=$1 name=$2 label=$3 pid waited=0 limit=${SEXTANT_STOP_TIMEOUT:-20}
  if ! pid=$(pidfile_pid "$file" "$name"); then
    [[ -f $file ]] && rm -f "$file"
    note "$label: not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && ((waited < limit * 10)); do
    # A child of this shell that exited is a zombie until reaped: done.
    pidfile_pid "$file" "$name" >/dev/null || break
    sleep 0.1
    waited=$((waited + 1))
  done
  if pidfile_pid "$file" "$name" >/dev/null; then
    warn "$label (pid $pid) did not stop within ${limit}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
  note "$label: stopped (pid $pid)"
}

# host_port_of ADDR: split "host:port", "[v6]:port" or ":port" into
# "host port", turning wildcard hosts into loopback so that we can connect.
host_port_of() {
  local addr=$1 host port
  if [[ $addr =~ ^\[([^]]*)\]:([0-9]+)$ ]]; then
    host=${BASH_REMATCH[1]} port=${BASH_REMATCH[2]}
  elif [[ $addr =~ ^([^:]*):([0-9]+)$ ]]; then
    host=${BASH_REMATCH[1]} port=${BASH_REMATCH[2]}
  else
    return 1
  fi
  case $host in
    '' | 0.0.0.0) host=127.0.0.1 ;;
    :: | '::0') host=::1 ;;
  esac
  printf '%s %s\n' "$host" "$port"
}

# http_base ADDR: an http:// base URL that reaches a service bound to ADDR.
http_base() {
  local host port
  read -r host port < <(host_port_of "$1") || return 1
  [[ $host == *:* ]] && host="[$host]"
  printf 'http://%s:%s\n' "$host" "$port"
}

# tcp_open HOST PORT: does anything accept TCP connections there?
tcp_open() {
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# nats_info HOST PORT: print the INFO line a NATS server greets with.
nats_info() {
  local line
  line=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" && IFS= read -r -t 2 line <&3 && printf "%s\n" "$line"' _ "$1" "$2" 2>/dev/null) || return 1
  [[ $line == INFO* ]] || return 1
  printf '%s\n' "$line"
}

# nats_host_port URL: host and port of the first server of a NATS URL list
# ("nats://user:pass@host:4222,nats://other:4222", "host:4222", "host").
nats_host_port() {
  local url=${1%%,*} host port
  url=${url#*://}
  url=${url##*@}
  url=${url%%/*}
  if [[ $url =~ ^\[([^]]*)\](:([0-9]+))?$ ]]; then
    host=${BASH_REMATCH[1]} port=${BASH_REMATCH[3]}
  elif [[ $url =~ ^([^:]*)(:([0-9]+))?$ ]]; then
    host=${BASH_REMATCH[1]} port=${BASH_REMATCH[3]}
  else
    return 1
  fi
  [[ -n $host ]] || host=127.0.0.1
  printf '%s %s\n' "$host" "${port:-4222}"
}

# Find a Postgres tool: $SEXTANT_PG_BIN, then PATH, then the newest
# /usr/lib/postgresql/*/bin. Server tools (initdb, pg_ctl) are taken from one
# directory so that their versions agree.
pg_server_bin() {
  local d found
  if [[ -n ${SEXTANT_PG_BIN:-} ]]; then
    printf '%s\n' "$SEXTANT_PG_BIN"
    return 0
  fi
  if found=$(command -v initdb 2>/dev/null); then
    d=$(dirname "$(readlink -f "$found")")
    if [[ -x $d/pg_ctl ]]; then
      printf '%s\n' "$d"
      return 0
    fi
  fi
  d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort -V | tail -n 1)
  if [[ -n $d && -x $d/pg_ctl ]]; then
    printf '%s\n' "$d"
    return 0
  fi
  return 1
}

pg_tool() {
  local name=$1 d
  if [[ -n ${SEXTANT_PG_BIN:-} && -x $SEXTANT_PG_BIN/$name ]]; then
    printf '%s\n' "$SEXTANT_PG_BIN/$name"
  elif command -v "$name" >/dev/null 2>&1; then
    command -v "$name"
  elif d=$(pg_server_bin) && [[ -x $d/$name ]]; then
    printf '%s\n' "$d/$name"
  else
    return 1
  fi
}

# Run a command as the OS user that owns the private cluster ($PG_OS_USER,
# empty = the current user), from / so that an unreadable cwd is no problem.
as_pg_user() {
  if [[ -z ${PG_OS_USER:-} || $PG_OS_USER == "$(id -un)" ]]; then
    "$@"
  elif command -v runuser >/dev/null 2>&1; then
    (cd / && runuser -u "$PG_OS_USER" -- "$@")
  else
    (cd / && su -s /bin/bash "$PG_OS_USER" -c "$(printf '%q ' "$@")")
  fi
}

# The directory cargo builds into.
target_dir() {
  local dir=
  if command -v cargo >/dev/null 2>&1; then
    dir=$(cd "$SEXTANT_ROOT" && cargo metadata --format-version 1 --no-deps --offline 2>/dev/null |
      grep -o '"target_directory":"[^"]*"' | head -n 1 | cut -d'"' -f4) || dir=
  fi
  if [[ -z $dir ]]; then
    dir=${CARGO_TARGET_DIR:-target}
    [[ $dir == /* ]] || dir=$SEXTANT_ROOT/$dir
  fi
  printf '%s\n' "$dir"
}

# build_binaries PROFILE: every binary of the workspace (the services, the
# console, the CLI, the demo loader and the benchmark), in one cargo build.
# test.sh, up.sh, demo.sh and the tests (tests/src/procs.rs, BUILD_ARGS) all
# run this very build: cargo unifies features over the packages a build
# names, so the workspace's selection is the one the tests' own build
# (cargo nextest run --workspace) has, and no dependency is compiled a
# second time for another feature set.
build_binaries() {
  local sub flags args=()
  read -r sub flags < <(profile_args "$1")
  read -r -a args <<<"$flags"
  (cd "$SEXTANT_ROOT" && cargo build "${args[@]}" --workspace --bins)
}

# profile_args PROFILE: the output directory of a cargo profile, then the
# cargo flags that select it ("release --release", "debug").
profile_args() {
  case $1 in
    release) printf 'release --release\n' ;;
    dev | debug) printf 'debug\n' ;;
    *) printf '%s --profile %s\n' "$1" "$1" ;;
  esac
}
