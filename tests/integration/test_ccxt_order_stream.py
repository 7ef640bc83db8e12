"""Order state and fills pushed by the fake Binance's user data stream through the real ccxt.pro
client (`CcxtOrderStream`): the same trades as REST, partial fills, cancels, an outage the
stream reports (and whose trades only REST has), and a clean close."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import ccxt
import ccxt.pro
import pytest

from drl_trading.execution.adapter.ccxt_order_stream import CcxtOrderStream, pro_client_for
from drl_trading.testing.fake_exchange import FakeExchange, MarketSpec

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("error")]

WAIT_S = 30.0
SYMBOL = "BTC/USDT"


@pytest.fixture
def fx() -> Iterator[FakeExchange]:
    markets = [MarketSpec("BTCUSDT", "BTC", "USDT")]
    with FakeExchange(markets, balances={"USDT": 100_000.0, "BTC": 10.0}) as exchange:
        exchange.trade("BTCUSDT", 100.0, liquidity=0.0)  # a last price for notional checks
        yield exchange
        for stream in _opened:  # a failed test leaves nothing reconnecting to a stopped fake
            stream.close()
        _opened.clear()


_opened: list[CcxtOrderStream] = []


@pytest.fixture
def rest(fx: FakeExchange) -> ccxt.binance:
    return ccxt.binance(fx.ccxt_config())


def open_stream(fx: FakeExchange, **kwargs: Any) -> CcxtOrderStream:
    kwargs.setdefault("first_backoff_s", 0.5)
    kwargs.setdefault("max_backoff_s", 1.0)
    stream = CcxtOrderStream(lambda: ccxt.pro.binance(fx.ccxt_pro_config()), **kwargs)
    _opened.append(stream)
    stream.start()
    wait_until("the stream subscribed", lambda: stream.connected)
    assert fx.user_stream_subscribers == 1
    return stream


def wait_until(what: str, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def collect(
    stream: CcxtOrderStream, what: str, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []

    def enough() -> bool:
        got.extend(stream.drain())
        return done(got)

    wait_until(what, enough)
    return got


def collect_updates(
    stream: CcxtOrderStream, what: str, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []

    def enough() -> bool:
        got.extend(stream.order_updates())
        return done(got)

    wait_until(what, enough)
    return got


def close_cleanly(stream: CcxtOrderStream) -> None:
    stream.close()
    assert not [t for t in threading.enumerate() if t.name == "ccxt-order-stream"]
    assert stream.loop_errors == []
    assert not stream.connected


def test_a_market_order_trade_arrives_as_rest_lists_it(
    fx: FakeExchange, rest: ccxt.binance
) -> None:
    stream = open_stream(fx)
    order = rest.create_order(SYMBOL, "market", "buy", 0.5, params={"newClientOrderId": "drl-m1"})
    fx.trade("BTCUSDT", 101.0, liquidity=1.0)
    [pushed] = collect(stream, "the market order's trade", lambda got: len(got) >= 1)
    [listed] = rest.fetch_my_trades(SYMBOL)
    assert pushed["id"] == listed["id"] and pushed["order"] == order["id"] == listed["order"]
    assert pushed["clientOrderId"] == "drl-m1"
    assert (pushed["price"], pushed["amount"], pushed["side"]) == (101.0, 0.5, "buy")
    assert pushed["fee"] == listed["fee"] == {"currency": "USDT", "cost": pytest.approx(0.0505)}
    assert pushed["timestamp"] == listed["timestamp"]
    assert stream.drain() == []  # each trade once
    close_cleanly(stream)


def test_a_partial_then_full_fill_arrives_as_two_trades(
    fx: FakeExchange, rest: ccxt.binance
) -> None:
    stream = open_stream(fx)
    order = rest.create_order(SYMBOL, "limit", "buy", 1.0, 100.0)
    fx.trade("BTCUSDT", 99.0, liquidity=0.4)
    first = collect(stream, "the partial fill", lambda got: len(got) >= 1)
    fx.trade("BTCUSDT", 99.5, liquidity=5.0)
    second = collect(stream, "the rest of the fill", lambda got: len(got) >= 1)
    trades = first + second
    assert [(t["amount"], t["price"], t["order"]) for t in trades] == [
        (0.4, 100.0, order["id"]),
        (0.6, 100.0, order["id"]),
    ]
    assert [t["id"] for t in trades] == [t["id"] for t in rest.fetch_my_trades(SYMBOL)]
    assert all(t["takerOrMaker"] == "maker" for t in trades)
    updates = collect_updates(
        stream, "the order filled", lambda got: any(u["status"] == "closed" for u in got)
    )
    assert updates[-1]["id"] == order["id"] and updates[-1]["filled"] == 1.0
    close_cleanly(stream)


def test_a_cancel_arrives_as_an_order_update(fx: FakeExchange, rest: ccxt.binance) -> None:
    stream = open_stream(fx)
    order = rest.create_order(
        SYMBOL, "limit", "sell", 1.0, 150.0, params={"newClientOrderId": "drl-c1"}
    )
    opened = collect_updates(stream, "the order accepted", lambda got: len(got) >= 1)
    assert (opened[-1]["id"], opened[-1]["status"]) == (order["id"], "open")
    rest.cancel_order(order["id"], SYMBOL)
    [update] = collect_updates(stream, "the cancel", lambda got: len(got) >= 1)
    assert (update["id"], update["status"], update["clientOrderId"]) == (
        order["id"],
        "canceled",
        "drl-c1",
    )
    assert update["filled"] == 0.0 and stream.drain() == []
    close_cleanly(stream)


@pytest.mark.parametrize("how", ["fault", "cut"])
def test_a_dropped_stream_reports_the_outage_and_resubscribes(
    fx: FakeExchange, rest: ccxt.binance, how: str
) -> None:
    stream = open_stream(fx)
    first_since = stream.connected_since
    assert first_since is not None
    known_at = datetime.now(UTC)
    assert stream.covers(known_at)
    order = rest.create_order(SYMBOL, "limit", "buy", 2.0, 100.0)
    accepted = fx.user_stream_subscriptions
    if how == "fault":
        fx.faults.drop_websocket = 1  # the order's NEW report cuts the connection instead
        fx.trade("BTCUSDT", 99.0, liquidity=0.5)
    else:
        fx.drop_websockets()
    wait_until("the stream noticed the drop", lambda: not stream.connected)
    assert stream.outages == 1 and not stream.covers(known_at)
    if how == "cut":
        fx.trade("BTCUSDT", 99.0, liquidity=0.5)  # while nobody listens
    # the outage's fill reached no subscriber: no resubscription had been accepted yet
    assert fx.user_stream_subscriptions == accepted
    wait_until("the stream resubscribed", lambda: stream.connected)
    since = stream.connected_since
    assert since is not None and since > first_since
    assert not stream.covers(known_at)  # the broker polls REST for the orders it had open
    assert stream.covers(datetime.now(UTC))
    [during] = rest.fetch_my_trades(SYMBOL)  # only REST has the outage's fill
    fx.trade("BTCUSDT", 99.0, liquidity=0.5)
    [after] = collect(stream, "the fill after the outage", lambda got: len(got) >= 1)
    assert after["order"] == order["id"] and after["id"] != during["id"]
    assert [t["id"] for t in rest.fetch_my_trades(SYMBOL)] == [during["id"], after["id"]]
    assert fx.user_stream_subscribers == 1
    close_cleanly(stream)


def test_refused_credentials_leave_the_stream_down_for_good(fx: FakeExchange) -> None:
    def wrong_key() -> Any:
        return ccxt.pro.binance(fx.ccxt_pro_config(apiKey="not-the-key", secret="wrong-secret"))

    stream = CcxtOrderStream(wrong_key, first_backoff_s=0.05, max_backoff_s=0.1)
    _opened.append(stream)
    stream.start()
    wait_until("the stream gave up", lambda: stream.failure is not None)
    assert not stream.connected and not stream.covers(datetime.now(UTC))
    assert "wrong-secret" not in str(stream.failure) and "not-the-key" not in str(stream.failure)
    close_cleanly(stream)


def test_pro_client_for_twins_the_brokers_rest_client(fx: FakeExchange) -> None:
    rest = ccxt.binance(fx.ccxt_config())
    ws_url = "ws" + fx.url.removeprefix("http")
    stream = CcxtOrderStream(lambda: pro_client_for(rest, ws_url), first_backoff_s=0.05)
    _opened.append(stream)
    stream.start()
    wait_until("the stream subscribed", lambda: stream.connected)
    rest.create_order(SYMBOL, "market", "sell", 0.5)
    fx.trade("BTCUSDT", 100.0, liquidity=1.0)
    [trade] = collect(stream, "the trade", lambda got: len(got) >= 1)
    assert trade["id"] == rest.fetch_my_trades(SYMBOL)[0]["id"]
    close_cleanly(stream)


def test_the_listen_key_flow_is_served_too(fx: FakeExchange) -> None:
    """The REST listenKey (create, keep alive, close) and its ``/ws/<listenKey>`` stream of bare
    ``executionReport`` events, for clients that do not use the WebSocket API."""

    async def run() -> tuple[list[int], dict[str, Any]]:
        headers = {"X-MBX-APIKEY": "fake-api-key"}
        async with aiohttp.ClientSession() as session:
            async with session.post(fx.url + "/api/v3/userDataStream", headers=headers) as r:
                key = (await r.json())["listenKey"]
            url = "ws" + fx.url.removeprefix("http") + "/ws/" + key
            async with session.ws_connect(url) as ws:
                await asyncio.to_thread(
                    wait_until, "the listener", lambda: fx.user_stream_subscribers == 1
                )
                await asyncio.to_thread(fx.place_foreign_order, "BTCUSDT", "buy", 1.0, 90.0)
                event = json.loads((await ws.receive(timeout=WAIT_S)).data)
            statuses = []
            for method in (session.put, session.delete, session.put):
                async with method(
                    fx.url + "/api/v3/userDataStream", params={"listenKey": key}, headers=headers
                ) as r:
                    statuses.append(r.status)
        return statuses, event

    statuses, event = asyncio.run(run())
    assert statuses == [200, 200, 400]  # kept alive, closed, then unknown (-1125)
    assert (event["e"], event["x"], event["X"], event["S"]) == (
        "executionReport",
        "NEW",
        "NEW",
        "BUY",
    )


def test_a_bad_signature_is_refused_on_the_websocket_api(fx: FakeExchange) -> None:
    async def run() -> dict[str, Any]:
        params = {"apiKey": "fake-api-key", "timestamp": int(time.time() * 1000)}
        payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        wrong = hmac.new(b"wrong", payload.encode(), hashlib.sha256).hexdigest()
        request = {
            "id": "7",
            "method": "userDataStream.subscribe.signature",
            "params": {**params, "signature": wrong},
        }
        url = "ws" + fx.url.removeprefix("http") + "/ws-api/v3"
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            await ws.send_json(request)
            return dict(json.loads((await ws.receive(timeout=WAIT_S)).data))

    answer = asyncio.run(run())
    assert (answer["id"], answer["status"]) == ("7", 400)
    assert answer["error"]["code"] == -1022
    assert fx.user_stream_subscribers == 0


def test_backoffs_are_checked() -> None:
    with pytest.raises(ValueError, match="first_backoff_s"):
        CcxtOrderStream(lambda: None, first_backoff_s=2.0, max_backoff_s=1.0)


def test_covers_needs_a_known_time() -> None:
    stream = CcxtOrderStream(lambda: None)
    assert not stream.covers(None)
    assert not stream.covers(datetime.now(UTC) + timedelta(days=1))  # never subscribed


def test_close_while_reconnecting_is_clean(fx: FakeExchange) -> None:
    stream = open_stream(fx, first_backoff_s=5.0, max_backoff_s=5.0)
    fx.drop_websockets()
    wait_until("the stream noticed the drop", lambda: not stream.connected)
    close_cleanly(stream)  # inside its 5 s backoff
    assert stream.outages == 1 and stream.failure is None
