#!/usr/bin/env bash
# Build greeter-py.wasm with componentize-py (PyPI), installed into its own venv under
# <repo>/.cache so the project's environment stays as tools/setup.sh made it. About 20 s and
# 18 MB: the component carries a CPython.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
venv="$repo/.cache/componentize-py"
if [ ! -x "$venv/bin/componentize-py" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/pip" install --quiet componentize-py==0.25.1
fi
cd "$here"
"$venv/bin/componentize-py" -d ../greeter.wit -w greeter componentize app -o greeter-py.wasm
