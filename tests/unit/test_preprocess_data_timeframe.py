"""The offline preprocess service reads the data's timeframe and builds coarser bars on the
symbol's market calendar: what it reads, stores and stamps, and what it refuses before working."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.adapter.fx_calendar import FxCalendar
from drl_trading.common.adapter.memory_bus import InMemoryBus
from drl_trading.common.adapter.memory_feature_store import InMemoryFeatureStore
from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.calendar import CalendarBook
from drl_trading.common.domain import Symbol, Timeframe
from drl_trading.common.events import (
    DeadLetter,
    PreprocessDataRequested,
    ProcessingMode,
    Topic,
)
from drl_trading.ingest.adapter.synthetic_provider import SyntheticProvider
from drl_trading.preprocess.adapter.bus_handlers import PreprocessHandlers
from drl_trading.preprocess.core.checks import BaseTimeframeError
from drl_trading.preprocess.core.features import close_times
from drl_trading.preprocess.core.market_sessions import OutOfSessionError, SessionStraddleError
from drl_trading.preprocess.core.service import NoDataError, PreprocessService
from drl_trading.strategy.feature_set import (
    FeatureSetSpec,
    LogReturns,
    RealizedVolatility,
    TimeframeFeatures,
    VolumeZScore,
    default_feature_set,
)

SYM = Symbol("EURUSD")
BOOK = CalendarBook(default=AlwaysOpenCalendar(), by_symbol={SYM: FxCalendar()})
START = datetime(2024, 6, 19, tzinfo=UTC)  # a Wednesday
END = datetime(2024, 6, 27, tzinfo=UTC)
ALL_STORED = (Timeframe.M5, Timeframe.M15, Timeframe.M30, Timeframe.H1, Timeframe.H4, Timeframe.D1)


def _spec(base: Timeframe, *context: Timeframe) -> FeatureSetSpec:
    quick = (LogReturns(horizons=(1,)), RealizedVolatility(window=5), VolumeZScore(window=5))
    return FeatureSetSpec(
        name="quick",
        base_timeframe=base,
        timeframes=tuple(
            TimeframeFeatures(timeframe=tf, indicators=quick) for tf in (base, *context)
        ),
    )


class _CountingMarket(InMemoryMarketData):
    def __init__(self) -> None:
        super().__init__()
        self.reads: list[Timeframe] = []

    def read_bars(
        self, symbol: Symbol, timeframe: Timeframe, start: datetime, end: datetime
    ) -> pl.DataFrame:
        self.reads.append(timeframe)
        return super().read_bars(symbol, timeframe, start, end)


def _market(
    timeframe: Timeframe, start: datetime, end: datetime, book: CalendarBook = BOOK
) -> _CountingMarket:
    md = _CountingMarket()
    for chunk in SyntheticProvider(seed=5, calendars=book).fetch(SYM, timeframe, start, end):
        md.upsert_bars(SYM, timeframe, chunk)
    return md


def _request(timeframe: Timeframe, start: datetime = START) -> PreprocessDataRequested:
    return PreprocessDataRequested(
        mode=ProcessingMode.OFFLINE, symbols=[SYM], timeframe=timeframe, start=start, end=END
    )


class _Recorder(InMemoryFeatureStore):
    def __init__(self) -> None:
        super().__init__()
        self.frames: list[pl.DataFrame] = []

    def write_offline(self, view, symbol, frame):  # type: ignore[no-untyped-def]
        self.frames.append(frame)
        return super().write_offline(view, symbol, frame)


def test_hourly_fx_data_is_read_as_stored_and_only_coarser_bars_are_built() -> None:
    market = _market(Timeframe.H1, datetime(2024, 5, 20, tzinfo=UTC), END)
    store = _Recorder()
    spec = _spec(Timeframe.H1, Timeframe.H4, Timeframe.D1)
    service = PreprocessService(market, store, spec, store_timeframes=ALL_STORED, calendars=BOOK)
    done = service.preprocess(_request(Timeframe.H1))

    assert set(market.reads) == {Timeframe.H1}
    (out,) = done.outputs
    # 5m..1h are not coarser than the data: skipped without a word, the data's bars untouched
    assert [t.timeframe for t in out.timeframes] == [Timeframe.H4, Timeframe.D1]
    for tf in (Timeframe.M5, Timeframe.M15, Timeframe.M30):
        assert market.read_bars(SYM, tf, START, END).is_empty()
    daily = market.read_bars(SYM, Timeframe.D1, START, END)
    assert daily["open_time"].dt.weekday().to_list() == [3, 4, 5, 1, 2, 3]  # Wed..Fri, Mon..Wed
    # a row per base bar opened in [start, end), stamped with its calendar close
    (rows,) = store.frames
    base = market.read_bars(SYM, Timeframe.H1, START, END)
    closes = close_times(base, Timeframe.H1, FxCalendar())
    assert rows["event_time"].to_list() == [t for t in closes.to_list() if t <= END]
    assert out.feature_rows == rows.height > 100
    assert out.warmup_note is None


def test_a_base_finer_than_the_data_is_refused_before_anything_is_read() -> None:
    market = _market(Timeframe.H1, START, END)
    store = InMemoryFeatureStore()
    service = PreprocessService(market, store, default_feature_set(), calendars=BOOK)  # base 5m
    with pytest.raises(BaseTimeframeError, match="base timeframe 5m, finer than the data's 1h"):
        service.preprocess(_request(Timeframe.H1))
    assert market.reads == []


def test_the_bus_dead_letters_a_base_timeframe_refusal_without_retrying() -> None:
    market = _market(Timeframe.H1, START, END)
    bus = InMemoryBus(max_attempts=3)
    handlers = PreprocessHandlers(
        PreprocessService(market, InMemoryFeatureStore(), default_feature_set()), bus
    )
    bus.subscribe(
        Topic.PREPROCESS_REQUESTED, group="preprocess", handler=handlers.on_preprocess_requested
    )
    bus.publish(Topic.PREPROCESS_REQUESTED, _request(Timeframe.H1), key=str(SYM))
    bus.poll()
    (letter,) = bus.messages(Topic.dlq(Topic.PREPROCESS_REQUESTED))
    assert isinstance(letter, DeadLetter)
    assert (letter.error_type, letter.attempts) == ("BaseTimeframeError", 1)
    assert market.reads == []


def test_no_data_names_the_data_timeframe() -> None:
    market = _market(Timeframe.M1, START, START + timedelta(days=1))  # 1m stored, 1h asked
    service = PreprocessService(market, InMemoryFeatureStore(), _spec(Timeframe.H1), calendars=BOOK)
    with pytest.raises(NoDataError, match="EURUSD: no 1h bars stored in"):
        service.preprocess(_request(Timeframe.H1))


def test_bars_ingested_under_another_calendar_are_refused_naming_the_setting() -> None:
    """24/7 hourly bars over an FX weekend: 48 of them are outside FX sessions."""
    always = CalendarBook(default=AlwaysOpenCalendar())
    market = _market(Timeframe.H1, START, END, book=always)
    service = PreprocessService(market, InMemoryFeatureStore(), _spec(Timeframe.H1), calendars=BOOK)
    with pytest.raises(OutOfSessionError) as err:
        service.preprocess(_request(Timeframe.H1))
    message = str(err.value)
    assert "48 stored 1h bars fall outside the sessions of market calendar fx" in message
    assert "the first at 2024-06-21 21:00 UTC" in message
    assert "markets.symbols.EURUSD.calendar" in message
    assert err.value.retryable is False


def test_daily_bars_from_fx_4h_bars_are_refused_or_skipped() -> None:
    """4h bars straddle the FX session change (21:00/22:00 UTC): a feature set with 1d is
    refused naming the timeframe to ingest; a stored-only 1d is left out."""
    market = _market(Timeframe.H4, datetime(2024, 5, 20, tzinfo=UTC), END)
    needs_daily = PreprocessService(
        market, InMemoryFeatureStore(), _spec(Timeframe.H4, Timeframe.D1), calendars=BOOK
    )
    with pytest.raises(SessionStraddleError, match="ingest 1h bars or finer"):
        needs_daily.preprocess(_request(Timeframe.H4))
    assert market.reads == []
    stored_only = PreprocessService(
        market,
        InMemoryFeatureStore(),
        _spec(Timeframe.H4),
        store_timeframes=ALL_STORED,
        calendars=BOOK,
    )
    (out,) = stored_only.preprocess(_request(Timeframe.H4)).outputs
    assert out.timeframes == []
    assert out.feature_rows > 20


def test_a_short_fx_history_is_noted_in_market_bars() -> None:
    market = _market(Timeframe.H1, START - timedelta(days=2), END)
    spec = _spec(Timeframe.H1, Timeframe.D1)
    service = PreprocessService(market, InMemoryFeatureStore(), spec, calendars=BOOK)
    (out,) = service.preprocess(_request(Timeframe.H1)).outputs
    assert out.warmup_note is not None
    assert "the stored 1h history starts 2024-06-17 00:00 UTC" in out.warmup_note
    assert "8 1d bars of market calendar fx" in out.warmup_note  # RV(5): 6 bars, plus 2
    assert "Ingest history from 2024-06-07" in out.warmup_note  # 8 FX sessions before


def test_hourly_24_7_data_keeps_the_closed_form() -> None:
    always = CalendarBook(default=AlwaysOpenCalendar())
    market = _market(Timeframe.H1, datetime(2024, 6, 1, tzinfo=UTC), END, book=always)
    store = _Recorder()
    spec = _spec(Timeframe.H1, Timeframe.H4)
    service = PreprocessService(market, store, spec, calendars=always)
    service.preprocess(_request(Timeframe.H1))
    (rows,) = store.frames
    want = [START + timedelta(hours=h + 1) for h in range(8 * 24)]
    assert rows["event_time"].to_list() == want
