#!/usr/bin/env bash
# Build echo-js.wasm with componentize-js 0.23 (StarlingMonkey; npm, installed by
# examples/components/tools/setup-npm.sh). About 20 s; 14 MB (it carries SpiderMonkey), so it is
# not checked in. Usage: build.sh [OUT.wasm]
#
# StarlingMonkey is built against WASI 0.2.10 and exports wasi:http/incoming-handler@0.2.10, so
# the world must name that version. jco ships 0.2.10 WIT for io, clocks and sockets only: the
# other packages are jco's 0.2.12 files relabelled 0.2.10 (the 0.2 line only adds gated items),
# with their worlds removed (only the interfaces are needed).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
out="${1:-$here/echo-js.wasm}"
tools="$(bash "$repo/examples/components/tools/setup-npm.sh")"
cp "$here/componentize.mjs" "$tools/"
builtin="$tools/node_modules/@bytecodealliance/jco/lib/wit/builtin"
wit="$(mktemp -d)"
trap 'rm -rf "$wit"' EXIT
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
printf 'package wasmgate:js-echo;\nworld echo {\n  export wasi:http/incoming-handler@0.2.10;\n}\n' \
    > "$wit/world.wit"
node "$tools/componentize.mjs" "$here/app.js" "$wit" echo "$out"
