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
if [ "$#" -gt 0 ]; then
  # arguments given: one pytest run with them, as asked
  .venv/bin/python -m pytest --durations=25 "$@"
else
  # the unit tests run on fakes (a few reach the MLflow server, each in its own experiment):
  # spread over every core (pytest-xdist); the contract, integration and end-to-end tests share
  # the local servers and time replays against the clock, so they run one at a time
  # (both run whatever the first gives, so one run reports every failure)
  status=0
  .venv/bin/python -m pytest -n auto --durations=10 tests/unit || status=$?
  # (in the order one run over tests/ takes them)
  .venv/bin/python -m pytest --durations=25 tests/contracts tests/e2e tests/integration || status=$?
  exit "$status"
fi
