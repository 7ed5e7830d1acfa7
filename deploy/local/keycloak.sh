#!/usr/bin/env bash
# Local Keycloak (the OpenID Connect identity provider) run straight from the Maven Central distribution
# (org.keycloak:keycloak-quarkus-dist, a zip) in dev mode on 127.0.0.1 -- no Docker. For local demos, tests and
# CI only: plain HTTP, an in-memory database (every start imports the realm afresh), a bootstrap admin.
# Like production (deploy/k8s, docker-compose): the hostname is pinned, so every token and discovery document
# names the one issuer http://127.0.0.1:8180, while the back-channel endpoints (token, keys, userinfo) follow the
# address a request used (hostname-backchannel-dynamic): asked at http://localhost:8180, the discovery document
# sends browsers to 127.0.0.1 and servers to localhost, as Keycloak's internal address works in a cluster.
#
#   bash deploy/local/keycloak.sh fetch    # the distribution zip into the cache (idempotent)
#   bash deploy/local/keycloak.sh start    # fetch, unpack once, import the realm, start in the background, wait
#   bash deploy/local/keycloak.sh wait     # wait until the realm answers OIDC discovery
#   bash deploy/local/keycloak.sh status   # prints running/stopped; exit 0 if running, 1 if not
#   bash deploy/local/keycloak.sh stop     # SIGTERM, SIGKILL after KEYCLOAK_STOP_TIMEOUT seconds
#   bash deploy/local/keycloak.sh url      # prints the issuer URL (http://127.0.0.1:8180/realms/sandan)
#
# Environment (all optional):
#   KEYCLOAK_PORT (8180)  KEYCLOAK_MANAGEMENT_PORT (9180)  KEYCLOAK_HEAP (768m)
#   KEYCLOAK_WAIT_TIMEOUT (240)  KEYCLOAK_STOP_TIMEOUT (20)  JAVA (java)  MVN (mvn)
#   KEYCLOAK_ADMIN_USER / KEYCLOAK_ADMIN_PASSWORD (admin / admin)   the bootstrap admin of the master realm
#   KEYCLOAK_REALM_FILE (deploy/local/keycloak/sandan-realm.json)   the realm imported at start
#   SANDAN_CACHE     (~/.cache/sandan)          the zip goes to $SANDAN_CACHE/keycloak-<version>.zip
#   KEYCLOAK_STATE_DIR (<repo>/.local/keycloak) the unpacked distribution, keycloak.log, keycloak.pid
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/../.." && pwd)"

VERSION=26.5.6
JAVA="${JAVA:-java}"
MVN="${MVN:-mvn}"
CACHE="${SANDAN_CACHE:-${HOME:-/root}/.cache/sandan}"
STATE="${KEYCLOAK_STATE_DIR:-$REPO/.local/keycloak}"
PORT="${KEYCLOAK_PORT:-8180}"
MANAGEMENT_PORT="${KEYCLOAK_MANAGEMENT_PORT:-9180}"
HEAP="${KEYCLOAK_HEAP:-768m}"
WAIT_TIMEOUT="${KEYCLOAK_WAIT_TIMEOUT:-240}"
STOP_TIMEOUT="${KEYCLOAK_STOP_TIMEOUT:-20}"
REALM_FILE="${KEYCLOAK_REALM_FILE:-$SCRIPT_DIR/keycloak/sandan-realm.json}"
HOST=127.0.0.1
REALM=sandan

ZIP="$CACHE/keycloak-quarkus-dist-$VERSION.zip"
HOME_DIR="$STATE/keycloak-$VERSION"
PIDFILE="$STATE/keycloak.pid"
LOG="$STATE/keycloak.log"

