"""`drl-trading backtest` on a tiny trained model: `--fee-bps` stresses the costs, and a range
over the model's own training data is warned about."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import pytest
from typer.testing import CliRunner, Result

from drl_trading.app.settings import load_settings
from drl_trading.cli.app import app
from drl_trading.common.domain import Symbol, TimeRange
from drl_trading.testing.tiny_training import ingest_and_train, tiny_training_settings
from drl_trading.training.core.service import TrainingResult

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SYMBOL = Symbol("BTCUSDT")
RANGE = TimeRange.parse("2024-01-01", "2024-01-11")
# a 256-step policy's confidences sit near 1/3, under the example strategy's 0.4 minimum: let
# every signal through, or both backtests would hold a flat book and pay no fees at all
ENV = {"COLUMNS": "400", "DRL_TRADING_STRATEGY__PARAMS": '{"min_confidence": 0.0}'}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainingResult]:
    home = tmp_path_factory.mktemp("home")
    result = ingest_and_train(tiny_training_settings(home, timesteps=256), (SYMBOL,), RANGE)
    return home, result


def _backtest(home: Path, rng: TimeRange, *args: str) -> Result:
    return CliRunner().invoke(
        app,
        [
            *("--home", str(home), "backtest", "-m", "drl-example/1", "-s", str(SYMBOL)),
            *("--start", rng.start.isoformat(), "--end", rng.end.isoformat(), *args),
        ],
        env=ENV,
    )


def _report_path(res: Result) -> Path:
    match = re.search(r"metrics:\s+(\S+\.json)", res.stdout)
    assert match is not None, res.output[-3000:]
    return Path(match.group(1))


def _report(res: Result) -> dict[str, object]:
    payload: dict[str, object] = json.loads(_report_path(res).read_text())
    return payload


def test_fee_override_costs_more_than_the_models_own_fees(
    trained: tuple[Path, TrainingResult],
) -> None:
    home, result = trained
    test = result.splits.test
    default = _backtest(home, test)
    stressed = _backtest(home, test, "--fee-bps", "50")
    assert default.exit_code == 0, default.output[-3000:]
    assert stressed.exit_code == 0, stressed.output[-3000:]
    assert _report_path(default) != _report_path(stressed)  # even within the same second

    m = result.predictor.manifest
    assert f"costs: fee {m.fee_bps:g} bps, slippage {m.slippage_bps:g} bps\n" in default.stdout
    assert f"costs: fee 50 bps, slippage {m.slippage_bps:g} bps (overridden)" in stressed.stdout
    base = _report(default)["backtest"]["symbols"][SYMBOL]["model"]  # type: ignore[index]
    high = _report(stressed)["backtest"]["symbols"][SYMBOL]["model"]  # type: ignore[index]
    assert base["n_trades"] > 0
    assert high["fees_paid"] > base["fees_paid"]
    assert high["total_return"] < base["total_return"]
    run_id = re.search(r"MLflow run id: ([0-9a-f]{32})", stressed.stdout)
    assert run_id is not None
    client = mlflow.MlflowClient(load_settings(home=home).mlflow_tracking_uri)
    params = client.get_run(run_id.group(1)).data.params
    assert params["fee_bps"] == "50.0" and params["costs_overridden"] == "true"
    assert params["range_overlap"] == "none"
    # the test range is out of sample: no overlap warning
    assert "overlaps" not in default.stderr

    negative = _backtest(home, test, "--fee-bps", "-1")
    assert negative.exit_code == 2
    assert "--fee-bps" in negative.stderr


def test_backtesting_over_the_training_range_warns(trained: tuple[Path, TrainingResult]) -> None:
    home, result = trained
    train = result.splits.final.train
    res = _backtest(home, train)
    assert res.exit_code == 0, res.output[-3000:]
    warning = " ".join(res.stderr.split())  # the console may wrap a long line
    assert f"warning: {SYMBOL}: the backtest range {train.start:%Y-%m-%d %H:%M}" in warning
    assert f"overlaps the model's train range {train.start:%Y-%m-%d %H:%M}" in warning
    assert "in-sample" in warning
    payload = _report(res)
    assert payload["range_overlap"]["overlaps"][0]["part"] == "train"  # type: ignore[index]
