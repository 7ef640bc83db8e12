"""Execution service end to end over the paper broker, with a manual clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from drl_trading.app.execution import bootstrap_execution
from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.domain import Action, Bar, Symbol, Timeframe, parse_time, to_micros
from drl_trading.common.events import PredictionCompleted
from drl_trading.execution.adapter.memory_store import InMemoryExecutionStore
from drl_trading.execution.adapter.paper_broker import PaperBroker
from drl_trading.execution.adapter.sqlite_store import SQLiteExecutionStore
from drl_trading.execution.core.config import ExecutionSettings
from drl_trading.execution.core.ports import (
    ConcurrentCommitError,
    DuplicateOrderError,
    ExecutionStore,
)
from drl_trading.execution.core.records import (
    ControlKind,
    ControlRequest,
    RecordKind,
    TradeRecord,
    TradingState,
)
from drl_trading.execution.core.risk import ExecutionLimits
from drl_trading.execution.core.service import ExecutionService, client_order_id
from drl_trading.strategy.api import BaseStrategy, RiskParameters

S = Symbol("BTCUSDT")
T0 = parse_time("2024-01-01T00:00")
LIMITS = ExecutionLimits(max_signal_age=timedelta(seconds=120), min_order_notional=10)
STRATEGY = BaseStrategy()


def bar(i: int, o: float, c: float | None = None) -> Bar:
    c = o if c is None else c
    return Bar(S, Timeframe.M1, T0 + timedelta(minutes=i), o, max(o, c), min(o, c), c, 1.0)


class Harness:
    """A service, its broker and store, and a clock that follows the bars like a live feed."""

    def __init__(self, store: ExecutionStore, limits: ExecutionLimits = LIMITS) -> None:
        self.clock = ManualClock(T0)
        self.store = store
        self.broker = PaperBroker(fee_bps=5, slippage_bps=2, initial_cash=10_000)
        self.service = ExecutionService(self.broker, store, limits, self.clock)

    def bar(self, i: int, o: float, c: float | None = None) -> None:
        b = bar(i, o, c)
        self.clock.set(b.close_time + timedelta(seconds=1))
        self.service.on_bar(b)

    def signal(self, i: int, target: float, event_id: str | None = None) -> PredictionCompleted:
        """The signal computed on bar ``i`` (after it closed)."""
        close = bar(i, 1).close_time
        event = PredictionCompleted(
            symbol=S,
            action=Action.LONG if target > 0 else Action.FLAT,
            target_position=target,
            confidence=0.9,
            model_name="ppo",
            model_version="7",
            feature_time=close,
            bar_close_time=close,
            **({"event_id": event_id} if event_id else {}),
        )
        return event

    def kinds(self) -> list[RecordKind]:
        return [r.kind for r in self.store.records_since(T0)]


@pytest.fixture
def h() -> Harness:
    return Harness(InMemoryExecutionStore())


def test_duplicate_signal_places_one_order(h: Harness) -> None:
    h.bar(0, 100)
    event = h.signal(0, 0.5)
    first = h.service.on_signal(event, STRATEGY)
    second = h.service.on_signal(event, STRATEGY)
    assert first.record is not None and first.record.kind is RecordKind.ORDER
    assert first.record.client_order_id == client_order_id(event.event_id)
    assert second.duplicate and second.record is None
    assert len(h.broker.open_orders()) == 1
    assert h.store.counts()[RecordKind.ORDER] == 1


def test_signals_and_bars_end_to_end(h: Harness) -> None:
    h.bar(0, 100)
    h.service.on_signal(h.signal(0, 0.5), STRATEGY)  # 0.5 * 10_000 / 100 = 50 units
    h.bar(1, 101, 102)  # fills at 101 * 1.0002
    buy_price = 101 * 1.0002
    pos = h.broker.positions()[S]
    assert pos.quantity == pytest.approx(50) and pos.avg_price == pytest.approx(buy_price)

    same = h.service.on_signal(h.signal(1, 0.5), STRATEGY)
    assert same.record is not None and same.record.risk_check == "unchanged_target"

    h.service.on_signal(h.signal(1, 0.0), STRATEGY)
    h.bar(2, 104, 104)
    sell_price = 104 * 0.9998
    pos = h.broker.positions()[S]
    assert pos.quantity == 0.0
    assert pos.realised_pnl == pytest.approx(50 * (sell_price - buy_price))

    records = h.store.records_since(T0)
    assert [r.kind for r in records] == [
        RecordKind.ORDER,
        RecordKind.FILL,
        RecordKind.SKIP,
        RecordKind.ORDER,
        RecordKind.FILL,
    ]
    sell_fill = records[-1]
    assert sell_fill.signal_id == records[3].signal_id and sell_fill.model_version == "7"
    assert sell_fill.realised_pnl == pytest.approx(pos.realised_pnl)
    assert sell_fill.at == T0 + timedelta(minutes=2)  # the open of the bar after the signal

    status = h.service.status()
    fees = 50 * (buy_price + sell_price) * 0.0005
    assert status.cash == pytest.approx(10_000 + pos.realised_pnl - fees)
    assert status.equity == pytest.approx(status.cash)
    assert status.state is TradingState.ACTIVE
    assert status.last_signal is not None and status.last_signal.kind is RecordKind.ORDER
    assert status.counts[RecordKind.FILL] == 2


def test_stale_signals_and_redelivered_bars_change_nothing(h: Harness) -> None:
    h.bar(0, 100)
    h.bar(1, 100)
    h.clock.advance(timedelta(minutes=5))
    result = h.service.on_signal(h.signal(1, 0.5), STRATEGY)
    assert result.record is not None and result.record.risk_check == "signal_age"
    h.service.on_signal(h.signal(1, 0.5), STRATEGY)  # a new event: rejected on its own
    assert h.service.on_bar(bar(1, 50)) == []  # re-delivered: ignored, no new mark
    assert h.service.status().marks[S] == 100


def test_no_mark_yet_rejects(h: Harness) -> None:
    result = h.service.on_signal(h.signal(0, 0.5), STRATEGY)
    assert result.record is not None and result.record.risk_check == "no_mark"


def test_drawdown_halts_and_flattens(h: Harness) -> None:
    h.bar(0, 100)
    h.service.on_signal(h.signal(0, 1.0), STRATEGY)
    h.bar(1, 100)
    assert h.broker.positions()[S].quantity == pytest.approx(100)
    h.bar(2, 100, 70)  # equity ~7_000: 30 % drawdown
    status = h.service.status()
    assert status.state is TradingState.HALTED and "drawdown" in status.reason
    (flatten,) = h.broker.open_orders()
    assert flatten.quantity == pytest.approx(100) and flatten.client_order_id.startswith("flat-")
    h.bar(3, 70)
    assert h.broker.positions()[S].is_flat
    rejected = h.service.on_signal(h.signal(3, 0.5), STRATEGY)
    assert rejected.record is not None and rejected.record.risk_check == "halted"
    assert h.kinds()[-2:] == [RecordKind.FILL, RecordKind.REJECTION]


def test_daily_loss_reduces_until_the_next_day() -> None:
    h = Harness(InMemoryExecutionStore(), LIMITS)
    h.bar(0, 100)
    h.service.on_signal(h.signal(0, 1.0), STRATEGY)
    h.bar(1, 100, 93)  # -7 % on the day
    assert h.service.status().state is TradingState.REDUCING
    grow = h.service.on_signal(h.signal(1, -0.5), STRATEGY)
    assert grow.record is not None and grow.record.kind is RecordKind.ORDER
    assert grow.decision is not None and grow.decision.adjustments[-1].endswith("flat")
    next_day = int(timedelta(days=1) / timedelta(minutes=1))
    h.bar(next_day, 93)
    assert h.service.status().state is TradingState.ACTIVE


def test_kill_cancels_open_orders_and_resume_trades_the_same_target_again(h: Harness) -> None:
    h.bar(0, 100)
    h.service.on_signal(h.signal(0, 0.5), STRATEGY)
    change = h.service.kill("operator")
    assert change is not None and change.current is TradingState.HALTED
    assert h.broker.open_orders() == []
    assert h.kinds() == [RecordKind.ORDER, RecordKind.CANCEL]
    h.service.resume()
    assert h.service.status().state is TradingState.ACTIVE
    again = h.service.on_signal(h.signal(0, 0.5), STRATEGY)
    assert again.record is not None and again.record.kind is RecordKind.ORDER


def test_kill_with_flatten_closes_positions(h: Harness) -> None:
    h.bar(0, 100)
    h.service.on_signal(h.signal(0, -0.5), STRATEGY)
    h.bar(1, 100)
    h.service.kill("operator", flatten=True)
    h.bar(2, 100)
    assert h.broker.positions()[S].is_flat


def test_restart_over_sqlite_resumes_the_portfolio_without_duplicate_orders(
    tmp_path: Path,
) -> None:
    path = tmp_path / "execution.sqlite"
    first = Harness(SQLiteExecutionStore(path))
    first.bar(0, 100)
    event = first.signal(0, 0.5)
    first.service.on_signal(event, STRATEGY)
    first.bar(1, 100)
    second_event = first.signal(1, 0.8)
    first.service.on_signal(second_event, STRATEGY)  # open when the process stops
    before = first.service.status()
    first.store.close()

    reopen: Callable[[], Harness] = lambda: Harness(SQLiteExecutionStore(path))  # noqa: E731
    second = reopen()
    second.clock.set(first.clock.now())
    after = second.service.status()
    assert (after.cash, after.positions, after.open_orders) == (
        before.cash,
        before.positions,
        before.open_orders,
    )
    assert (after.state, after.marks, after.last_signal) == (
        before.state,
        before.marks,
        before.last_signal,
    )
    assert second.service.on_signal(event, STRATEGY).duplicate
    assert second.service.on_signal(second_event, STRATEGY).duplicate
    second.bar(2, 100)  # the order placed before the restart fills now
    assert second.broker.positions()[S].quantity == pytest.approx(80, rel=1e-3)
    assert second.store.counts()[RecordKind.ORDER] == 2
    assert second.store.counts()[RecordKind.FILL] == 2

    stray = TradeRecord(
        record_id="order:again",
        kind=RecordKind.ORDER,
        symbol=S,
        at=T0,
        client_order_id=client_order_id(event.event_id),
    )
    cp = second.store.load()
    assert cp is not None
    with pytest.raises(DuplicateOrderError):
        second.store.commit(cp, [stray])
    second.store.close()


def test_bootstrap_builds_a_paper_service_from_settings(tmp_path: Path) -> None:
    parts = bootstrap_execution(
        ExecutionSettings(initial_cash=5_000),
        RiskParameters(),
        ManualClock(T0),
        tmp_path,
        [Symbol("AAA"), Symbol("BBB"), Symbol("AAA")],
    )
    assert parts.service.status().cash == 5_000
    assert parts.service.capital == {Symbol("AAA"): 2_500, Symbol("BBB"): 2_500}
    assert (tmp_path / "execution.sqlite").exists()
    parts.close()
    with pytest.raises(ValueError, match="needs the traded symbols"):
        bootstrap_execution(ExecutionSettings(), RiskParameters(), ManualClock(T0), tmp_path)
    shared = bootstrap_execution(
        ExecutionSettings(capital="shared", store="memory"),
        RiskParameters(),
        ManualClock(T0),
        tmp_path,
    )
    assert shared.service.capital is None


class FlakyStore(InMemoryExecutionStore):
    """Fails the next ``fail`` commits, as a database restarting would."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = 0

    def commit(self, checkpoint, records=(), processed_signal_id=None, applied_controls=(), **kw):  # type: ignore[no-untyped-def]
        if self.fail:
            self.fail -= 1
            raise ConnectionError("database restarting")
        super().commit(checkpoint, records, processed_signal_id, applied_controls, **kw)


