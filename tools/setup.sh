#!/usr/bin/env bash
# Create ./.venv with wasmgate (editable) and its development tools. Idempotent and quiet.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" - <<'PYCHECK'
import sys
if sys.version_info < (3, 11):
    raise SystemExit(f"wasmgate needs Python >= 3.11 (found {sys.version.split()[0]})")
PYCHECK
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.wasmgate-setup
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
    touch "$stamp"
fi
# The wasmtime CLI wheel (used by benchmarks for side-by-side comparisons) ships its binary
# without the execute bit.
for bin in .venv/lib/python3*/site-packages/wasmtime_cli/wasmtime*; do
    [ -f "$bin" ] && [ ! -x "$bin" ] && chmod +x "$bin"
done
true
