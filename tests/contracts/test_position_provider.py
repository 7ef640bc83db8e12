"""Contract of the position-provider port, over the in-memory fake, the running execution
service (embedded mode) and the execution store (distributed mode).

One execution service trades over the paper broker; each provider reports its book. The fake is
fed what execution reports after every bar, as a test feeds it. Expected values follow the
training environment's encoding: the target last reached, the entry at the open of the bar the
entry filled on (no slippage), and base bars since the entry counted from 1 at that bar's close.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest

from drl_trading.common.adapter.memory_positions import InMemoryPositions
from drl_trading.common.agent_state import AgentPosition
from drl_trading.common.domain import Symbol, Timeframe
from drl_trading.common.ports import PositionProvider
from drl_trading.execution.adapter.inference_inputs import ExecutionPositions
from drl_trading.execution.adapter.memory_store import InMemoryExecutionStore
from drl_trading.execution.adapter.store_positions import StorePositions
from tests.unit.test_execution_service import STRATEGY, Harness, S

BASE = timedelta(minutes=1)


@dataclass
class Desk:
    """An execution service and the provider under test reporting its book."""

    harness: Harness
    provider: PositionProvider
    publish: Callable[[], None]

    def bar(self, i: int, o: float) -> None:
        self.harness.bar(i, o)
        self.publish()

    def signal(self, i: int, target: float) -> None:
        self.harness.service.on_signal(self.harness.signal(i, target), STRATEGY)

    def position(self) -> AgentPosition:
        return self.provider.agent_position(S)


@pytest.fixture(params=["memory", "execution", "store"])
def desk(request: pytest.FixtureRequest) -> Desk:
    h = Harness(InMemoryExecutionStore())
    if request.param == "execution":
        return Desk(h, ExecutionPositions(h.service, BASE), lambda: None)
    if request.param == "store":
        return Desk(
            h, StorePositions(h.store, Timeframe.M1, h.clock, wait=timedelta(0)), lambda: None
        )
    fake = InMemoryPositions()

    def publish() -> None:
        mark = h.service.mark(S)
        if mark is not None:
            got = h.service.agent_position(S, mark.as_of, BASE)
            fake.positions[S] = AgentPosition(
                got.target_position, got.entry_price, got.bars_in_position
            )

    return Desk(h, fake, publish)


def test_a_symbol_never_seen_or_never_traded_is_flat(desk: Desk) -> None:
    assert desk.provider.agent_position(Symbol("SOLUSDT")) == AgentPosition.flat()
    assert desk.position() == AgentPosition.flat()
    desk.bar(0, 100)
    assert desk.position() == AgentPosition.flat()
    desk.signal(0, 0.5)  # ordered, not filled yet
    assert desk.position() == AgentPosition.flat()


def test_the_position_after_a_fill_is_counted_like_the_env(desk: Desk) -> None:
    desk.bar(0, 100)
    desk.signal(0, 0.5)
    desk.bar(1, 101)  # fills at 101 plus slippage; the env's entry is the open
    assert desk.position() == AgentPosition(0.5, 101.0, 1)
    desk.bar(2, 102)
    assert desk.position() == AgentPosition(0.5, 101.0, 2)


def test_adding_keeps_the_entry_and_a_reversal_starts_a_new_one(desk: Desk) -> None:
    desk.bar(0, 100)
    desk.signal(0, 0.5)
    desk.bar(1, 101)
    desk.signal(1, 1.0)
    desk.bar(2, 102)
    assert desk.position() == AgentPosition(1.0, 101.0, 2)
    desk.signal(2, -0.5)
    desk.bar(3, 103)
    assert desk.position() == AgentPosition(-0.5, 103.0, 1)
    desk.bar(4, 104)
    assert desk.position() == AgentPosition(-0.5, 103.0, 2)


def test_closing_the_position_makes_it_flat_again(desk: Desk) -> None:
    desk.bar(0, 100)
    desk.signal(0, 0.5)
    desk.bar(1, 101)
    desk.signal(1, 0.0)
    desk.bar(2, 102)
    assert desk.position() == AgentPosition.flat()