def test_a_failed_commit_is_redone_from_the_committed_state() -> None:
    """When the store refuses a commit the service's memory (broker included) is ahead of it;
    the retry of the same bar and signal must give exactly what an undisturbed run gives."""
    smooth, flaky = Harness(InMemoryExecutionStore()), Harness(FlakyStore())
    store = flaky.store
    assert isinstance(store, FlakyStore)
    for run in (smooth, flaky):
        run.bar(0, 100)
    event = smooth.signal(0, 0.5)
    smooth.service.on_signal(event, STRATEGY)
    store.fail = 1
    with pytest.raises(ConnectionError):
        flaky.service.on_signal(event, STRATEGY)
    assert len(flaky.broker.open_orders()) == 1  # submitted, not committed
    flaky.service.on_signal(event, STRATEGY)  # the bus's retry
    for run in (smooth, flaky):
        run.bar(1, 101, 102)  # the fill
    store.fail = 1
    with pytest.raises(ConnectionError):
        flaky.bar(2, 103, 104)
    flaky.bar(2, 103, 104)  # retried: not dropped as a bar already marked
    smooth.bar(2, 103, 104)
    assert flaky.store.load() == smooth.store.load()
    assert flaky.store.records_since(T0) == smooth.store.records_since(T0)
    assert flaky.broker.positions() == smooth.broker.positions()
    assert flaky.service.mark(S) == smooth.service.mark(S)


