"""Online ingest at a session timeframe on a market that closes: the cursor, skips and closes
follow the calendar (an FX weekend is no gap), the gap fill fetches the session's timeframe, and
the stream refuses bars of another timeframe or of a closed market."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import polars as pl
import pytest

from drl_trading.app.ingest import compose_online_ingest
from drl_trading.common.adapter.exchange_calendars_calendar import ExchangeCalendarsCalendar
from drl_trading.common.adapter.fx_calendar import FxCalendar
from drl_trading.common.adapter.memory_bus import InMemoryBus
from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.bar_windows import bar_slots
from drl_trading.common.bars import BAR_SCHEMA
from drl_trading.common.calendar import CalendarBook, MarketCalendar
from drl_trading.common.domain import Bar, Symbol, Timeframe, from_micros, parse_time
from drl_trading.common.events import (
    PreprocessDataRequested,
    ProcessingMode,
    ResampledBar,
    StoreResampledDataRequested,
    Topic,
)
from drl_trading.ingest.adapter.memory_live_source import InMemoryLiveSource
from drl_trading.ingest.core.online_service import OnlineIngestService, OnlineState
from tests.unit.test_online_ingest import complete_catchup, online_requests

A = Symbol("EURUSD")
H1 = Timeframe.H1
H = timedelta(hours=1)
FX = FxCalendar()
FX_BOOK = CalendarBook(FX)
FRI = parse_time("2024-01-05")  # a Friday in New York's winter: FX closes at 22:00 UTC
SUN_OPEN = parse_time("2024-01-07T22:00")


def market_bars(calendar: MarketCalendar, start: datetime, end: datetime) -> pl.DataFrame:
    """Valid 1h bars at every slot the market makes in ``[start, end)``."""
    times = [from_micros(int(k)) for k in bar_slots(calendar, H1, start, end)]
    rows = [(t, 1.1 + i * 1e-4, 1.11 + i * 1e-4, 1.09, 1.1, 100.0) for i, t in enumerate(times)]
    return pl.DataFrame(rows, schema=BAR_SCHEMA, orient="row")


def hour(t: datetime, timeframe: Timeframe = H1, price: float = 1.1) -> Bar:
    return Bar(A, timeframe, t, price, price + 0.01, price - 0.01, price + 0.005, 50.0)


class HourlyProvider:
    """Serves the market's 1h bars for any range and records what was asked."""

    name = "hourly"

    def __init__(self, calendar: MarketCalendar) -> None:
        self.calendar = calendar
        self.calls: list[tuple[Timeframe, datetime, datetime]] = []

    def fetch(
        self, symbol: Symbol, timeframe: Timeframe, start: datetime, end: datetime
    ) -> Iterator[pl.DataFrame]:
        self.calls.append((timeframe, start, end))
        yield market_bars(self.calendar, start, end)


def session(
    live: list[Bar],
    *,
    calendars: CalendarBook = FX_BOOK,
    provider: HourlyProvider | None = None,
    clock: datetime = FRI + 20 * H,
) -> tuple[OnlineIngestService, InMemoryMarketData, InMemoryBus]:
    repo, bus = InMemoryMarketData(), InMemoryBus()
    service = compose_online_ingest(
        bus,
        repo,
        InMemoryLiveSource(live),
        provider,
        ManualClock(clock),
        timeframe=H1,
        calendars=calendars,
    )
    return service, repo, bus


def test_an_fx_weekend_is_no_gap_and_bars_close_at_their_calendar_close() -> None:
    live = [hour(FRI + 20 * H), hour(FRI + 21 * H), hour(SUN_OPEN), hour(SUN_OPEN + H)]
    service, repo, bus = session(live)
    repo.upsert_bars(A, H1, market_bars(FX, FRI, FRI + 20 * H))
    service.start([A], FRI, live_from=FRI + 20 * H)
    (catchup,) = bus.messages(Topic.PREPROCESS_REQUESTED)
    assert isinstance(catchup, PreprocessDataRequested) and catchup.timeframe is H1
    complete_catchup(bus, service)
    service.pump()

    stats = service.stats()
    assert stats.bars_streamed == 4 and stats.invalid == 0
    assert (stats.gaps, stats.missing_bars) == (0, 0)  # not 48 hours of "missing bars"
    requests = online_requests(bus)
    assert all(r.timeframe is H1 for r in requests)
    assert [r.bar_close_time for r in requests] == [
        FRI + 21 * H,
        FRI + 22 * H,  # the week's last bar closes when the market does
        SUN_OPEN + H,
        SUN_OPEN + 2 * H,
    ]
    assert repo.read_bars(A, H1, FRI, SUN_OPEN + 2 * H).height == 22 + 2


def test_a_skip_is_counted_in_the_market_bars_across_the_weekend() -> None:
    service, _, bus = session([hour(FRI + 20 * H), hour(SUN_OPEN + H)])
    service.start([A], FRI, live_from=FRI + 20 * H)
    complete_catchup(bus, service)
    service.pump()
    stats = service.stats()
    # 21:00 Friday and 22:00 Sunday are missing; the 48 closed hours between are not
    assert (stats.gaps, stats.missing_bars) == (1, 2)


