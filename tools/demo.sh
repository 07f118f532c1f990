#!/usr/bin/env bash
# Set up, build the example WAGI guests and the language gallery, and serve them on
# http://127.0.0.1:3000 (Ctrl-C stops).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
.venv/bin/python examples/wagi/build.py
# The language gallery (/lang/): every handler whose toolchain is on this machine (Rust and Go come
# from tools/install-toolchains.sh, as root); /lang/ names the languages that were skipped and why.
echo "demo: building the language gallery (cached; the first build takes a minute or two)" >&2
.venv/bin/python examples/languages/build.py --demo .cache/demo ||
    echo "demo: some language guests did not build (see above); serving the others" >&2
exec .venv/bin/wasmgate serve -c .cache/demo/modules.toml -l "${WASMGATE_LISTEN:-127.0.0.1:3000}" "$@"
