"""The simulated path of one symbol: the single record that metrics, trades and reports read.

Accounting is the shared cost model of `drl_trading.common.costs`, the one the paper broker and
the execution service apply: the target decided at the close of bar i is turned into units at
that close's equity, the order fills at the open of bar i+1 (slippage against the trader, fee on
the filled notional) and the book is marked at the close of bar i+1::

    units[i] = units[i-1] + dq[i]          dq[i] = target[i] * equity[i] / close[i] - units[i-1]
    cash[i]  = cash[i-1] - dq[i] * fill[i] - fee[i]
    equity[i+1] = cash[i] + units[i] * close[i+1]

``dq[i]`` is zero when the target equals the last one reached (no rebalancing on drift) or when
the order would be below ``min_order_notional`` (dust). Units settle with a threshold relative to
the order (`drl_trading.common.costs.settle_units`), so an account of any size, however small
after losses, holds exactly what it paid for and its returns do not depend on its scale.

Bankruptcy: the first close at which equity is <= 0 (a short through a bar that more than doubles
the price, or a long whose price all but vanishes) closes the account. Equity is floored at 0 from
that point on (limited liability: the shortfall is the broker's), nothing is held or traded
afterwards, and the targets after it read 0. The training environment stops an episode at its
``bankrupt_equity`` in the same spirit; a backtest runs to the end of its bars, flat at zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drl_trading.common.costs import (
    TARGET_TOLERANCE,
    CostModel,
    fee,
    market_fill_price,
    order_units,
    settle_units,
)

__all__ = ["SimulationTrace", "simulate"]


@dataclass(frozen=True, slots=True)
class SimulationTrace:
    """One symbol's simulated path. n steps; step i goes from the close of bar i to the close of
    bar i+1, and the decision taken at the close of bar i fills at the open of bar i+1.

    Step i's PnL splits into the part the held units earn from close[i] to the fill
    (`gap_pnl`), the cost of the fill, and what the new units earn to close[i+1] (`bar_pnl`):
    ``equity[i+1] - equity[i] = gap_pnl[i] - cost[i] + bar_pnl[i]`` up to rounding, except at
    the step that bankrupts the account, where the floor at 0 absorbs the shortfall.
    """

    symbol: str
    times: np.ndarray  # (n+1,) datetime64[us], UTC close times of the equity points
    open: np.ndarray  # (n+1,) float64, open of each bar (open[i+1] is step i's fill bar)
    close: np.ndarray  # (n+1,) float64, close price at each equity point
    equity: np.ndarray  # (n+1,) float64, equity[0] = initial equity
    position: np.ndarray  # (n,) target fraction in [-1, 1] in force after step i's decision
    units: np.ndarray  # (n,) signed units held after step i's fill
    cost: np.ndarray  # (n,) fees + slippage paid at step i's fill, in quote currency
    fees: np.ndarray  # (n,) the fee part of ``cost``
    costs: CostModel

    def __post_init__(self) -> None:
        n = len(self.position)
        points = {"times": self.times, "open": self.open, "close": self.close}
        points["equity"] = self.equity
        steps = {"units": self.units, "cost": self.cost, "fees": self.fees}
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
    def initial_equity(self) -> float:
        return float(self.equity[0])

    @property
    def position_before(self) -> np.ndarray:
        """The target in force before each step's decision (flat before the first one)."""
        return _shift(self.position)

    @property
    def units_before(self) -> np.ndarray:
        """The units carried into each step (none before the first); they earn the gap."""
        return _shift(self.units)

    @property
    def gap_pnl(self) -> np.ndarray:
        """What the units held before the fill earn from close[i] to open[i+1]."""
        pnl: np.ndarray = self.units_before * (self.open[1:] - self.close[:-1])
        return pnl

    @property
    def bar_pnl(self) -> np.ndarray:
        """What the units held after the fill earn from open[i+1] to close[i+1]."""
        pnl: np.ndarray = self.units * (self.close[1:] - self.open[1:])
        return pnl

    @property
    def step_returns(self) -> np.ndarray:
        """Simple return of each step, ``equity[i+1] / equity[i] - 1`` (fraction).

        A return needs capital: it is NaN for steps that start at equity <= 0, i.e. after a
        bankruptcy (whose own step returns -1 when `simulate` floored it at 0). Metrics treat
        NaN as a missing observation, as quantstats and empyrical do.
        """
        start = self.equity[:-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio: np.ndarray = np.where(start > 0, self.equity[1:] / start - 1.0, np.nan)
        return ratio


def _shift(values: np.ndarray) -> np.ndarray:
    before = np.empty_like(values)
    if len(before):
        before[0] = 0.0
        before[1:] = values[:-1]
    return before


def simulate(
    symbol: str,
    times: np.ndarray,
    open_: np.ndarray,
    close: np.ndarray,
    positions: np.ndarray,
    costs: CostModel,
    initial_equity: float = 1.0,
) -> SimulationTrace:
    """Replay decided targets over bars 0..n.

    ``times``, ``open_`` and ``close`` describe bars 0..n (``times`` are close times);
    ``positions[i]`` is decided at the close of bar i and filled at the open of bar i+1, so it
    has length n. Only steps whose target differs from the last one reached can trade, so the
    Python loop runs over those; units and cash between them are filled forward in numpy. The
    arithmetic of each fill is the paper broker's, operation for operation.
    """
    # the trace owns its arrays: one copy each, made here (``pos`` is closed at bankruptcy in place)
    times_us = np.asarray(times).astype("datetime64[us]")
    open_f = np.array(open_, dtype=np.float64)
    close_f = np.array(close, dtype=np.float64)
    pos = np.array(positions, dtype=np.float64)
    n = len(pos)
    if pos.ndim != 1:
        raise ValueError(f"{symbol}: positions must be one-dimensional")
    for name, arr in (("times", times_us), ("open_", open_f), ("close", close_f)):
        if arr.shape != (n + 1,):
            raise ValueError(f"{symbol}: {name} must have {n + 1} bars for {n} positions")
    # min and max carry a NaN through, which then fails the comparison (no temporary arrays)
    if not (pos.min(initial=0.0) >= -1.0 and pos.max(initial=0.0) <= 1.0):
        raise ValueError(f"{symbol}: positions must be finite and within [-1, 1]")
    if not (open_f.min() > 0 and close_f.min() > 0):
        raise ValueError(f"{symbol}: prices must be positive")
    if not initial_equity > 0:
        raise ValueError(f"{symbol}: initial_equity must be positive, got {initial_equity}")

    # every decision reaches its target (by an order or as dust), so a step can only trade when
    # its target differs from the previous step's; only those steps' prices and targets are read,
    # gathered before leaving numpy (converting whole arrays to lists was half the run time)
    moved = np.empty(n, dtype=np.float64)  # |pos[i] - pos[i-1]|, flat before the first step
    moved[:1] = pos[:1]
    np.subtract(pos[1:], pos[:-1], out=moved[1:])
    candidates = np.flatnonzero(np.abs(moved, out=moved) > TARGET_TOLERANCE)
    steps: list[int] = candidates.tolist()
    targets: list[float] = pos[candidates].tolist()
    closes: list[float] = close_f[candidates].tolist()
    fill_opens: list[float] = open_f[candidates + 1].tolist()
    fee_bps, slip_bps, dust = costs.fee_bps, costs.slippage_bps, costs.min_order_notional
    cash, units = float(initial_equity), 0.0
    # per fill: its step, the units and cash after it (starting from the flat account before
    # the first fill), its fee and its whole cost
    filled: list[int] = []
    units_after, cash_after = [units], [cash]
    paid_at: list[float] = []
    cost_at: list[float] = []
    for k, target, price, fill_open in zip(steps, targets, closes, fill_opens, strict=True):
        dq = order_units(target, cash + units * price, price, units)
        if dq == 0.0 or abs(dq) * price < dust:
            continue
        fill = market_fill_price(fill_open, dq > 0, slip_bps)
        paid = fee(abs(dq) * fill, fee_bps)
        cash -= dq * fill + paid
        units = settle_units(units, dq)
        filled.append(k)
        units_after.append(units)
        cash_after.append(cash)
        paid_at.append(paid)
        cost_at.append(paid + abs(dq) * abs(fill - fill_open))

    # units and cash hold from each fill to the next one (or the end): one repeat each writes
    # the whole path once
    at = np.array(filled, dtype=np.intp)
    held_for = np.diff(at, prepend=0, append=n)
    units_path = np.repeat(np.array(units_after), held_for)
    cash_path = np.repeat(np.array(cash_after), held_for)
    cost = np.zeros(n, dtype=np.float64)
    fees = np.zeros(n, dtype=np.float64)
    fees[at] = paid_at
    cost[at] = cost_at
    equity = np.empty(n + 1, dtype=np.float64)
    equity[0] = initial_equity
    np.multiply(units_path, close_f[1:], out=equity[1:])
    equity[1:] += cash_path  # cash + units * close, as each fill marks its book
    _close_at_bankruptcy(equity, pos, units_path, cost, fees)
    return SimulationTrace(
        symbol=symbol,
        times=times_us,
        open=open_f,
        close=close_f,
        equity=equity,
        position=pos,
        units=units_path,
        cost=cost,
        fees=fees,
        costs=costs,
    )


def _close_at_bankruptcy(
    equity: np.ndarray, pos: np.ndarray, units: np.ndarray, cost: np.ndarray, fees: np.ndarray
) -> None:
    """Close the account (in place) at the first equity point <= 0, see the module docstring.

    The fill loop runs on as if nothing happened; its steps up to that point saw positive
    equity and are exact, and everything from it on is overwritten here, so the loop needs no
    per-bar check.
    """
    bust = np.flatnonzero(equity[1:] <= 0.0)
    if not len(bust):
        return
    j = int(bust[0]) + 1  # the equity point (close of bar j) at which the account is closed
    equity[j:] = 0.0
    pos[j:] = 0.0
    units[j:] = 0.0
    cost[j:] = 0.0
    fees[j:] = 0.0