say() { echo "keycloak: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

issuer() { echo "http://$HOST:$PORT/realms/$REALM"; }

need_java() {
  command -v "$JAVA" >/dev/null 2>&1 || die "java not found (Keycloak $VERSION needs Java 17+; apt-get install -y openjdk-17-jre-headless)"
}

cmd_fetch() {
  if [[ -s "$ZIP" ]]; then return 0; fi
  command -v "$MVN" >/dev/null 2>&1 || die "mvn not found (apt-get install -y maven)"
  mkdir -p "$CACHE"
  say "fetching org.keycloak:keycloak-quarkus-dist:$VERSION:zip from Maven Central"
  local tmp
  tmp="$(mktemp -d)"
  "$MVN" -q -B dependency:copy "-Dartifact=org.keycloak:keycloak-quarkus-dist:$VERSION:zip" \
    "-DoutputDirectory=$tmp" >"$tmp/mvn.log" 2>&1 || { cat "$tmp/mvn.log" >&2; rm -rf "$tmp"; die "fetch failed"; }
  mv "$tmp/keycloak-quarkus-dist-$VERSION.zip" "$ZIP"
  rm -rf "$tmp"
}

unpack() {
  if [[ -x "$HOME_DIR/bin/kc.sh" ]]; then return 0; fi
  command -v unzip >/dev/null 2>&1 || die "unzip not found (apt-get install -y unzip)"
  say "unpacking Keycloak $VERSION into $STATE"
  mkdir -p "$STATE"
  rm -rf "$HOME_DIR.partial"
  mkdir -p "$HOME_DIR.partial"
  unzip -q "$ZIP" -d "$HOME_DIR.partial"
  mv "$HOME_DIR.partial/keycloak-$VERSION" "$HOME_DIR"
  rmdir "$HOME_DIR.partial"
}

running_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$PIDFILE")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

ready() {
  # the realm's discovery document is served once the import finished and the server accepts requests
  curl -sf -o /dev/null --max-time 5 "$(issuer)/.well-known/openid-configuration"
}

cmd_wait() {
  local deadline=$((SECONDS + WAIT_TIMEOUT)) seen="${1:-}"
  say "waiting up to ${WAIT_TIMEOUT}s for $(issuer)"
  while :; do
    if ready; then
      say "ready at $(issuer) ($((WAIT_TIMEOUT - (deadline - SECONDS)))s)"
      return 0
    fi
    if [[ -n "$seen" ]] && ! running_pid >/dev/null; then
      say "Keycloak exited; the end of $LOG:"
      tail -n 30 "$LOG" >&2 || true
      return 1
    fi
    if ((SECONDS >= deadline)); then
      say "timed out; the end of $LOG:"
      tail -n 30 "$LOG" >&2 || true
      return 1
    fi
    sleep 1
  done
}

cmd_start() {
  need_java
  command -v curl >/dev/null 2>&1 || die "curl not found (apt-get install -y curl)"
  [[ -f "$REALM_FILE" ]] || die "no realm file at $REALM_FILE"
  cmd_fetch
  unpack
  mkdir -p "$STATE"
  exec 9>"$STATE/.start.lock"
  flock 9
  local pid
  if pid="$(running_pid)"; then
    say "already running (pid $pid)"
    flock -u 9
    cmd_wait started
    return
  fi
  rm -f "$PIDFILE"
  if port_open "$HOST" "$PORT"; then die "port $PORT is in use by another process; set KEYCLOAK_PORT"; fi
  if port_open "$HOST" "$MANAGEMENT_PORT"; then die "port $MANAGEMENT_PORT is in use; set KEYCLOAK_MANAGEMENT_PORT"; fi
  mkdir -p "$HOME_DIR/data/import"
  rm -f "$HOME_DIR/data/import/"*.json
  cp "$REALM_FILE" "$HOME_DIR/data/import/$REALM-realm.json"
  say "starting Keycloak $VERSION on $HOST:$PORT (management $MANAGEMENT_PORT; log: $LOG)"
  # dev mode with an in-memory database: every start imports the realm file afresh (local use only)
  KC_BOOTSTRAP_ADMIN_USERNAME="${KEYCLOAK_ADMIN_USER:-admin}" \
  KC_BOOTSTRAP_ADMIN_PASSWORD="${KEYCLOAK_ADMIN_PASSWORD:-admin}" \
  JAVA_OPTS_KC_HEAP="-Xms64m -Xmx$HEAP" \
  JAVA="$(command -v "$JAVA")" \
    setsid nohup "$HOME_DIR/bin/kc.sh" start-dev --http-host="$HOST" --http-port="$PORT" \
      --http-management-port="$MANAGEMENT_PORT" --health-enabled=true --import-realm --db=dev-mem \
      --hostname="http://$HOST:$PORT" --hostname-backchannel-dynamic=true \
      --log-console-output=default </dev/null >"$LOG" 2>&1 8>&- 9>&- &
  echo $! >"$PIDFILE"
  flock -u 9
  cmd_wait started
}

cmd_stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PIDFILE"
    say "not running"
    return 0
  fi
  say "stopping (pid $pid)"
  # kc.sh execs java in its own session (setsid): signal the whole group
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      say "still running after ${STOP_TIMEOUT}s, sending SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.2
  done
  rm -f "$PIDFILE"
  say "stopped"
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    echo "running (pid $pid, $(issuer))"
    return 0
  fi
  echo "stopped"
  return 1
}

case "${1:-}" in
  fetch) cmd_fetch ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  wait) cmd_wait ;;
  url) issuer ;;
  *)
    echo "usage: $0 {fetch|start|stop|status|wait|url}" >&2
    exit 2
    ;;
esac
