"""The out-of-sample series an evaluation report draws, and the pure figures drawn from them.

`OosSeries` is what the walk-forward evidence keeps beside its statistics: per seed the folds'
validation returns stitched in time order, the baselines' returns over the same steps, the step
close times and, for trade markers, the configured seed's path per fold and symbol. The
functions turn it into what a chart or a table shows: equity and drawdown curves, the band of
the seeds' equity, a rolling Sharpe, a table of monthly returns, and point reductions for
drawing. Everything here is a function over numpy arrays; statistics are always computed on the
full series, only `envelope` and the charts reduce points, and only for drawing.

Conventions (the report states them): returns are simple step returns, net of costs (fraction);
a step without capital (NaN, after a bankruptcy) counts as 0, as the evidence's seeds' mean does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

__all__ = [
    "MANY_SEEDS",
    "ROLLING_DAYS",
    "EquityBand",
    "MonthlyTable",
    "OosSeries",
    "RollingWindow",
    "TradeMarks",
    "drawdown",
    "envelope",
    "equity_band",
    "equity_curve",
    "monthly_returns",
    "rolling_sharpe",
    "rolling_window",
]

Returns = npt.NDArray[np.float64]
Times = npt.NDArray[np.datetime64]

MANY_SEEDS = 10
"""From this many seeds on the band is the 10%..90% quantile range of their equity (the extremes
of many seeds are single outliers); below it, the min..max range."""

ROLLING_DAYS = 30
"""The rolling Sharpe's window in calendar days, where the range holds at least four of them."""


def _no_times() -> Times:
    return np.zeros(0, dtype="datetime64[us]")


@dataclass(frozen=True, slots=True)
class TradeMarks:
    """One symbol's path in one fold, as traded by the configured seed's model: the bars' close
    times and prices, and each fill (a step whose order changed the units held).

    Fill ``k`` is decided at the close of bar ``fill_index[k]`` and fills at the open of the
    next bar, at ``fill_price[k]`` (before slippage); ``side[k]`` is +1 for a buy, -1 for a
    sell. Within a fold the bars are consecutive, so the decision's close time is the fill bar's
    open time: the marker sits at ``times[fill_index[k]]``."""

    symbol: str
    fold: int
    times: Times  # (n+1,) datetime64[us], close time of each bar
    close: Returns  # (n+1,) close prices
    fill_index: npt.NDArray[np.int64]
    fill_price: Returns
    side: npt.NDArray[np.int8]

    @classmethod
    def from_path(
        cls,
        symbol: str,
        fold: int,
        times: np.ndarray,
        open_: np.ndarray,
        close: np.ndarray,
        units: np.ndarray,
    ) -> TradeMarks:
        """From a `SimulationTrace`'s arrays (``units``: held after each step's fill)."""
        held = np.asarray(units, dtype=np.float64)
        change = np.diff(held, prepend=0.0)
        index = np.flatnonzero(change != 0.0).astype(np.int64)
        return cls(
            symbol=symbol,
            fold=fold,
            times=np.asarray(times).astype("datetime64[us]"),
            close=np.asarray(close, dtype=np.float64),
            fill_index=index,
            fill_price=np.asarray(open_, dtype=np.float64)[index + 1],
            side=np.sign(change[index]).astype(np.int8),
        )

    @property
    def buys(self) -> int:
        return int((self.side > 0).sum())

    @property
    def sells(self) -> int:
        return int((self.side < 0).sum())


@dataclass(frozen=True, slots=True)
class OosSeries:
    """The stitched out-of-sample series of one run (n steps over all folds).

    ``seed_returns[s][i]`` and every ``baseline_returns[name][i]`` are the returns of the step
    that closes at ``times[i]``; ``fold_starts[k]`` is the index of fold k's first step."""

    times: Times = field(default_factory=_no_times)
    seed_returns: tuple[Returns, ...] = ()
    baseline_returns: Mapping[str, Returns] = field(default_factory=dict)
    fold_starts: tuple[int, ...] = ()
    marks: tuple[TradeMarks, ...] = ()

    @property
    def steps(self) -> int:
        return len(self.times)

    def mean_returns(self) -> Returns:
        """The seeds' mean return per step (NaN as 0): the series the evidence's Sharpe is of."""
        if not self.seed_returns:
            return np.zeros(len(self.times))
        stacked = np.vstack([np.nan_to_num(r, nan=0.0) for r in self.seed_returns])
        mean: Returns = stacked.mean(axis=0)
        return mean


