"""`compare_models` on an in-memory registry: two packages drawn at random (numpy layers, no
training) compared on stored synthetic features of two symbols, and each refusal with the
message (and exit code) the CLI prints."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from drl_trading.app.model_backtest import BacktestError, backtest_model
from drl_trading.app.model_compare import CompareError, compare_models
from drl_trading.app.offline_workflow import OfflineWorkflow
from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.common.adapter.memory_registry import InMemoryRegistry
from drl_trading.common.domain import Symbol, TimeRange
from drl_trading.common.errors import EXIT_USAGE
from drl_trading.evaluation.comparison import shared_returns
from drl_trading.evaluation.portfolio import portfolio_step_returns
from drl_trading.evaluation.statistics import sharpe_ratio
from drl_trading.ingest.core.service import TrainingDataRequest
from tests.unit.test_model_backtest import _manifest, _register

SYMBOLS = [Symbol("BTCUSDT"), Symbol("ETHUSDT")]
RANGE = TimeRange.parse("2024-01-01", "2024-01-16")
COMPARED = TimeRange.parse("2024-01-10", "2024-01-16")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> AppSettings:
    """A home with both symbols' bars and default features stored over RANGE (the model's
    signal check lets every decision through, so both trade)."""
    home = tmp_path_factory.mktemp("compare") / "home"
    s = load_settings(home=home, strategy={"params": {"min_confidence": 0.0}})
    request = TrainingDataRequest(tuple(SYMBOLS), RANGE)
    with OfflineWorkflow.open(s) as workflow:
        workflow.ingest("synthetic", None, request, request_preprocessing=True)
        assert workflow.run(request.request_id).succeeded
    return s


def test_two_models_are_compared_on_the_same_bars_reported_and_logged(
    settings: AppSettings, tmp_path: Path
) -> None:
    registry = InMemoryRegistry(tmp_path / "registry")
    manifest = _manifest(settings)
    ref_a = _register(registry, tmp_path, manifest, seed=1)
    ref_b = _register(registry, tmp_path, replace(manifest, fee_bps=1.0), seed=2)

    done = compare_models(settings, ref_a, ref_b, SYMBOLS, COMPARED, registry=registry)

    c = done.comparison
    assert (c.a.name, c.b.name) == ("models:/drl-test/1", "models:/drl-test/2")
    # the equal-weight portfolio of both symbols, on the steps both backtests have
    times, ra, rb = shared_returns(done.runs[0].result, done.runs[1].result)
    assert c.steps == len(times) > 100
    assert np.array_equal(times, portfolio_step_returns(done.runs[0].result)[0])
    assert c.a.sharpe == pytest.approx(sharpe_ratio(ra, c.periods_per_year))
    assert c.b.sharpe == pytest.approx(sharpe_ratio(rb, c.periods_per_year))
    assert c.a.ci_lower < c.a.sharpe < c.a.ci_upper
    assert c.a.n_trades == sum(s.model.n_trades for s in done.runs[0].result.symbols) > 0
    assert c.sharpe.lower <= c.sharpe.difference <= c.sharpe.upper
    labels = [row[0] for row in c.rows()]
    assert labels[:3] == ["Sharpe (annualised from 6.0 days)", "Sharpe 90% CI", "PSR vs 0"]
    assert "best baseline" in labels and "exposure" in labels
    assert dict((r[0], r[1:]) for r in c.rows())["CAGR"] == ("n/a (range < 30 days)",) * 2
    assert c.difference_line().startswith(
        f"A - B Sharpe {c.sharpe.difference:.2f} (90% CI {c.sharpe.lower:.2f}.."
    )
    # each model pays its own costs
    assert done.costs_line == (
        "costs: each model's own: A fee 5 bps, slippage 2 bps; B fee 1 bps, slippage 2 bps"
    )
    assert done.runs[1].result.costs is not None and done.runs[1].result.costs.fee_bps == 1.0
    # both in-sample checks are named (the packages record no ranges)
    assert [w[:22] for w in done.warnings] == ["A (models:/drl-test/1)", "B (models:/drl-test/2)"]

    assert done.html_path.parent == done.json_path.parent == settings.reports_dir
    assert done.html_path.name.startswith("drl-test-v1-vs-drl-test-v2-compare-")
    html = done.html_path.read_text()
    assert html.count("<svg") == 2 and "A - B Sharpe" in html and "models:/drl-test/2" in html
    assert "http" not in html.replace("http-equiv", "")  # self-contained
    payload = json.loads(done.json_path.read_text())
    assert payload["models"] == {"a": "models:/drl-test/1", "b": "models:/drl-test/2"}
    assert payload["comparison"]["difference"]["sharpe"] == pytest.approx(c.sharpe.difference)
    assert set(payload["backtests"]["a"]["symbols"]) == set(SYMBOLS)

    (run,) = registry.find_runs({"kind": "compare"})
    assert run.run_id == done.run_id
    logged = registry.runs[done.run_id]
    assert logged.tags["model_a"] == "models:/drl-test/1"
    assert logged.tags["model_b"] == "models:/drl-test/2"
    metrics = logged.latest_metrics()
    assert metrics["difference.sharpe"] == pytest.approx(c.sharpe.difference)
    assert metrics["a.sharpe"] == pytest.approx(c.a.sharpe)
    assert metrics["b.ci_upper"] == pytest.approx(c.b.ci_upper)


def test_an_override_applies_to_both_and_a_model_compares_like_its_backtest(
    settings: AppSettings, tmp_path: Path
) -> None:
    registry = InMemoryRegistry(tmp_path / "registry")
    manifest = _manifest(settings)
    ref_a = _register(registry, tmp_path, manifest, seed=1)
    ref_b = _register(registry, tmp_path, replace(manifest, fee_bps=1.0), seed=2)
    sym = SYMBOLS[:1]

    done = compare_models(
        settings, ref_a, ref_b, sym, COMPARED, registry=registry, fee_bps=20.0, confidence=0.8
    )

    assert done.costs_line == "costs: fee 20 bps, slippage 2 bps for both (overridden)"
    alone = backtest_model(settings, ref_b, sym, COMPARED, registry=registry, fee_bps=20.0)
    (b,) = done.runs[1].result.symbols
    assert b.model == alone.result.symbols[0].model
    assert done.comparison.sharpe.confidence == 0.8
    assert done.comparison.rows()[1][0] == "Sharpe 80% CI"


def test_refusals_name_the_problem(settings: AppSettings, tmp_path: Path) -> None:
    registry = InMemoryRegistry(tmp_path / "registry")
    manifest = _manifest(settings)
    ref = _register(registry, tmp_path, manifest, seed=1)
    hourly = replace(manifest, training={"data_timeframe": "1h"})
    other = _register(registry, tmp_path, hourly, seed=2)

    with pytest.raises(BacktestError) as unknown:
        compare_models(settings, ref, "drl-test@nope", SYMBOLS, COMPARED, registry=registry)
    assert not isinstance(unknown.value, CompareError)
    assert "drl-test@nope" in str(unknown.value) or "nope" in str(unknown.value)

    with pytest.raises(CompareError) as same:
        compare_models(settings, ref, "models:/drl-test/1", SYMBOLS, COMPARED, registry=registry)
    assert same.value.exit_code == EXIT_USAGE
    assert str(same.value).startswith(
        "drl-test/1 and models:/drl-test/1 both resolve to models:/drl-test/1: a model compared "
        "with itself"
    )

    with pytest.raises(CompareError) as bars:
        compare_models(settings, ref, other, SYMBOLS, COMPARED, registry=registry)
    assert str(bars.value) == (
        "models:/drl-test/1 was trained on data timeframe 1m, models:/drl-test/2 on 1h: their "
        "bars differ, so their returns do not line up; compare models of one data timeframe"
    )

    with pytest.raises(CompareError, match=r"--confidence must be a fraction in \(0, 1\)"):
        compare_models(settings, ref, other, SYMBOLS, COMPARED, registry=registry, confidence=1.5)
