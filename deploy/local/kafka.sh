#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, combined broker+controller) run straight from the
# Maven Central artifacts -- no Docker, no tarball download. For local demos, tests and CI only:
# PLAINTEXT on 127.0.0.1, no authentication, replication factor 1.
#
#   bash deploy/local/kafka.sh fetch      # resolve the jars into the cache (idempotent)
#   bash deploy/local/kafka.sh format     # write the config and format storage once (start does this too)
#   bash deploy/local/kafka.sh start      # fetch if needed, format storage once, start, wait
#   bash deploy/local/kafka.sh wait       # wait until the broker answers metadata requests
#   bash deploy/local/kafka.sh status     # prints running/stopped; exit 0 if running, 1 if not
#   bash deploy/local/kafka.sh stop       # SIGTERM, SIGKILL after KAFKA_STOP_TIMEOUT seconds
#   bash deploy/local/kafka.sh bootstrap  # prints the bootstrap servers to use
#
# Environment (all optional):
#   KAFKA_BOOTSTRAP_SERVERS  if set, an external broker is used: `start` starts nothing and
#                            `wait` waits for that broker instead
#   KAFKA_PORT (9092)  KAFKA_CONTROLLER_PORT (9093)  KAFKA_HEAP (512m)  KAFKA_JAVA_OPTS ("")
#   KAFKA_WAIT_TIMEOUT (90)  KAFKA_STOP_TIMEOUT (30)  JAVA (java)  MVN (mvn)
#   KAFKA_CLUSTER_ID   the cluster id to format with (default: random)
#   SANDAN_CACHE     (~/.cache/sandan)       jars go to $SANDAN_CACHE/kafka-<version>/libs
#   KAFKA_STATE_DIR  (<repo>/.local/kafka)   server.properties, data/, kafka.log, kafka.pid
#
# Opt-in SASL_SSL mode (what the Kubernetes listener asks of clients, to test them locally): KAFKA_SASL_SSL=1
# makes the client listener on KAFKA_PORT SASL_SSL with SCRAM-SHA-512 (the controller listener stays plain, on
# loopback). It needs, as PEM files: KAFKA_BROKER_CERT_FILE (the broker's certificate, whose names include
# 127.0.0.1), KAFKA_BROKER_KEY_FILE (its unencrypted PKCS#8 key) and KAFKA_BROKER_CA_FILE (the CA that signed
# it); and KAFKA_SCRAM_USERS="name=password ..." (the client users, created when the storage is formatted:
# change them by deleting KAFKA_STATE_DIR). The broker's own user "broker" gets a random password, kept in
# $KAFKA_STATE_DIR/tls/. The mode is fixed when the storage is first formatted.
# With it, KAFKA_AUTHORIZER=1 enforces ACLs (KRaft's StandardAuthorizer, as the Kubernetes cluster's `simple`
# authorization does): a user may do only what an ACL grants it, except the super users: "broker", the
# controller listener's ANONYMOUS (plain, loopback only) and the names in KAFKA_SUPER_USERS="name ...". ACLs
# are created through the Admin API by a super user and kept in the metadata, like the SCRAM users.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/../.." && pwd)"
POM="$SCRIPT_DIR/kafka/pom.xml"

JAVA="${JAVA:-java}"
MVN="${MVN:-mvn}"
CACHE="${SANDAN_CACHE:-${HOME:-/root}/.cache/sandan}"
STATE="${KAFKA_STATE_DIR:-$REPO/.local/kafka}"
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
HEAP="${KAFKA_HEAP:-512m}"
WAIT_TIMEOUT="${KAFKA_WAIT_TIMEOUT:-90}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
HOST=127.0.0.1
SASL_SSL="${KAFKA_SASL_SSL:-0}"
AUTHORIZER="${KAFKA_AUTHORIZER:-0}"

VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1)"
[[ -n "$VERSION" ]] || { echo "kafka: cannot read <kafka.version> from $POM" >&2; exit 1; }
HOME_DIR="$CACHE/kafka-$VERSION"
LIBS="$HOME_DIR/libs"
MARKER="$HOME_DIR/.fetched"
TOOLS_LOG4J="$HOME_DIR/tools-log4j2.xml"
PROBE_CONFIG="$HOME_DIR/probe-admin.properties"

DATA="$STATE/data"
CONFIG="$STATE/server.properties"
BROKER_LOG4J="$STATE/log4j2.xml"
PIDFILE="$STATE/kafka.pid"
LOG="$STATE/kafka.log"   # broker log (log4j2, rolled at 10 MB)
OUT="$STATE/kafka.out"   # JVM stdout/stderr (normally empty: crashes, JVM errors)
TLS="$STATE/tls"         # SASL_SSL mode: the broker's PEM keystore and truststore, its own SCRAM password

