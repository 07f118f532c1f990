#!/usr/bin/env bash
# Install componentize-py (PyPI, pinned) into its own venv, <repo>/.cache/componentize-py, once,
# so the project's environment stays as tools/setup.sh made it. Prints the path of the command.
# Safe to run from several builders at once (they take turns on a lock file).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
version=0.25.1
venv="${WASMGATE_COMPONENTIZE_PY:-$repo/.cache/componentize-py}"
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [ "$("$venv/bin/componentize-py" --version 2>/dev/null)" != "componentize-py $version" ]; then
    rm -rf "$venv"
    "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$version" >&2
fi
echo "$venv/bin/componentize-py"
