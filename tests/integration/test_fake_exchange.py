"""The fake Binance spot exchange, driven by the real ccxt client over HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import ccxt
import polars as pl
import pytest

from drl_trading.testing.fake_exchange import BTCUSDT, BinanceError, FakeExchange

pytestmark = pytest.mark.integration

SPEC = BTCUSDT
SYMBOL = "BTC/USDT"


@pytest.fixture
def fx() -> Iterator[FakeExchange]:
    with FakeExchange([SPEC], balances={"USDT": 10_000.0}, fee_bps=10.0) as exchange:
        exchange.trade("BTCUSDT", 42_000.0)
        yield exchange


@pytest.fixture
def client(fx: FakeExchange) -> ccxt.binance:
    exchange = ccxt.binance(fx.ccxt_config(timeout=2_000))
    exchange.load_markets()
    return exchange


def orders_posted(fx: FakeExchange) -> int:
    return sum(1 for r in fx.requests if (r.method, r.path) == ("POST", "/api/v3/order"))


def test_markets_time_and_candles_come_from_the_spec_and_the_prints(
    fx: FakeExchange, client: ccxt.binance
) -> None:
    market = client.market(SYMBOL)
    assert market["spot"] and market["id"] == "BTCUSDT"
    assert market["precision"] == {"amount": 0.00001, "price": 0.01, "base": 1e-08, "quote": 1e-08}
    assert market["limits"]["amount"]["min"] == 0.00001
    assert market["limits"]["cost"]["min"] == 5.0
    assert {(r.method, r.path) for r in fx.requests} == {("GET", "/api/v3/exchangeInfo")}
    assert abs(client.fetch_time() - client.milliseconds()) < 60_000

    start = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    fx.set_bars(
        "BTCUSDT",
        pl.DataFrame(
            {
                "open_time": [start + timedelta(minutes=i) for i in range(6)],
                "open": [100.0 + i for i in range(6)],
                "high": [101.0 + i for i in range(6)],
                "low": [99.0 + i for i in range(6)],
                "close": [100.5 + i for i in range(6)],
                "volume": [1.0] * 6,
            }
        ),
    )
    fx.trade("BTCUSDT", 200.0, liquidity=2.0, at=start + timedelta(minutes=6, seconds=5))
    fx.trade("BTCUSDT", 210.0, liquidity=3.0, at=start + timedelta(minutes=6, seconds=40))
    since = int(start.timestamp() * 1000)
    minutes = client.fetch_ohlcv(SYMBOL, "1m", since=since, limit=10)
    assert [row[0] for row in minutes] == [since + 60_000 * i for i in range(7)]
    assert minutes[0][1:] == [100.0, 101.0, 99.0, 100.5, 1.0]
    assert minutes[-1][1:] == [200.0, 210.0, 200.0, 210.0, 5.0]
    fives = client.fetch_ohlcv(SYMBOL, "5m", since=since, limit=10)
    assert fives[0][1:] == [100.0, 105.0, 99.0, 104.5, 5.0]
    assert fives[1][1:] == [105.0, 210.0, 104.0, 210.0, 6.0]
    assert client.fetch_ticker(SYMBOL)["last"] == 210.0


def test_market_order_rests_until_the_next_print_and_fills_there_with_the_fee(
    fx: FakeExchange, client: ccxt.binance
) -> None:
    placed = client.create_order(SYMBOL, "market", "buy", 0.1, params={"newClientOrderId": "sig-1"})
    assert (
        placed["status"] == "open"
        and placed["clientOrderId"] == "sig-1"
        and placed["filled"] == 0.0
    )

    fx.trade("BTCUSDT", 42_100.0, liquidity=1.0)

    order = client.fetch_order(placed["id"], SYMBOL)
    assert (order["status"], order["filled"], order["average"]) == ("closed", 0.1, 42_100.0)
    (trade,) = client.fetch_my_trades(SYMBOL)
    assert (trade["order"], trade["side"], trade["price"], trade["amount"]) == (
        placed["id"],
        "buy",
        42_100.0,
        0.1,
    )
    assert trade["fee"] == {"cost": pytest.approx(4.21), "currency": "USDT"}
    assert trade["takerOrMaker"] == "taker"
    balance = client.fetch_balance()
    assert balance["BTC"]["free"] == 0.1
    assert balance["USDT"]["free"] == pytest.approx(10_000.0 - 4_210.0 - 4.21)
    free, locked = fx.balances()["USDT"]
    assert free == pytest.approx(5_785.79)
    assert locked == 0.0


def test_limit_order_locks_funds_fills_when_crossed_and_partially_by_liquidity(
    fx: FakeExchange, client: ccxt.binance
) -> None:
    placed = client.create_order(
        SYMBOL, "limit", "buy", 0.2, 41_000.0, params={"newClientOrderId": "lim-1"}
    )
    locked = 0.2 * 41_000.0 * 1.001
    assert client.fetch_balance()["USDT"]["used"] == pytest.approx(locked)

    fx.trade("BTCUSDT", 41_500.0, liquidity=5.0)  # above the limit: no fill
    assert client.fetch_order(placed["id"], SYMBOL)["filled"] == 0.0

    fx.trade("BTCUSDT", 40_900.0, liquidity=0.05)  # crosses, fills 0.05 at the limit
    order = client.fetch_order(placed["id"], SYMBOL)
    assert (order["status"], order["filled"], order["remaining"], order["info"]["status"]) == (
        "open",
        0.05,
        0.15,
        "PARTIALLY_FILLED",
    )
    assert order["cost"] == pytest.approx(0.05 * 41_000.0)
    assert [o["id"] for o in client.fetch_open_orders(SYMBOL)] == [placed["id"]]

    fx.trade("BTCUSDT", 40_800.0, liquidity=1.0)
    order = client.fetch_order(placed["id"], SYMBOL)
    assert (order["status"], order["filled"], order["average"]) == ("closed", 0.2, 41_000.0)
    trades = client.fetch_my_trades(SYMBOL)
    assert [(t["price"], t["amount"], t["takerOrMaker"]) for t in trades] == [
        (41_000.0, 0.05, "maker"),
        (41_000.0, 0.15, "maker"),
    ]
    balance = client.fetch_balance()
    assert balance["USDT"]["used"] == pytest.approx(0.0)
    assert balance["USDT"]["free"] == pytest.approx(10_000.0 - locked)
    assert balance["BTC"]["free"] == 0.2
    assert client.fetch_open_orders(SYMBOL) == []

    sell = client.create_order(SYMBOL, "limit", "sell", 0.2, 43_000.0)
    assert client.fetch_balance()["BTC"] == {"free": 0.0, "used": 0.2, "total": 0.2}
    fx.trade("BTCUSDT", 43_500.0, liquidity=1.0)
    assert client.fetch_order(sell["id"], SYMBOL)["average"] == 43_000.0


def test_orders_found_by_client_id_and_a_repeated_client_id_is_refused(
    fx: FakeExchange, client: ccxt.binance
) -> None:
    placed = client.create_order(
        SYMBOL, "limit", "buy", 0.01, 40_000.0, params={"newClientOrderId": "sig-7"}
    )
    found = client.fetch_order(None, SYMBOL, params={"origClientOrderId": "sig-7"})
    assert (found["id"], found["clientOrderId"], found["status"]) == (placed["id"], "sig-7", "open")

    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        client.create_order(
            SYMBOL, "limit", "buy", 0.01, 40_000.0, params={"newClientOrderId": "sig-7"}
        )
    with pytest.raises(ccxt.OrderNotFound, match="Order does not exist"):
        client.fetch_order(None, SYMBOL, params={"origClientOrderId": "never-sent"})
    with pytest.raises(ccxt.OrderNotFound):
        client.fetch_order("999", SYMBOL)
    with pytest.raises(ccxt.BadRequest, match="newClientOrderId"):
        client.create_order(
            SYMBOL, "limit", "buy", 0.01, 40_000.0, params={"newClientOrderId": "x" * 37}
        )
    assert [o.client_order_id for o in fx.orders()] == ["sig-7"]

    fx.trade("BTCUSDT", 39_000.0)
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        client.create_order(SYMBOL, "market", "buy", 0.01, params={"newClientOrderId": "sig-7"})


def test_cancel_one_and_all_open_orders(fx: FakeExchange, client: ccxt.binance) -> None:
    first = client.create_order(
        SYMBOL, "limit", "buy", 0.01, 40_000.0, params={"newClientOrderId": "a"}
    )
    client.create_order(SYMBOL, "limit", "buy", 0.01, 39_000.0, params={"newClientOrderId": "b"})
    client.create_order(SYMBOL, "limit", "buy", 0.01, 38_000.0, params={"newClientOrderId": "c"})

    canceled = client.cancel_order(first["id"], SYMBOL)
    assert canceled["status"] == "canceled" and canceled["info"]["origClientOrderId"] == "a"
    with pytest.raises(ccxt.OrderNotFound, match="Unknown order sent"):
        client.cancel_order(first["id"], SYMBOL)
    assert sorted(o["clientOrderId"] for o in client.fetch_open_orders(SYMBOL)) == ["b", "c"]

    client.cancel_all_orders(SYMBOL)
    assert client.fetch_open_orders(SYMBOL) == []
    assert [o.status for o in fx.orders()] == ["CANCELED"] * 3
    free, locked = fx.balances()["USDT"]
    assert free == pytest.approx(10_000.0)
    assert locked == pytest.approx(0.0)
    again = client.create_order(
        SYMBOL, "limit", "buy", 0.01, 40_000.0, params={"newClientOrderId": "a"}
    )
    assert (
        again["clientOrderId"] == "a"
    )  # a canceled order's client id may be reused, as on Binance


def test_rejections_map_to_ccxt_exceptions(fx: FakeExchange, client: ccxt.binance) -> None:
    with pytest.raises(ccxt.InsufficientFunds):
        client.create_order(SYMBOL, "limit", "buy", 1.0, 41_000.0)
    with pytest.raises(ccxt.InsufficientFunds):
        client.create_order(SYMBOL, "market", "sell", 0.01)
    # Binance answers -1013 "Filter failure: NOTIONAL"; ccxt 4.5 maps -1013 to BadRequest
    with pytest.raises(ccxt.BadRequest, match="Filter failure: NOTIONAL"):
        client.create_order(SYMBOL, "limit", "buy", 0.0001, 40_000.0)
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
        client.create_order(SYMBOL, "limit", "buy", 10_000.0, 1.0)

    fx.faults.reject_next = "insufficient_balance"
    with pytest.raises(ccxt.InsufficientFunds):
        client.create_order(SYMBOL, "limit", "buy", 0.01, 40_000.0)
    fx.faults.reject_next = "min_notional"
    with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):
        client.create_order(SYMBOL, "limit", "buy", 0.01, 40_000.0)
    assert fx.orders() == []
    assert fx.faults.reject_next is None
    client.create_order(SYMBOL, "limit", "buy", 0.01, 40_000.0)
    assert len(fx.orders()) == 1


def test_a_bad_signature_or_key_is_an_authentication_error(fx: FakeExchange) -> None:
    wrong_secret = ccxt.binance(fx.ccxt_config(secret="not-the-secret"))
    wrong_secret.load_markets()
    with pytest.raises(ccxt.AuthenticationError, match="Signature for this request is not valid"):
        wrong_secret.fetch_balance()
    wrong_key = ccxt.binance(fx.ccxt_config(apiKey="someone-else"))
    wrong_key.load_markets()
    with pytest.raises(ccxt.AuthenticationError, match="Invalid API-key"):
        wrong_key.create_order(SYMBOL, "limit", "buy", 0.01, 40_000.0)
    assert fx.orders() == []


def test_stale_timestamps_are_refused(fx: FakeExchange, client: ccxt.binance) -> None:
    client.options["timeDifference"] = 120_000  # the client's clock two minutes behind
    with pytest.raises(ccxt.InvalidNonce, match="recvWindow"):
        client.fetch_balance()


def test_timeout_after_accept_leaves_the_order_on_the_exchange(fx: FakeExchange) -> None:
    client = ccxt.binance(fx.ccxt_config(timeout=500))
    client.load_markets()
    fx.faults.timeout_after_accept = 1
    with pytest.raises(ccxt.RequestTimeout):
        client.create_order(
            SYMBOL, "limit", "buy", 0.01, 40_000.0, params={"newClientOrderId": "lost-1"}
        )
    (order,) = fx.orders()
    assert (order.client_order_id, order.status) == ("lost-1", "NEW")
    found = client.fetch_order(None, SYMBOL, params={"origClientOrderId": "lost-1"})
    assert found["status"] == "open"
    assert orders_posted(fx) == 1

    fx.faults.drop_after_accept = 1
    with pytest.raises(ccxt.NetworkError):
        client.create_order(
            SYMBOL, "limit", "buy", 0.01, 40_000.0, params={"newClientOrderId": "lost-2"}
        )
    assert [o.client_order_id for o in fx.orders()] == ["lost-1", "lost-2"]


def test_gateway_faults_map_to_network_errors_and_execute_nothing(
    fx: FakeExchange, client: ccxt.binance
) -> None:
    fx.faults.rate_limit = 1
    with pytest.raises(ccxt.DDoSProtection, match="429"):
        client.create_order(SYMBOL, "limit", "buy", 0.01, 40_000.0)
    fx.faults.ban = 1
    with pytest.raises(ccxt.DDoSProtection, match="418"):
        client.fetch_balance()
    fx.faults.server_errors = 2
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.create_order(SYMBOL, "limit", "buy", 0.01, 40_000.0)
    fx.faults.server_error_status = 500
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.fetch_open_orders(SYMBOL)
    assert fx.orders() == []
    assert [r.status for r in fx.requests[-4:]] == [429, 418, 503, 500]
    assert client.fetch_open_orders(SYMBOL) == []


def test_latency_delays_responses(fx: FakeExchange) -> None:
    client = ccxt.binance(fx.ccxt_config(timeout=500))
    client.load_markets()
    fx.faults.latency_s = 1.0
    with pytest.raises(ccxt.RequestTimeout):
        client.fetch_time()


def test_foreign_orders_and_balance_changes_behind_the_clients_back(
    fx: FakeExchange, client: ccxt.binance
) -> None:
    foreign = fx.place_foreign_order("BTCUSDT", "buy", 0.01, 39_500.0)
    assert foreign.foreign and foreign.client_order_id.startswith("web_")
    (seen,) = client.fetch_open_orders(SYMBOL)
    assert (seen["clientOrderId"], seen["price"]) == (foreign.client_order_id, 39_500.0)
    with pytest.raises(BinanceError, match="insufficient balance"):
        fx.place_foreign_order("BTCUSDT", "sell", 1.0)

    fx.set_balance("BTC", 0.25)
    fx.set_balance("USDT", 100.0)
    balance = client.fetch_balance()
    assert balance["BTC"]["free"] == 0.25
    assert balance["USDT"]["free"] == 100.0
    assert balance["USDT"]["used"] == pytest.approx(0.01 * 39_500.0 * 1.001)
