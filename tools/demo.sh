#!/usr/bin/env bash
# Set up, build the example WAGI guests, and serve them on http://127.0.0.1:3000 (Ctrl-C stops).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
.venv/bin/python examples/wagi/build.py
exec .venv/bin/wasmgate serve -c examples/wagi/modules.toml -l "${WASMGATE_LISTEN:-127.0.0.1:3000}" "$@"
