"""The evaluation report's pure figures: rolling Sharpe and monthly compounding against pandas and
quantstats on the same returns, the seeds' equity band, the rolling window's choice, the band's
reduction for drawing and the fills read from a trace."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from drl_trading.common.costs import CostModel
from drl_trading.evaluation.oos_series import (
    MANY_SEEDS,
    TradeMarks,
    drawdown,
    envelope,
    equity_band,
    equity_curve,
    monthly_returns,
    rolling_sharpe,
    rolling_window,
)
from drl_trading.evaluation.trace import simulate

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # their imports' deprecation noise is not ours to fix
    import quantstats as qs

PPY = 8760.0
T0 = np.datetime64("2023-11-20T01:00", "us")
HOUR = np.timedelta64(3600, "s")


def _returns(seed: int, n: int, drift: float = 0.0002) -> np.ndarray:
    return np.random.default_rng(seed).normal(drift, 0.01, n)


def _times(n: int) -> np.ndarray:
    return T0 + np.arange(n) * HOUR


def test_rolling_sharpe_is_pandas_rolling_and_quantstats() -> None:
    r = _returns(1, 3000)
    window = 168
    ours = rolling_sharpe(r, window, PPY)
    s = pd.Series(r, index=pd.DatetimeIndex(_times(len(r))))
    expected = (s.rolling(window).mean() / s.rolling(window).std() * np.sqrt(PPY)).to_numpy()
    assert np.isnan(ours[: window - 1]).all() and np.isnan(expected[: window - 1]).all()
    np.testing.assert_allclose(ours[window - 1 :], expected[window - 1 :], rtol=1e-9, atol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = qs.stats.rolling_sharpe(
            s, rf=0.0, rolling_period=window, annualize=True, periods_per_year=int(PPY)
        ).to_numpy()
    np.testing.assert_allclose(ours[window - 1 :], reference[window - 1 :], rtol=1e-9, atol=1e-9)


def test_rolling_sharpe_is_undefined_over_constant_windows_and_nan_counts_as_zero() -> None:
    r = np.concatenate([np.zeros(50), _returns(2, 50)])
    r[60] = np.nan
    out = rolling_sharpe(r, 10, PPY)
    assert np.isnan(out[:50]).all()  # flat windows: no Sharpe, not +-inf
    filled = np.nan_to_num(r)
    expected = pd.Series(filled).rolling(10).mean() / pd.Series(filled).rolling(10).std()
    np.testing.assert_allclose(out[59:], expected.to_numpy()[59:] * np.sqrt(PPY), rtol=1e-9)
    with pytest.raises(ValueError, match="at least 2"):
        rolling_sharpe(r, 1, PPY)


def test_the_rolling_window_is_30_days_where_four_fit_else_a_tenth() -> None:
    long = rolling_window(24 * 200, PPY)
    assert long.bars == 720 and "30-day" in long.text
    short = rolling_window(24 * 60, PPY)  # 60 days: fewer than four 30-day windows
    assert short.bars == 144 and "tenth" in short.text


def test_monthly_returns_compound_each_month_as_quantstats_does() -> None:
    n = 24 * 120  # Nov 20 .. mid-March: four partial-or-full months over a year boundary
    r = _returns(3, n)
    t = _times(n)
    start = datetime(2023, 11, 20, tzinfo=UTC)
    end = datetime(2024, 3, 19, 1, tzinfo=UTC)
    table = monthly_returns(t, r, start, end)
    s = pd.Series(r, index=pd.DatetimeIndex(t))
    expected = s.groupby([s.index.year, s.index.month]).apply(lambda x: (1 + x).prod() - 1)
    assert set(table.months) == set(expected.index)
    for key, value in expected.items():
        assert table.months[key] == pytest.approx(value, rel=1e-10, abs=1e-13)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = qs.stats.monthly_returns(s, eoy=True, compounded=True)
    reference.index = reference.index.astype(int)
    names = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    for (year, month), value in table.months.items():
        assert value == pytest.approx(reference.loc[year, names[month - 1]], rel=1e-10)
    for year, total in table.year_totals.items():
        assert total == pytest.approx(reference.loc[year, "EOY"], rel=1e-10)
    assert table.years == (2023, 2024)
    # the range starts on Nov 20 and ends in March: those two are marked, Dec..Feb are whole
    assert table.partial == {(2023, 11), (2024, 3)}


def test_a_month_that_loses_everything_compounds_to_minus_one() -> None:
    r = np.array([0.1, -1.0, np.nan, np.nan])
    t = _times(4)
    table = monthly_returns(
        t, r, datetime(2023, 11, 1, tzinfo=UTC), datetime(2023, 12, 1, tzinfo=UTC)
    )
    assert table.months[(2023, 11)] == pytest.approx(-1.0)
    assert table.partial == frozenset()


def test_equity_band_is_min_max_for_few_seeds_and_10_90_for_many() -> None:
    few = [_returns(s, 500) for s in range(3)]
    band = equity_band(few)
    curves = np.vstack([equity_curve(r) for r in few])
    np.testing.assert_allclose(band.median, np.median(curves, axis=0))
    np.testing.assert_allclose(band.lower, curves.min(axis=0))
    np.testing.assert_allclose(band.upper, curves.max(axis=0))
    assert band.label == "min..max of 3 seeds"
    many = [_returns(s, 200) for s in range(MANY_SEEDS)]
    wide = equity_band(many)
    curves = np.vstack([equity_curve(r) for r in many])
    np.testing.assert_allclose(wide.lower, np.quantile(curves, 0.1, axis=0))
    assert wide.label == f"10%..90% of {MANY_SEEDS} seeds"
    assert (wide.lower <= wide.median).all() and (wide.median <= wide.upper).all()


def test_equity_and_drawdown_start_from_one() -> None:
    r = np.array([0.1, -0.5, np.nan, 0.2])
    e = equity_curve(r)
    np.testing.assert_allclose(e, [1.1, 0.55, 0.55, 0.66])
    np.testing.assert_allclose(drawdown(e), [0.0, -0.5, -0.5, 0.66 / 1.1 - 1])
    np.testing.assert_allclose(drawdown(equity_curve(np.array([-0.1]))), [-0.1])


def test_envelope_keeps_every_step_inside_the_drawn_band() -> None:
    n = 100_000
    lower = np.cumsum(_returns(4, n))
    upper = lower + np.abs(_returns(5, n))
    t, lo, hi = envelope(_times(n), lower, upper, 500)
    assert len(t) <= 500 and lo.min() == lower.min() and hi.max() == upper.max()
    us = _times(n).astype(np.int64)
    assert t[0] == us[0] and t[-1] == us[-1] and (np.diff(t) > 0).all()
    small_t, small_lo, _ = envelope(_times(10), lower[:10], upper[:10], 500)
    assert len(small_t) == 10 and (small_lo == lower[:10]).all()


def test_trade_marks_are_the_fills_of_a_trace() -> None:
    n = 6
    close = np.array([100.0, 101, 102, 103, 104, 105, 106])
    open_ = close - 0.5
    trace = simulate(
        "X", _times(n + 1), open_, close, np.array([1.0, 1, 0, 0, -1, -1]), CostModel(0, 0)
    )
    marks = TradeMarks.from_path("X", 0, trace.times, trace.open, trace.close, trace.units)
    assert marks.fill_index.tolist() == [0, 2, 4]
    assert marks.side.tolist() == [1, -1, -1]
    assert marks.fill_price.tolist() == [open_[1], open_[3], open_[5]]
    assert (marks.buys, marks.sells) == (1, 2)
