#!/usr/bin/env bash
# Local PostgreSQL server for demos, tests and CI, using the distribution's binaries
# (Debian/Ubuntu: apt-get install -y postgresql). No Docker.
#
#   bash deploy/local/postgres.sh start    # initdb once, start, ensure role+db "sandan" (idempotent)
#   bash deploy/local/postgres.sh stop     # fast shutdown of the server this script started
#   bash deploy/local/postgres.sh status   # running/external/stopped; exit 0 if usable, 1 if not
#   bash deploy/local/postgres.sh url      # postgresql://sandan:sandan@127.0.0.1:5432/sandan
#
# SECURITY: local demo / CI only. The server listens on 127.0.0.1 only, has no Unix socket, and
# uses `trust` authentication for loopback TCP: anyone who can open a connection on this machine
# can log in as any role (the password in the URL is set but not checked).
#
# Environment (all optional):
#   PGPORT (5432)                port on 127.0.0.1
#   PG_STATE_DIR (<repo>/.local/postgres)  holds data/ (PGDATA) and postgres.log. When running as
#                                root the server runs as the `postgres` OS user; if that user cannot
#                                reach the default dir, /var/lib/sandan-postgres is used instead.
#   PG_BINDIR                    PostgreSQL bin dir (default: pg_config --bindir, else the newest
#                                /usr/lib/postgresql/*/bin)
#   PG_START_TIMEOUT (60)        seconds to wait for the server to accept connections
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/../.." && pwd)"

HOST=127.0.0.1
PORT="${PGPORT:-5432}"
DB_USER=sandan
DB_PASSWORD=sandan
DB_NAME=sandan
START_TIMEOUT="${PG_START_TIMEOUT:-60}"
FALLBACK_STATE=/var/lib/sandan-postgres
OS_USER=postgres   # only used when running as root

