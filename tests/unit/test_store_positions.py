"""Inference's view of the agent's position through the execution store (distributed mode)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.agent_state import AgentPosition
from drl_trading.common.domain import Timeframe
from drl_trading.execution.adapter.memory_store import InMemoryExecutionStore
from drl_trading.execution.adapter.store_positions import StorePositions
from tests.unit.test_execution_service import STRATEGY, T0, Harness, S


def test_positions_equal_what_the_execution_service_itself_reports() -> None:
    h = Harness(InMemoryExecutionStore())
    h.bar(0, 100)
    h.service.on_signal(h.signal(0, 0.5), STRATEGY)
    reader = StorePositions(h.store, Timeframe.M1, h.clock, wait=timedelta(0))
    for i in range(1, 5):
        h.bar(i, 100 + i)
        at = T0 + timedelta(minutes=i + 1)
        own = h.service.agent_position(S, at, timedelta(minutes=1))
        seen = reader.agent_position(S)
        assert seen == AgentPosition(own.target_position, own.entry_price, own.bars_in_position)
        assert seen.target_position == 0.5 and seen.bars_in_position == i
        assert reader.price(S) == 100 + i
    assert reader.waits == 0 and reader.late == 0


def test_a_read_waits_for_executions_mark_of_the_bar() -> None:
    h = Harness(InMemoryExecutionStore())
    h.bar(0, 100)
    clock = ManualClock(T0 + timedelta(minutes=2))  # inference is at bar 1's close already
    wakes: list[float] = []

    def changed(timeout: float) -> bool:
        wakes.append(timeout)
        if len(wakes) == 2:  # execution commits its mark of bar 1 while inference waits
            h.bar(1, 105)
        return True

    reader = StorePositions(h.store, Timeframe.M1, clock, changed=changed)
    assert reader.price(S) == 105
    assert reader.waits == 1 and reader.late == 0
    assert len(wakes) == 2 and 0 < wakes[1] <= 3.0


def test_a_mark_that_never_comes_is_used_late_and_said() -> None:
    h = Harness(InMemoryExecutionStore())
    h.bar(0, 100)
    clock = ManualClock(T0 + timedelta(minutes=2))
    reader = StorePositions(h.store, Timeframe.M1, clock, wait=timedelta(milliseconds=20))
    assert reader.price(S) == 100
    assert reader.late == 1
    with pytest.raises(LookupError):
        StorePositions(InMemoryExecutionStore(), Timeframe.M1, clock, wait=timedelta(0)).price(S)
