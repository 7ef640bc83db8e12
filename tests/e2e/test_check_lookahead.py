"""`drl-trading check lookahead` as a user runs it: on bars ingested into a fresh home, a causal
feature set passes with one line and exit 0, nothing is written to the stores, and a range with
no bars is one line and exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from drl_trading.common.adapter.duckdb_market_data import DuckDBMarketData
from drl_trading.common.domain import Timeframe, parse_time
from drl_trading.strategy.feature_set import (
    RSI,
    FeatureSetSpec,
    LogReturns,
    TimeframeFeatures,
    VolumeZScore,
)
from drl_trading.testing.cli_process import run_cli, said

pytestmark = [pytest.mark.e2e]

SPEC = FeatureSetSpec(
    name="quick",
    base_timeframe=Timeframe.M5,
    timeframes=tuple(
        TimeframeFeatures(
            timeframe=tf,
            indicators=(LogReturns(horizons=(1, 3)), RSI(period=5), VolumeZScore(window=5)),
        )
        for tf in (Timeframe.M5, Timeframe.H1)
    ),
)


def test_a_causal_feature_set_passes_and_nothing_is_written(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = tmp_path / "config.yaml"
    config.write_text(f"preprocess:\n  feature_set: {SPEC.model_dump_json()}\n", encoding="utf-8")
    rng = ("--start", "2024-01-02", "--end", "2024-01-04")
    ingest = run_cli(
        home, "ingest", "--source", "synthetic", "-s", "BTCUSDT", *rng, config=config,
        inherit_settings=False,
    )  # fmt: skip
    assert ingest.returncode == 0, said(ingest)
    check = run_cli(
        home, "check", "lookahead", "-s", "BTCUSDT", *rng, "--cuts", "3", config=config,
        inherit_settings=False,
    )  # fmt: skip
    assert check.returncode == 0, said(check)
    text = said(check)
    n = len(SPEC.columns)  # 8 indicator columns and 4 time encodings
    assert text.startswith(
        f"no look-ahead: 3 cuts, {n} features and {n + 3} observation entries x "
    ), text
    assert f"(BTCUSDT, 1m bars, feature set quick {SPEC.version})" in text
    store = DuckDBMarketData(home / "market.duckdb")
    try:  # only the ingested 1m bars: the check resampled nothing into the store
        start, end = parse_time("2023-12-01"), parse_time("2024-01-04")
        assert "BTCUSDT" in store.coverages(Timeframe.M1, start, end)
        assert not store.coverages(Timeframe.M5, start, end)
    finally:
        store.close()

    empty = run_cli(
        home, "check", "lookahead", "-s", "BTCUSDT", "--start", "2025-01-01", "--end",
        "2025-01-02", config=config, inherit_settings=False,
    )  # fmt: skip
    assert empty.returncode == 1
    assert "BTCUSDT: no 1m bars stored in 2025-01-01 00:00..2025-01-02 00:00 UTC" in said(empty)
    assert "Traceback" not in empty.stdout + empty.stderr