say() { echo "postgres: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

url() { echo "postgresql://$DB_USER:$DB_PASSWORD@$HOST:$PORT/$DB_NAME"; }

find_bindir() {
  local d
  if [[ -n "${PG_BINDIR:-}" ]]; then
    [[ -x "$PG_BINDIR/pg_ctl" ]] || die "PG_BINDIR=$PG_BINDIR has no pg_ctl"
    echo "$PG_BINDIR"
    return
  fi
  if command -v pg_config >/dev/null 2>&1; then
    d="$(pg_config --bindir 2>/dev/null || true)"
    if [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" ]]; then echo "$d"; return; fi
  fi
  # pg_config may come from libpq-dev alone; look for the server packages directly
  d="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n1 || true)"
  if [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" ]]; then echo "$d"; return; fi
  die "PostgreSQL server binaries (initdb, pg_ctl) not found. Install them with:
    apt-get install -y postgresql
  (or set PG_BINDIR to the directory containing pg_ctl)"
}

# Run a server-side command as the account that owns the cluster: postgres refuses to run as root,
# so as root we switch to the `postgres` OS user; as a normal user we run as ourselves.
as_owner() {
  if [[ $EUID -eq 0 ]]; then runuser -u "$OS_USER" -- "$@"; else "$@"; fi
}

ensure_os_user() {
  [[ $EUID -eq 0 ]] || return 0
  id -u "$OS_USER" >/dev/null 2>&1 && return 0
  say "creating system user $OS_USER"
  useradd --system --user-group --home-dir /var/lib/postgresql --no-create-home \
    --shell /usr/sbin/nologin "$OS_USER"
}

# Decide where the cluster lives (sets STATE, DATA, LOG). Deterministic, so stop/status find the
# same place as start.
resolve_state() {
  if [[ -n "${PG_STATE_DIR:-}" ]]; then
    STATE="$PG_STATE_DIR"   # made absolute before the `cd /` below
  else
    STATE="$REPO/.local/postgres"
    if [[ $EUID -eq 0 ]]; then
      mkdir -p "$(dirname "$STATE")"
      # every parent dir must be traversable by the postgres user (not true e.g. under /root)
      if ! id -u "$OS_USER" >/dev/null 2>&1 || ! runuser -u "$OS_USER" -- test -x "$(dirname "$STATE")"; then
        STATE="$FALLBACK_STATE"
      fi
    fi
  fi
  DATA="$STATE/data"
  LOG="$STATE/postgres.log"
}

PSQL_ADMIN=()
psql_admin() { "${PSQL_ADMIN[@]}" "$@"; }

ours_running() {
  [[ -f "$DATA/PG_VERSION" ]] || return 1
  as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

# port our running cluster actually listens on (line 4 of postmaster.pid)
running_port() { as_owner sed -n 4p "$DATA/postmaster.pid" 2>/dev/null || true; }

listening() { "$BIN/pg_isready" -q -h "$HOST" -p "$PORT" -t 2 >/dev/null 2>&1; }

# Create role and database if missing. $1 = how to reach a superuser: "tcp" (user postgres over
# loopback, works with our trust setup) or "socket" (OS user postgres over the Unix socket, i.e.
# peer auth on a distribution-managed server; needs root or passwordless sudo).
ensure_role_db() {
  local how="$1"
  if [[ "$how" == tcp ]]; then
    PSQL_ADMIN=("$BIN/psql" -X -w -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PORT" -U postgres -d postgres)
  elif [[ $EUID -eq 0 ]]; then
    id -u "$OS_USER" >/dev/null 2>&1 || return 1
    PSQL_ADMIN=(runuser -u "$OS_USER" -- "$BIN/psql" -X -w -q -v ON_ERROR_STOP=1 -p "$PORT" -d postgres)
  elif command -v sudo >/dev/null 2>&1 && sudo -n -u "$OS_USER" true 2>/dev/null; then
    PSQL_ADMIN=(sudo -n -u "$OS_USER" "$BIN/psql" -X -w -q -v ON_ERROR_STOP=1 -p "$PORT" -d postgres)
  else
    return 1
  fi
  psql_admin -tAc 'select 1' >/dev/null 2>&1 || return 1
  psql_admin >/dev/null <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER') THEN
    CREATE ROLE $DB_USER LOGIN SUPERUSER PASSWORD '$DB_PASSWORD';
  END IF;
END
\$\$;
SELECT 'CREATE DATABASE $DB_NAME OWNER $DB_USER'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DB_NAME')\gexec
SQL
}

url_works() {
  "$BIN/psql" -X -w -q -d "$(url)" -tAc 'select 1' >/dev/null 2>&1
}

init_cluster() {
  mkdir -p "$STATE"
  if [[ $EUID -eq 0 ]]; then
    # hand the state dir to the postgres user (only re-chown when ownership is off)
    if [[ "$(stat -c %U "$STATE")" != "$OS_USER" ]]; then chown -R "$OS_USER:" "$STATE"; fi
  fi
  if [[ -f "$DATA/PG_VERSION" ]]; then return 0; fi
  say "initdb in $DATA"
  as_owner mkdir -p "$DATA"
  chmod 700 "$DATA"
  as_owner "$BIN/initdb" -D "$DATA" -U postgres -E UTF8 --locale=C \
    --auth-host=trust --auth-local=trust >"$STATE/initdb.log" 2>&1 \
    || { cat "$STATE/initdb.log" >&2; die "initdb failed"; }
  # Loopback TCP only, trust auth: local demo / CI only (see header).
  as_owner tee "$DATA/pg_hba.conf" >/dev/null <<'EOF'
# Generated by deploy/local/postgres.sh -- LOCAL DEMO / CI ONLY: trust on loopback, nothing else.
# TYPE  DATABASE  USER  ADDRESS        METHOD
host    all       all   127.0.0.1/32   trust
host    all       all   ::1/128        trust
EOF
  echo "include_if_exists = 'sandan.conf'" | as_owner tee -a "$DATA/postgresql.conf" >/dev/null
}

write_conf() {
  # rewritten on every start so PGPORT changes take effect
  as_owner tee "$DATA/sandan.conf" >/dev/null <<EOF
# Generated by deploy/local/postgres.sh on every start.
listen_addresses = '$HOST'
port = $PORT
unix_socket_directories = ''
EOF
}

cmd_start() {
  BIN="$(find_bindir)"
  ensure_os_user
  resolve_state
  if ours_running; then
    local p
    p="$(running_port)"
    if [[ -n "$p" && "$p" != "$PORT" ]]; then
      die "the cluster in $DATA is already running on port $p, not $PORT; run '$0 stop' first"
    fi
    say "already running (data: $DATA)"
    ensure_role_db tcp || die "server is running but not reachable on $HOST:$PORT (see $LOG)"
    url_works || die "cannot connect with $(url)"
    say "ready: $(url)"
    return 0
  fi
  if listening; then
    say "a PostgreSQL server not started by this script is already listening on $HOST:$PORT; using it"
    if ensure_role_db tcp 2>/dev/null || ensure_role_db socket 2>/dev/null; then
      say "ensured role '$DB_USER' and database '$DB_NAME'"
    else
      say "could not get superuser access to create role '$DB_USER' / database '$DB_NAME'"
    fi
    url_works || die "cannot connect with $(url); create the role/database yourself or set PGPORT to a free port"
    say "ready: $(url)"
    return 0
  fi
  init_cluster
  write_conf
  say "starting PostgreSQL ($("$BIN/postgres" --version | awk '{print $3}')) on $HOST:$PORT (data: $DATA, log: $LOG)"
  if ! as_owner "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t "$START_TIMEOUT" start >/dev/null; then
    say "---- tail of $LOG ----"
    tail -n 30 "$LOG" >&2 || true
    die "pg_ctl start failed"
  fi
  ensure_role_db tcp || die "server started but not reachable as superuser on $HOST:$PORT (see $LOG)"
  url_works || die "cannot connect with $(url)"
  say "ready: $(url)"
}

cmd_stop() {
  BIN="$(find_bindir)"
  resolve_state
  if ! ours_running; then
    say "not running (data: $DATA)"
    return 0
  fi
  say "stopping (data: $DATA)"
  as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null
  say "stopped"
}

cmd_status() {
  BIN="$(find_bindir)"
  resolve_state
  if ours_running; then
    echo "running ($HOST:$(running_port), data: $DATA)"
    return 0
  fi
  if listening; then
    echo "external (a server not managed by this script answers on $HOST:$PORT)"
    return 0
  fi
  echo "stopped"
  return 1
}

if [[ -n "${PG_STATE_DIR:-}" ]]; then PG_STATE_DIR="$(realpath -m "$PG_STATE_DIR")"; fi
cd /   # the postgres user may not be allowed into the caller's cwd
case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  url) url ;;
  *)
    echo "usage: $0 {start|stop|status|url}" >&2
    exit 2
    ;;
esac
