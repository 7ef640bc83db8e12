"""What inference needs from execution, read in-process: the agent's position and the prices.

In the embedded runtime inference asks the execution service directly; the distributed issue
puts the same two functions over the execution store.
"""

from __future__ import annotations

from datetime import timedelta

from drl_trading.common.agent_state import AgentPosition
from drl_trading.common.bar_windows import BarWindows, SymbolWindows
from drl_trading.common.calendar import CalendarBook
from drl_trading.common.domain import Symbol, Timeframe
from drl_trading.execution.core.service import ExecutionService


class ExecutionPositions:
    """`PositionProvider` over a running execution service; positions are counted in base bars
    up to the last bar execution has marked (the bar inference is deciding on). ``base_bar``:
    the base timeframe (or its duration, on a 24/7 market); with ``calendars`` the bars are
    each symbol's market bars (an FX weekend or an exchange's night counts none)."""

    def __init__(
        self,
        service: ExecutionService,
        base_bar: Timeframe | timedelta,
        calendars: CalendarBook | None = None,
    ) -> None:
        self._service = service
        base = base_bar if isinstance(base_bar, Timeframe) else None
        self._bar = base_bar.duration if isinstance(base_bar, Timeframe) else base_bar
        if calendars is not None and base is None:
            raise ValueError("counting bars on market calendars needs the base Timeframe")
        self._windows = None if base is None else SymbolWindows(calendars, base)

    def _counter(self, symbol: Symbol) -> timedelta | BarWindows:
        windows = None if self._windows is None else self._windows.for_symbol(symbol)
        return self._bar if windows is None else windows

    def agent_position(self, symbol: Symbol) -> AgentPosition:
        mark = self._service.mark(symbol)
        if mark is None:
            return AgentPosition.flat()
        got = self._service.agent_position(symbol, mark.as_of, self._counter(symbol))
        return AgentPosition(got.target_position, got.entry_price, got.bars_in_position)

    def price(self, symbol: Symbol) -> float:
        mark = self._service.mark(symbol)
        if mark is None:
            raise LookupError(f"no price seen yet for {symbol}")
        return mark.price
