"""The session recorder on an exchange calendar: XLON's hourly bar keyed 15:00 UTC closes with the
session at 15:30, off the hourly grid, and the recorder takes its point there, whether the live
bars are 1m (the 15:29 bar completes it) or 1h (the 15:00 bar, nominally closing at 16:00)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.adapter.exchange_calendars_calendar import ExchangeCalendarsCalendar
from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.calendar import CalendarBook
from drl_trading.common.costs import CostModel
from drl_trading.common.domain import Bar, Symbol, Timeframe
from drl_trading.execution.adapter.memory_store import InMemoryExecutionStore
from drl_trading.execution.adapter.paper_broker import PaperBroker
from drl_trading.execution.core.service import ExecutionService
from drl_trading.execution.core.session_recorder import SessionRecorder
from tests.unit.test_execution_service import LIMITS

VOD = Symbol("VOD")
OPEN = datetime(2024, 6, 10, 7, 0, tzinfo=UTC)  # 08:00 London (BST)
CLOSE = datetime(2024, 6, 10, 15, 30, tzinfo=UTC)  # 16:30 London
COSTS = CostModel(fee_bps=5, slippage_bps=2, min_order_notional=10)


def _session(calendars: CalendarBook | None) -> tuple[ExecutionService, SessionRecorder]:
    clock = ManualClock(OPEN)
    service = ExecutionService(
        PaperBroker(COSTS.fee_bps, COSTS.slippage_bps, initial_cash=10_000),
        InMemoryExecutionStore(),
        LIMITS,
        clock,
    )
    return service, SessionRecorder(service, [VOD], Timeframe.H1, COSTS, 10_000, calendars)


def _stream(service: ExecutionService, recorder: SessionRecorder, bars: list[Bar]) -> None:
    for b in bars:
        recorder.on_bar(b)
        service.on_bar(b)
        recorder.after_processing()


def _bars(tf: Timeframe, start: datetime, end: datetime) -> list[Bar]:
    out, t, i = [], start, 0
    while t < end:
        price = 100.0 + i
        out.append(Bar(VOD, tf, t, price, price + 1, price - 1, price + 0.5, 1.0))
        t += tf.duration
        i += 1
    return out


HOURLY_CLOSES = [OPEN + timedelta(hours=h) for h in range(1, 9)] + [CLOSE]


@pytest.mark.parametrize("data", [Timeframe.M1, Timeframe.H1])
def test_the_last_hourly_bar_closes_with_the_session(data: Timeframe) -> None:
    xlon = CalendarBook(AlwaysOpenCalendar(), {VOD: ExchangeCalendarsCalendar("XLON")})
    service, recorder = _session(xlon)
    bars = _bars(data, OPEN, CLOSE)
    _stream(service, recorder, bars)
    recorder.finish()

    (trace,) = recorder.traces().values()
    times = [t.item().replace(tzinfo=UTC) for t in trace.times]
    assert times == HOURLY_CLOSES
    # the 15:00 bar's point: its window opened at 15:00, closed with the last bar's close
    last_window = [b for b in bars if b.open_time >= CLOSE - timedelta(minutes=30)]
    assert trace.open[-1] == last_window[0].open and trace.close[-1] == last_window[-1].close
    # the next session's first bar is a window of its own
    _stream(
        service, recorder, _bars(data, OPEN + timedelta(days=1), OPEN + timedelta(days=1, hours=1))
    )
    (trace,) = recorder.traces().values()
    assert trace.times[-1].item().replace(tzinfo=UTC) == OPEN + timedelta(days=1, hours=1)


def test_on_24_7_the_half_hour_bar_is_no_close() -> None:
    service, recorder = _session(None)
    _stream(service, recorder, _bars(Timeframe.M1, OPEN, CLOSE))
    (trace,) = recorder.traces().values()
    assert [t.item().replace(tzinfo=UTC) for t in trace.times] == HOURLY_CLOSES[:-1]
