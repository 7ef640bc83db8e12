"""The execution service reconciling with a venue (the in-memory fake) at start and every N bars."""

from __future__ import annotations

from datetime import timedelta

from drl_trading.common.adapter.memory_bus import InMemoryBus
from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.domain import Action, Bar, Side, Symbol, Timeframe, parse_time
from drl_trading.common.events import ErrorOccurred, Event, PredictionCompleted, Topic
from drl_trading.execution.adapter.memory_store import InMemoryExecutionStore
from drl_trading.execution.adapter.memory_venue import InMemoryVenue
from drl_trading.execution.adapter.paper_broker import PaperBroker
from drl_trading.execution.core.reconciliation import (
    ReconcilePolicy,
    ReconciliationRecord,
    VenueFill,
)
from drl_trading.execution.core.records import RecordKind, TradingState
from drl_trading.execution.core.risk import ExecutionLimits
from drl_trading.execution.core.service import ExecutionService, client_order_id
from drl_trading.strategy.api import BaseStrategy

S = Symbol("BTCUSDT")
T0 = parse_time("2024-01-01T00:00")


class Harness:
    def __init__(self, every_bars: int = 60) -> None:
        self.clock = ManualClock(T0)
        self.store = InMemoryExecutionStore()
        self.venue = InMemoryVenue(10_000, T0)
        self.bus = InMemoryBus()
        self.errors: list[Event] = []
        self.bus.subscribe(Topic.error("execution"), group="observer", handler=self.errors.append)
        self.broker = PaperBroker(fee_bps=5, slippage_bps=2, initial_cash=10_000)
        self.service = ExecutionService(
            self.broker,
            self.store,
            ExecutionLimits(min_order_notional=10),
            self.clock,
            venue=self.venue,
            reconciliation=ReconcilePolicy(every_bars=every_bars),
            bus=self.bus,
        )

    def bar(self, i: int, price: float = 100.0) -> None:
        b = Bar(S, Timeframe.M1, T0 + timedelta(minutes=i), price, price, price, price, 1.0)
        self.clock.set(b.close_time + timedelta(seconds=1))
        self.venue.now = self.clock.now()
        self.service.on_bar(b)

    def signal(self, i: int, target: float, event_id: str) -> PredictionCompleted:
        close = T0 + timedelta(minutes=i + 1)
        return PredictionCompleted(
            symbol=S,
            action=Action.LONG,
            target_position=target,
            confidence=0.9,
            model_name="ppo",
            model_version="7",
            feature_time=close,
            bar_close_time=close,
            event_id=event_id,
        )

    def kinds(self) -> list[RecordKind]:
        return [r.kind for r in self.store.records_since(T0 - timedelta(days=1))]


def test_a_clean_start_reconciles_once_and_reports_ok() -> None:
    h = Harness()
    h.bar(0)
    rec = h.service.status().reconciliation
    assert rec is not None and rec.ok and not rec.adopts_anything
    assert h.kinds() == [] and len(h.venue.reads) == 1
    assert h.service.status().state is TradingState.ACTIVE


def test_an_order_sent_before_a_crash_is_adopted_with_its_fill_once() -> None:
    h = Harness()
    coid = client_order_id("lost0000")
    h.venue.trade(VenueFill("t1", coid, "o1", S, Side.BUY, 1.0, 100.0, 0.05, T0))
    h.bar(0)
    rec = h.service.last_reconciliation
    assert rec is not None and rec.ok, rec
    assert h.kinds() == [RecordKind.ORDER, RecordKind.FILL]
    assert h.service.positions()[S].quantity == 1.0
    assert h.broker.cash == 10_000 - 100.0 - 0.05
    assert h.store.has_order(coid)
    again = h.service.reconcile()
    assert again is not None and again.ok and not again.adopts_anything
    assert h.kinds() == [RecordKind.ORDER, RecordKind.FILL]
    # the redelivered signal of that order is not sent a second time
    result = h.service.on_signal(h.signal(0, 0.5, "lost0000"), BaseStrategy())
    assert result.record is not None
    assert (result.record.kind, result.record.risk_check) == (
        RecordKind.REJECTION,
        "duplicate_client_order_id",
    )


