"""Performance metrics and trades computed from a `SimulationTrace` (baselines: `baselines`).

Every number a backtest report shows is defined here, once, so that the model and its baselines
are measured with the same ruler. With ``r = equity[1:] / equity[:-1] - 1`` the n step returns
and ``ppy`` the number of steps per year (see `periods_per_year`):

* ``total_return``      = equity[n] / equity[0] - 1
* ``cagr``              = (equity[n] / equity[0]) ** (ppy / n) - 1; -1.0 once equity is <= 0,
                          0.0 for an empty trace, +inf where the power overflows.
* ``annual_volatility`` = std(r, ddof=1) * sqrt(ppy)
* ``sharpe``            = mean(r) / std(r, ddof=1) * sqrt(ppy) (risk-free rate 0); 0.0 with
                          fewer than two returns or a numerically zero std (<= 1e-14).
* ``sortino``           = mean(r) / sqrt(mean(min(r, 0) ** 2)) * sqrt(ppy); the downside
                          deviation averages over *all* returns, not only the losing ones; 0.0
                          when it is numerically zero.

Mean, std and downside deviation run over the defined returns only: a step that starts without
capital (after a bankruptcy, see `SimulationTrace.step_returns`) has no return and is skipped,
as quantstats and empyrical skip NaN. A wiped-out trace is therefore measured on the steps that
lost its capital, the last of them -1, and scores a large negative Sharpe, not 0.0. These
conventions are checked against both libraries in ``tests/unit/test_metrics_reference.py``
(docs/training.md, "Metric conventions", maps them onto the libraries' arguments).
* ``max_drawdown``      = max_t 1 - equity[t] / max(equity[:t+1]), a positive fraction.
* ``calmar``            = cagr / max_drawdown, 0.0 without a drawdown.
* ``max_drawdown_duration_bars``: the longest drawdown period, in steps, from the peak it fell
  from to the first equity point back at or above that peak, or to the last point when it never
  recovers (within a relative 1e-12, so rounding does not keep a drawdown open).
  ``max_drawdown_duration_days`` is the calendar length of that same period.
* ``turnover``          = sum |position[i] - position_before[i]|: target traded over the trace
  (a full long -> short reversal counts 2); ``turnover_per_day`` divides by the trace's span.
* ``exposure``          = fraction of steps holding units.
* ``fees_paid``         = sum(cost) / equity[0]: fees and slippage as a share of initial capital.

Trades (see `extract_trades`): a trade is a maximal run of steps [a, b) whose units share one
non-zero sign. Size changes inside the run stay in the trade; a reversal closes one trade and
opens the next at the same step. Its PnL adds the parts of each step that belong to it:

* entry step a: the bar leg of the new units, minus the fill's cost for the units it opened
* steps a+1 .. b-1: the whole step (gap leg, resizing cost, bar leg)
* exit at step b < n: the gap leg of the old units and the fill's cost for the units it closed

A fill's cost is split between closing and opening trades in proportion to the units, so nothing
is counted twice. ``net_return`` is that PnL over the equity at the entry decision (equity[a]);
a run that reaches the end of the trace is open: marked, not exited, ``is_open=True``. ``fees``
is the attributed cost over the same equity. ``win_rate`` and ``profit_factor`` include open
trades at their marked return.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

import numpy as np

from drl_trading.evaluation.trace import SimulationTrace

__all__ = [
    "PerformanceMetrics",
    "Trade",
    "compute_metrics",
    "extract_trades",
    "periods_per_year",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_DAY = np.timedelta64(86_400_000_000, "us")
_ZERO_STD = 1e-14
"""Below this a per-step std is rounding noise: dividing by it would report absurd ratios."""
_RECOVERED = 1e-12
"""Relative shortfall from the peak still counted as recovered: a path that returns to its peak
through rounded products must not be reported as a drawdown lasting to the end of the trace."""


def _to_datetimes(times: np.ndarray) -> list[datetime]:
    micros: list[int] = times.astype("datetime64[us]").astype(np.int64).tolist()
    return [_EPOCH + timedelta(microseconds=m) for m in micros]


def _to_datetime(time: np.datetime64) -> datetime:
    return _to_datetimes(np.asarray([time]))[0]


@dataclass(frozen=True, slots=True)
class Trade:
    """One round trip. Times are the bar closes at which entry and exit were decided; the fills
    happen at the next bar's open, which on a gapless bar grid is the same instant."""

    symbol: str
    side: int  # +1 long, -1 short
    entry_time: datetime  # UTC, times[entry_step]
    exit_time: datetime  # UTC, times[exit_step]; the last mark for an open trade
    entry_step: int  # a: first step holding the position
    exit_step: int  # b: the step whose fill closes it (n for an open trade)
    bars_held: int  # b - a
    size: float  # max |position| during the trade
    net_return: float  # after costs, see the module docstring
    fees: float  # attributed fees and slippage over the equity at entry
    is_open: bool  # still held at the end of the trace


