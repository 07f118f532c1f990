#!/usr/bin/env bash
# Install the npm build tools (jco with its bundled wasm-tools, AssemblyScript) into
# <repo>/.cache/component-tools once, and copy the helper scripts beside them (node resolves
# packages from a script's own directory). Prints that directory. Safe to run from several
# builders at once (they take turns on a lock file).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
dest="${WASMGATE_COMPONENT_TOOLS:-$repo/.cache/component-tools}"
mkdir -p "$dest"
exec 9>"$dest.lock"  # several builders may start at once: one installs, the others wait
flock 9
if ! cmp -s "$here/package-lock.json" "$dest/package-lock.json" || [ ! -d "$dest/node_modules" ]; then
    cp "$here/package.json" "$here/package-lock.json" "$dest/"
    (cd "$dest" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
cmp -s "$here/core2component.mjs" "$dest/core2component.mjs" || cp "$here/core2component.mjs" "$dest/"
echo "$dest"
