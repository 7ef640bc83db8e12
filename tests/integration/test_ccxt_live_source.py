"""`CcxtLiveSource` polling the local fake Binance (the real ccxt client talks to it over HTTP):
only closed candles, in order, each once, then the whole online workflow on them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from drl_trading.app.runtime import EmbeddedRuntime
from drl_trading.app.settings import load_settings
from drl_trading.common.adapter.memory_calendar import MemoryCalendar
from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.calendar import CalendarBook
from drl_trading.common.domain import Symbol, Timeframe
from drl_trading.common.events import Topic
from drl_trading.ingest.adapter.ccxt_live_source import CcxtLiveSource
from tests.integration.test_ccxt_provider import (
    BTC,
    N_BARS,
    FakeBinance,
    bar,
    make_provider,
    server,  # noqa: F401  (the fixture)
    t,
)

pytestmark = pytest.mark.integration

ETH = Symbol("ETHUSDT")  # the fake has no ETHUSDT candles: a market without trades


class MarketTime:
    """A poll's sleep moves the market clock: no wall-clock waits in the test."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.sleeps: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(timedelta(seconds=seconds))


def test_streams_closed_candles_in_order_and_moves_past_a_silent_market(
    server: FakeBinance,  # noqa: F811
) -> None:
    clock = ManualClock(t(10))  # 00:10:00: the 00:09 candle has just closed, not yet settled
    sleep = MarketTime(clock)
    source = CcxtLiveSource(
        make_provider(server),
        [BTC, ETH],
        clock,
        start=t(5),
        end=t(20),
        poll_interval=30.0,
        sleep=sleep,
    )
    got = list(source.bars())
    assert [b.open_time for b in got] == [t(i) for i in range(5, 20)]
    assert {b.symbol for b in got} == {BTC}
    assert all(b.timeframe is Timeframe.M1 for b in got)
    first = got[0]
    assert (first.open, first.high, first.low, first.close, first.volume) == bar(5)
    # each bar was handed out only after its close plus the settling delay, on market time
    assert clock.now() >= t(20) + timedelta(seconds=2)
    assert source.skipped_bars > 0  # ETHUSDT's minutes were given up after the patience
    assert sleep.sleeps and set(sleep.sleeps) == {30.0}


def test_a_market_closure_is_neither_waited_for_nor_skipped(
    server: FakeBinance,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The market closes 00:10-00:15 (the fake has no candles then): the source asks for none
    and gives none up, and streams on from the reopening."""
    market = MemoryCalendar([(t(0), t(10)), (t(15), t(N_BARS))])
    klines = server.klines

    def open_only(query: dict[str, str]) -> tuple[int, Any]:
        status, rows = klines(query)
        if status != 200:
            return status, rows
        closed = (int(t(10).timestamp() * 1000), int(t(15).timestamp() * 1000))
        return status, [r for r in rows if not closed[0] <= r[0] < closed[1]]

    monkeypatch.setattr(server, "klines", open_only)
    clock = ManualClock(t(10))
    sleep = MarketTime(clock)
    source = CcxtLiveSource(
        make_provider(server),
        [BTC],
        clock,
        start=t(5),
        end=t(20),
        poll_interval=30.0,
        sleep=sleep,
        calendars=CalendarBook(market),
    )
    with capture_logs() as logs:
        got = list(source.bars())
    assert [b.open_time for b in got] == [t(i) for i in (*range(5, 10), *range(15, 20))]
    assert source.skipped_bars == 0
    assert not [e for e in logs if e["log_level"] == "warning"]


def test_live_source_drives_the_online_workflow(server: FakeBinance, tmp_path: Path) -> None:  # noqa: F811
    """ccxt live bars through ingest (gap fill from the same exchange) → preprocess → bus."""
    from drl_trading.ingest.adapter.ccxt_provider import CcxtProvider

    settings = load_settings(home=tmp_path / "home")
    start = t(N_BARS - 30)
    clock = ManualClock(start)
    sleep = MarketTime(clock)
    provider: CcxtProvider = make_provider(server)
    source = CcxtLiveSource(
        provider, [BTC], clock, start=start, end=t(N_BARS), poll_interval=60.0, sleep=sleep
    )
    with EmbeddedRuntime.open(settings) as runtime:
        from drl_trading.app.ingest import compose_online_ingest

        ingest = compose_online_ingest(runtime.bus, runtime.market_data, source, provider, clock)
        ingest.start([BTC], t(0), live_from=start)
        runtime.run_until_idle()
        streamed = 0
        while ingest.pump(1):
            runtime.run_until_idle()
            streamed += 1
        assert streamed == 30
        stats = ingest.stats()
        assert stats.bars_streamed == 30 and stats.gaps == 0 and stats.duplicates == 0
        stored = runtime.market_data.read_bars(BTC, Timeframe.M1, t(0), t(N_BARS))
        # gap fill t(0)..start, then the live minutes; the fake's bar 7 is invalid on purpose
        assert stored.height == N_BARS - 1
        assert runtime.market_data.read_quarantine(BTC).height == 1
        requests = runtime.bus.messages(Topic.PREPROCESS_REQUESTED)
        assert len(requests) == 1 + 30  # the catch-up request, one per live bar