WALL = parse_time("2026-05-01T12:00")
"""The operator's wall clock when asking: years after the account's market time."""


def test_a_kill_requested_from_another_process_stops_the_next_signal(h: Harness) -> None:
    h.bar(0, 100)
    h.service.on_signal(h.signal(0, 0.5), STRATEGY)
    seen: list[ControlRequest] = []
    h.service.attach("session-1", seen.append)
    kill = h.store.request_control(ControlKind.KILL, WALL, reason="stop now")
    result = h.service.on_signal(h.signal(0, 0.8), STRATEGY)
    assert result.record is not None and result.record.risk_check == "halted"
    assert h.broker.open_orders() == []  # the kill cancelled the open order
    assert h.kinds() == [RecordKind.ORDER, RecordKind.CANCEL, RecordKind.REJECTION]
    acked = h.store.control(kill.control_id)
    assert acked is not None and seen == [acked]
    assert acked.applied_by == "session-1" and acked.applied_at == h.clock.now()
    assert acked.records_before == 1  # the ORDER came before it, the CANCEL after
    assert acked.outcome == "trading state: halted (kill switch: stop now)"
    cp = h.store.load()
    assert cp is not None and cp.risk.state is TradingState.HALTED
    assert h.store.pending_controls() == []


def test_a_kill_is_applied_before_the_bar_and_flattens_at_the_market_time(h: Harness) -> None:
    h.bar(0, 100)
    h.service.on_signal(h.signal(0, 0.5), STRATEGY)
    h.bar(1, 100)  # filled: 50 units held
    kill = h.store.request_control(ControlKind.KILL, WALL, reason="x", flatten=True)
    h.clock.set(bar(2, 100).close_time)
    h.service.on_bar(bar(2, 100))  # the flatten order placed before this bar fills on it
    assert h.broker.positions()[S].is_flat
    acked = h.store.control(kill.control_id)
    assert acked is not None and acked.applied_at == bar(2, 100).close_time
    records = h.store.records_since(T0)
    flatten = [r for r in records if r.kind is RecordKind.ORDER and r.risk_check == "halt_flatten"]
    assert len(flatten) == 1
    assert flatten[0].at == acked.applied_at  # the account's time, not the operator's
    assert flatten[0].client_order_id is not None
    assert str(to_micros(acked.applied_at)) in flatten[0].client_order_id


