#!/usr/bin/env bash
# Build counter-py.wasm: a wasi:http component in Python (componentize-py, installed into its own
# venv under <repo>/.cache as examples/http/python/build.sh does) that imports wasi:keyvalue
# (store, atomics, batch @0.2.0-draft2) and wasi:config/store@0.2.0-draft from ../wit and the
# proxy world from the WIT jco ships. About 20 s; 18 MB (it carries CPython), so it is not checked
# in. Usage: build.sh [OUT.wasm]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
out="${1:-$here/counter-py.wasm}"
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
for pkg in keyvalue config; do
    mkdir -p "$wit/deps/$pkg"
    cp "$here/../wit/$pkg/package.wit" "$wit/deps/$pkg/"
done
cat > "$wit/world.wit" <<'WIT'
package wasmgate:state-counter;
world counter {
  include wasi:http/proxy@0.2.12;
  import wasi:keyvalue/store@0.2.0-draft2;
  import wasi:keyvalue/atomics@0.2.0-draft2;
  import wasi:keyvalue/batch@0.2.0-draft2;
  import wasi:config/store@0.2.0-draft;
}
WIT
if [ "${BINDINGS:-}" ]; then
    "$venv/bin/componentize-py" -d "$wit" -w counter bindings "$BINDINGS"
    exit 0
fi
"$venv/bin/componentize-py" -d "$wit" -w counter componentize -p "$here" app -o "$out"
