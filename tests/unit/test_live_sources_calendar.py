"""Live sources on markets that close: pacing over open time only, the synthetic market's open
bars, the calendar close on the market clock, and ccxt polling that neither waits for nor skips
the bars of a closure. 24/7 behaviour is in tests/unit/test_online_ingest.py and the contract
suite tests/contracts/test_live_bar_source.py."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta

import polars as pl
import pytest
from structlog.testing import capture_logs

from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.adapter.exchange_calendars_calendar import ExchangeCalendarsCalendar
from drl_trading.common.adapter.fx_calendar import FxCalendar
from drl_trading.common.adapter.memory_calendar import MemoryCalendar
from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.bar_windows import BarWindows
from drl_trading.common.bars import frame_to_bars
from drl_trading.common.calendar import CalendarBook, MixedCalendarsError
from drl_trading.common.domain import Bar, Symbol, Timeframe, parse_time
from drl_trading.ingest.adapter.ccxt_live_source import CcxtLiveSource
from drl_trading.ingest.adapter.clocked_source import ClockedSource
from drl_trading.ingest.adapter.memory_live_source import InMemoryLiveSource
from drl_trading.ingest.adapter.memory_provider import InMemoryProvider
from drl_trading.ingest.adapter.replay_source import ReplaySource
from drl_trading.ingest.adapter.synthetic_live_source import SyntheticLiveSource
from drl_trading.ingest.adapter.synthetic_provider import SyntheticProvider
from drl_trading.ingest.core.live import Pacer, slot_at
from tests.conftest import make_bars
from tests.unit.test_online_ingest import FakeTime
from tests.unit.test_online_ingest_calendar import market_bars

A, B = Symbol("EURUSD"), Symbol("GBPUSD")
H1 = Timeframe.H1
H = timedelta(hours=1)
M = timedelta(minutes=1)
FX = FxCalendar()
FX_BOOK = CalendarBook(FX)
FRI = parse_time("2024-01-05")  # FX closes at 22:00 UTC on this Friday, reopens Sunday 22:00
SUN_OPEN = parse_time("2024-01-07T22:00")


def test_the_pacer_sleeps_open_market_time_only() -> None:
    times = [FRI + 21 * H, FRI + 22 * H, SUN_OPEN + H, SUN_OPEN + 2 * H]
    fake = FakeTime()
    pacer = Pacer(3600.0, fake.sleep, fake.monotonic, FX)  # one market hour a second
    for t in times:
        pacer.wait_for(t)
    assert fake.sleeps == pytest.approx([1.0, 1.0, 1.0])  # not 49 s across the weekend

    wall = FakeTime()
    nominal = Pacer(3600.0, wall.sleep, wall.monotonic)  # no calendar: 24/7
    for t in times:
        nominal.wait_for(t)
    assert wall.sleeps == pytest.approx([1.0, 49.0, 1.0])
    always = FakeTime()
    open_24_7 = Pacer(3600.0, always.sleep, always.monotonic, AlwaysOpenCalendar())
    for t in times:
        open_24_7.wait_for(t)
    assert always.sleeps == wall.sleeps


def test_a_paced_replay_does_not_sleep_through_an_fx_weekend() -> None:
    repo = InMemoryMarketData()
    for s in (A, B):
        repo.upsert_bars(s, H1, market_bars(FX, FRI + 20 * H, SUN_OPEN + 3 * H))
    fake = FakeTime()
    source = ReplaySource(
        repo,
        [A, B],
        FRI + 20 * H,
        SUN_OPEN + 3 * H,
        speed=3600.0,
        sleep=fake.sleep,
        monotonic=fake.monotonic,
        timeframe=H1,
        calendars=FX_BOOK,
    )
    got = list(source.bars())
    assert [b.open_time for b in got[::2]] == [
        FRI + 20 * H,
        FRI + 21 * H,
        SUN_OPEN,
        SUN_OPEN + H,
        SUN_OPEN + 2 * H,
    ]
    assert all(b.timeframe is H1 for b in got)
    assert fake.sleeps == pytest.approx([1.0] * 4)
    with pytest.raises(MixedCalendarsError, match="different market calendars"):
        ReplaySource(
            repo,
            [A, B],
            FRI,
            SUN_OPEN,
            speed=1.0,
            timeframe=H1,
            calendars=CalendarBook(FX, {B: AlwaysOpenCalendar()}),
        )


def test_synthetic_live_at_1h_on_fx_yields_no_weekend_bar_and_continues_the_provider() -> None:
    start = FRI + 20 * H
    fake = FakeTime()
    source = SyntheticLiveSource(
        3,
        [B, A],
        start,
        speed=3600.0,
        sleep=fake.sleep,
        monotonic=fake.monotonic,
        timeframe=H1,
        calendars=FX_BOOK,
    )
    got = list(itertools.islice(source.bars(), 10))
    hours = [start, start + H, SUN_OPEN, SUN_OPEN + H, SUN_OPEN + 2 * H]
    assert [(b.open_time, b.symbol) for b in got] == [(t, s) for t in hours for s in (A, B)]
    assert all(b.timeframe is H1 for b in got)
    assert fake.sleeps == pytest.approx([1.0] * 4)
    provider = SyntheticProvider(seed=3, calendars=FX_BOOK)
    history = frame_to_bars(pl.concat(list(provider.fetch(A, H1, start, SUN_OPEN + 3 * H))), A, H1)
    mine = [b for b in got if b.symbol == A]
    # prices bit for bit; volumes (sums of 60 minutes) to rounding, since polars may add a
    # group's minutes in another order in a week-long frame than in a day's
    assert [b.open_time for b in mine] == [b.open_time for b in history]
    assert [(b.open, b.high, b.low, b.close) for b in mine] == [
        (b.open, b.high, b.low, b.close) for b in history
    ]
    assert [b.volume for b in mine] == pytest.approx([b.volume for b in history], rel=1e-12)


def test_synthetic_live_from_a_clock_in_the_weekend_starts_at_the_last_closed_bar() -> None:
    clock = ManualClock(parse_time("2024-01-06T12:00"))
    source = SyntheticLiveSource(3, [A], clock=clock, timeframe=H1, calendars=FX_BOOK)
    assert source.start == FRI + 21 * H
    first, second = itertools.islice(source.bars(), 2)
    assert (first.open_time, second.open_time) == (FRI + 21 * H, SUN_OPEN)
    midweek = ManualClock(parse_time("2024-01-03T10:30"))
    assert SyntheticLiveSource(3, [A], clock=midweek).start == parse_time("2024-01-03T10:29")


def test_the_clocked_source_sets_the_calendar_close_of_an_xlon_bar() -> None:
    day = parse_time("2024-07-02")  # British summer time: XLON trades 07:00-15:30 UTC
    bars = [Bar(A, H1, day + hour * H, 10.0, 10.5, 9.5, 10.2, 3.0) for hour in (14, 15)]
    clock = ManualClock(day)
    book = CalendarBook(ExchangeCalendarsCalendar("XLON"))
    seen = []
    for _ in ClockedSource(InMemoryLiveSource(bars), clock, calendars=book).bars():
        seen.append(clock.now())
    assert seen == [day + 15 * H, parse_time("2024-07-02T15:30")]
    nominal = ManualClock(day)
    for _ in ClockedSource(InMemoryLiveSource(bars), nominal).bars():
        pass
    assert nominal.now() == day + 16 * H  # without the calendar: open + 1h


class RecordingProvider:
    """An in-memory provider that records the market time of every request."""

    name = "recording"

    def __init__(self, frame: pl.DataFrame, clock: ManualClock) -> None:
        self._inner = InMemoryProvider({A: frame})
        self._clock = clock
        self.asked_at: list[datetime] = []

    def fetch(
        self, symbol: Symbol, timeframe: Timeframe, start: datetime, end: datetime
    ) -> Iterator[pl.DataFrame]:
        self.asked_at.append(self._clock.now())
        return self._inner.fetch(symbol, timeframe, start, end)


def test_ccxt_polling_neither_waits_for_nor_skips_the_bars_of_a_closure() -> None:
    t0 = parse_time("2024-01-02T09:00")
    closes, reopens = t0 + 10 * M, t0 + 60 * M
    market = MemoryCalendar([(t0, closes), (reopens, t0 + 120 * M)])
    frame = make_bars(t0, 120).filter(
        (pl.col("open_time") < closes)
        | ((pl.col("open_time") >= reopens) & (pl.col("open_time") < t0 + 70 * M))
    )  # the exchange has candles while open, up to 10:09; 10:10 and 10:11 never come
    clock = ManualClock(t0 + 10 * M)
    provider = RecordingProvider(frame, clock)
    source = CcxtLiveSource(
        provider,
        [A],
        clock,
        start=t0 + 5 * M,
        end=t0 + 72 * M,
        poll_interval=30.0,
        sleep=lambda s: clock.advance(timedelta(seconds=s)),
        calendars=CalendarBook(market),
    )
    with capture_logs() as logs:
        got = list(source.bars())
    assert [b.open_time for b in got] == [t0 + i * M for i in (*range(5, 10), *range(60, 70))]
    # no request while the market was closed (the 09:09 bar closes at 09:10 + 2 s settling)
    assert not [t for t in provider.asked_at if t0 + 11 * M <= t < reopens + M]
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [(e["event"], e["bars"]) for e in warnings] == [("exchange has no candle; moving on", 2)]
    assert source.skipped_bars == 2  # the two open minutes at the end, not the closed 50


def test_ccxt_polling_at_1h_asks_for_hourly_candles_from_the_next_open_bar() -> None:
    frame = market_bars(FX, FRI + 18 * H, SUN_OPEN + 2 * H)
    clock = ManualClock(parse_time("2024-01-06T09:00"))  # Saturday: FX is closed
    provider = RecordingProvider(frame, clock)
    source = CcxtLiveSource(
        provider,
        [A],
        clock,
        end=SUN_OPEN + 2 * H,
        poll_interval=600.0,
        sleep=lambda s: clock.advance(timedelta(seconds=s)),
        timeframe=H1,
        calendars=FX_BOOK,
    )
    got = list(source.bars())
    assert [b.open_time for b in got] == [SUN_OPEN, SUN_OPEN + H]
    assert all(b.timeframe is H1 for b in got)
    assert source.skipped_bars == 0
    assert min(provider.asked_at) >= SUN_OPEN + H  # the first request once 22:00's bar closed


@pytest.mark.parametrize(
    ("calendar", "timeframe", "when", "first"),
    [
        ("24/7", Timeframe.M1, "2024-01-03T10:00:30", "2024-01-03T10:00"),
        ("24/7", Timeframe.H4, "2024-01-03T10:00:30", "2024-01-03T08:00"),
        ("XNYS", H1, "2024-01-03T14:15", "2024-01-03T14:00"),  # opens 14:30 inside the window
        ("XNYS", H1, "2024-01-03T21:15", "2024-01-04T14:00"),  # closed for the night
        ("XNYS", Timeframe.D1, "2024-01-03T10:00", "2024-01-03"),  # the day's session to come
        ("XNYS", Timeframe.D1, "2024-01-03T22:00", "2024-01-04"),
        ("fx", Timeframe.D1, "2024-01-04T23:00", "2024-01-05"),  # open since Thursday 22:00
        ("fx", H1, "2024-01-06T12:00", "2024-01-07T22:00"),
    ],
)
def test_a_stream_starts_at_the_first_bar_not_yet_closed(
    calendar: str, timeframe: Timeframe, when: str, first: str
) -> None:
    cal = {"24/7": AlwaysOpenCalendar(), "fx": FX}.get(calendar) or ExchangeCalendarsCalendar(
        calendar
    )
    assert slot_at(BarWindows(cal, timeframe), parse_time(when)) == parse_time(first)
