"""A paper session measured with the backtest's ruler: per-symbol traces, metrics, baselines.

The recorder watches the live bars (of the data timeframe) and, after each base-bar close has gone
through all the services, what execution holds: the target in force, the units, the symbol's equity
and its fees. From those points it builds each symbol's `SimulationTrace`, the same record the
vectorised backtest produces, so the session's report has the backtest's metrics, trades, baselines
(buy-and-hold, flat, random, momentum and SMA cross on the very bars the session saw, with the
backtest's lookbacks) and HTML report; a test replays history through the services and finds the
backtest's positions and PnL.

A symbol's equity is its capital plus its PnL net of fees. With per-symbol capital (the default)
that is the amount execution sizes on; with a shared pool each symbol is given an equal nominal
share of the initial cash, so its return is measured on that share.

Base closes are the market calendar's (`BarWindows`): an XLON hourly bar keyed 15:00 UTC closes
at 15:30 with the session, and a point is taken there; a bar's time is its calendar close (a
daily XNYS bar labelled D closes at D 21:00 UTC, not at D+1 00:00).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from drl_trading.common.bar_windows import BarWindows, SymbolWindows
from drl_trading.common.calendar import CalendarBook
from drl_trading.common.costs import CostModel
from drl_trading.common.domain import Bar, Symbol, Timeframe, from_micros, to_micros
from drl_trading.evaluation.backtest import BacktestResult, SymbolBacktest
from drl_trading.evaluation.baselines import (
    BUY_AND_HOLD,
    RuleLookbacks,
    run_baselines,
)
from drl_trading.evaluation.metrics import compute_metrics, extract_trades
from drl_trading.evaluation.trace import SimulationTrace, simulate
from drl_trading.execution.core.records import Position
from drl_trading.execution.core.service import ExecutionService


def calendar_close(windows: BarWindows, nominal_close: int) -> int:
    """When a bar whose nominal close (open + its timeframe, µs) is ``nominal_close`` really
    closed on ``windows``' calendar: then, if the market was open just before, else when the
    market closed before it (an XLON 1h bar keyed 15:00 closes at 15:30)."""
    if windows.key(nominal_close - 1) is not None:
        return nominal_close
    return windows.close(windows.last_closed(nominal_close))


@dataclass(slots=True)
class _Points:
    times: list[datetime] = field(default_factory=list)
    open: list[float] = field(default_factory=list)
    close: list[float] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    target: list[float] = field(default_factory=list)
    units: list[float] = field(default_factory=list)
    fees: list[float] = field(default_factory=list)


class SessionRecorder:
    """Feed it every live bar (`on_bar`) and call `after_processing` once the bus is idle.

    Only bars the execution service took (its mark for the symbol is at the bar's close) make
    points: a bar it ignored, e.g. one before the account's last in a replay of a range the
    account already traded, would measure price moves against an unchanged book."""

    def __init__(
        self,
        execution: ExecutionService,
        symbols: list[Symbol],
        base: Timeframe,
        costs: CostModel,
        initial_cash: float,
        calendars: CalendarBook | None = None,
    ) -> None:
        """``calendars``: each symbol's market calendar (None: every symbol trades 24/7)."""
        self._execution = execution
        self._base = base
        self._base_us = base.micros
        self._bar_windows = SymbolWindows(calendars, base)
        self._window_key: dict[Symbol, int] = {}
        self._last_seen: dict[Symbol, tuple[datetime, datetime]] = {}
        self.costs = costs
        capital = execution.capital
        nominal = initial_cash / max(len(symbols), 1)
        self.capital = {s: (capital or {}).get(s, nominal) for s in symbols}
        self._points: dict[Symbol, _Points] = {s: _Points() for s in symbols}
        self._window_open: dict[Symbol, float] = {}
        self._closed: list[tuple[Bar, datetime]] = []  # (bar, the base close it completes)

    def _windows(self, symbol: Symbol) -> BarWindows | None:
        """The symbol's base `BarWindows`; None on a 24/7 market (closed-form arithmetic)."""
        return self._bar_windows.for_symbol(symbol)

    def _closed_at(self, symbol: Symbol, nominal: datetime) -> datetime:
        """A bar's calendar close from its nominal one (what execution marks)."""
        windows = self._windows(symbol)
        if windows is None:
            return nominal
        seen = self._last_seen.get(symbol)
        if seen is not None and seen[0] == nominal:
            return seen[1]
        return from_micros(calendar_close(windows, to_micros(nominal)))

    def start_from_account(self) -> None:
        """Take each symbol's first point from the account as the session found it: at its
        last mark, with what it held then (call once, before the first bar). An account that
        continues may hold positions and orders from its last session, which move its equity
        (fills, prices) before the first base close; without this point the session's traces
        would miss them. A symbol the account never marked starts at its first base close."""
        positions = self._execution.positions()
        for symbol, pts in self._points.items():
            mark = self._execution.mark(symbol)
            if mark is not None and not pts.times:
                # a first point's open is never used
                at = self._closed_at(symbol, mark.as_of)
                self._take(symbol, at, mark.price, mark.price, positions)

    def finish(self) -> None:
        """Take each symbol's last point at its last mark when the session stopped inside a
        base bar (``max_bars``, Ctrl-C), so the traces end where the account does: a later
        session that continues the account starts from that very point."""
        positions = self._execution.positions()
        for symbol, pts in self._points.items():
            mark = self._execution.mark(symbol)
            window_open = self._window_open.get(symbol)
            if mark is None or window_open is None or not pts.times:
                continue
            at = self._closed_at(symbol, mark.as_of)
            if at > pts.times[-1]:
                self._take(symbol, at, window_open, mark.price, positions)

    def on_bar(self, bar: Bar) -> None:
        if bar.symbol not in self._points:
            return
        windows = self._windows(bar.symbol)
        if windows is not None:
            self._on_market_bar(bar, windows)
            return
        taken = self._points[bar.symbol].times
        if taken and bar.close_time <= taken[-1]:
            return  # before the symbol's last point: the account took it already
        if to_micros(bar.open_time) % self._base_us == 0 or bar.symbol not in self._window_open:
            self._window_open[bar.symbol] = bar.open
        if to_micros(bar.close_time) % self._base_us == 0:
            self._closed.append((bar, bar.close_time))

    def _on_market_bar(self, bar: Bar, windows: BarWindows) -> None:
        """`on_bar` on a market calendar: base windows by key, closes at the calendar's."""
        symbol = bar.symbol
        key = windows.key(to_micros(bar.open_time))
        if key is None:
            return  # outside the market's sessions (preprocessing refuses such bars)
        closed = from_micros(calendar_close(windows, to_micros(bar.close_time)))
        self._last_seen[symbol] = (bar.close_time, closed)
        taken = self._points[symbol].times
        if taken and closed <= taken[-1]:
            return  # before the symbol's last point: the account took it already
        if self._window_key.get(symbol) != key or symbol not in self._window_open:
            self._window_key[symbol] = key
            self._window_open[symbol] = bar.open
        base_close = windows.close(key)
        if to_micros(closed) >= base_close:
            self._closed.append((bar, from_micros(base_close)))

    def after_processing(self) -> None:
        """Snapshot the symbols whose base bar closed since the last call."""
        closed, self._closed = self._closed, []
        positions = self._execution.positions()
        for bar, at in closed:
            pts = self._points[bar.symbol]
            if pts.times and at <= pts.times[-1]:
                continue  # a duplicate delivery: the point is already taken
            mark = self._execution.mark(bar.symbol)
            if mark is None or mark.as_of != bar.close_time:
                # the account did not take this bar (not newer than its last, or invalid):
                # its prices would otherwise be booked against a book that never moved
                continue
            window_open = self._window_open.get(bar.symbol, bar.open)
            self._take(bar.symbol, at, window_open, bar.close, positions)

    def _take(
        self,
        symbol: Symbol,
        at: datetime,
        open_: float,
        close: float,
        positions: dict[Symbol, Position],
    ) -> None:
        """One point: the window's open and close, and what execution holds for ``symbol``."""
        pts = self._points[symbol]
        held = positions.get(symbol)
        pts.times.append(at)
        pts.open.append(open_)
        pts.close.append(close)
        pts.equity.append(self.capital[symbol] + self._execution.symbol_pnl(symbol))
        pts.target.append(self._execution.target(symbol))
        pts.units.append(held.quantity if held is not None else 0.0)
        pts.fees.append(held.fees_paid if held is not None else 0.0)

    @property
    def points(self) -> int:
        return sum(len(p.times) for p in self._points.values())

    def traces(self) -> dict[Symbol, SimulationTrace]:
        """One trace per symbol with at least two points (one step).

        Step i's cost is what the prices and units leave unexplained of its equity change
        (gap and bar legs minus the change), i.e. fees plus slippage, exactly as booked.
        """
        out: dict[Symbol, SimulationTrace] = {}
        for symbol, p in self._points.items():
            if len(p.times) < 2:
                continue
            times = np.array([t.replace(tzinfo=None) for t in p.times], dtype="datetime64[us]")
            open_ = np.asarray(p.open, dtype=np.float64)
            close = np.asarray(p.close, dtype=np.float64)
            equity = np.asarray(p.equity, dtype=np.float64)
            held = np.asarray(p.units, dtype=np.float64)
            before, after = held[:-1], held[1:]
            gap = before * (open_[1:] - close[:-1])
            bar = after * (close[1:] - open_[1:])
            cost = gap + bar - np.diff(equity)
            cost[np.abs(cost) < 1e-9 * np.abs(equity[:-1])] = 0.0  # rounding, not a fill
            out[symbol] = SimulationTrace(
                symbol=str(symbol),
                times=times,
                open=open_,
                close=close,
                equity=equity,
                position=np.asarray(p.target[:-1], dtype=np.float64),
                units=after.copy(),
                cost=cost,
                fees=np.diff(np.asarray(p.fees, dtype=np.float64)),
                costs=self.costs,
            )
        return out

    def result(
        self,
        periods_per_year: float,
        random_seeds: int = 5,
        seconds: float = 0.0,
        *,
        lookbacks: RuleLookbacks = RuleLookbacks(),
        allow_short: Mapping[Symbol, bool] | None = None,
    ) -> BacktestResult:
        """The session as a backtest result: the model is what execution did; the baselines
        are simulated on the same bars with the same costs and starting equity, in the
        backtest's columns (`evaluation.backtest.backtest`): buy-and-hold, flat, random, then
        the simple rules. ``lookbacks``: the rules' lookbacks in base bars (the backtest's
        ``training.baselines``); ``allow_short``: per symbol, whether the rules may go short
        (as in the backtest: the model's package and the strategy's signal rules both allow
        it; a symbol left out: yes)."""
        symbols: list[SymbolBacktest] = []
        bars = 0
        for symbol, trace in self.traces().items():
            n = trace.n_steps
            bars += n + 1
            initial = float(trace.equity[0])

            def sim(
                positions: np.ndarray, t: SimulationTrace = trace, e: float = initial
            ) -> SimulationTrace:
                return simulate(t.symbol, t.times, t.open, t.close, positions, self.costs, e)

            shorts = True if allow_short is None else allow_short.get(symbol, True)
            base = run_baselines(
                sim, trace.close, periods_per_year, random_seeds, lookbacks, shorts
            )
            symbols.append(
                SymbolBacktest(
                    symbol=str(symbol),
                    model=compute_metrics(trace, periods_per_year),
                    trace=trace,
                    trades=extract_trades(trace),
                    baselines=base.metrics,
                    baseline_traces={BUY_AND_HOLD: base.buy_and_hold},
                    skipped_bars=0,
                    mean_confidence=None,
                    baseline_returns=base.returns,
                )
            )
        return BacktestResult(symbols, bars, seconds, self.costs)
