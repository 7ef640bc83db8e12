"""The simple-rule baselines (time-series momentum, a moving-average cross): causal positions,
known answers on a hand-made series, the model's costs, their columns in a backtest, and
`best_baseline`."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from drl_trading.cli.context import console
from drl_trading.cli.training import print_backtest
from drl_trading.common.costs import CostModel
from drl_trading.common.market_series import MarketSeries
from drl_trading.evaluation.backtest import (
    LOGGED_METRICS,
    BacktestResult,
    SymbolBacktest,
    backtest,
    best_baseline,
)
from drl_trading.evaluation.baselines import (
    RuleLookbacks,
    metric_key,
    momentum_positions,
    random_baseline_name,
    rule_positions,
    sma_cross_positions,
)
from drl_trading.evaluation.metrics import compute_metrics
from drl_trading.evaluation.report import BacktestReport
from drl_trading.evaluation.report_html import render_report
from drl_trading.evaluation.trace import simulate
from drl_trading.policy.numpy_policy import NumpyPolicy
from drl_trading.policy.package import ModelManifest, ObsNormalization
from drl_trading.policy.predictor import Predictor
from drl_trading.training.core.config import TrainingSettings

T0 = np.datetime64("2024-01-01T00:00", "us")
HOUR = np.timedelta64(1, "h")
PPY = 24 * 365.0
COSTS = CostModel(10.0, 5.0)
#                 0  1  2  3  4  5  6  7  8  9
CLOSES = np.array([5, 6, 7, 6, 5, 4, 5, 6, 7, 7], dtype=np.float64)


def test_momentum_positions_on_a_hand_made_series() -> None:
    # decided at bars 0..8 (bar 9 has no next open); bar t compares close[t] with close[t-2]
    # t:           0  1  2  3  4   5   6  7  8
    # close[t-2]:  -  -  5  6  7   6   5  4  5
    # close[t]:    5  6  7  6  5   4   5  6  7
    expected = [0, 0, 1, 0, -1, -1, 0, 1, 1]  # equal closes (bar 6) are no signal
    np.testing.assert_array_equal(momentum_positions(CLOSES, 2, allow_short=True), expected)
    long_flat = [max(p, 0) for p in expected]
    np.testing.assert_array_equal(momentum_positions(CLOSES, 2, allow_short=False), long_flat)


def test_sma_cross_positions_on_a_hand_made_series() -> None:
    # fast = mean of the last 2 closes, slow = mean of the last 4, from bar 3 on
    # t:     3     4     5     6     7     8
    # fast:  6.5   5.5   4.5   4.5   5.5   6.5
    # slow:  6     6     5.5   5     5     5.5
    expected = [0, 0, 0, 1, -1, -1, -1, 1, 1]
    got = sma_cross_positions(CLOSES, 2, 4, allow_short=True)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(
        sma_cross_positions(CLOSES, 2, 4, allow_short=False), [max(p, 0) for p in expected]
    )
    # equal means are no signal, even where summing the same numbers rounds differently
    flat_run = np.full(30, 0.1)
    assert not sma_cross_positions(flat_run, 3, 7, allow_short=True).any()


def test_too_short_a_series_stays_flat_and_bad_lookbacks_are_refused() -> None:
    assert not momentum_positions(CLOSES[:3], 5, allow_short=True).any()
    assert len(momentum_positions(CLOSES[:1], 1, allow_short=True)) == 0
    assert not sma_cross_positions(CLOSES[:4], 2, 4, allow_short=True).any()
    with pytest.raises(ValueError, match="fast moving average \\(4 bars\\) must be shorter"):
        RuleLookbacks(sma_fast=4, sma_slow=4)
    with pytest.raises(ValueError, match="momentum lookback must be at least 1 bar, got 0"):
        RuleLookbacks(momentum=0)


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.floats(-0.05, 0.05), min_size=2, max_size=80),
    tail=st.lists(st.floats(-0.05, 0.05), min_size=80, max_size=80),
    cut=st.integers(0, 79),
    momentum=st.integers(1, 12),
    fast=st.integers(1, 6),
    extra=st.integers(1, 10),
    allow_short=st.booleans(),
)
def test_rule_positions_never_look_ahead(
    steps: list[float],
    tail: list[float],
    cut: int,
    momentum: int,
    fast: int,
    extra: int,
    allow_short: bool,
) -> None:
    """Rewriting every close after bar t leaves every position decided at or before t as is."""
    close = 100.0 * np.exp(np.cumsum(steps))
    t = min(cut, len(close) - 2)  # a bar with a decision (every bar but the last)
    changed = close.copy()
    changed[t + 1 :] = 100.0 * np.exp(np.cumsum(tail[: len(close) - t - 1]))
    lookbacks = RuleLookbacks(momentum, fast, fast + extra)
    before = rule_positions(close, lookbacks, allow_short)
    after = rule_positions(changed, lookbacks, allow_short)
    for name in before:
        assert len(before[name]) == len(close) - 1
        np.testing.assert_array_equal(before[name][: t + 1], after[name][: t + 1], err_msg=name)


def test_a_rule_pays_the_model_costs_on_each_position_change() -> None:
    positions = momentum_positions(CLOSES, 2, allow_short=True)
    open_ = np.concatenate(([CLOSES[0]], CLOSES[:-1]))
    times = T0 + np.arange(len(CLOSES)) * HOUR
    trace = simulate("TEST", times, open_, CLOSES, positions, COSTS)
    changes = np.flatnonzero(np.diff(positions, prepend=0.0) != 0)
    np.testing.assert_array_equal(np.flatnonzero(trace.cost > 0), changes)
    dq = np.diff(trace.units, prepend=0.0)
    fill = open_[1:] * (1 + np.sign(dq) * COSTS.slippage_bps / 1e4)
    np.testing.assert_allclose(trace.fees, np.abs(dq) * fill * COSTS.fee_bps / 1e4)


def _manifest(allow_short: bool) -> ModelManifest:
    return ModelManifest(
        algorithm="PPO",
        policy="MlpPolicy",
        action_mode="discrete",
        window=1,
        feature_columns=["f0", "f1"],
        feature_set={},
        feature_set_version="test",
        feature_view="test",
        base_timeframe="1h",
        strategy={"name": "test", "version": "1"},
        max_position=1.0,
        allow_short=allow_short,
        fee_bps=COSTS.fee_bps,
        slippage_bps=COSTS.slippage_bps,
    )


def _no_sb3_model() -> object:
    raise AssertionError("a backtest decides on the numpy layers")


def _predictor(allow_short: bool) -> Predictor:
    manifest = _manifest(allow_short)
    rng = np.random.default_rng(3)
    head = (rng.normal(0.0, 1.0, (3, manifest.obs_size)), rng.normal(0.0, 0.1, 3), None)
    return Predictor(
        manifest,
        ObsNormalization.identity(manifest.obs_size),
        fast=NumpyPolicy("logits", [], head),
        load_model=_no_sb3_model,
    )


def _series(n: int, seed: int = 0, drift: float = 0.0) -> MarketSeries:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(drift, 0.01, n)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    features = rng.normal(0.0, 1.0, (n, 2)).astype(np.float32)
    return MarketSeries("BTCUSDT", T0 + np.arange(n) * HOUR, features, open_, close)


LOOKBACKS = RuleLookbacks(momentum=6, sma_fast=3, sma_slow=12)
RULES = [LOOKBACKS.momentum_name, LOOKBACKS.sma_cross_name]


def test_a_backtest_reports_the_rules_after_the_other_baselines() -> None:
    series = _series(400)
    result = backtest(
        _predictor(allow_short=True),
        [series],
        costs=COSTS,
        periods_per_year=PPY,
        random_seeds=3,
        lookbacks=LOOKBACKS,
    )
    (sym,) = result.symbols
    assert RULES == ["momentum (6 bars)", "SMA cross (3/12 bars)"]
    assert list(sym.baselines) == ["buy-and-hold", "flat", random_baseline_name(3), *RULES]
    # each rule is its positions on the same bars, with the same costs, as the model
    for name, positions in rule_positions(series.close, LOOKBACKS, allow_short=True).items():
        assert (positions < 0).any() and (positions > 0).any()
        trace = simulate("BTCUSDT", series.times, series.open, series.close, positions, COSTS)
        assert sym.baselines[name] == compute_metrics(trace, PPY)
        assert sym.baselines[name].fees_paid > 0

    payload = json.loads(json.dumps(result.to_dict()))
    assert list(payload["symbols"]["BTCUSDT"]["baselines"]) == list(sym.baselines)

    logged = result.baseline_metrics()
    keys = ["buy-and-hold", "flat", "random", "momentum", "sma-cross"]
    assert list(logged) == [f"{k}.{a}" for k in keys for a in LOGGED_METRICS]
    assert logged["momentum.sharpe"] == sym.baselines[RULES[0]].sharpe
    per_symbol = result.baseline_metrics(per_symbol=True)
    assert per_symbol["BTCUSDT.sma-cross.total_return"] == sym.baselines[RULES[1]].total_return

    html = render_report(BacktestReport("t", "s", {}, [sym.section()]))
    for name in sym.baselines:
        assert f"<th>{name}</th>" in html

    with console.capture() as captured:
        print_backtest(result, "backtest")
    header = " ".join(captured.get().split())
    assert "momentum" in header and "SMA cross" in header


def test_a_long_only_model_gets_long_or_flat_rules() -> None:
    series = _series(400, seed=1)
    result = backtest(
        _predictor(allow_short=False),
        [series],
        costs=COSTS,
        periods_per_year=PPY,
        random_seeds=2,
        lookbacks=LOOKBACKS,
    )
    (sym,) = result.symbols
    for name, positions in rule_positions(series.close, LOOKBACKS, allow_short=False).items():
        assert (positions >= 0).all() and (positions > 0).any()
        trace = simulate("BTCUSDT", series.times, series.open, series.close, positions, COSTS)
        assert sym.baselines[name] == compute_metrics(trace, PPY)


def _with_sharpes(symbol: str, sharpes: dict[str, float]) -> SymbolBacktest:
    series = _series(50, seed=2)
    n = len(series) - 1
    trace = simulate(symbol, series.times, series.open, series.close, np.ones(n), COSTS)
    base = compute_metrics(trace, PPY)
    return SymbolBacktest(
        symbol=symbol,
        model=base,
        trace=trace,
        trades=[],
        baselines={name: replace(base, sharpe=v) for name, v in sharpes.items()},
        baseline_traces={},
        skipped_bars=0,
        mean_confidence=None,
    )


def test_best_baseline_is_the_highest_sharpe_per_symbol() -> None:
    a = _with_sharpes(
        "A",
        {
            "buy-and-hold": 0.5,
            "flat": 0.0,
            "random (5 seeds, mean)": 1.5,
            "momentum (20 bars)": 1.2,
        },
    )
    b = _with_sharpes("B", {"buy-and-hold": math.nan, "flat": 0.0, "momentum (20 bars)": -1.0})
    c = _with_sharpes("C", {"buy-and-hold": 0.7, "flat": 0.7})
    best = best_baseline(BacktestResult([a, b, c], bars=150, seconds=0.0))
    assert {s: (x.name, x.sharpe) for s, x in best.items()} == {
        "A": ("random (5 seeds, mean)", 1.5),  # the random row is its seeds' mean curve
        "B": ("flat", 0.0),  # a wiped-out curve's NaN Sharpe never wins
        "C": ("buy-and-hold", 0.7),  # a tie goes to the earlier column
    }
    with pytest.raises(ValueError, match="D: the backtest has no baselines"):
        best_baseline(BacktestResult([_with_sharpes("D", {})], bars=50, seconds=0.0))


def test_metric_keys_are_mlflow_safe() -> None:
    assert metric_key("buy-and-hold") == "buy-and-hold"
    assert metric_key(random_baseline_name(5)) == "random"
    assert metric_key("SMA cross (10/50 bars)") == "sma-cross"
    assert metric_key(RuleLookbacks().momentum_name) == "momentum"


def test_the_lookbacks_are_settings_and_a_fast_mean_not_below_the_slow_is_refused() -> None:
    assert TrainingSettings().baselines.lookbacks == RuleLookbacks(20, 10, 50)
    custom = TrainingSettings.model_validate({"baselines": {"momentum_bars": 48}})
    assert custom.baselines.lookbacks.momentum_name == "momentum (48 bars)"
    with pytest.raises(ValidationError, match="sma_fast_bars \\(50\\) must be less than"):
        TrainingSettings.model_validate({"baselines": {"sma_fast_bars": 50}})