say() { echo "kafka: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

bootstrap() { echo "${KAFKA_BOOTSTRAP_SERVERS:-$HOST:$PORT}"; }

need_java() {
  command -v "$JAVA" >/dev/null 2>&1 || die "java not found (Kafka $VERSION needs Java 17+; e.g. apt-get install -y openjdk-17-jre-headless)"
  local v
  v="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)"
  if [[ -n "$v" && "$v" -lt 17 ]]; then die "Java $v found, Kafka $VERSION needs Java 17+"; fi
}

pom_sum() { sha256sum "$POM" | cut -d' ' -f1; }

fetched() { [[ -f "$MARKER" && "$(cat "$MARKER")" == "$(pom_sum)" ]]; }

cmd_fetch() {
  if fetched; then return 0; fi
  command -v "$MVN" >/dev/null 2>&1 || die "mvn not found (e.g. apt-get install -y maven)"
  mkdir -p "$HOME_DIR"
  exec 8>"$HOME_DIR/.fetch.lock"
  flock 8
  if fetched; then flock -u 8; return 0; fi   # someone else fetched it meanwhile
  say "fetching Kafka $VERSION jars from Maven Central into $LIBS"
  rm -rf "$LIBS"
  # mvn -q still prints colour escapes on stdout; keep stdout clean for callers.
  "$MVN" -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$LIBS" >&2 \
    || die "mvn dependency:copy-dependencies failed (see output above)"
  ls "$LIBS"/kafka_2.13-"$VERSION".jar "$LIBS"/kafka-tools-"$VERSION".jar >/dev/null \
    || die "kafka jars missing in $LIBS after mvn"
  pom_sum >"$MARKER"
  flock -u 8
  say "fetched $(find "$LIBS" -name "*.jar" | wc -l) jars"
}

# Small config files for the command-line tools; rewritten on each use (cheap, keeps them in
# sync with this script).
write_tool_configs() {
  mkdir -p "$HOME_DIR"
  local tmp
  tmp="$(mktemp "$HOME_DIR/.tmp.XXXXXX")"
  cat >"$tmp" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<!-- log4j2 config for the Kafka command-line tools run by kafka.sh: warnings to stderr only -->
<Configuration status="warn">
  <Appenders>
    <Console name="STDERR" target="SYSTEM_ERR">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="warn"><AppenderRef ref="STDERR"/></Root>
    <Logger name="org.apache.kafka.clients.NetworkClient" level="error"/>
  </Loggers>
</Configuration>
EOF
  mv -f "$tmp" "$TOOLS_LOG4J"
  tmp="$(mktemp "$HOME_DIR/.tmp.XXXXXX")"
  cat >"$tmp" <<'EOF'
# Admin client settings for the readiness probe in kafka.sh: fail fast, the script retries.
request.timeout.ms=5000
default.api.timeout.ms=8000
socket.connection.setup.timeout.ms=2000
socket.connection.setup.timeout.max.ms=2000
EOF
  mv -f "$tmp" "$PROBE_CONFIG"
}

# Run a Kafka tool class with the fetched classpath and quiet logging.
kafka_tool() {
  "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$TOOLS_LOG4J" -cp "$LIBS/*" "$@"
}

# PID of our broker if it is alive (and really is our Kafka), else nothing / exit 1.
running_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # guard against PID reuse: the process must be kafka.Kafka with our config
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka.Kafka $CONFIG" || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

show_logs() {
  if [[ -s "$OUT" ]]; then say "---- tail of $OUT ----"; tail -n 30 "$OUT" >&2; fi
  if [[ -f "$LOG" ]]; then say "---- tail of $LOG ----"; tail -n 40 "$LOG" >&2; fi
}

sasl_ssl() { [[ "$SASL_SSL" == 1 ]]; }
authorizer() { [[ "$AUTHORIZER" == 1 ]]; }

# SASL_SSL mode: check the PEM files and users, and lay out the broker's keystore (key, then certificate:
# the order Kafka's PEM keystore wants), truststore and own SCRAM password. Nothing here is a secret worth
# more than the local broker it guards; the files are private to the user all the same.
prepare_sasl_ssl() {
  local f
  for f in KAFKA_BROKER_CERT_FILE KAFKA_BROKER_KEY_FILE KAFKA_BROKER_CA_FILE; do
    [[ -n "${!f:-}" && -r "${!f}" ]] || die "KAFKA_SASL_SSL=1 needs $f (a readable PEM file)"
  done
  grep -q -- '-----BEGIN PRIVATE KEY-----' "$KAFKA_BROKER_KEY_FILE" \
    || die "KAFKA_BROKER_KEY_FILE must be an unencrypted PKCS#8 key (BEGIN PRIVATE KEY)"
  local user
  for user in ${KAFKA_SCRAM_USERS:-}; do
    [[ "$user" =~ ^[A-Za-z0-9_.-]+=[^],\"[:space:]]+$ ]] \
      || die "KAFKA_SCRAM_USERS: each entry is name=password (no spaces, commas, quotes or ']' in the password)"
  done
  if authorizer; then
    for user in ${KAFKA_SUPER_USERS:-}; do
      [[ "$user" =~ ^[A-Za-z0-9_.-]+$ ]] || die "KAFKA_SUPER_USERS: user names only (letters, digits, _ . -)"
    done
  fi
  mkdir -p "$TLS"
  chmod 700 "$TLS"
  (umask 077 && cat "$KAFKA_BROKER_KEY_FILE" "$KAFKA_BROKER_CERT_FILE" >"$TLS/keystore.pem")
  cp -f "$KAFKA_BROKER_CA_FILE" "$TLS/truststore.pem"
  if [[ ! -s "$TLS/broker.password" ]]; then
    [[ ! -f "$DATA/meta.properties" ]] \
      || die "$STATE was formatted without KAFKA_SASL_SSL=1 (no SCRAM users): delete it to switch modes"
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$TLS/broker.password")
  fi
}

write_config() {
  mkdir -p "$DATA"
  local listener=PLAINTEXT
  if authorizer && ! sasl_ssl; then die "KAFKA_AUTHORIZER=1 needs KAFKA_SASL_SSL=1 (ACLs need authenticated users)"; fi
  if sasl_ssl; then
    prepare_sasl_ssl
    listener=SASL_SSL
  elif [[ -s "$TLS/broker.password" ]]; then
    die "$STATE was formatted with KAFKA_SASL_SSL=1: set it again, or delete the directory"
  fi
  (umask 077 && cat >"$CONFIG" <<EOF
# Generated by deploy/local/kafka.sh -- rewritten on every start, edit the script instead.
# Single node, KRaft combined mode, $listener on loopback. Local demo / CI only.
process.roles=broker,controller
node.id=1
listeners=$listener://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=$listener://$HOST:$PORT
listener.security.protocol.map=$listener:$listener,CONTROLLER:PLAINTEXT
inter.broker.listener.name=$listener
controller.listener.names=CONTROLLER
controller.quorum.bootstrap.servers=$HOST:$CONTROLLER_PORT
log.dirs=$DATA
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.recovery.threads.per.data.dir=1
EOF
  )
  if sasl_ssl; then
    cat >>"$CONFIG" <<EOF
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="$(cat "$TLS/broker.password")";
ssl.keystore.type=PEM
ssl.keystore.location=$TLS/keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$TLS/truststore.pem
EOF
  fi
  if authorizer; then
    # the controller listener is PLAINTEXT: the broker part registers with the controller as ANONYMOUS
    local supers="User:broker;User:ANONYMOUS" user
    for user in ${KAFKA_SUPER_USERS:-}; do supers+=";User:$user"; done
    cat >>"$CONFIG" <<EOF
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=$supers
EOF
  fi
  cat >"$BROKER_LOG4J" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by deploy/local/kafka.sh: broker log to $LOG (rolled), nothing on stdout -->
<Configuration status="warn">
  <Appenders>
    <RollingFile name="FILE" fileName="$LOG" filePattern="$LOG.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="10 MB"/></Policies>
      <DefaultRolloverStrategy max="5"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="info"><AppenderRef ref="FILE"/></Root>
    <Logger name="kafka.request.logger" level="warn"/>
    <Logger name="org.apache.kafka.clients" level="warn"/>
    <Logger name="org.apache.kafka.common.utils.AppInfoParser" level="warn"/>
  </Loggers>
</Configuration>
EOF
}

format_storage() {
  if [[ -f "$DATA/meta.properties" ]]; then return 0; fi
  # 16 random bytes, URL-safe base64 without padding = a Kafka Uuid (what `random-uuid` prints).
  # About 1 id in 64 starts with '-': it is passed as `--cluster-id=<id>`, never as a separate word, or
  # the tool would read it as an option (KAFKA_CLUSTER_ID fixes the id, for tests).
  local cluster_id="${KAFKA_CLUSTER_ID:-}"
  [[ -n "$cluster_id" ]] || cluster_id="$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  say "formatting storage in $DATA (cluster id $cluster_id)"
  local scram=() user
  if sasl_ssl; then
    scram+=(--add-scram "SCRAM-SHA-512=[name=broker,password=$(cat "$TLS/broker.password")]")
    for user in ${KAFKA_SCRAM_USERS:-}; do
      scram+=(--add-scram "SCRAM-SHA-512=[name=${user%%=*},password=${user#*=}]")
    done
  fi
  if ! kafka_tool kafka.tools.StorageTool format --standalone "--cluster-id=$cluster_id" -c "$CONFIG" \
       "${scram[@]}" >"$STATE/format.log" 2>&1; then
    cat "$STATE/format.log" >&2
    die "storage format failed"
  fi
}

# cmd_wait [started]: "started" = we just launched the broker, so fail fast if it dies. A plain
# `wait` also tolerates the broker not having been launched yet (e.g. `start &` then `wait`).
cmd_wait() {
  need_java
  cmd_fetch
  local bs deadline pid="" probe seen="${1:-}"
  bs="$(bootstrap)"
  write_tool_configs
  local probe_config="$PROBE_CONFIG"
  if sasl_ssl && [[ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
    # the readiness probe authenticates as the broker's own user
    probe_config="$TLS/probe-admin.properties"
    (umask 077 && { cat "$PROBE_CONFIG"; cat <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="$(cat "$TLS/broker.password")";
ssl.truststore.type=PEM
ssl.truststore.location=$TLS/truststore.pem
EOF
    } >"$probe_config")
  fi
  probe="$(mktemp)"
  deadline=$((SECONDS + WAIT_TIMEOUT))
  say "waiting up to ${WAIT_TIMEOUT}s for broker at $bs"
  while :; do
    if [[ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
      # local broker: fail fast if the process died
      if pid="$(running_pid)"; then
        seen=1
      elif [[ -n "$seen" ]]; then
        say "broker process exited"
        rm -f "$probe"
        show_logs
        return 1
      else
        if ((SECONDS >= deadline)); then break; fi
        sleep 0.5
        continue
      fi
      # cheap check first; the listener only accepts once the broker is unfenced
      if ! port_open "$HOST" "$PORT"; then
        if ((SECONDS >= deadline)); then break; fi
        sleep 0.5
        continue
      fi
    fi
    # real check: a metadata round trip (DescribeCluster) through the admin client
    if timeout --kill-after=5 20 "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
         -Dlog4j2.configurationFile="$TOOLS_LOG4J" -cp "$LIBS/*" \
         org.apache.kafka.tools.ClusterTool cluster-id --bootstrap-server "$bs" --config "$probe_config" \
         >"$probe" 2>&1 \
       && grep -q 'Cluster ID' "$probe"; then
      rm -f "$probe"
      say "broker ready at $bs ($((WAIT_TIMEOUT - (deadline - SECONDS)))s)"
      return 0
    fi
    if ((SECONDS >= deadline)); then break; fi
    sleep 1
  done
  say "timed out after ${WAIT_TIMEOUT}s waiting for broker at $bs"
  grep -v '^[[:space:]]*at ' "$probe" | tail -n 5 >&2 || true
  rm -f "$probe"
  if [[ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
    if [[ -z "$seen" ]]; then say "no local broker is running (bash $0 start)"; else show_logs; fi
  fi
  return 1
}

cmd_start() {
  if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
    say "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS is set: using that external broker, starting nothing"
    return 0
  fi
  need_java
  cmd_fetch
  write_tool_configs
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
  if port_open "$HOST" "$PORT"; then
    die "port $PORT is already in use by another process (not started by this script); set KAFKA_PORT or KAFKA_BOOTSTRAP_SERVERS"
  fi
  if port_open "$HOST" "$CONTROLLER_PORT"; then
    die "controller port $CONTROLLER_PORT is already in use; set KAFKA_CONTROLLER_PORT"
  fi
  write_config
  format_storage
  say "starting Kafka $VERSION on $HOST:$PORT (state: $STATE, log: $LOG)"
  # shellcheck disable=SC2086  # KAFKA_JAVA_OPTS is intentionally word-split
  nohup "$JAVA" -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$BROKER_LOG4J" -Dkafka.logs.dir="$STATE" \
    ${KAFKA_JAVA_OPTS:-} \
    -cp "$LIBS/*" kafka.Kafka "$CONFIG" </dev/null >"$OUT" 2>&1 8>&- 9>&- &
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
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      say "still running after ${STOP_TIMEOUT}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
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
    echo "running (pid $pid, $HOST:$PORT)"
    return 0
  fi
  echo "stopped"
  return 1
}

# format: write the config and format the storage (once), without starting the broker.
cmd_format() {
  need_java
  cmd_fetch
  mkdir -p "$STATE"
  write_config
  format_storage
  grep -h '^cluster.id=' "$DATA/meta.properties"
}

case "${1:-}" in
  fetch) need_java; cmd_fetch ;;
  format) cmd_format ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  wait) cmd_wait ;;
  bootstrap) bootstrap ;;
  *)
    echo "usage: $0 {fetch|format|start|stop|status|wait|bootstrap}" >&2
    exit 2
    ;;
esac
