"""`backtest_model` with the costs overridden (a stress test) and its range checked against the
model's train and validation ranges, on an in-memory registry and a package with random layers."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from drl_trading.app.model_backtest import BacktestError, ModelBacktest, backtest_model
from drl_trading.app.offline_workflow import OfflineWorkflow
from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.common.adapter.memory_registry import InMemoryRegistry
from drl_trading.common.domain import Timeframe
from drl_trading.ingest.core.service import TrainingDataRequest
from drl_trading.training.core.dataset import make_splits
from tests.unit.test_model_backtest import RANGE, SYM, TEST_RANGE, _manifest, _register

SPLITS = make_splits(RANGE, Timeframe.M5, 0.15, 0.15, timedelta(hours=1))


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> AppSettings:
    """A home with the synthetic features of ``RANGE`` stored once for the module."""
    settings = load_settings(home=tmp_path_factory.mktemp("home"))
    request = TrainingDataRequest((SYM,), RANGE)
    with OfflineWorkflow.open(settings) as workflow:
        workflow.ingest("synthetic", None, request, request_preprocessing=True)
        assert workflow.run(request.request_id).succeeded
    return settings


def _backtest(
    settings: AppSettings, tmp_path: Path, training: dict[str, object], **costs: float
) -> tuple[ModelBacktest, InMemoryRegistry]:
    registry = InMemoryRegistry(tmp_path / "registry")
    manifest = replace(_manifest(settings), training=training)
    ref = _register(registry, tmp_path, manifest)
    return backtest_model(settings, ref, [SYM], TEST_RANGE, registry=registry, **costs), registry


def test_higher_fees_cost_more_and_are_reported_and_logged(
    stored: AppSettings, tmp_path: Path
) -> None:
    training = {"symbols": [SYM], "splits": SPLITS.describe()}
    default, default_registry = _backtest(stored, tmp_path / "a", training)
    stressed, registry = _backtest(stored, tmp_path / "b", training, fee_bps=50.0)

    base, high = default.result.symbols[0].model, stressed.result.symbols[0].model
    assert base.n_trades > 0
    assert high.fees_paid > base.fees_paid
    assert high.total_return < base.total_return
    assert default.result.costs_text == "costs: fee 5 bps, slippage 2 bps"
    assert stressed.result.costs_text == "costs: fee 50 bps, slippage 2 bps (overridden)"

    payload = json.loads(stressed.json_path.read_text())
    assert payload["backtest"]["costs"] == {
        "fee_bps": 50.0,
        "slippage_bps": 2.0,
        "overridden": True,
    }
    assert payload["metadata"]["costs"] == (
        "fee 50 bps + slippage 2 bps per unit (overridden; the model's: fee 5 bps + slippage 2 bps)"
    )
    assert "fee 50 bps + slippage 2 bps per unit (overridden;" in stressed.html_path.read_text()
    params = registry.runs[stressed.run_id].params
    assert params["fee_bps"] == "50.0" and params["slippage_bps"] == "2.0"
    assert params["costs_overridden"] == "true"
    assert default_registry.runs[default.run_id].params["costs_overridden"] == "false"
    assert default_registry.runs[default.run_id].params["fee_bps"] == "5.0"


@pytest.mark.parametrize(
    ("costs", "option"),
    [({"fee_bps": -1.0}, "--fee-bps"), ({"slippage_bps": float("nan")}, "--slippage-bps")],
)
def test_invalid_cost_overrides_are_a_backtest_error(
    settings: AppSettings, tmp_path: Path, costs: dict[str, float], option: str
) -> None:
    registry = InMemoryRegistry(tmp_path / "registry")
    ref = _register(registry, tmp_path, _manifest(settings))
    with pytest.raises(BacktestError, match=rf"^{option} must be a finite number of basis points"):
        backtest_model(settings, ref, [SYM], TEST_RANGE, registry=registry, **costs)
    assert registry.find_runs({"kind": "backtest"}) == []


def test_a_range_over_the_validation_split_warns_in_both_reports_and_the_run(
    stored: AppSettings, tmp_path: Path
) -> None:
    training = {"symbols": [SYM], "splits": SPLITS.describe()}
    # TEST_RANGE (01-08 .. 01-16) starts in the train split and crosses validation
    done, registry = _backtest(stored, tmp_path, training)
    train, validation = done.warnings
    assert train.startswith("BTCUSDT: the backtest range 2024-01-08 00:00 .. 2024-01-16 00:00")
    assert "overlaps the model's train range 2024-01-01 00:00 .. " in train
    assert "overlaps the model's validation range" in validation
    payload = json.loads(done.json_path.read_text())
    assert payload["warnings"] == [train, validation]
    assert [o["part"] for o in payload["range_overlap"]["overlaps"]] == ["train", "validation"]
    html = done.html_path.read_text()
    assert "Warnings" in html and "overlaps the model&#x27;s train range" in html
    assert registry.runs[done.run_id].params["range_overlap"] == "train,validation"


def test_a_model_without_recorded_ranges_is_said_to_be_unchecked(
    stored: AppSettings, tmp_path: Path
) -> None:
    done, registry = _backtest(stored, tmp_path, {})
    (line,) = done.warnings
    assert "could not be checked" in line
    payload = json.loads(done.json_path.read_text())
    assert payload["range_overlap"]["checked"] is False
    assert registry.runs[done.run_id].params["range_overlap"] == "unchecked"