def extract_trades(trace: SimulationTrace) -> list[Trade]:
    """Cut the position series into trades with segment reductions (``reduceat``), so the only
    Python loop is the one building the `Trade` objects."""
    n = trace.n_steps
    if n == 0:
        return []
    units = trace.units
    sign = np.sign(units).astype(np.int8)
    change = np.flatnonzero(sign[1:] != sign[:-1]) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [n]))
    gap, bar, cost = trace.gap_pnl, trace.bar_pnl, trace.cost
    traded = np.abs(units - trace.units_before)
    with np.errstate(divide="ignore", invalid="ignore"):
        unit_cost = np.where(traded > 0, cost / traded, 0.0)

    entry_cost = np.abs(units[starts]) * unit_cost[starts]
    step_pnl = gap - cost + bar
    step_pnl[starts] = bar[starts] - entry_cost
    step_cost = cost.copy()
    step_cost[starts] = entry_cost
    pnl = np.add.reduceat(step_pnl, starts)
    fees = np.add.reduceat(step_cost, starts)
    size = np.maximum.reduceat(np.abs(trace.position), starts)

    closed = ends < n
    exit_at = np.minimum(ends, n - 1)
    exit_cost = np.where(closed, np.abs(units[ends - 1]) * unit_cost[exit_at], 0.0)
    pnl = pnl + np.where(closed, gap[exit_at], 0.0) - exit_cost
    fees = fees + exit_cost
    entry_equity = trace.equity[starts]
    with np.errstate(divide="ignore", invalid="ignore"):
        net = np.where(entry_equity > 0, pnl / entry_equity, np.nan)
        fees = np.where(entry_equity > 0, fees / entry_equity, np.nan)

    keep = sign[starts] != 0
    starts, ends = starts[keep], ends[keep]
    entry_times = _to_datetimes(trace.times[starts])
    exit_times = _to_datetimes(trace.times[ends])
    symbol = trace.symbol
    return [
        Trade(symbol, side, t_in, t_out, a, b, b - a, sz, ret, fee, not cl)
        for side, t_in, t_out, a, b, sz, ret, fee, cl in zip(
            sign[starts].tolist(),
            entry_times,
            exit_times,
            starts.tolist(),
            ends.tolist(),
            size[keep].tolist(),
            net[keep].tolist(),
            fees[keep].tolist(),
            closed[keep].tolist(),
            strict=True,
        )
    ]


@dataclass(frozen=True, slots=True)
class PerformanceMetrics:
    """Summary of one trace; definitions in the module docstring."""

    total_return: float
    cagr: float
    annual_volatility: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    max_drawdown_duration_bars: int
    max_drawdown_duration_days: float
    n_trades: int
    win_rate: float
    profit_factor: float
    avg_holding_bars: float
    turnover: float
    turnover_per_day: float
    exposure: float
    fees_paid: float
    n_steps: int
    start: datetime
    end: datetime

    def to_dict(self) -> dict[str, float | int | str | None]:
        """JSON-safe: non-finite floats (an infinite profit factor) become None, times ISO."""
        out: dict[str, float | int | str | None] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                out[f.name] = value.isoformat()
            elif isinstance(value, float):
                out[f.name] = value if math.isfinite(value) else None
            else:
                out[f.name] = value
        return out


def cagr_of(growth: float, n: int, ppy: float) -> float:
    if n == 0:
        return 0.0
    if not growth > 0:
        return -1.0
    try:
        return float(growth ** (ppy / n) - 1.0)
    except OverflowError:
        return math.inf


