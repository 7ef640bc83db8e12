#!/usr/bin/env bash
# Set up the virtualenv and run the data path on synthetic data: ingest -> preprocess -> export.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/drl-trading ingest --source synthetic --symbols BTCUSDT,ETHUSDT \
  --start 2024-01-01 --end 2024-03-01 --preprocess
.venv/bin/drl-trading features export --symbols BTCUSDT,ETHUSDT \
  --start 2024-01-01 --end 2024-03-01 --out .drl-trading/exports/features.parquet
