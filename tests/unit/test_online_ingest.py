"""Online ingest against fakes: gap fill, catch-up gate, per-bar requests, late and bad bars,
resampled bars, and the replay and synthetic live sources."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from drl_trading.app.ingest import compose_online_ingest
from drl_trading.common.adapter.memory_bus import InMemoryBus
from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.bars import frame_to_bars
from drl_trading.common.domain import Bar, Symbol, Timeframe, parse_time
from drl_trading.common.events import (
    PreprocessDataCompleted,
    PreprocessDataRequested,
    ProcessingMode,
    ResampledBar,
    StoreResampledDataRequested,
    Topic,
)
from drl_trading.ingest.adapter.memory_live_source import InMemoryLiveSource
from drl_trading.ingest.adapter.replay_source import ReplaySource
from drl_trading.ingest.adapter.synthetic_live_source import SyntheticLiveSource
from drl_trading.ingest.adapter.synthetic_provider import SyntheticProvider
from drl_trading.ingest.core.online_service import (
    OnlineIngestService,
    OnlineState,
    bar_correlation_id,
)
from tests.conftest import make_bars

A, B = Symbol("AAAUSD"), Symbol("BBBUSD")
T0 = parse_time("2024-01-01")
LIVE = T0 + timedelta(minutes=30)
M = timedelta(minutes=1)


class FakeProvider:
    """Serves `make_bars` for any range and records what was asked."""

    name = "fake"

    def __init__(self) -> None:
        self.calls: list[tuple[Symbol, datetime, datetime]] = []

    def fetch(
        self, symbol: Symbol, timeframe: Timeframe, start: datetime, end: datetime
    ) -> Iterator[pl.DataFrame]:
        assert timeframe is Timeframe.M1  # online ingest streams 1m bars
        self.calls.append((symbol, start, end))
        n = int((end - start) / M)
        yield make_bars(start, n)


class FakeTime:
    """``sleep`` moves ``monotonic`` on; records every sleep."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def bar(symbol: Symbol, minute: int, price: float = 100.0, **over: float) -> Bar:
    values = {"open": price, "high": price + 1, "low": price - 1, "close": price + 0.5}
    values["volume"] = 5.0
    values.update(over)
    return Bar(
        symbol,
        Timeframe.M1,
        LIVE + minute * M,
        values["open"],
        values["high"],
        values["low"],
        values["close"],
        values["volume"],
    )


def setup(
    live_bars: list[Bar], provider: FakeProvider | None = None
) -> tuple[OnlineIngestService, InMemoryMarketData, InMemoryBus, InMemoryLiveSource]:
    repo, bus, source = InMemoryMarketData(), InMemoryBus(), InMemoryLiveSource(live_bars)
    service = compose_online_ingest(
        bus, repo, source, provider, ManualClock(LIVE + 20 * M + timedelta(seconds=30))
    )
    return service, repo, bus, source


def complete_catchup(bus: InMemoryBus, service: OnlineIngestService) -> None:
    session = service.session
    assert session is not None
    done = PreprocessDataCompleted(
        correlation_id=session.correlation_id,
        mode=ProcessingMode.CATCHUP,
        request_event_id=session.catchup_event_id,
        symbols=list(session.symbols),
        start=session.warmup_from,
        end=session.live_from,
        feature_set_name="fs",
        feature_set_version="1",
        feature_view="fv",
        outputs=[],
    )
    bus.publish(Topic.PREPROCESS_COMPLETED_CATCHUP, done, key=str(session.symbols[0]))
    bus.poll()


def online_requests(bus: InMemoryBus) -> list[PreprocessDataRequested]:
    return [
        e
        for e in bus.messages(Topic.PREPROCESS_REQUESTED)
        if isinstance(e, PreprocessDataRequested) and e.mode is ProcessingMode.ONLINE
    ]


def streaming(live_bars: list[Bar]) -> tuple[OnlineIngestService, InMemoryMarketData, InMemoryBus]:
    service, repo, bus, _ = setup(live_bars)
    service.start([A, B], T0, live_from=LIVE)
    complete_catchup(bus, service)
    return service, repo, bus


def test_gap_fill_stores_only_the_missing_range() -> None:
    provider = FakeProvider()
    service, repo, _, _ = setup([], provider)
    repo.upsert_bars(A, Timeframe.M1, make_bars(T0, 10))
    session = service.start([A, B], T0, live_from=LIVE)

    assert provider.calls == [(A, T0 + 10 * M, LIVE), (B, T0, LIVE)]
    for s in (A, B):
        cov = repo.coverage(s, Timeframe.M1)
        assert cov is not None and cov.first_open_time == T0 and cov.last_open_time == LIVE - M
        assert cov.bars == 30
    assert session.gap_fill_rows == 20 + 30
    assert service.stats().gap_fill_rows == 50