def test_a_session_started_in_the_weekend_fills_at_its_timeframe_and_waits_for_the_open() -> None:
    provider = HourlyProvider(FX)
    saturday = parse_time("2024-01-06T12:00")
    service, repo, bus = session([hour(SUN_OPEN)], provider=provider, clock=saturday)
    run = service.start([A], FRI)  # live from the clock: the market opens next on Sunday
    assert run.live_from == SUN_OPEN
    assert provider.calls == [(H1, FRI, SUN_OPEN)]
    assert run.gap_fill_rows == 22
    assert [g for r in run.gap_fill for s in r.symbols for g in s.gaps] == []
    cov = repo.coverage(A, H1)
    assert cov is not None and cov.last_open_time == FRI + 21 * H
    complete_catchup(bus, service)
    service.pump()
    stats = service.stats()
    assert stats.bars_streamed == 1 and (stats.gaps, stats.missing_bars, stats.duplicates) == (
        0,
        0,
        0,
    )
    assert service.state is OnlineState.STOPPED


def test_bars_of_another_timeframe_or_of_a_closed_market_are_quarantined() -> None:
    saturday = parse_time("2024-01-06T10:00")
    live = [
        hour(saturday),  # on the 1h grid, but FX is closed
        hour(FRI + 20 * H + timedelta(minutes=1), Timeframe.M1),  # a 1m bar on the 1h stream
        hour(FRI + 20 * H),
    ]
    service, repo, bus = session(live)
    service.start([A], FRI, live_from=FRI + 20 * H)
    complete_catchup(bus, service)
    service.pump()
    stats = service.stats()
    assert stats.invalid == 2 and stats.bars_streamed == 1
    assert repo.read_quarantine(A)["rule"].to_list() == ["market_closed", "timeframe"]
    assert len(online_requests(bus)) == 1


def test_resampled_bars_must_be_coarser_than_the_session_timeframe() -> None:
    service, repo, bus = session([])
    service.start([A], FRI, live_from=FRI + 20 * H)
    monday = parse_time("2024-01-08")
    four = [
        ResampledBar(open_time=monday, open=1.0, high=1.2, low=0.9, close=1.1, volume=9.0),
        ResampledBar(open_time=monday + 4 * H, open=1.1, high=1.2, low=1.0, close=1.1, volume=9.0),
    ]
    for tf in (Timeframe.M30, H1, Timeframe.H4):
        event = StoreResampledDataRequested(symbol=A, timeframe=tf, bars=four)
        bus.publish(Topic.STORE_RESAMPLED_REQUESTED, event, key=str(A))
    bus.poll()
    assert len(bus.messages(Topic.dlq(Topic.STORE_RESAMPLED_REQUESTED))) == 2  # 30m and 1h
    assert repo.read_bars(A, Timeframe.H4, monday, monday + 8 * H).height == 2
    assert repo.read_bars(A, H1, monday, monday + 8 * H).is_empty()
    assert service.stats().resampled_bars_stored == 2


@pytest.mark.parametrize(("hour_of_day", "close"), [(14, "15:00"), (15, "15:30")])
def test_the_published_close_of_an_xlon_bar_is_the_session_close(
    hour_of_day: int, close: str
) -> None:
    day = parse_time("2024-07-02")  # British summer time: XLON trades 07:00-15:30 UTC
    book = CalendarBook(ExchangeCalendarsCalendar("XLON"))
    service, _, bus = session([hour(day + hour_of_day * H)], calendars=book, clock=day + 14 * H)
    service.start([A], day + 7 * H, live_from=day + 14 * H)
    complete_catchup(bus, service)
    service.pump()
    (request,) = online_requests(bus)
    assert request.mode is ProcessingMode.ONLINE
    assert request.bar_close_time == parse_time(f"2024-07-02T{close}")
    assert request.end == request.bar_close_time


def test_a_session_started_before_the_open_streams_the_bar_the_open_falls_in() -> None:
    """XNYS opens at 14:30 UTC inside the 14:00 window: started at 14:15, the session's first
    live bar is 14:00's (streamed, not taken for a late bar), and the night is no gap."""
    day = parse_time("2024-01-03")
    book = CalendarBook(ExchangeCalendarsCalendar("XNYS"))
    service, _, bus = session([hour(day + 14 * H)], calendars=book, clock=day + 14 * H)
    run = service.start([A], day - 24 * H, live_from=day + 14 * H + timedelta(minutes=15))
    assert run.live_from == day + 14 * H
    complete_catchup(bus, service)
    service.pump()
    stats = service.stats()
    assert stats.bars_streamed == 1 and stats.late_fills == 0
    assert (stats.gaps, stats.missing_bars) == (0, 0)
    (request,) = online_requests(bus)
    assert request.bar_close_time == day + 15 * H
