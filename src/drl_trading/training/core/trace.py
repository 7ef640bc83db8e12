"""The simulated path of one symbol: the single record that metrics, trades and reports read.

Timing matches the environment (`drl_trading.training.core.env`): the decision taken at the
close of bar i fills at the open of bar i+1 and is marked at the close of bar i+1, so step i
spans close[i] -> close[i+1] and is split at the fill into an overnight-style "gap" leg earned by
the old position and a "bar" leg earned by the new one. Equity evolves as::

    equity[i+1] = equity[i] * (1 + position_before[i] * gap_return[i])
                             * (1 - cost[i])
                             * (1 + position[i] * bar_return[i])

    gap_return[i] = open[i+1] / close[i] - 1
    bar_return[i] = close[i+1] / open[i+1] - 1
    cost[i]       = |position[i] - position_before[i]| * cost_rate,  position_before[0] = 0

The cost is charged on the equity at the fill, after the gap leg, which is why it sits between
the two legs. Equity is not floored: a short through a bar that more than doubles the price can
drive it negative, exactly as the environment would (which terminates on bankruptcy instead).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SimulationTrace", "simulate"]


@dataclass(frozen=True, slots=True)
class SimulationTrace:
    """One symbol's simulated path. n steps; step i goes from the close of bar i to the close of
    bar i+1. The decision taken at the close of bar i fills at the open of bar i+1.

    Invariant (checked only for shapes, the numbers are the producer's responsibility)::

        equity[i+1] = equity[i] * (1 + position_before[i] * gap_return[i])
                                * (1 - cost[i]) * (1 + position[i] * bar_return[i])
    """

    symbol: str
    times: np.ndarray  # (n+1,) datetime64[us], UTC close times of the equity points
    close: np.ndarray  # (n+1,) float64, close price at each equity point
    equity: np.ndarray  # (n+1,) float64, equity[0] = initial equity
    position: np.ndarray  # (n,) float64 in [-1, 1], held after the fill of step i
    gap_return: np.ndarray  # (n,) open[i+1]/close[i] - 1, earned by position_before[i]
    bar_return: np.ndarray  # (n,) close[i+1]/open[i+1] - 1, earned by position[i]
    cost: np.ndarray  # (n,) |position[i] - position_before[i]| * cost_rate
    cost_rate: float  # fees + slippage as a fraction (bps / 1e4)

    def __post_init__(self) -> None:
        n = len(self.position)
        points = {"times": self.times, "close": self.close, "equity": self.equity}
        steps = {"gap_return": self.gap_return, "bar_return": self.bar_return, "cost": self.cost}
        for name, arr in points.items():
            if arr.shape != (n + 1,):
                raise ValueError(f"{self.symbol}: {name} must have shape ({n + 1},), {arr.shape}")
        for name, arr in steps.items():
            if arr.shape != (n,):
                raise ValueError(f"{self.symbol}: {name} must have shape ({n},), got {arr.shape}")

    @property
    def n_steps(self) -> int:
        return len(self.position)

    @property
    def position_before(self) -> np.ndarray:
        """The position carried into each step (flat before the first one); it earns the gap."""
        before = np.empty_like(self.position)
        if len(before):
            before[0] = 0.0
            before[1:] = self.position[:-1]
        return before

    @property
    def step_returns(self) -> np.ndarray:
        """NaN/inf after equity hits zero (a bankrupt short), without a warning per call."""
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio: np.ndarray = self.equity[1:] / self.equity[:-1] - 1.0
        return ratio


def simulate(
    symbol: str,
    times: np.ndarray,
    open_: np.ndarray,
    close: np.ndarray,
    positions: np.ndarray,
    cost_rate: float,
    initial_equity: float = 1.0,
) -> SimulationTrace:
    """Replay decided positions over bars 0..n in one vectorised pass.

    ``times``, ``open_`` and ``close`` describe bars 0..n (``times`` are close times);
    ``positions[i]`` is decided at the close of bar i and filled at the open of bar i+1, so it
    has length n. ``cumprod`` multiplies the per-step factors left to right, starting from the
    initial equity, so the result is bit-identical to a loop applying the same factors in turn;
    the environment groups the same terms differently and agrees to rounding (~1e-15 relative).
    """
    times_us = np.asarray(times).astype("datetime64[us]")
    open_f = np.asarray(open_, dtype=np.float64)
    close_f = np.asarray(close, dtype=np.float64)
    pos = np.asarray(positions, dtype=np.float64)
    n = len(pos)
    if pos.ndim != 1:
        raise ValueError(f"{symbol}: positions must be one-dimensional")
    for name, arr in (("times", times_us), ("open_", open_f), ("close", close_f)):
        if arr.shape != (n + 1,):
            raise ValueError(f"{symbol}: {name} must have {n + 1} bars for {n} positions")
    if not np.isfinite(pos).all() or (np.abs(pos) > 1.0).any():
        raise ValueError(f"{symbol}: positions must be finite and within [-1, 1]")
    if not (open_f > 0).all() or not (close_f > 0).all():
        raise ValueError(f"{symbol}: prices must be positive")
    if cost_rate < 0 or not np.isfinite(cost_rate):
        raise ValueError(f"{symbol}: cost_rate must be a finite non-negative fraction")

    gap = open_f[1:] / close_f[:-1] - 1.0
    bar = close_f[1:] / open_f[1:] - 1.0
    before = np.zeros(n, dtype=np.float64)
    before[1:] = pos[:-1]
    cost = np.abs(pos - before) * cost_rate
    factors = np.empty(n + 1, dtype=np.float64)
    factors[0] = initial_equity
    factors[1:] = (1.0 + before * gap) * (1.0 - cost) * (1.0 + pos * bar)
    equity = np.cumprod(factors)
    return SimulationTrace(
        symbol=symbol,
        times=times_us,
        close=close_f.copy(),
        equity=equity,
        position=pos.copy(),
        gap_return=gap,
        bar_return=bar,
        cost=cost,
        cost_rate=float(cost_rate),
    )