def test_gap_fill_fetches_a_missing_head_and_defaults_to_the_clock() -> None:
    provider = FakeProvider()
    service, repo, _, _ = setup([], provider)
    repo.upsert_bars(A, Timeframe.M1, make_bars(T0 + 5 * M, 5))
    session = service.start([A], T0)  # clock is inside minute LIVE+20
    assert session.live_from == LIVE + 20 * M
    assert provider.calls == [(A, T0, T0 + 5 * M), (A, T0 + 10 * M, LIVE + 20 * M)]


def test_catchup_requested_and_streaming_waits_for_its_completion() -> None:
    service, _, bus, _ = setup([bar(A, 0)])
    session = service.start([A, B], T0, live_from=LIVE)
    (catchup,) = bus.messages(Topic.PREPROCESS_REQUESTED)
    assert isinstance(catchup, PreprocessDataRequested)
    assert catchup.mode is ProcessingMode.CATCHUP and catchup.symbols == [A, B]
    assert (catchup.start, catchup.end) == (T0, LIVE)
    assert catchup.correlation_id == session.correlation_id
    assert service.state is OnlineState.WAITING_CATCHUP
    assert service.pump(10) == 0

    other = PreprocessDataCompleted(
        correlation_id="someone-else",
        mode=ProcessingMode.CATCHUP,
        request_event_id="x",
        symbols=[A],
        start=T0,
        end=LIVE,
        feature_set_name="fs",
        feature_set_version="1",
        feature_view="fv",
        outputs=[],
    )
    bus.publish(Topic.PREPROCESS_COMPLETED_CATCHUP, other, key=str(A))
    bus.poll()
    assert service.state is OnlineState.WAITING_CATCHUP

    complete_catchup(bus, service)
    assert service.stats().state is OnlineState.STREAMING
    assert service.pump(10) == 1
    assert service.stats().state is OnlineState.STOPPED  # the list source is exhausted
    with pytest.raises(RuntimeError, match="already started"):
        service.start([A], T0, live_from=LIVE)


def test_each_bar_stored_and_published_once_in_order_per_symbol() -> None:
    bars = [bar(A, 0), bar(B, 0, 50.0), bar(A, 1, 101.0), bar(B, 1, 51.0), bar(A, 2, 102.0)]
    service, repo, bus = streaming(bars)
    assert service.pump(2) == 2
    assert service.pump() == 3

    stored = repo.read_bars(A, Timeframe.M1, LIVE, LIVE + 10 * M)
    assert stored["open_time"].to_list() == [LIVE, LIVE + M, LIVE + 2 * M]
    assert stored["close"].to_list() == [100.5, 101.5, 102.5]
    requests = online_requests(bus)
    assert len(requests) == 5
    for sym, minutes in ((A, [0, 1, 2]), (B, [0, 1])):
        mine = [r for r in requests if r.symbols == [sym]]
        assert [r.bar_close_time for r in mine] == [LIVE + (m + 1) * M for m in minutes]
        assert [r.start for r in mine] == [LIVE + m * M for m in minutes]
        assert [r.correlation_id for r in mine] == [
            bar_correlation_id(sym, LIVE + m * M) for m in minutes
        ]
        assert all(r.bars and len(r.bars) == 1 for r in mine)
    assert requests[0].bars == [
        ResampledBar(open_time=LIVE, open=100.0, high=101.0, low=99.0, close=100.5, volume=5.0)
    ]
    assert len({r.correlation_id for r in requests}) == 5
    stats = service.stats()
    assert stats.bars_streamed == 5 and stats.gaps == 0 and stats.duplicates == 0


def test_duplicates_ignored() -> None:
    bars = [bar(A, 0), bar(A, 1), bar(A, 0), bar(A, 1)]
    service, _, bus = streaming(bars)
    service.pump()
    assert len(online_requests(bus)) == 2
    stats = service.stats()
    assert stats.duplicates == 2 and stats.bars_streamed == 2 and stats.late_corrections == 0


def test_late_corrections_stored_but_not_republished() -> None:
    bars = [bar(A, 0), bar(A, 1), bar(A, 0, close=100.9), bar(A, -5, 100.0)]
    service, repo, bus = streaming(bars)
    service.pump()
    assert len(online_requests(bus)) == 2
    assert repo.read_bars(A, Timeframe.M1, LIVE, LIVE + M)["close"].to_list() == [100.9]
    assert repo.read_bars(A, Timeframe.M1, LIVE - 5 * M, LIVE - 4 * M).height == 1
    stats = service.stats()
    assert stats.late_corrections == 1 and stats.late_fills == 1 and stats.duplicates == 0


