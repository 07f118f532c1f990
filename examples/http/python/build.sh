#!/usr/bin/env bash
# Build a wasi:http component from a Python app with componentize-py (PyPI; installed into its own
# venv by examples/components/tools/setup-componentize-py.sh) against the wasi:http/proxy@0.2.12
# WIT jco ships (installed by examples/components/tools/setup-npm.sh). About 5 to 20 s; 18 MB (it
# carries CPython), so it is not checked in.
#
#   build.sh [OUT.wasm [APP_DIR]]    APP_DIR holds app.py (default: this folder, the echo)
#
# examples/languages/ builds its Python handler with this script too.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
out="$(realpath "${1:-$here/echo-py.wasm}")"
app="$(cd "${2:-$here}" && pwd)"
componentize_py="$(bash "$repo/examples/components/tools/setup-componentize-py.sh")"
tools="$(bash "$repo/examples/components/tools/setup-npm.sh")"
builtin="$tools/node_modules/@bytecodealliance/jco/lib/wit/builtin/0.2.12"
wit="$(mktemp -d)"
trap 'rm -rf "$wit"' EXIT
for pkg in io clocks random cli filesystem sockets http; do
    mkdir -p "$wit/deps/$pkg"
    cp "$builtin/wasi-$pkg/package.wit" "$wit/deps/$pkg/"
done
printf 'package wasmgate:py-http;\nworld handler {\n  include wasi:http/proxy@0.2.12;\n}\n' \
    > "$wit/world.wit"
"$componentize_py" -d "$wit" -w handler componentize -p "$app" app -o "$out"
