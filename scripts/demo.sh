#!/usr/bin/env bash
# The main job on a fresh machine: install, start a local Kafka (unless KAFKA_BOOTSTRAP_SERVERS is set) and a
# local Keycloak (unless SANDAN_OIDC_ISSUER is set), run the four services on SQLite, and drive a resident's demand
# through the three orders, each step by a person signed in through Keycloak.
# DEMO_GRPC_PORT (default 50051) moves the services' four ports; KEYCLOAK_PORT moves Keycloak's.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
keycloak_pid=""
if [ -z "${SANDAN_OIDC_ISSUER:-}" ]; then
  # Keycloak takes longest to start: it starts (or is found running) in the background while the rest gets ready
  bash deploy/local/keycloak.sh start &
  keycloak_pid=$!
  export SANDAN_OIDC_ISSUER="$(bash deploy/local/keycloak.sh url)"
fi
bash scripts/bootstrap.sh
if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  # A fresh local broker: the services read every topic from the beginning, and the demo's story is one day.
  bash deploy/local/kafka.sh stop >/dev/null 2>&1 || true
  rm -rf .local/kafka
  bash deploy/local/kafka.sh start
  export KAFKA_BOOTSTRAP_SERVERS="$(bash deploy/local/kafka.sh bootstrap)"
  echo "(the broker keeps running; stop it with: bash deploy/local/kafka.sh stop)" >&2
fi
if [ -n "$keycloak_pid" ]; then
  if ! wait "$keycloak_pid"; then
    echo "demo.sh: Keycloak did not start (see .local/keycloak/keycloak.log)" >&2
    exit 1
  fi
  echo "(Keycloak keeps running; stop it with: bash deploy/local/keycloak.sh stop)" >&2
fi
exec .venv/bin/python scripts/demo.py