def test_invalid_bars_rejected_counted_and_quarantined() -> None:
    bars = [
        bar(A, 0, high=99.0),  # high below open/close
        bar(A, 1, volume=-1.0),
        bar(A, 2, open=float("nan")),
        bar(A, 3, price=-1.0, high=1.0, low=-2.0),
        Bar(A, Timeframe.M1, LIVE + 4 * M + timedelta(seconds=7), 1.0, 1.0, 1.0, 1.0, 1.0),
        bar(A, 5),
        bar(Symbol("ZZZ"), 5),
    ]
    service, repo, bus = streaming(bars)
    service.pump()
    stats = service.stats()
    assert stats.invalid == 5 and stats.bars_streamed == 1 and stats.unknown_symbol == 1
    assert repo.read_bars(A, Timeframe.M1, LIVE, LIVE + 10 * M).height == 1
    assert [r.bar_close_time for r in online_requests(bus)] == [LIVE + 6 * M]
    quarantined = repo.read_quarantine(A)
    assert quarantined.height == 5
    assert "high_below_open_close" in quarantined["rule"].to_list()
    # the first accepted bar came after a 5-minute hole
    assert stats.gaps == 1 and stats.missing_bars == 5


def test_a_bar_skipping_minutes_is_published_and_counted_as_gap() -> None:
    service, _, bus = streaming([bar(A, 0), bar(A, 4)])
    service.pump()
    assert [r.bar_close_time for r in online_requests(bus)] == [LIVE + M, LIVE + 5 * M]
    assert (service.stats().gaps, service.stats().missing_bars) == (1, 3)


def test_store_resampled_upserts_htf_bars_idempotently() -> None:
    service, repo, bus = streaming([])
    h1 = [
        ResampledBar(open_time=T0, open=1.0, high=2.0, low=0.5, close=1.5, volume=10.0),
        ResampledBar(open_time=T0 + 60 * M, open=1.5, high=2.5, low=1.0, close=2.0, volume=9.0),
    ]
    off_grid = ResampledBar(open_time=LIVE, open=1.0, high=1.0, low=1.0, close=1.0, volume=1.0)
    event = StoreResampledDataRequested(symbol=A, timeframe=Timeframe.H1, bars=[*h1, off_grid])
    bus.publish(Topic.STORE_RESAMPLED_REQUESTED, event, key=str(A))
    bus.poll()
    bus.rewind("ingest", Topic.STORE_RESAMPLED_REQUESTED)
    bus.poll()
    stored = repo.read_bars(A, Timeframe.H1, T0, T0 + 180 * M)
    assert stored["close"].to_list() == [1.5, 2.0]
    assert repo.read_bars(A, Timeframe.M1, T0, T0 + 180 * M).is_empty()
    assert repo.read_quarantine(A)["rule"].to_list() == ["off_grid", "off_grid"]  # redelivered
    assert service.stats().resampled_bars_stored == 4  # two upserts of two bars
    assert not bus.messages(Topic.dlq(Topic.STORE_RESAMPLED_REQUESTED))

    bad = StoreResampledDataRequested(symbol=A, timeframe=Timeframe.M1, bars=h1)
    bus.publish(Topic.STORE_RESAMPLED_REQUESTED, bad, key=str(A))
    bus.poll()
    assert len(bus.messages(Topic.dlq(Topic.STORE_RESAMPLED_REQUESTED))) == 1
    assert repo.read_bars(A, Timeframe.M1, T0, T0 + 180 * M).is_empty()


def _two_symbol_store() -> InMemoryMarketData:
    repo = InMemoryMarketData()
    repo.upsert_bars(A, Timeframe.M1, make_bars(T0, 20, price=10.0))
    b = make_bars(T0, 20, price=20.0)
    repo.upsert_bars(B, Timeframe.M1, b.filter(pl.int_range(pl.len()) % 3 != 1))
    return repo


def _expected_order(repo: InMemoryMarketData, end: datetime) -> list[tuple[datetime, str]]:
    keys = [
        (t, str(s))
        for s in (A, B)
        for t in repo.read_bars(s, Timeframe.M1, T0 + 2 * M, end)["open_time"].to_list()
    ]
    return sorted(keys)


