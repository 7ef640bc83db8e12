"""Websocket candles from the fake Binance through ccxt.pro: each closed minute once, in order,
across dropped connections (REST gap fill), and polling where the exchange has no stream."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import ccxt.pro
import pytest

from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.domain import Bar, Symbol, Timeframe
from drl_trading.ingest.adapter.ccxt_provider import CcxtProvider
from drl_trading.ingest.adapter.ccxt_ws_source import CcxtWsSource
from drl_trading.testing.fake_exchange import FakeExchange, MarketSpec

pytestmark = pytest.mark.integration

BTC = Symbol("BTCUSDT")
T0 = datetime(2024, 1, 1, tzinfo=UTC)
M = timedelta(minutes=1)
WAIT_S = 30.0


def minute(i: int) -> datetime:
    return T0 + i * M


def printed(i: int) -> Bar:
    """The candle of minute ``i`` as `print_minute` makes it."""
    price = 100.0 + i
    return Bar(BTC, Timeframe.M1, minute(i), price, price + 1, price, price + 0.5, 3.0)


def print_minute(fx: FakeExchange, i: int) -> None:
    """Three trade prints inside minute ``i`` (open, high, close), on the fake's clock."""
    price = 100.0 + i
    for second, p in ((5, price), (20, price + 1), (40, price + 0.5)):
        fx.trade("BTCUSDT", p, liquidity=1.0, at=minute(i) + timedelta(seconds=second))


@pytest.fixture
def fx() -> Iterator[FakeExchange]:
    with FakeExchange([MarketSpec("BTCUSDT", "BTC", "USDT")]) as exchange:
        yield exchange
        for source in _opened:  # a failed test leaves no stream reconnecting to a stopped fake
            source.close()
        _opened.clear()


_opened: list[CcxtWsSource] = []


def ws_url(fx: FakeExchange) -> str:
    return "ws" + fx.url.removeprefix("http") + "/stream"


def make_source(fx: FakeExchange, clock: ManualClock, **kwargs: Any) -> CcxtWsSource:
    provider = CcxtProvider(base_url=fx.url, rate_limit_ms=1, timeout_ms=5_000)
    kwargs.setdefault("poll_interval", 0.05)
    source = CcxtWsSource(
        provider, [BTC], clock, ws_url=ws_url(fx), first_backoff_s=0.05, max_backoff_s=0.2, **kwargs
    )
    _opened.append(source)
    return source


class Consumer:
    """``source.bars()`` drained on a thread, as the online ingest service does."""

    def __init__(self, source: CcxtWsSource) -> None:
        self.source = source
        self.got: list[Bar] = []
        self.error: BaseException | None = None
        self._changed = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for bar in self.source.bars():
                with self._changed:
                    self.got.append(bar)
                    self._changed.notify_all()
        except BaseException as exc:
            self.error = exc

    def wait_for(self, what: str, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + WAIT_S
        with self._changed:
            while not condition():
                left = deadline - time.monotonic()
                assert left > 0 and self.error is None, f"{what}: got {self.got} ({self.error})"
                self._changed.wait(min(left, 0.05))

    def stop(self) -> list[Bar]:
        self.source.close()
        self.thread.join(timeout=WAIT_S)
        assert not self.thread.is_alive(), "bars() still running after close()"
        assert self.error is None, self.error
        assert not [t for t in threading.enumerate() if t.name == "ccxt-ws"], "worker left running"
        return self.got


def wait_until(what: str, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def subscribed(fx: FakeExchange, connections: int) -> Callable[[], bool]:
    return lambda: fx.websocket_connections >= connections and fx.kline_subscribers() > 0


def test_closed_candles_come_from_the_stream(fx: FakeExchange) -> None:
    # the clock stands before minute 0 closes: only the stream can show candles closed
    source = make_source(fx, ManualClock(T0), start=T0)
    consumer = Consumer(source)
    wait_until("the source subscribed", subscribed(fx, 1))
    for i in range(4):
        print_minute(fx, i)
    consumer.wait_for("minutes 0..2", lambda: len(consumer.got) >= 3)
    assert consumer.stop() == [printed(i) for i in range(3)]  # minute 3 is still open
    assert source.mode == "websocket" and source.reconnects == 0


@pytest.mark.parametrize("how", ["fault", "drop_all"])
def test_a_dropped_websocket_loses_and_doubles_no_minute(fx: FakeExchange, how: str) -> None:
    source = make_source(fx, ManualClock(T0), start=T0)
    consumer = Consumer(source)
    wait_until("the source subscribed", subscribed(fx, 1))
    for i in range(3):
        print_minute(fx, i)
    consumer.wait_for("minutes 0..1", lambda: len(consumer.got) >= 2)
    # minute 2 has closed on the exchange, but its final push is lost with the connection
    if how == "fault":
        fx.faults.drop_websocket = 1
        print_minute(fx, 3)
    else:
        fx.drop_websockets()
        print_minute(fx, 3)
    # minutes pass while the source reconnects: it sees them again only after resubscribing
    last = 4
    print_minute(fx, last)
    wait_until("the source resubscribed", subscribed(fx, 2))
    while len(consumer.got) < last:
        last += 1
        print_minute(fx, last)
        consumer.wait_for(f"minutes up to {last - 1}", lambda n=last: len(consumer.got) >= n)
    got = consumer.stop()
    assert got == [printed(i) for i in range(last)]
    assert source.reconnects >= 1 and source.filled >= 1


def test_a_quiet_stream_has_its_closed_candles_read_from_rest(fx: FakeExchange) -> None:
    """No push after minute 4: the clock, past its close, has REST hand it out."""
    clock = ManualClock(T0)
    source = make_source(fx, clock, start=T0, end=minute(5))
    consumer = Consumer(source)
    wait_until("the source subscribed", subscribed(fx, 1))
    for i in range(5):
        print_minute(fx, i)
    consumer.wait_for("minutes 0..3", lambda: len(consumer.got) >= 4)
    clock.set(minute(5) + timedelta(seconds=3))
    consumer.thread.join(timeout=WAIT_S)
    assert not consumer.thread.is_alive(), "a source past its end did not end"
    assert consumer.got == [printed(i) for i in range(5)]


def test_an_exchange_without_websocket_candles_is_polled(fx: FakeExchange) -> None:
    fx.set_bars("BTCUSDT", [(minute(i), 1.0, 2.0, 0.5, 1.5, 10.0) for i in range(8)])

    def no_stream() -> Any:
        client = ccxt.pro.binance(fx.ccxt_pro_config())
        client.has["watchOHLCV"] = False
        return client

    provider = CcxtProvider(base_url=fx.url, rate_limit_ms=1, timeout_ms=5_000)
    clock = ManualClock(minute(10))
    source = CcxtWsSource(
        provider, [BTC], clock, exchange=no_stream, start=minute(2), end=minute(6)
    )
    got = list(source.bars())
    assert got == [Bar(BTC, Timeframe.M1, minute(i), 1.0, 2.0, 0.5, 1.5, 10.0) for i in range(2, 6)]
    assert source.mode == "poll" and fx.websocket_connections == 0