def equity_curve(returns: np.ndarray) -> Returns:
    """Equity after each step, starting from 1.0 before the first (NaN returns as 0)."""
    r = np.nan_to_num(np.asarray(returns, dtype=np.float64), nan=0.0)
    equity: Returns = np.cumprod(1.0 + r, dtype=np.float64)
    return equity


def drawdown(equity: np.ndarray) -> Returns:
    """Fall from the running peak of ``equity`` (which starts from 1.0), a fraction <= 0."""
    e = np.asarray(equity, dtype=np.float64)
    if not len(e):
        return np.zeros(0)
    peak = np.maximum.accumulate(np.concatenate(([1.0], e)))[1:]
    dd: Returns = e / peak - 1.0
    return dd


@dataclass(frozen=True, slots=True)
class EquityBand:
    """The seeds' equity curves as a median and a band around it (each (n,))."""

    median: Returns
    lower: Returns
    upper: Returns
    label: str  # "min..max of 3 seeds" / "10%..90% of 20 seeds"


def equity_band(seed_returns: tuple[Returns, ...] | list[Returns]) -> EquityBand:
    """Median equity over seeds at each step and its band (`MANY_SEEDS` decides which band)."""
    if not seed_returns:
        raise ValueError("an equity band needs at least one seed's returns")
    curves = np.vstack([equity_curve(r) for r in seed_returns])
    seeds = len(curves)
    if seeds >= MANY_SEEDS:
        lower, upper = np.quantile(curves, [0.1, 0.9], axis=0)
        label = f"10%..90% of {seeds} seeds"
    else:
        lower, upper = curves.min(axis=0), curves.max(axis=0)
        label = f"min..max of {seeds} seed{'' if seeds == 1 else 's'}"
    median: Returns = np.median(curves, axis=0)
    return EquityBand(median, np.asarray(lower), np.asarray(upper), label)


@dataclass(frozen=True, slots=True)
class RollingWindow:
    bars: int
    text: str  # how the window was chosen, for the report