def _drawdown(equity: np.ndarray, times: np.ndarray) -> tuple[float, int, float]:
    peak = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = 1.0 - equity / peak
    max_dd = float(np.nanmax(depth)) if len(depth) else 0.0
    under = equity < peak * (1.0 - _RECOVERED)
    if not under.any():
        return max(max_dd, 0.0), 0, 0.0
    edges = np.diff(np.concatenate(([0], under.astype(np.int8), [0])))
    first_under = np.flatnonzero(edges == 1)
    first_above = np.flatnonzero(edges == -1)
    peak_at = first_under - 1  # equity[0] is its own peak, so first_under >= 1
    end_at = np.minimum(first_above, len(equity) - 1)
    durations = end_at - peak_at
    k = int(np.argmax(durations))
    days = float((times[end_at[k]] - times[peak_at[k]]) / _ONE_DAY)
    return max_dd, int(durations[k]), days


def compute_metrics(
    trace: SimulationTrace,
    periods_per_year: float,
    trades: list[Trade] | None = None,
) -> PerformanceMetrics:
    """Measure one trace. Pass ``trades`` when they were already extracted, to skip redoing it."""
    if trades is None:
        trades = extract_trades(trace)
    n = trace.n_steps
    equity = trace.equity
    ppy = float(periods_per_year)
    growth = float(equity[-1] / equity[0])
    cagr = cagr_of(growth, n, ppy)

    r = trace.step_returns
    r = r[np.isfinite(r)]  # no capital, no return: skipped like a missing observation
    n_returns = len(r)
    mean = float(r.mean()) if n_returns else 0.0
    std = float(r.std(ddof=1)) if n_returns >= 2 else 0.0
    annual_scale = math.sqrt(ppy)
    sharpe = mean / std * annual_scale if std > _ZERO_STD else 0.0
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2))) if n_returns else 0.0
    sortino = mean / downside * annual_scale if downside > _ZERO_STD else 0.0

    max_dd, dd_bars, dd_days = _drawdown(equity, trace.times)
    calmar = cagr / max_dd if max_dd > 0 else 0.0

    returns = np.fromiter((t.net_return for t in trades), dtype=np.float64, count=len(trades))
    held = np.fromiter((t.bars_held for t in trades), dtype=np.float64, count=len(trades))
    gross_profit = float(returns[returns > 0].sum())
    gross_loss = float(-returns[returns < 0].sum())
    if gross_loss > 0:
        profit_factor = gross_profit / gross_loss
    else:
        profit_factor = math.inf if gross_profit > 0 else 0.0

    turnover = float(np.abs(trace.position - trace.position_before).sum())
    span_days = float((trace.times[-1] - trace.times[0]) / _ONE_DAY)
    return PerformanceMetrics(
        total_return=growth - 1.0,
        cagr=cagr,
        annual_volatility=std * annual_scale,
        sharpe=sharpe,
        sortino=sortino,
        calmar=calmar,
        max_drawdown=max_dd,
        max_drawdown_duration_bars=dd_bars,
        max_drawdown_duration_days=dd_days,
        n_trades=len(trades),
        win_rate=float((returns > 0).mean()) if len(trades) else 0.0,
        profit_factor=profit_factor,
        avg_holding_bars=float(held.mean()) if len(trades) else 0.0,
        turnover=turnover,
        turnover_per_day=turnover / span_days if span_days > 0 else 0.0,
        exposure=float((trace.units != 0).mean()) if n else 0.0,
        fees_paid=float(trace.cost.sum() / equity[0]) if n else 0.0,
        n_steps=n,
        start=_to_datetime(trace.times[0]),
        end=_to_datetime(trace.times[-1]),
    )


def periods_per_year(bar_minutes: int, trading_days_per_year: float = 365.0) -> float:
    """Annualisation factor; crypto trades around the clock, hence 365 full days by default.
    A market that closes annualises by its calendar's bars instead
    (`drl_trading.common.bar_windows.bars_per_year`, which equals this on 24/7)."""
    if bar_minutes <= 0:
        raise ValueError(f"bar_minutes must be positive, got {bar_minutes}")
    return trading_days_per_year * 24 * 60 / bar_minutes
