#!/usr/bin/env bash
# Build echo-py.wasm with componentize-py (PyPI, installed into its own venv under <repo>/.cache,
# as examples/components/python/build.sh does) against the wasi:http/proxy@0.2.12 WIT jco ships
# (installed by examples/components/tools/setup-npm.sh). About 20 s; 18 MB (it carries CPython),
# so it is not checked in. Usage: build.sh [OUT.wasm]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
out="${1:-$here/echo-py.wasm}"
venv="$repo/.cache/componentize-py"
if [ ! -x "$venv/bin/componentize-py" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/pip" install --quiet componentize-py==0.25.1
fi
tools="$(bash "$repo/examples/components/tools/setup-npm.sh")"
builtin="$tools/node_modules/@bytecodealliance/jco/lib/wit/builtin/0.2.12"
wit="$(mktemp -d)"
trap 'rm -rf "$wit"' EXIT
for pkg in io clocks random cli filesystem sockets http; do
    mkdir -p "$wit/deps/$pkg"
    cp "$builtin/wasi-$pkg/package.wit" "$wit/deps/$pkg/"
done
printf 'package wasmgate:py-echo;\nworld echo {\n  include wasi:http/proxy@0.2.12;\n}\n' > "$wit/world.wit"
"$venv/bin/componentize-py" -d "$wit" -w echo componentize -p "$here" app -o "$out"
