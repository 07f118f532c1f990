#!/usr/bin/env bash
# Set up, then run every check: lint (ruff), types (mypy --strict on src/), tests (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
echo "== ruff"; .venv/bin/ruff check
echo "== ruff format"; .venv/bin/ruff format --check
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/python -m pytest -q "$@"