def test_a_position_changed_behind_our_back_halts_and_publishes_an_error() -> None:
    h = Harness()
    h.venue.positions[S] = 0.5
    result = h.service.on_signal(h.signal(0, 0.5, "ev1"), BaseStrategy())
    status = h.service.status()
    assert status.state is TradingState.HALTED
    assert status.reason.startswith("reconciliation: BTCUSDT position: local 0, venue 0.5")
    assert result.record is not None and result.record.risk_check == "halted"
    h.bus.poll()
    (event,) = h.errors
    assert isinstance(event, ErrorOccurred)
    assert (event.service, event.error_type) == ("execution", "ReconciliationMismatch")
    assert "venue 0.5" in event.message


def test_reconciliation_runs_every_n_bars_and_reads_fills_from_the_last_one() -> None:
    h = Harness(every_bars=2)
    for i in range(4):
        h.bar(i)
    first, second = T0 + timedelta(minutes=1, seconds=1), T0 + timedelta(minutes=2, seconds=1)
    lookback = ReconcilePolicy().lookback
    # at start (bar 0), after bar 1 and after bar 3, each from the previous one's time
    assert h.venue.reads == [first - lookback, first - lookback, second - lookback]


def test_paper_fills_that_the_venue_also_lists_are_not_adopted_again() -> None:
    h = Harness(every_bars=1)
    h.bar(0)
    h.service.on_signal(h.signal(0, 0.5, "ev1"), BaseStrategy())
    h.bar(1)  # the paper broker fills the order at this bar's open
    (fill,) = [r for r in h.store.records_since(T0) if r.kind is RecordKind.FILL]
    assert fill.side is not None and fill.price is not None and fill.client_order_id is not None
    h.venue.trade(
        VenueFill(
            "t9",
            fill.client_order_id,
            "o9",
            S,
            fill.side,
            fill.quantity,
            fill.price,
            fill.fee,
            fill.at,
        )
    )
    h.bar(2)
    rec = h.service.last_reconciliation
    assert rec is not None and rec.ok, rec.halt_reasons
    assert rec.already_recorded == 1 and rec.adopted_fills == ()
    assert h.kinds().count(RecordKind.FILL) == 1


def test_every_reconciliation_is_stored_for_another_process() -> None:
    h = Harness()
    assert h.store.last_reconciliation() is None
    h.bar(0)
    stored = h.store.last_reconciliation()
    first = h.service.last_reconciliation
    assert stored is not None and stored.ok and first is not None
    assert (stored.at, stored.summary) == (h.clock.now(), first.summary())
    h.venue.positions[S] = 0.5  # changed behind our back
    rec = h.service.reconcile()
    halted = h.store.last_reconciliation()
    assert rec is not None and rec.halt_reasons and h.service.status().state is TradingState.HALTED
    assert halted is not None and not halted.ok
    assert halted.details["halt_reasons"] == list(rec.halt_reasons)
    assert "BTCUSDT position 0 here, 0.5 on the venue" in halted.headline()


class FailingReports(InMemoryExecutionStore):
    def save_reconciliation(self, record: ReconciliationRecord) -> None:
        raise OSError("disk full")


def test_a_report_that_cannot_be_stored_does_not_stop_trading() -> None:
    h = Harness()
    h.store = FailingReports()
    h.service = ExecutionService(
        h.broker,
        h.store,
        ExecutionLimits(min_order_notional=10),
        h.clock,
        venue=h.venue,
        bus=h.bus,
    )
    h.bar(0)
    rec = h.service.last_reconciliation
    assert rec is not None and rec.ok and h.store.last_reconciliation() is None
    result = h.service.on_signal(h.signal(0, 0.5, "ev1"), BaseStrategy())
    assert result.record is not None and result.record.kind is RecordKind.ORDER
