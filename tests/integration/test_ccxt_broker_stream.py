"""`CcxtBroker` with its order stream (`CcxtOrderStream`, ccxt.pro's user-data stream) against
the fake Binance: fills booked from pushed trades without polling the order over REST, an
outage filled in by REST (each trade once), REST again once after the resubscription, then the
stream alone."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import ccxt
import ccxt.pro
import pytest

from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.domain import Bar, Fill, Order, Side, Symbol, Timeframe, parse_time
from drl_trading.execution.adapter.ccxt_broker import CcxtBroker, CcxtBrokerSettings
from drl_trading.execution.adapter.ccxt_order_stream import CcxtOrderStream
from drl_trading.testing.fake_exchange import BTCUSDT, FakeExchange

pytestmark = pytest.mark.integration

S = Symbol("BTCUSDT")
T0 = parse_time("2024-01-01T00:00")
WAIT_S = 30.0


@pytest.fixture
def fx() -> Iterator[FakeExchange]:
    with FakeExchange([BTCUSDT], balances={"USDT": 10_000.0}, fee_bps=10.0) as exchange:
        exchange.trade("BTCUSDT", 40_000.0, liquidity=0.0)  # a last price for notional checks
        yield exchange


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


def streaming_broker(fx: FakeExchange, clock: ManualClock, backoff_s: float) -> CcxtBroker:
    """A broker with a subscribed order stream that waits ``backoff_s`` before resubscribing."""
    stream = CcxtOrderStream(
        lambda: ccxt.pro.binance(fx.ccxt_pro_config()),
        clock=clock,
        first_backoff_s=backoff_s,
        max_backoff_s=backoff_s,
    ).start()
    wait_until("the stream subscribed", lambda: stream.connected)
    return CcxtBroker(
        ccxt.binance(fx.ccxt_config()),
        CcxtBrokerSettings(symbols=(S,)),
        clock=clock,
        sleep=lambda _s: None,
        order_stream=stream,
    )


@pytest.fixture
def broker(fx: FakeExchange, clock: ManualClock) -> Iterator[CcxtBroker]:
    b = streaming_broker(fx, clock, 0.2)
    yield b
    b.close()


def wait_until(what: str, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def rest_polls(fx: FakeExchange) -> int:
    """Order look-ups and trade listings: what polling an order costs."""
    return sum(
        1
        for r in fx.requests
        if r.method == "GET" and r.path in ("/api/v3/order", "/api/v3/myTrades")
    )


def bar(clock: ManualClock, price: float) -> Bar:
    clock.advance(timedelta(minutes=1))
    return Bar(S, Timeframe.M1, clock.now() - timedelta(minutes=1), price, price, price, price, 1)


def fills_until(broker: CcxtBroker, clock: ManualClock, price: float, want: int) -> list[Fill]:
    got: list[Fill] = []

    def enough() -> bool:
        got.extend(broker.on_bar(bar(clock, price)))
        return len(got) >= want

    wait_until(f"{want} fill(s)", enough)
    return got


def test_pushed_fills_are_booked_without_polling_the_order(
    fx: FakeExchange, broker: CcxtBroker, clock: ManualClock
) -> None:
    before = rest_polls(fx)
    assert broker.submit(Order("s1", S, Side.BUY, 0.1)).accepted
    fx.trade("BTCUSDT", 40_010.0, liquidity=1.0)
    fills = fills_until(broker, clock, 40_010.0, 1)
    assert [(f.quantity, f.price) for f in fills] == [(pytest.approx(0.1), 40_010.0)]
    assert fills[0].fee == pytest.approx(fx.fills()[0].commission)
    for _ in range(3):  # nothing more, and still no look-up of the order
        assert broker.on_bar(bar(clock, 40_010.0)) == []
    assert rest_polls(fx) == before
    assert broker.open_orders() == []
    assert broker.positions()[S].quantity == pytest.approx(0.1)
    assert broker.venue_differences() == {}


def test_a_fill_the_order_answer_reports_is_booked_at_the_next_bar_while_its_push_lags(
    fx: FakeExchange, broker: CcxtBroker, clock: ManualClock
) -> None:
    """The exchange said "filled" in the order's answer: the next bar books it (over REST)
    rather than waiting on a push that lags, which in a replay would book it bars late."""
    fx.faults.user_stream_delay_s = 1.0
    fx.fill_on_arrival(lambda _order: 40_010.0)
    before = rest_polls(fx)
    assert broker.submit(Order("d1", S, Side.BUY, 0.1)).accepted
    fills = broker.on_bar(bar(clock, 40_010.0))
    assert [(f.quantity, f.price) for f in fills] == [(pytest.approx(0.1), 40_010.0)]
    assert rest_polls(fx) > before
    assert broker.positions()[S].quantity == pytest.approx(0.1)
    time.sleep(1.5)  # the lagging push arrives: its trade is not booked again
    for _ in range(2):
        assert broker.on_bar(bar(clock, 40_010.0)) == []
    assert broker.positions()[S].quantity == pytest.approx(0.1)


@pytest.fixture
def slow_broker(fx: FakeExchange, clock: ManualClock) -> Iterator[CcxtBroker]:
    """Resubscribes 3 s after a drop: the outage outlasts the steps taken during it."""
    b = streaming_broker(fx, clock, 3.0)
    yield b
    b.close()


def test_an_outage_is_filled_in_by_rest_and_each_trade_is_booked_once(
    fx: FakeExchange, slow_broker: CcxtBroker, clock: ManualClock
) -> None:
    broker = slow_broker
    stream = broker._stream
    assert stream is not None
    assert broker.submit(Order("p1", S, Side.BUY, 0.15)).accepted
    fx.trade("BTCUSDT", 40_000.0, liquidity=0.05)
    polls = rest_polls(fx)
    first = fills_until(broker, clock, 40_000.0, 1)
    assert rest_polls(fx) == polls  # pushed

    fx.drop_websockets()
    wait_until("the stream saw the drop", lambda: not stream.connected)
    clock.advance(timedelta(minutes=1))
    fx.trade("BTCUSDT", 40_001.0, liquidity=0.05)  # while the stream is down
    second = broker.on_bar(bar(clock, 40_001.0))
    assert not stream.connected  # still down: the fill came by REST
    assert [f.price for f in second] == [40_001.0]
    assert rest_polls(fx) > polls

    clock.advance(timedelta(minutes=1))  # the resubscription comes after that poll
    wait_until("the stream resubscribed", lambda: stream.connected)
    polls = rest_polls(fx)
    assert broker.on_bar(bar(clock, 40_001.0)) == []  # polled once: the stream may have missed
    assert rest_polls(fx) > polls
    polls = rest_polls(fx)
    fx.trade("BTCUSDT", 40_002.0, liquidity=0.05)
    third = fills_until(broker, clock, 40_002.0, 1)
    assert rest_polls(fx) == polls  # the stream covers it again
    reported = first + second + third
    assert [f.price for f in reported] == [40_000.0, 40_001.0, 40_002.0]
    assert [f.fee for f in reported] == pytest.approx([f.commission for f in fx.fills()])
    assert broker.open_orders() == []
    assert broker.positions()[S].quantity == pytest.approx(0.15)
    for _ in range(2):  # the pushed copies of the polled trades are not booked again
        assert broker.on_bar(bar(clock, 40_002.0)) == []


def test_without_a_stream_every_bar_polls(fx: FakeExchange, clock: ManualClock) -> None:
    b = CcxtBroker(ccxt.binance(fx.ccxt_config()), CcxtBrokerSettings(symbols=(S,)), clock=clock)
    assert b.submit(Order("r1", S, Side.BUY, 0.1, limit_price=39_000.0)).accepted
    polls = rest_polls(fx)
    for _ in range(3):
        assert b.on_bar(bar(clock, 40_000.0)) == []
    assert rest_polls(fx) == polls + 3
    b.close()


def test_refused_stream_credentials_leave_the_broker_polling(
    fx: FakeExchange, clock: ManualClock
) -> None:
    config = fx.ccxt_pro_config()
    config["secret"] = "not-the-secret"
    stream = CcxtOrderStream(lambda: ccxt.pro.binance(config), clock=clock).start()
    wait_until("the stream gave up", lambda: stream.failure is not None)
    b = CcxtBroker(
        ccxt.binance(fx.ccxt_config()),
        CcxtBrokerSettings(symbols=(S,)),
        clock=clock,
        order_stream=stream,
    )
    assert b.submit(Order("f1", S, Side.BUY, 0.1)).accepted
    fx.trade("BTCUSDT", 40_000.0, liquidity=1.0)
    polls = rest_polls(fx)
    assert [f.quantity for f in b.on_bar(bar(clock, 40_000.0))] == [pytest.approx(0.1)]
    assert rest_polls(fx) > polls
    assert isinstance(stream.failure, str) and "not-the-secret" not in stream.failure
    b.close()


def test_close_stops_the_stream(fx: FakeExchange, broker: CcxtBroker) -> None:
    stream = broker._stream
    assert stream is not None and stream.connected
    broker.close()
    assert not stream.connected
    wait_until("the fake saw the socket close", lambda: fx.user_stream_subscribers == 0)