def test_a_resumed_account_trades_again(h: Harness) -> None:
    h.bar(0, 100)
    h.store.request_control(ControlKind.KILL, WALL, reason="x")
    assert [c.kind for c in h.service.apply_controls()] == [ControlKind.KILL]
    assert h.service.apply_controls() == []  # nothing pending any more
    rejected = h.service.on_signal(h.signal(0, 0.5), STRATEGY)
    assert rejected.record is not None and rejected.record.risk_check == "halted"
    resume = h.store.request_control(ControlKind.RESUME, WALL)
    (applied,) = h.service.apply_controls()
    assert applied.control_id == resume.control_id and "active" in applied.outcome
    again = h.service.on_signal(h.signal(0, 0.5), STRATEGY)
    assert again.record is not None and again.record.kind is RecordKind.ORDER


def test_a_kill_applied_by_another_process_is_never_overwritten(tmp_path: Path) -> None:
    """The session loaded the account; another process applied a kill to the stored account
    (it saw no heartbeat): the session's next commit is refused, and its retry of the event
    decides on the halted state."""
    path = tmp_path / "execution.sqlite"
    session = Harness(SQLiteExecutionStore(path))
    session.bar(0, 100)
    operator = Harness(SQLiteExecutionStore(path))
    operator.clock.set(session.clock.now())
    operator.store.request_control(ControlKind.KILL, WALL, reason="x")
    operator.service.apply_controls()
    event = session.signal(0, 0.5)
    with pytest.raises(ConcurrentCommitError):
        session.service.on_signal(event, STRATEGY)
    retried = session.service.on_signal(event, STRATEGY)  # the bus's retry
    assert retried.record is not None and retried.record.risk_check == "halted"
    assert session.broker.open_orders() == []
    cp = operator.store.load()
    assert cp is not None and cp.risk.state is TradingState.HALTED
    assert operator.store.counts()[RecordKind.ORDER] == 0
    session.store.close()
    operator.store.close()
