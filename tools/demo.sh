#!/usr/bin/env bash
# Set up, build the example guests, and run one in the sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
wasm=$(.venv/bin/python tools/guestbuild.py tests/guests/hello.c -o .cache/)
echo "demo input" | .venv/bin/wasmgate run --env GREETING=hello "$wasm" one two
