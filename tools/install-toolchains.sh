#!/usr/bin/env bash
# Install the guest toolchains that examples/languages/ needs but PyPI does not provide, from
# Debian packages only (idempotent: what is present is not installed again; needs root for apt):
#
#   Rust  rustc + cargo 1.63 and libstd-rust-dev-wasm32 (the wasm32-wasi std), lld-14 (wasm-ld)
#   Go    golang-1.23-go from bookworm-backports (bookworm's own Go 1.19 has no GOOS=wasip1)
#   Redis redis-server (the state tests start one on a loopback port; tests/test_state*.py)
#
# C, C++ and Zig come from PyPI `ziglang` (tools/setup.sh installs it), WAT from `wasmtime`, and
# AssemblyScript from npm: examples/languages/build.py runs `npm ci` on first use. This script
# only checks that node and npm are there, and installs Debian's if they are not (bookworm's
# Node 18 is older than the Node 20 that assemblyscript 0.28 declares and was checked with).
#
# Then the wasi:http components' tools, under <repo>/.cache (no root needed; both are no-ops
# when the pinned versions are there): jco 1.35 with componentize-js (npm ci of
# examples/components/tools/package-lock.json) and componentize-py 0.25.1 (PyPI, in a venv of
# its own). The builds would install them on first use too; doing it here puts the time and any
# registry failure in this step.
#
# `apt-get update` runs at most once, and only when something has to be installed.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"

component_tools() {
    local started tools componentize_py
    started=$(date +%s)
    tools="$(bash "$repo/examples/components/tools/setup-npm.sh")"
    componentize_py="$(bash "$repo/examples/components/tools/setup-componentize-py.sh")"
    [ -d "$tools/node_modules/@bytecodealliance/componentize-js" ]
    echo "install-toolchains: jco, componentize-js (npm) and $("$componentize_py" --version)" \
        "are in ${tools%/*} ($(($(date +%s) - started)) s)"
}

need=()
[ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] || need+=(rustc cargo)
[ -d /usr/lib/rustlib/wasm32-wasi/lib ] || need+=(libstd-rust-dev-wasm32)
command -v wasm-ld-14 >/dev/null 2>&1 || [ -x /usr/lib/llvm-14/bin/wasm-ld ] || need+=(lld-14)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
need_go=0
[ -x /usr/lib/go-1.23/bin/go ] || need_go=1

if [ ${#need[@]} -eq 0 ] && [ $need_go -eq 0 ]; then
    echo "install-toolchains: Rust (wasm32-wasi), Go 1.23, npm and redis-server are present"
    component_tools
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-toolchains: installing ${need[*]} $([ $need_go -eq 1 ] && echo golang-1.23-go) needs root" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
started=$(date +%s)
if [ $need_go -eq 1 ] && ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
    cat > /etc/apt/sources.list.d/bookworm-backports.sources <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
fi
apt-get update -qq
if [ ${#need[@]} -gt 0 ]; then
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ $need_go -eq 1 ]; then
    apt-get install -y -qq --no-install-recommends -t bookworm-backports golang-1.23-go >/dev/null
fi
echo "install-toolchains: installed ${need[*]} $([ $need_go -eq 1 ] && echo golang-1.23-go)" \
    "in $(($(date +%s) - started)) s"
component_tools