def rolling_window(steps: int, periods_per_year: float) -> RollingWindow:
    """`ROLLING_DAYS` of bars (at ``periods_per_year``) where the series holds at least four such
    windows, else a tenth of the series (at least 2 bars): a window that fits the range."""
    days = max(round(periods_per_year * ROLLING_DAYS / 365.0), 2)
    if days * 4 <= steps:
        return RollingWindow(days, f"{ROLLING_DAYS}-day window ({days:,} bars)")
    bars = max(steps // 10, 2)
    return RollingWindow(
        bars, f"window of a tenth of the series ({bars:,} bars; under {ROLLING_DAYS * 4} days)"
    )


def rolling_sharpe(returns: np.ndarray, window: int, periods_per_year: float) -> Returns:
    """Annualised Sharpe of each trailing ``window`` of steps (risk-free 0, ddof=1), aligned
    with ``returns``: NaN for the first ``window - 1`` steps and where the window's returns are
    constant. pandas' ``r.rolling(window).mean() / r.rolling(window).std() * sqrt(ppy)``, which
    quantstats' ``rolling_sharpe`` is, computed from running sums of the centred returns (one
    pass, so a million steps with a month-long window stay cheap). NaN returns count as 0."""
    if window < 2:
        raise ValueError(f"a rolling Sharpe needs a window of at least 2 steps, got {window}")
    r = np.nan_to_num(np.asarray(returns, dtype=np.float64), nan=0.0)
    n = len(r)
    out = np.full(n, np.nan)
    if n < window:
        return out
    centred = r - r.mean()  # running sums of centred values lose less to cancellation
    s1 = np.concatenate(([0.0], np.cumsum(centred)))
    s2 = np.concatenate(([0.0], np.cumsum(centred * centred)))
    sum1 = s1[window:] - s1[:-window]
    sum2 = s2[window:] - s2[:-window]
    mean_c = sum1 / window
    var = np.maximum(sum2 - sum1 * mean_c, 0.0) / (window - 1)
    scale = max(float(np.mean(centred * centred)), 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(
            var > 1e-18 * scale, (mean_c + r.mean()) / np.sqrt(var), np.nan
        ) * math.sqrt(periods_per_year)
    out[window - 1 :] = sharpe
    return out


@dataclass(frozen=True, slots=True)
class MonthlyTable:
    """Compounded returns per calendar month (UTC) and per year, rows years, columns months."""

    years: tuple[int, ...]
    months: Mapping[tuple[int, int], float]  # (year, month 1..12) -> compounded return
    partial: frozenset[tuple[int, int]]
    """Months the range covers only in part (the range starts after the month's first instant or
    ends before its last)."""
    year_totals: Mapping[int, float]  # compounded over the months of the year that are covered


def _month_start(year: int, month: int) -> datetime:
    return datetime(year, month, 1, tzinfo=UTC)


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def monthly_returns(
    times: np.ndarray, returns: np.ndarray, start: datetime, end: datetime
) -> MonthlyTable:
    """Each step's return compounded into the month of its close time (UTC), as quantstats'
    ``monthly_returns(compounded=True)`` does; ``start``..``end``: the range the series covers,
    so the months it covers only in part can be marked. NaN returns count as 0."""
    r = np.nan_to_num(np.asarray(returns, dtype=np.float64), nan=0.0)
    t = np.asarray(times).astype("datetime64[us]")
    if len(t) != len(r):
        raise ValueError(f"{len(t)} times for {len(r)} returns")
    month_index = t.astype("datetime64[M]").astype(np.int64)  # months since 1970-01
    months: dict[tuple[int, int], float] = {}
    if len(r):
        keys, first = np.unique(month_index, return_index=True)
        growth = np.log1p(r) if (r > -1.0).all() else None
        for k, lo, hi in zip(keys, first, [*first[1:], len(r)], strict=True):
            year, month = 1970 + int(k) // 12, int(k) % 12 + 1
            part = r[lo:hi]
            if growth is not None:
                months[(year, month)] = float(np.expm1(growth[lo:hi].sum()))
            else:  # a step that loses everything: the product is exact, log1p is not defined
                months[(year, month)] = float(np.prod(1.0 + part) - 1.0)
    partial = set()
    for year, month in months:
        lo_t = _month_start(year, month)
        hi_t = _month_start(*_next_month(year, month))
        if start > lo_t or end < hi_t:
            partial.add((year, month))
    years = tuple(sorted({y for y, _ in months}))
    totals = {
        y: float(np.prod([1.0 + v for (yy, _), v in months.items() if yy == y]) - 1.0)
        for y in years
    }
    return MonthlyTable(years, months, frozenset(partial), totals)


def envelope(
    times: np.ndarray, lower: np.ndarray, upper: np.ndarray, max_points: int
) -> tuple[npt.NDArray[np.int64], Returns, Returns]:
    """A band reduced to at most ``max_points`` points for drawing: per bucket of consecutive
    steps the first time, the lowest ``lower`` and the highest ``upper``, so the drawn band
    contains every step's. Returns (times as int64 microseconds, lower, upper)."""
    t = np.asarray(times).astype("datetime64[us]").astype(np.int64)
    lo = np.asarray(lower, dtype=np.float64)
    hi = np.asarray(upper, dtype=np.float64)
    n = len(t)
    if n <= max_points:
        return t, lo, hi
    edges = np.unique(np.linspace(0, n, max_points).astype(np.int64))
    starts = edges[:-1]
    t_out = np.concatenate((t[starts], [t[-1]]))
    lo_out = np.concatenate((np.minimum.reduceat(lo, starts), [lo[-1]]))
    hi_out = np.concatenate((np.maximum.reduceat(hi, starts), [hi[-1]]))
    return t_out, lo_out, hi_out
