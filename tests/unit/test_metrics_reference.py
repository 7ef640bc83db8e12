"""Our metrics against two maintained reference libraries, quantstats and empyrical-reloaded, on
the same returns: every figure both define, to 1e-12.

The conventions (docs/training.md, "Metric conventions") map onto the libraries' arguments so
(``ppy`` = bars per year, ``r`` = `SimulationTrace.step_returns`):

* sharpe:            qs ``stats.sharpe(r, rf=0, periods=ppy, smart=False)``;
                     ep ``sharpe_ratio(r, risk_free=0, annualization=ppy)``
* sortino:           qs ``stats.sortino(r, rf=0, periods=ppy)``;
                     ep ``sortino_ratio(r, required_return=0, annualization=ppy)``
* annual_volatility: qs ``stats.volatility(r, periods=ppy)``;
                     ep ``annual_volatility(r, alpha=2.0, annualization=ppy)``
* cagr:              qs ``stats.cagr(r, compounded=True, periods=ppy)``;
                     ep ``cagr(r, annualization=ppy)``
* max_drawdown:      qs ``-stats.max_drawdown(r)``; ep ``-max_drawdown(r)`` (theirs negative)
* calmar:            qs ``stats.calmar(r, periods=ppy)``; ep ``calmar_ratio(r, annualization=ppy)``
* total_return:      qs ``stats.comp(r)``; ep ``cum_returns_final(r)``

Both use ddof=1 for the standard deviation, the downside deviation over all returns with a
threshold of 0 and sqrt(ppy) scaling, and skip NaN (our steps without capital).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from drl_trading.common.costs import CostModel
from drl_trading.evaluation.baselines import random_positions
from drl_trading.evaluation.metrics import PerformanceMetrics, compute_metrics
from drl_trading.evaluation.trace import SimulationTrace, simulate

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # their imports' deprecation noise is not ours to fix
    import empyrical
    import quantstats as qs

T0 = np.datetime64("2024-01-01T00:00", "us")
HOUR = np.timedelta64(3600, "s")
TOLERANCE = 1e-12


def _market(seed: int, n: int, drift: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(drift, 0.01, n + 1)))
    open_ = np.concatenate(([close[0]], close[:-1])) * np.exp(rng.normal(0.0, 0.001, n + 1))
    return T0 + np.arange(n + 1) * HOUR, open_, close


def _winning() -> SimulationTrace:
    times, open_, close = _market(seed=11, n=600, drift=0.0005)
    return simulate("UP", times, open_, close, np.ones(600), CostModel())


def _losing() -> SimulationTrace:
    times, open_, close = _market(seed=12, n=800, drift=0.0)
    positions = random_positions(800, seed=12)  # churn on a driftless walk: costs lose
    return simulate("CHURN", times, open_, close, positions, CostModel(fee_bps=10.0))


def _flat_stretches() -> SimulationTrace:
    """Long, flat, short in blocks of 50: returns are exactly 0 on the flat blocks."""
    times, open_, close = _market(seed=13, n=600, drift=-0.0002)
    blocks = np.repeat(np.array([1.0, 0.0, -1.0, 0.0] * 3), 50)
    return simulate("BLOCKS", times, open_, close, blocks, CostModel())


def _wiped_out() -> SimulationTrace:
    """A short through a bar that triples the price: bankrupt at bar 300 of 500."""
    times, open_, close = _market(seed=14, n=500, drift=0.0003)
    close[300:] *= 3.0
    open_[301:] *= 3.0
    return simulate("BUST", times, open_, close, np.full(500, -0.8), CostModel())


TRACES: dict[str, Callable[[], SimulationTrace]] = {
    "winning": _winning,
    "losing": _losing,
    "flat stretches": _flat_stretches,
    "wiped out": _wiped_out,
}
PERIODS = {"hourly 24/7": 8760.0, "daily 252": 252.0, "minutes 24/7": 525_600.0}


def _returns(trace: SimulationTrace) -> pd.Series:
    return pd.Series(trace.step_returns, index=pd.DatetimeIndex(trace.times[1:]))


def _reference(r: pd.Series, ppy: float) -> dict[str, tuple[float, float]]:
    """(quantstats, empyrical) per metric, each with the arguments that state our conventions."""
    periods = int(ppy)  # quantstats types it as int; every factor here is whole
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "sharpe": (
                qs.stats.sharpe(r, rf=0.0, periods=periods, annualize=True, smart=False),
                empyrical.sharpe_ratio(r, risk_free=0, annualization=ppy),
            ),
            "sortino": (
                qs.stats.sortino(r, rf=0, periods=periods, annualize=True, smart=False),
                empyrical.sortino_ratio(r, required_return=0, annualization=ppy),
            ),
            "annual_volatility": (
                qs.stats.volatility(r, periods=periods, annualize=True),
                empyrical.annual_volatility(r, alpha=2.0, annualization=ppy),
            ),
            "cagr": (
                qs.stats.cagr(r, rf=0.0, compounded=True, periods=periods),
                empyrical.cagr(r, annualization=ppy),
            ),
            "max_drawdown": (-qs.stats.max_drawdown(r), -empyrical.max_drawdown(r)),
            "calmar": (
                qs.stats.calmar(r, compounded=True, periods=periods),
                empyrical.calmar_ratio(r, annualization=ppy),
            ),
            "total_return": (qs.stats.comp(r), empyrical.cum_returns_final(r)),
        }


@pytest.mark.parametrize("ppy", PERIODS.values(), ids=PERIODS.keys())
@pytest.mark.parametrize("make", TRACES.values(), ids=TRACES.keys())
def test_metrics_agree_with_quantstats_and_empyrical(
    make: Callable[[], SimulationTrace], ppy: float
) -> None:
    trace = make()
    ours = compute_metrics(trace, periods_per_year=ppy)
    # CAGR raises the growth to the power ppy / n, which multiplies the relative rounding of
    # the growth (ours from the equity ratio, theirs from the product of the returns) by that
    exponent = max(1.0, ppy / trace.n_steps)
    for name, (by_quantstats, by_empyrical) in _reference(_returns(trace), ppy).items():
        mine = getattr(ours, name)
        rel = TOLERANCE * (exponent if name in ("cagr", "calmar") else 1.0)
        for library, theirs in (("quantstats", by_quantstats), ("empyrical", by_empyrical)):
            assert float(theirs) == pytest.approx(mine, rel=rel, abs=TOLERANCE), (
                f"{name} by {library}: {theirs!r}, ours {mine!r}"
            )


def test_the_series_cover_what_they_claim() -> None:
    """The cases are what their names say, so the comparison above exercises each."""
    metrics: dict[str, PerformanceMetrics] = {
        name: compute_metrics(make(), periods_per_year=8760.0) for name, make in TRACES.items()
    }
    assert metrics["winning"].total_return > 0
    assert metrics["losing"].total_return < -0.05
    assert (_returns(_flat_stretches()) == 0.0).sum() >= 250
    bust = _wiped_out()
    assert bust.equity[-1] == 0.0
    assert np.isnan(bust.step_returns).sum() == 500 - 300
    # the blown-up trace ranks below the merely losing one, as quantstats ranks it
    assert metrics["wiped out"].sharpe < metrics["losing"].sharpe < 0.0
    assert metrics["wiped out"].sortino < metrics["losing"].sortino < 0.0


def test_quantstats_reading_our_equity_curve_as_prices_finds_our_returns() -> None:
    """The equity curve itself, handed to quantstats as a price series (its pct_change, 0/0 a
    missing value), gives the same ratios: our step returns are the curve's returns."""
    for make in TRACES.values():
        trace = make()
        ours = compute_metrics(trace, periods_per_year=8760.0)
        prices = pd.Series(100.0 * trace.equity, index=pd.DatetimeIndex(trace.times))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sharpe = qs.stats.sharpe(prices, periods=8760)
            sortino = qs.stats.sortino(prices, periods=8760)
            volatility = qs.stats.volatility(prices, periods=8760)
        assert sharpe == pytest.approx(ours.sharpe, rel=TOLERANCE, abs=TOLERANCE)
        assert sortino == pytest.approx(ours.sortino, rel=TOLERANCE, abs=TOLERANCE)
        assert volatility == pytest.approx(ours.annual_volatility, rel=TOLERANCE, abs=TOLERANCE)
