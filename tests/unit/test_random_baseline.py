"""The random baseline's seeds combined on their mean equity curve: one self-consistent row."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest

from drl_trading.common.costs import CostModel
from drl_trading.evaluation.baselines import (
    PER_SEED_FIELDS,
    aggregate_seeds,
    mean_curve,
    random_baseline,
    random_positions,
)
from drl_trading.evaluation.metrics import PerformanceMetrics, compute_metrics
from drl_trading.evaluation.trace import SimulationTrace, simulate

DAY = np.timedelta64(1, "D")
T0 = np.datetime64("2024-01-01T00:00", "us")
COSTS = CostModel(10.0, 2.0)


def _trace(close: list[float], positions: list[float], costs: CostModel) -> SimulationTrace:
    c = np.asarray(close, dtype=np.float64)
    open_ = np.concatenate(([c[0]], c[:-1]))  # gapless: each bar opens at the previous close
    times = T0 + np.arange(len(c)) * DAY
    return simulate("TEST", times, open_, c, np.asarray(positions, dtype=np.float64), costs)


def _agrees_with_itself(row: PerformanceMetrics, ppy: float) -> None:
    """CAGR compounds the row's own total return over its steps; Calmar is CAGR / drawdown."""
    assert row.cagr == pytest.approx((1.0 + row.total_return) ** (ppy / row.n_steps) - 1.0)
    assert math.copysign(1.0, row.cagr) == math.copysign(1.0, row.total_return)
    assert row.calmar == pytest.approx(row.cagr / row.max_drawdown)


def test_seeds_whose_mean_cagr_is_positive_aggregate_to_a_negative_row() -> None:
    # two days: up 10% then down 11%; one seed is long the first day, the other the second
    close = [100.0, 110.0, 97.9]
    free = CostModel(0.0, 0.0)
    up = _trace(close, [1.0, 0.0], free)
    down = _trace(close, [0.0, 1.0], free)
    ppy = 365.0
    seeds = [compute_metrics(up, ppy), compute_metrics(down, ppy)]
    assert [s.total_return for s in seeds] == pytest.approx([0.10, -0.11])
    # what averaging the ratios said: a CAGR in the millions of percent, for a losing agent
    assert np.mean([s.cagr for s in seeds]) > 1e5

    row, curve = aggregate_seeds([up, down], ppy)

    assert row.total_return == pytest.approx(-0.005)
    assert row.cagr < 0
    _agrees_with_itself(row, ppy)
    np.testing.assert_allclose(curve.equity, [1.0, 1.05, 0.995])


def test_the_row_is_the_mean_curve_and_trade_figures_are_per_seed_means() -> None:
    rng = np.random.default_rng(11)
    n = 300
    close = list(100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n + 1))))
    traces = [_trace(close, list(random_positions(n, seed)), COSTS) for seed in range(4)]
    ppy = 365.0
    seeds = [compute_metrics(t, ppy) for t in traces]

    row, curve = aggregate_seeds(traces, ppy)

    assert row.total_return == pytest.approx(np.mean([s.total_return for s in seeds]))
    assert row.fees_paid == pytest.approx(np.mean([s.fees_paid for s in seeds]))
    on_curve = compute_metrics(curve, ppy, trades=[])
    for f in fields(row):
        if f.name in PER_SEED_FIELDS:
            expected = float(np.mean([getattr(s, f.name) for s in seeds]))
            assert getattr(row, f.name) == pytest.approx(
                round(expected) if f.name == "n_trades" else expected
            ), f.name
        else:
            assert getattr(row, f.name) == getattr(on_curve, f.name), f.name
    _agrees_with_itself(row, ppy)
    # the curve's step PnL still adds up: equity moves by the legs of the mean units less costs
    np.testing.assert_allclose(
        np.diff(curve.equity), curve.gap_pnl - curve.cost + curve.bar_pnl, atol=1e-12
    )


def test_random_baseline_runs_its_seeds_through_the_given_simulation() -> None:
    rng = np.random.default_rng(5)
    n = 200
    close = list(100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n + 1))))

    def sim(positions: np.ndarray) -> SimulationTrace:
        return _trace(close, list(positions), COSTS)

    row, _ = random_baseline(sim, n, seeds=3, periods_per_year=365.0)
    by_hand, _ = aggregate_seeds([sim(random_positions(n, s)) for s in range(3)], 365.0)
    assert row == by_hand
    with pytest.raises(ValueError, match="at least one seed"):
        random_baseline(sim, n, seeds=0, periods_per_year=365.0)


def test_mean_curve_refuses_traces_of_different_bars() -> None:
    a = _trace([100.0, 101.0, 102.0], [1.0, 1.0], COSTS)
    b = _trace([100.0, 101.0, 102.0, 103.0], [1.0, 1.0, 1.0], COSTS)
    with pytest.raises(ValueError, match="share their bars"):
        mean_curve([a, b])
    with pytest.raises(ValueError, match="at least one trace"):
        mean_curve([])
