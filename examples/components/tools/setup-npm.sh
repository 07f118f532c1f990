#!/usr/bin/env bash
# Install the npm build tools (jco with its bundled wasm-tools, AssemblyScript) into
# <repo>/.cache/component-tools once, and copy the helper scripts beside them (node resolves
# packages from a script's own directory). Prints that directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
dest="${WASMGATE_COMPONENT_TOOLS:-$repo/.cache/component-tools}"
mkdir -p "$dest"
if ! cmp -s "$here/package-lock.json" "$dest/package-lock.json" || [ ! -d "$dest/node_modules" ]; then
    cp "$here/package.json" "$here/package-lock.json" "$dest/"
    (cd "$dest" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
cp "$here/core2component.mjs" "$dest/"
echo "$dest"
