#!/usr/bin/env bash
# Build greeter-as.wasm: asc (npm assemblyscript) compiles a core module with no imports, then
# jco's bundled wasm-tools embeds the WIT and makes it a component (no adapter needed).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tools="$(bash "$here/../tools/setup-npm.sh")"
"$tools/node_modules/.bin/asc" "$here/greeter.ts" --runtime stub --use abort= -O3 --noAssert \
    -o "$here/greeter.core.wasm"
node "$tools/core2component.mjs" "$here/greeter.core.wasm" "$here/greeter-as.wasm" \
    --wit "$here/../greeter.wit" --world greeter-lite --no-adapter
