#!/usr/bin/env bash
# Build a wasi:http component from a JavaScript app with componentize-js (StarlingMonkey; npm,
# installed by examples/components/tools/setup-npm.sh as a dependency of jco). About 5 to 20 s;
# 14 MB (it carries SpiderMonkey), so it is not checked in.
#
#   build.sh [OUT.wasm [APP.js]]     APP.js answers fetch events (default: app.js here, the echo)
#
# examples/languages/ builds its JavaScript handler with this script too.
#
# StarlingMonkey is built against WASI 0.2.10 and exports wasi:http/incoming-handler@0.2.10, so
# the world must name that version. jco ships 0.2.10 WIT for io, clocks and sockets only: the
# other packages are jco's 0.2.12 files relabelled 0.2.10 (the 0.2 line only adds gated items),
# with their worlds removed (only the interfaces are needed).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
out="$(realpath "${1:-$here/echo-js.wasm}")"
app="$(realpath "${2:-$here/app.js}")"
tools="$(bash "$repo/examples/components/tools/setup-npm.sh")"
# Beside jco's node_modules (node resolves packages from a script's folder); a private name, so
# builders running side by side never see each other's copy half-written.
helper="$tools/componentize-$$.mjs"
builtin="$tools/node_modules/@bytecodealliance/jco/lib/wit/builtin"
wit="$(mktemp -d)"
trap 'rm -rf "$wit" "$helper"' EXIT
cp "$here/componentize.mjs" "$helper"
for pkg in io clocks sockets random cli filesystem http; do
    mkdir -p "$wit/deps/$pkg"
    if [ -f "$builtin/0.2.10/wasi-$pkg/package.wit" ]; then
        cp "$builtin/0.2.10/wasi-$pkg/package.wit" "$wit/deps/$pkg/"
    else
        sed 's/0\.2\.12/0.2.10/g' "$builtin/0.2.12/wasi-$pkg/package.wit" > "$wit/deps/$pkg/package.wit"
    fi
done
"${PYTHON:-python3}" - "$wit/deps" <<'PY'
import pathlib, re, sys
for p in pathlib.Path(sys.argv[1]).glob("*/package.wit"):
    text = p.read_text()
    p.write_text(re.sub(r"(?:@unstable\([^)]*\)\s*)?world [\w-]+ \{[^{}]*\}\n?", "", text))
PY
printf 'package wasmgate:js-http;\nworld handler {\n  export wasi:http/incoming-handler@0.2.10;\n}\n' \
    > "$wit/world.wit"
node "$helper" "$app" "$wit" handler "$out"
