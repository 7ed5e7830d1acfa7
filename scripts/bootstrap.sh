#!/usr/bin/env bash
# Create .venv and install sandan's packages (editable) and its test tools, pinned by constraints.txt.
# Idempotent: re-running only installs what changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($PYTHON --version)" >&2
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.sandan-installed"
want="$(cat constraints.txt requirements-dev.txt contracts/pyproject.toml libs/eventbus/pyproject.toml \
        services/*/pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing packages into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -r requirements-dev.txt \
    -e contracts -e libs/eventbus -e services/intake -e services/dispatch -e services/notify -e services/scoring
  echo "$want" > "$stamp"
fi
