"""What inference needs from execution, read in-process: the agent's position and the prices.

In the embedded runtime inference asks the execution service directly; the distributed issue
puts the same two functions over the execution store.
"""

from __future__ import annotations

from datetime import timedelta

from drl_trading.common.agent_state import AgentPosition
from drl_trading.common.domain import Symbol
from drl_trading.execution.core.service import ExecutionService


class ExecutionPositions:
    """`PositionProvider` over a running execution service; positions are counted in base bars
    up to the last bar execution has marked (the bar inference is deciding on)."""

    def __init__(self, service: ExecutionService, base_bar: timedelta) -> None:
        self._service = service
        self._bar = base_bar

    def agent_position(self, symbol: Symbol) -> AgentPosition:
        mark = self._service.mark(symbol)
        if mark is None:
            return AgentPosition.flat()
        got = self._service.agent_position(symbol, mark.as_of, self._bar)
        return AgentPosition(got.target_position, got.entry_price, got.bars_in_position)

    def price(self, symbol: Symbol) -> float:
        mark = self._service.mark(symbol)
        if mark is None:
            raise LookupError(f"no price seen yet for {symbol}")
        return mark.price
