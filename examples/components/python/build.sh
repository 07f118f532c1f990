#!/usr/bin/env bash
# Build greeter-py.wasm with componentize-py (PyPI), installed into its own venv under
# <repo>/.cache by ../tools/setup-componentize-py.sh, so the project's environment stays as
# tools/setup.sh made it. About 20 s and 18 MB: the component carries a CPython.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
componentize_py="$(bash "$here/../tools/setup-componentize-py.sh")"
cd "$here"
"$componentize_py" -d ../greeter.wit -w greeter componentize app -o greeter-py.wasm
