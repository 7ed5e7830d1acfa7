#!/usr/bin/env bash
# The main job on a fresh machine: install, start a local Kafka (unless KAFKA_BOOTSTRAP_SERVERS is set),
# run intake and dispatch on SQLite, and drive a resident's demand through the three orders.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  # A fresh local broker: the services read every topic from the beginning, and the demo's story is one day.
  bash deploy/local/kafka.sh stop >/dev/null 2>&1 || true
  rm -rf .local/kafka
  bash deploy/local/kafka.sh start
  export KAFKA_BOOTSTRAP_SERVERS="$(bash deploy/local/kafka.sh bootstrap)"
  echo "(the broker keeps running; stop it with: bash deploy/local/kafka.sh stop)" >&2
fi
exec .venv/bin/python scripts/demo.py
