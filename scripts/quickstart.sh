#!/usr/bin/env bash
# Set up the virtualenv, then run the whole offline workflow on synthetic data through the bus:
# ingest -> preprocess -> train -> register in MLflow -> gate -> backtest report.
# Extra arguments go to `drl-trading quickstart` (e.g. --edge 0 for a pure random walk the gate
# must refuse, --timesteps 20000, --source file --path ...).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/drl-trading quickstart "$@"
