#!/usr/bin/env bash
# Set up the virtualenv and the local server stack (PostgreSQL, Redis, Kafka, MLflow; no Docker:
# scripts/stack.sh), then run lint, type checks, the import contracts (pyproject.toml,
# [tool.importlinter]) and the whole test suite. Tests that need a
# server run against the real one; with CI=true a missing server fails them instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/stack.sh up
.venv/bin/ruff check src tests benchmarks strategies
.venv/bin/ruff format --check src tests benchmarks strategies
.venv/bin/mypy
.venv/bin/lint-imports --no-cache
.venv/bin/python -m pytest --durations=25 "$@"
