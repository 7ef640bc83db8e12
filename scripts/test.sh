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
  # spread over every core (pytest-xdist). The contract, integration and end-to-end tests reach
  # the local servers, each in its own schema, namespace, project and experiment: they run on
  # up to 4 workers, a module on one worker (its fixtures built once); those marked `alone`
  # (a replay paced against the clock, a restart of a shared server) run after, one at a time
  # (all three run whatever the ones before give, so one run reports every failure)
  status=0
  .venv/bin/python -m pytest -n auto --durations=10 tests/unit || status=$?
  workers=$(.venv/bin/python -c "import os; print(min(4, os.cpu_count() or 1))")
  .venv/bin/python -m pytest -n "$workers" --dist loadfile -m "not alone" --durations=25 \
    tests/contracts tests/e2e tests/integration || status=$?
  .venv/bin/python -m pytest -m alone --durations=10 tests/e2e tests/integration || status=$?
  exit "$status"
fi
