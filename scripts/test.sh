#!/usr/bin/env bash
# The test command: lint, then every test (unit, SQLite, PostgreSQL, real Kafka, real Keycloak).
# Uses KAFKA_BOOTSTRAP_SERVERS / SANDAN_TEST_POSTGRES_URL / SANDAN_TEST_OIDC_ISSUER when given; otherwise
# starts the local broker, database and identity provider from deploy/local/ (and stops what it started).
# Extra args go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

started=()
cleanup() {
  for what in "${started[@]:-}"; do
    [ -n "$what" ] && bash "deploy/local/$what.sh" stop >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT

keycloak_pid=""
if [ -z "${SANDAN_TEST_OIDC_ISSUER:-}" ]; then
  # Keycloak takes the longest to start: it starts in the background while the broker and database do.
  # A fresh one per run (in-memory database: the realm is imported afresh).
  bash deploy/local/keycloak.sh stop >/dev/null 2>&1 || true
  bash deploy/local/keycloak.sh start &
  keycloak_pid=$!
  started+=(keycloak)
  export SANDAN_TEST_OIDC_ISSUER="$(bash deploy/local/keycloak.sh url)"
fi
bash scripts/bootstrap.sh
if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  # A fresh broker per test run: the integration stack reads every topic from the beginning.
  bash deploy/local/kafka.sh stop >/dev/null 2>&1 || true
  rm -rf .local/kafka
  bash deploy/local/kafka.sh start
  started+=(kafka)
  export KAFKA_BOOTSTRAP_SERVERS="$(bash deploy/local/kafka.sh bootstrap)"
fi
if [ -z "${SANDAN_TEST_POSTGRES_URL:-}" ]; then
  # stopped afterwards only if this run started it
  bash deploy/local/postgres.sh status >/dev/null 2>&1 || started+=(postgres)
  bash deploy/local/postgres.sh start
  export SANDAN_TEST_POSTGRES_URL="$(bash deploy/local/postgres.sh url)"
fi

if [ -n "$keycloak_pid" ] && ! wait "$keycloak_pid"; then
  echo "test.sh: Keycloak did not start (see .local/keycloak/keycloak.log)" >&2
  exit 1
fi

# scoring's tests compare its native kernel with the Python reference: the kernel must be there.
export SCORING_KERNEL="${SCORING_KERNEL:-native}"
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"

echo "== ruff" >&2
.venv/bin/ruff check .
echo "== kernel (cargo fmt, clippy, test)" >&2
kernel=services/scoring/kernel/Cargo.toml
# rustfmt and clippy are rustup components: checked where installed
if cargo fmt --version >/dev/null 2>&1; then cargo fmt --check --manifest-path "$kernel"; fi
if cargo clippy --version >/dev/null 2>&1; then
  PYO3_PYTHON="$ROOT/.venv/bin/python" cargo clippy -q --release --manifest-path "$kernel" -- -D warnings
fi
PYO3_PYTHON="$ROOT/.venv/bin/python" cargo test -q --release --manifest-path "$kernel"
echo "== import boundaries" >&2
.venv/bin/lint-imports --no-cache
echo "== contract compatibility with the last release" >&2
# Releases are tagged v<major>.<minor>.<patch>: every schema must still read what the last one published.
release="$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null || true)"
if [ -n "$release" ]; then
  .venv/bin/python -m sandan_contracts.schemas check --base "$release"
else
  echo "test.sh: no v* release tag reachable from HEAD (a shallow clone? git fetch --tags): schemas compared" \
       "with the committed files only, not with a release" >&2
  .venv/bin/python -m sandan_contracts.schemas check
fi
echo "== dependency audit (pip-audit over constraints.txt; accepted risks: .pip-audit-ignore)" >&2
# Fails on a known vulnerability; where neither PyPI's JSON API nor OSV answers it says NOT AUDITED and goes on,
# unless SANDAN_AUDIT_REQUIRED=1.
.venv/bin/python scripts/audit.py
echo "== pytest (kafka=$KAFKA_BOOTSTRAP_SERVERS, postgres=$SANDAN_TEST_POSTGRES_URL, oidc=$SANDAN_TEST_OIDC_ISSUER)" >&2
.venv/bin/python -m pytest "$@"
