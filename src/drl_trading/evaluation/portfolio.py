"""A backtest's symbols as one return series: an equal split of capital, rebalanced each step.

The walk-forward evidence (`drl_trading.training.core.evidence`) and the comparison of two
models (`drl_trading.evaluation.comparison`) both judge one series per backtest; this is where
several symbols become that series, so the two cannot drift apart.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from drl_trading.evaluation.backtest import BacktestResult

__all__ = ["portfolio_returns", "portfolio_step_returns"]

Returns = npt.NDArray[np.float64]


def portfolio_step_returns(result: BacktestResult) -> tuple[npt.NDArray[np.datetime64], Returns]:
    """The model's step returns of one backtest, net of costs (fraction), with the close time
    each step ends at (datetime64[us], UTC). Several symbols are an equal split of capital
    rebalanced each step: the mean of their returns at the step close times they share (steps
    where a symbol has no bar are left out). NaN where no symbol had capital (after a
    bankruptcy)."""
    if not result.symbols:
        return np.zeros(0, dtype="datetime64[us]"), np.zeros(0)
    if len(result.symbols) == 1:
        trace = result.symbols[0].trace
        return trace.times[1:], np.asarray(trace.step_returns, dtype=np.float64)
    times = [s.trace.times[1:] for s in result.symbols]
    shared = times[0]
    for t in times[1:]:
        shared = np.intersect1d(shared, t)
    columns = []
    for s, t in zip(result.symbols, times, strict=True):
        keep = np.isin(t, shared)
        columns.append(np.asarray(s.trace.step_returns, dtype=np.float64)[keep])
    stacked = np.vstack(columns)
    with np.errstate(invalid="ignore"):
        mean: Returns = np.where(
            np.isnan(stacked).all(axis=0), np.nan, np.nanmean(np.nan_to_num(stacked), axis=0)
        )
    return shared, mean


def portfolio_returns(result: BacktestResult) -> Returns:
    """`portfolio_step_returns` without the times."""
    return portfolio_step_returns(result)[1]
