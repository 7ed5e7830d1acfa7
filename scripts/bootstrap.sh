#!/usr/bin/env bash
# Create .venv and install sandan's packages (editable; the operators' CLI `sandan` from tools/cli too) and its
# test tools, pinned by constraints.txt, and build scoring's native fold kernel (Rust, services/scoring/kernel)
# when cargo is there.
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
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"  # rustup's default place
want="$(cat constraints.txt requirements-dev.txt contracts/pyproject.toml libs/eventbus/pyproject.toml \
        services/*/pyproject.toml tools/cli/pyproject.toml services/scoring/kernel/Cargo.* \
        services/scoring/kernel/src/*.rs \
        | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing packages into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -r requirements-dev.txt \
    -e contracts -e libs/eventbus -e services/intake -e services/dispatch -e services/notify -e services/scoring \
    -e services/gateway -e tools/cli
  if command -v cargo >/dev/null; then
    echo "bootstrap: building scoring's fold kernel with $(cargo --version)" >&2
    .venv/bin/python -m pip install -q ./services/scoring/kernel
  else
    # scoring still works (its Python fold is the reference), a rebuild takes about twice as long;
    # scripts/test.sh requires the kernel, so tests fail without it.
    echo "bootstrap: WARNING: no cargo (Rust); scoring's native fold kernel is not built" >&2
    .venv/bin/python -m pip uninstall -q -y sandan-kernel >/dev/null 2>&1 || true
  fi
  echo "$want" > "$stamp"
fi