def test_replay_merges_symbols_in_time_order_window_by_window() -> None:
    repo = _two_symbol_store()
    end = T0 + 18 * M
    source = ReplaySource(repo, [B, A], T0 + 2 * M, end, window=timedelta(minutes=7))
    got = list(source.bars())
    assert [(b.open_time, str(b.symbol)) for b in got] == _expected_order(repo, end)
    first_b = next(b for b in got if b.symbol == B)
    assert first_b.close == repo.read_bars(B, Timeframe.M1, first_b.open_time, end)["close"][0]


def test_replay_from_frame_and_parquet_file(tmp_path: Path) -> None:
    repo = _two_symbol_store()
    frame = pl.concat(
        [
            repo.read_bars(s, Timeframe.M1, T0, T0 + 20 * M).with_columns(
                pl.lit(str(s).lower()).alias("symbol")
            )
            for s in (B, A)
        ]
    )
    end = T0 + 18 * M
    expected = _expected_order(repo, end)
    path = tmp_path / "bars.parquet"
    frame.write_parquet(path)
    for data in (frame, path):
        source = ReplaySource(data, [A, B], T0 + 2 * M, end, window=timedelta(minutes=5))
        assert [(b.open_time, str(b.symbol)) for b in source.bars()] == expected
    single = ReplaySource(frame.filter(pl.col("symbol") == "aaausd").drop("symbol"), [A], T0, end)
    assert len(list(single.bars())) == 18


def test_replay_pacing_sleeps_market_minutes_over_speed() -> None:
    repo = InMemoryMarketData()
    a = make_bars(T0, 6).filter(pl.col("open_time").is_in([T0, T0 + M, T0 + 3 * M]))
    repo.upsert_bars(A, Timeframe.M1, a)
    repo.upsert_bars(B, Timeframe.M1, a)
    fake = FakeTime()
    source = ReplaySource(
        repo, [A, B], T0, T0 + 6 * M, speed=60.0, sleep=fake.sleep, monotonic=fake.monotonic
    )
    assert len(list(source.bars())) == 6
    assert fake.sleeps == pytest.approx([1.0, 2.0])

    fake = FakeTime()
    fast = ReplaySource(repo, [A, B], T0, T0 + 6 * M, sleep=fake.sleep, monotonic=fake.monotonic)
    assert len(list(fast.bars())) == 6 and fake.sleeps == []
    with pytest.raises(ValueError, match="positive"):
        ReplaySource(repo, [A], T0, T0 + M, speed=0.0)


def test_replay_close_stops_the_stream() -> None:
    repo = _two_symbol_store()
    source = ReplaySource(repo, [A], T0, T0 + 20 * M)
    it = source.bars()
    next(it)
    source.close()
    assert list(it) == []


def test_synthetic_live_source_yields_consecutive_minutes_matching_the_provider() -> None:
    start = parse_time("2024-01-01T23:58")
    fake = FakeTime()
    source = SyntheticLiveSource(
        5, [B, A], start, speed=120.0, sleep=fake.sleep, monotonic=fake.monotonic
    )
    got = list(itertools.islice(source.bars(), 8))
    assert [(b.open_time, b.symbol) for b in got] == [
        (start + i * M, s) for i in range(4) for s in (A, B)
    ]
    assert fake.sleeps == pytest.approx([0.5, 0.5, 0.5])
    expected = pl.concat(
        list(SyntheticProvider(seed=5).fetch(A, Timeframe.M1, start, start + 4 * M))
    )
    assert [b for b in got if b.symbol == A] == frame_to_bars(expected, A, Timeframe.M1)
    it = source.bars()
    next(it)
    source.close()
    assert list(it) == []


def test_synthetic_history_and_live_stream_join_without_a_seam() -> None:
    live_from = parse_time("2024-02-01T12:00")
    clock = ManualClock(live_from + timedelta(seconds=30))
    repo, bus = InMemoryMarketData(), InMemoryBus()
    source = SyntheticLiveSource(9, [A], clock=clock)
    service = compose_online_ingest(bus, repo, source, SyntheticProvider(seed=9), clock)
    session = service.start([A], live_from - timedelta(hours=2))
    assert session.live_from == live_from and session.gap_fill_rows == 120
    complete_catchup(bus, service)
    assert service.pump(4) == 4
    stats = service.stats()
    # the source starts at the last closed minute, already filled from history: a duplicate
    assert stats.duplicates == 1 and stats.late_corrections == 0 and stats.bars_streamed == 3
    assert stats.gaps == 0
    assert [r.bar_close_time for r in online_requests(bus)] == [
        live_from + i * M for i in (1, 2, 3)
    ]
    service.stop()
    assert service.state is OnlineState.STOPPED and service.pump() == 0
