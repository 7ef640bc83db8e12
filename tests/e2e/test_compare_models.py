"""`drl-trading compare` on two tiny trained models in one home: the side-by-side table, the
difference line, both report files and the MLflow run; an unknown model and one version
twice are refused in one line."""

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
from drl_trading.testing.tiny_training import (
    PERMISSIVE_GATE,
    ingest_and_train,
    tiny_quickstart_config,
)
from drl_trading.training.core.service import TrainingResult

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SYMBOL = Symbol("BTCUSDT")
RANGE = TimeRange.parse("2024-01-01", "2024-01-05")
ENV = {"COLUMNS": "400", "DRL_TRADING_STRATEGY__PARAMS": '{"min_confidence": 0.0}'}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainingResult]:
    """Two tiny models of one name in one home (seeds 1 and 2): v1, and v2 the champion."""
    home = tmp_path_factory.mktemp("compare") / "home"
    config = tiny_quickstart_config(64)
    last = None
    for seed in (1, 2):
        training = config["training"] | {"gate": PERMISSIVE_GATE, "seed": seed}
        settings = load_settings(home=home, preprocess=config["preprocess"], training=training)
        last = ingest_and_train(settings, (SYMBOL,), RANGE)
    assert last is not None and last.model.version == "2" and last.champion
    return home, last


def _compare(home: Path, rng: TimeRange, *args: str) -> Result:
    return CliRunner().invoke(
        app,
        [
            *("--home", str(home), "compare", *args, "-s", str(SYMBOL)),
            *("--start", rng.start.isoformat(), "--end", rng.end.isoformat()),
        ],
        env=ENV,
    )


def test_two_versions_side_by_side(trained: tuple[Path, TrainingResult]) -> None:
    home, result = trained
    test = result.splits.test
    done = _compare(home, test, "drl-example/1", "drl-example@champion", "--fee-bps", "3")
    assert done.exit_code == 0, done.output[-3000:]
    out = done.stdout
    assert "A: models:/drl-example/1" in out and "B: models:/drl-example/2" in out
    for row in ("Sharpe 90% CI", "PSR vs 0", "Sortino", "total return", "CAGR", "max drawdown"):
        assert row in out, row
    for row in ("volatility", "trades", "exposure", "best baseline"):
        assert row in out, row
    line = re.search(
        r"A - B Sharpe (-?\d+\.\d\d) \(90% CI (-?\d+\.\d\d)\.\.(-?\d+\.\d\d)\), "
        r"P\(A > B\) (\d\.\d\d): (not distinguishable at 90%|A is better|B is better)",
        out,
    )
    assert line is not None, out
    assert float(line.group(2)) <= float(line.group(1)) <= float(line.group(3))
    assert "annualised with 105,120 5m bars a year (market calendar 24/7)" in out
    assert "costs: fee 3 bps, slippage" in out and "for both (overridden)" in out
    # both trained on the compared range's neighbours: the test range is out of sample
    assert "warning" not in done.output

    html = Path(re.search(r"report:\s+(\S+\.html)", out).group(1))  # type: ignore[union-attr]
    js = Path(re.search(r"metrics:\s+(\S+\.json)", out).group(1))  # type: ignore[union-attr]
    assert html.parent == js.parent == load_settings(home=home).reports_dir
    assert html.read_text().count("<svg") == 2
    payload = json.loads(js.read_text())
    assert payload["models"] == {"a": "models:/drl-example/1", "b": "models:/drl-example/2"}
    diff = payload["comparison"]["difference"]
    assert f"{diff['sharpe']:.2f}" == line.group(1)
    assert f"{diff['probability_a_better']:.2f}" == line.group(4)

    run_id = re.search(r"MLflow run id: ([0-9a-f]{32})", out)
    assert run_id is not None
    client = mlflow.MlflowClient(load_settings(home=home).mlflow_tracking_uri)
    run = client.get_run(run_id.group(1))
    assert run.data.tags["kind"] == "compare"
    assert run.data.params["model_a"] == "models:/drl-example/1"
    assert run.data.params["model_b"] == "models:/drl-example/2"
    assert run.data.metrics["difference.sharpe"] == pytest.approx(diff["sharpe"])
    artifacts = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "compare")}
    assert artifacts == {html.name, js.name}


def test_an_overlap_with_either_models_training_is_warned_about_by_name(
    trained: tuple[Path, TrainingResult],
) -> None:
    home, _ = trained
    done = _compare(home, RANGE, "drl-example/1", "drl-example/2")
    assert done.exit_code == 0, done.output[-3000:]
    assert "warning: A (models:/drl-example/1): BTCUSDT: the backtest range" in done.stderr
    assert "warning: B (models:/drl-example/2): BTCUSDT: the backtest range" in done.stderr


def test_an_unknown_model_and_one_version_twice_are_refused_in_one_line(
    trained: tuple[Path, TrainingResult],
) -> None:
    home, result = trained
    test = result.splits.test
    unknown = _compare(home, test, "drl-example/1", "drl-example/9")
    assert unknown.exit_code == 1
    assert unknown.stderr.startswith("error: ") and unknown.stderr.count("\n") == 1
    assert "drl-example" in unknown.stderr

    same = _compare(home, test, "drl-example/2", "drl-example@champion")
    assert same.exit_code == 2
    assert same.stderr == (
        "error: drl-example/2 and drl-example@champion both resolve to models:/drl-example/2: a "
        "model compared with itself differs by nothing; give two versions (e.g. NAME/1 "
        "NAME@champion)\n"
    )
