"""`drl-trading reproduce` against the MLflow server of the local stack: a tiny training run
trained again from its record gives the same figures on this machine, and a changed data
fingerprint or library version is named in the output, not ignored."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import mlflow
import polars as pl
import pytest
import yaml

from drl_trading.app.infrastructure import build_market_data
from drl_trading.app.reproduce import reproduce_run
from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.common.domain import Symbol, Timeframe, TimeRange
from drl_trading.testing.cli_process import run_cli
from drl_trading.testing.tiny_training import ingest_and_train, tiny_quickstart_config
from drl_trading.training.adapter.mlflow_recorded_runs import MlflowRecordedRuns
from drl_trading.training.core.provenance import RecordedRun
from tests.conftest import require_server

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SYMBOLS = (Symbol("BTCUSDT"),)
RANGE = TimeRange.parse("2024-01-01", "2024-01-04")
TRACKING = "http://127.0.0.1:5000"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A config file (embedded stores, the stack's MLflow server, an experiment of its own) and
    the run id of one tiny training that trades (continuous positions)."""
    require_server("MLflow", "127.0.0.1", 5000)
    root = tmp_path_factory.mktemp("reproduce")
    name = f"reproduce_{uuid.uuid4().hex[:8]}"
    config = tiny_quickstart_config(256)
    config["training"]["env"] |= {"n_envs": 2, "action_mode": "continuous"}
    config["training"]["registry"] = {
        "tracking_uri": TRACKING,
        "experiment": name,
        "model_name": f"drl-{name}",
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config | {"home": str(root / "home")}))
    result = ingest_and_train(load_settings(config_file=path), SYMBOLS, RANGE)
    yield path, result.run_id
    client = mlflow.MlflowClient(TRACKING)
    for model in (f"drl-{name}", f"drl-{name}-reproduce"):
        if client.search_registered_models(f"name = '{model}'"):
            client.delete_registered_model(model)
    for experiment in (name, f"{name}-reproduce"):
        exp = client.get_experiment_by_name(experiment)
        if exp is not None:
            client.delete_experiment(exp.experiment_id)


def _settings(config: Path) -> AppSettings:
    return load_settings(config_file=config)


def test_reproduce_gives_identical_figures(trained: tuple[Path, str]) -> None:
    config, run_id = trained
    home = _settings(config).home
    done = run_cli(home, "reproduce", run_id, config=config)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "test.sharpe" in done.stdout and "validation.sharpe" in done.stdout
    assert "same data, feature set, seeds and library versions" in done.stdout
    assert " no " not in done.stdout and "provenance:" not in done.stderr
    # the table shows full precision and every compared metric is exact
    result = reproduce_run(_settings(config), run_id)
    compared = [m for m in result.metrics if m.compared]
    assert len(compared) > 50 and all(m.verdict == "exact" for m in compared)
    assert any(m.name == "test.sharpe" and m.recorded != 0.0 for m in compared)
    assert result.differences == []


class _RecordedWithOldTorch:
    """The recorded run as if trained with another torch (what a user on a newer one sees)."""

    def __init__(self, runs: MlflowRecordedRuns, run_id: str) -> None:
        self.runs = runs
        self.run_id = run_id

    def recorded(self, run_id: str) -> RecordedRun:
        run = self.runs.recorded(run_id)
        if run_id != self.run_id or run.provenance is None:
            return run
        libraries = run.provenance.libraries | {"torch": "1.0.0"}
        return replace(run, provenance=replace(run.provenance, libraries=libraries))


def test_a_changed_library_version_is_named(trained: tuple[Path, str]) -> None:
    config, run_id = trained
    settings = _settings(config)
    runs = _RecordedWithOldTorch(MlflowRecordedRuns(settings.mlflow_tracking_uri), run_id)
    result = reproduce_run(settings, run_id, runs=runs)
    torch_now = result.reproduced.provenance.libraries["torch"]  # type: ignore[union-attr]
    assert result.differences == [f"library torch: recorded 1.0.0, now {torch_now}"]
    assert result.matches


def test_changed_stored_bars_are_named_and_fail(trained: tuple[Path, str]) -> None:
    config, run_id = trained
    settings = _settings(config)
    store = build_market_data(settings)
    try:
        five = Timeframe("5m")
        bars = store.read_bars(SYMBOLS[0], five, RANGE.start, RANGE.end)
        moved = bars.with_columns(
            (pl.col("close") * 1.01).alias("close"), (pl.col("high") * 1.01).alias("high")
        ).tail(bars.height // 2)
        store.upsert_bars(SYMBOLS[0], five, moved)
    finally:
        store.close()
    done = run_cli(settings.home, "reproduce", run_id, config=config)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "data fingerprint changed: the stored bars of BTCUSDT over 2024-01-01" in (
        done.stderr
    ), done.stderr[-3000:]
    assert " no " in done.stdout
