#!/usr/bin/env bash
# Set up the virtualenv, then run lint, type checks and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks strategies
.venv/bin/ruff format --check src tests benchmarks strategies
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
