"""What execution commits when: decisions, fills and trading states before the call returns, a
bar's marks off the path (not durable at once, and with ``mark_commit_bars`` batched)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.domain import Action, Bar, Symbol, Timeframe, parse_time
from drl_trading.common.events import PredictionCompleted
from drl_trading.execution.adapter.memory_store import InMemoryExecutionStore
from drl_trading.execution.adapter.paper_broker import PaperBroker
from drl_trading.execution.adapter.sqlite_store import SQLiteExecutionStore
from drl_trading.execution.core.ports import ExecutionStore
from drl_trading.execution.core.records import (
    AppliedControl,
    Checkpoint,
    ControlKind,
    RecordKind,
    TradeRecord,
)
from drl_trading.execution.core.risk import ExecutionLimits
from drl_trading.execution.core.service import ExecutionService
from drl_trading.strategy.api import BaseStrategy

S = Symbol("BTCUSDT")
T0 = parse_time("2024-01-01T00:00")
LIMITS = ExecutionLimits(max_signal_age=timedelta(seconds=120), min_order_notional=10)


class RecordingStore(InMemoryExecutionStore):
    """The in-memory store, remembering how each commit was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.commits: list[tuple[int, bool, bool]] = []  # (records, signal id, durable)

    def commit(
        self,
        checkpoint: Checkpoint,
        records: Sequence[TradeRecord] = (),
        processed_signal_id: str | None = None,
        applied_controls: Sequence[AppliedControl] = (),
        *,
        durable: bool = True,
    ) -> None:
        super().commit(checkpoint, records, processed_signal_id, applied_controls, durable=durable)
        self.commits.append((len(records), processed_signal_id is not None, durable))


def service(store: ExecutionStore, clock: ManualClock, batch: int = 1) -> ExecutionService:
    broker = PaperBroker(fee_bps=5, slippage_bps=2, initial_cash=10_000)
    return ExecutionService(broker, store, LIMITS, clock, mark_commit_bars=batch)


def bar(i: int, price: float = 100.0) -> Bar:
    return Bar(S, Timeframe.M1, T0 + timedelta(minutes=i), price, price, price, price, 1.0)


def feed(svc: ExecutionService, clock: ManualClock, i: int, price: float = 100.0) -> None:
    b = bar(i, price)
    clock.set(b.close_time + timedelta(seconds=1))
    svc.on_bar(b)


def signal(i: int, target: float) -> PredictionCompleted:
    close = bar(i).close_time
    return PredictionCompleted(
        symbol=S,
        action=Action.LONG if target > 0 else Action.FLAT,
        target_position=target,
        confidence=0.9,
        model_name="ppo",
        model_version="7",
        feature_time=close,
        bar_close_time=close,
    )


def test_only_a_bar_that_moved_the_marks_alone_is_committed_without_durability() -> None:
    store, clock = RecordingStore(), ManualClock(T0)
    svc = service(store, clock)
    feed(svc, clock, 0)
    svc.on_signal(signal(0, 0.5), BaseStrategy())
    feed(svc, clock, 1)  # the order fills
    feed(svc, clock, 2)
    svc.kill("operator")
    assert store.commits == [
        (0, False, False),  # bar 0: marks only
        (1, True, True),  # the signal's order with its signal id
        (1, False, True),  # bar 1: the fill
        (0, False, False),  # bar 2: marks only
        (0, False, True),  # the kill: a trading state, nothing to cancel
    ]


def test_batched_marks_wait_for_the_next_commit_or_flush() -> None:
    store, clock = RecordingStore(), ManualClock(T0)
    svc = service(store, clock, batch=4)
    for i in range(3):
        feed(svc, clock, i, 100.0 + i)
    assert store.commits == [] and svc.unsaved_bars == 3
    assert svc.status().marks == {S: 102.0}  # the service itself is up to date
    feed(svc, clock, 3, 103.0)  # the fourth bar: one commit for all four
    assert store.commits == [(0, False, False)] and svc.unsaved_bars == 0
    feed(svc, clock, 4, 104.0)
    svc.on_signal(signal(4, 0.5), BaseStrategy())  # the signal's commit carries the marks
    assert store.commits[-1] == (1, True, True) and svc.unsaved_bars == 0
    cp = store.load()
    assert cp is not None and cp.marks[S].price == 104.0
    feed(svc, clock, 5, 105.0)  # fills: committed at once, never batched
    assert store.commits[-1] == (1, False, True) and svc.unsaved_bars == 0
    feed(svc, clock, 6, 106.0)
    assert svc.unsaved_bars == 1
    svc.flush()
    assert store.commits[-1] == (0, False, False) and svc.unsaved_bars == 0
    svc.flush()  # nothing waits: no commit
    assert len(store.commits) == 4
    with pytest.raises(ValueError, match="mark_commit_bars"):
        service(InMemoryExecutionStore(), clock, batch=0)


def test_a_crash_loses_only_marks_that_the_next_bars_derive_again(tmp_path: Path) -> None:
    """kill -9 with marks waiting: the restarted account has every order, fill and processed
    signal, resumes at the marks of the last commit, drops the redelivered signal, and the
    re-sent bars mark it as an uninterrupted run does."""
    path, clock = tmp_path / "execution.sqlite", ManualClock(T0)
    smooth_clock = ManualClock(T0)
    smooth = service(InMemoryExecutionStore(), smooth_clock)
    first = service(SQLiteExecutionStore(path), clock, batch=64)
    event = signal(0, 0.5)
    for svc, c in ((smooth, smooth_clock), (first, clock)):
        feed(svc, c, 0)
        svc.on_signal(event, BaseStrategy())
        feed(svc, c, 1, 101.0)  # fills
        for i in range(2, 6):
            feed(svc, c, i, 100.0 + i)
    assert first.unsaved_bars == 4
    # the crash: nothing flushed; a new process opens the same file
    second = service(SQLiteExecutionStore(path), clock, batch=64)
    status = second.status()
    assert status.marks == {S: 101.0}  # the fill's commit
    assert status.positions == smooth.status().positions
    assert second.on_signal(event, BaseStrategy()).duplicate
    for i in range(2, 6):  # the source re-sends what the account had not stored
        feed(second, clock, i, 100.0 + i)
    again, expected = second.status(), smooth.status()
    assert (again.marks, again.equity, again.peak_equity, again.cash) == (
        expected.marks,
        expected.equity,
        expected.peak_equity,
        expected.cash,
    )
    counts = second.status().counts
    assert (counts[RecordKind.ORDER], counts[RecordKind.FILL]) == (1, 1)
    second.flush()
    cp = SQLiteExecutionStore(path).load()
    assert cp is not None and cp.marks[S].price == 105.0


def test_a_kill_from_another_process_is_applied_with_marks_waiting(tmp_path: Path) -> None:
    path, clock = tmp_path / "execution.sqlite", ManualClock(T0)
    svc = service(SQLiteExecutionStore(path), clock, batch=64)
    feed(svc, clock, 0)
    feed(svc, clock, 1)
    operator = SQLiteExecutionStore(path)
    operator.request_control(ControlKind.KILL, clock.now(), reason="operator")
    feed(svc, clock, 2)  # applies the kill first: a durable commit, the marks with it
    assert svc.unsaved_bars == 1  # bar 2 itself moved the marks after the kill's commit
    cp = operator.load()
    assert (
        cp is not None
        and cp.risk.state.value == "halted"
        and cp.marks[S].as_of == bar(1).close_time
    )
    operator.close()
