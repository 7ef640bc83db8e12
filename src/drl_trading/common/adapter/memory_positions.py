"""The agent's positions from a dict: the fake beside the `PositionProvider` port.

Tests set ``positions[symbol]`` to what execution would report; a symbol absent from it is flat,
as a symbol never traded is for every provider.
"""

from __future__ import annotations

from collections.abc import Mapping

from drl_trading.common.agent_state import AgentPosition
from drl_trading.common.domain import Symbol


class InMemoryPositions:
    def __init__(self, positions: Mapping[Symbol, AgentPosition] | None = None) -> None:
        self.positions: dict[Symbol, AgentPosition] = dict(positions or {})

    def agent_position(self, symbol: Symbol) -> AgentPosition:
        return self.positions.get(symbol, AgentPosition.flat())
