#!/usr/bin/env bash
# Build greeter-c.wasm: zig cc (PyPI ziglang) makes a reactor core module, then jco's bundled
# wasm-tools embeds the WIT and wraps it as a component with the preview1 reactor adapter.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
tools="$(bash "$here/../tools/setup-npm.sh")"
"$python" -m ziglang cc -target wasm32-wasi -mexec-model=reactor -O2 -s \
    -o "$here/greeter.core.wasm" "$here/greeter.c"
node "$tools/core2component.mjs" "$here/greeter.core.wasm" "$here/greeter-c.wasm" \
    --wit "$here/../greeter.wit" --world greeter --reactor
