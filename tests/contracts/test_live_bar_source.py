"""Contract of the live-bar-source port, over the in-memory fake, the replay of stored history,
the market-clocked wrapper of a replay, the synthetic market, ccxt polling the local fake
Binance of the integration tests, and ccxt.pro's websocket candles of the fake exchange
(`drl_trading.testing.fake_exchange`; its history comes through the source's REST reads).

Each case builds its source twice: ``stream``, which hands out `Case.expected` as fast as it is
consumed (ending after it where the source is bounded), and ``waiting``, which hands out a first
part of `Case.expected` and then waits for a bar that is not due (a paced replay, a quiet market),
so that `close` from another thread has a waiting consumer to stop.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.bars import frame_to_bars
from drl_trading.common.domain import Bar, Symbol, Timeframe, parse_time
from drl_trading.ingest.adapter.ccxt_live_source import CcxtLiveSource
from drl_trading.ingest.adapter.ccxt_provider import CcxtProvider
from drl_trading.ingest.adapter.ccxt_ws_source import CcxtWsSource
from drl_trading.ingest.adapter.clocked_source import ClockedSource
from drl_trading.ingest.adapter.memory_live_source import InMemoryLiveSource
from drl_trading.ingest.adapter.replay_source import ReplaySource
from drl_trading.ingest.adapter.synthetic_live_source import SyntheticLiveSource
from drl_trading.ingest.adapter.synthetic_provider import ANCHOR, SyntheticProvider
from drl_trading.ingest.core.live import LiveBarSource
from drl_trading.testing.fake_exchange import FakeExchange, MarketSpec
from tests.conftest import make_bars
from tests.integration.test_ccxt_provider import (
    BTC,
    FakeBinance,
    bar,
    make_provider,
    server,  # noqa: F401  (the fixture)
    t,
)

A, B = Symbol("AAAUSD"), Symbol("BBBUSD")
T0 = parse_time("2024-01-01T00:00")
M = timedelta(minutes=1)
N = 12  # minutes of each symbol
CRAWL = 1e-3  # a replay speed at which the next minute is due in 16 hours


def two_symbols() -> list[Bar]:
    """``N`` minutes of A and B interleaved as an exchange closes them: by minute, then symbol."""
    a = frame_to_bars(make_bars(T0, N), A, Timeframe.M1)
    b = frame_to_bars(make_bars(T0, N, price=50.0), B, Timeframe.M1)
    return [x for pair in zip(a, b, strict=True) for x in pair]


def synthetic_minutes(seed: int, symbols: tuple[Symbol, ...], n: int) -> list[Bar]:
    """The first ``n`` minutes of day ``T0`` of the synthetic market, symbols in sorted order."""
    provider = SyntheticProvider(seed=seed)
    day = (T0 - ANCHOR) // timedelta(days=1)
    rows = {s: frame_to_bars(provider.day(s, day), s, Timeframe.M1)[:n] for s in symbols}
    return [rows[s][m] for m in range(n) for s in sorted(symbols)]


@dataclass(frozen=True)
class Case:
    expected: list[Bar]
    stream: Callable[[], LiveBarSource]
    waiting: Callable[[], LiveBarSource]
    bounded: bool
    """Whether ``stream`` ends after `expected` (a never-ending market does not)."""


def make_case(name: str, request: pytest.FixtureRequest) -> Case:
    if name == "memory":
        bars = two_symbols()
        return Case(
            bars,
            lambda: InMemoryLiveSource(bars),
            lambda: InMemoryLiveSource(bars, hold_open=True),
            bounded=True,
        )
    if name in ("replay", "clocked"):
        repo = InMemoryMarketData()
        bars = two_symbols()
        for s in (A, B):
            repo.upsert_bars(s, Timeframe.M1, make_bars(T0, N, price=100.0 if s == A else 50.0))
        end = T0 + N * M

        def replay(speed: float | None) -> LiveBarSource:
            source = ReplaySource(repo, [B, A], T0, end, speed=speed, window=timedelta(minutes=5))
            return source if name == "replay" else ClockedSource(source, ManualClock(T0))

        return Case(bars, lambda: replay(None), lambda: replay(CRAWL), bounded=True)
    if name == "synthetic":
        symbols = (B, A)
        bars = synthetic_minutes(11, symbols, N)
        return Case(
            bars,
            lambda: SyntheticLiveSource(11, symbols, T0),
            lambda: SyntheticLiveSource(11, symbols, T0, speed=CRAWL),
            bounded=False,
        )
    if name == "ccxt-ws":
        return ws_case(request.getfixturevalue("fake_exchange"))
    fake: FakeBinance = request.getfixturevalue("server")

    def stream() -> CcxtLiveSource:
        clock = ManualClock(t(10))  # a poll's sleep moves the market on: no wall-clock waits
        return CcxtLiveSource(
            make_provider(fake),
            [BTC],
            clock,
            start=t(5),
            end=t(20),
            poll_interval=30.0,
            sleep=lambda s: clock.advance(timedelta(seconds=s)),
        )

    def waiting() -> CcxtLiveSource:
        # the market stands still at 00:10: minutes 5..8 have closed, 9 never will
        clock = ManualClock(t(10))
        return CcxtLiveSource(make_provider(fake), [BTC], clock, start=t(5), poll_interval=3600.0)

    expected = [Bar(BTC, Timeframe.M1, t(i), *bar(i)) for i in range(5, 20)]
    return Case(expected, stream, waiting, bounded=True)


@pytest.fixture
def fake_exchange() -> Iterator[FakeExchange]:
    with FakeExchange([MarketSpec("BTCUSDT", "BTC", "USDT")]) as fx:
        fx.set_bars("BTCUSDT", [(t(i), *bar(i)) for i in range(30)])
        yield fx


def ws_case(fx: FakeExchange) -> Case:
    """The stream stays silent (no trade prints): the closed minutes come from the source's
    REST reads of a quiet stream, by a clock that does not move."""

    def source(clock: ManualClock, end: datetime | None) -> CcxtWsSource:
        provider = CcxtProvider(base_url=fx.url, rate_limit_ms=1, timeout_ms=5_000)
        ws_url = "ws" + fx.url.removeprefix("http") + "/stream"
        return CcxtWsSource(
            provider, [BTC], clock, ws_url=ws_url, start=t(5), end=end, poll_interval=0.05
        )

    expected = [Bar(BTC, Timeframe.M1, t(i), *bar(i)) for i in range(5, 20)]
    # waiting: the market stands still at 00:10: minutes 5..8 have closed, 9 never will
    return Case(
        expected,
        lambda: source(ManualClock(t(25)), t(20)),
        lambda: source(ManualClock(t(10)), None),
        bounded=True,
    )


SOURCES = [
    "memory",
    "replay",
    "clocked",
    "synthetic",
    pytest.param("ccxt", marks=pytest.mark.integration),
    pytest.param("ccxt-ws", marks=pytest.mark.integration),
]


@pytest.fixture(params=SOURCES)
def case(request: pytest.FixtureRequest) -> Case:
    return make_case(request.param, request)


@pytest.fixture(params=[p for p in SOURCES if p != "synthetic"])
def bounded(request: pytest.FixtureRequest) -> Case:
    made = make_case(request.param, request)
    assert made.bounded
    return made


def test_bars_come_in_arrival_order(case: Case) -> None:
    got = list(itertools.islice(case.stream().bars(), len(case.expected)))
    assert got == case.expected
    assert all(b.timeframe is Timeframe.M1 and b.open_time.tzinfo is not None for b in got)


def test_an_exhausted_source_ends(bounded: Case) -> None:
    bars = bounded.stream().bars()
    assert list(itertools.islice(bars, len(bounded.expected))) == bounded.expected
    assert list(bars) == []


def test_close_ends_the_stream_at_the_next_bar(case: Case) -> None:
    source = case.stream()
    bars = source.bars()
    assert next(bars) == case.expected[0]
    source.close()
    assert list(bars) == []


def test_a_closed_source_hands_out_nothing(case: Case) -> None:
    source = case.stream()
    source.close()
    assert list(source.bars()) == []


def test_close_from_another_thread_ends_a_waiting_stream(case: Case) -> None:
    source = case.waiting()
    got: list[Bar] = []
    first = threading.Event()

    def consume() -> None:
        for b in source.bars():
            got.append(b)
            first.set()

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    assert first.wait(timeout=30), "the source handed out no bar"
    assert consumer.is_alive(), "a waiting source ended on its own"
    source.close()
    consumer.join(timeout=30)
    assert not consumer.is_alive(), "bars() still running after close()"
    assert got and got == case.expected[: len(got)]


def test_the_clocked_source_moves_the_market_clock_and_shows_each_bar_first() -> None:
    """What the wrapper adds to the contract: "now" is the close of the bar just handed out, and
    observers have seen it before the consumer does."""
    bars = two_symbols()
    clock = ManualClock(T0)
    seen: list[Bar] = []
    source = ClockedSource(InMemoryLiveSource(bars), clock, observers=(seen.append,))
    for i, b in enumerate(source.bars()):
        assert clock.now() == b.close_time
        assert seen[-1] is b and len(seen) == i + 1
        assert source.last is b
    assert seen == bars
