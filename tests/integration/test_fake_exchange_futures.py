"""The fake Binance USD-M futures venue, driven by the real ``ccxt.binanceusdm`` client over HTTP
on 127.0.0.1: markets, a long flipped short with realised PnL and fees, reduce-only and margin
refusals, resting and partial fills, and faults on the futures order path."""

from __future__ import annotations

from collections.abc import Iterator

import ccxt
import pytest

from drl_trading.testing.fake_exchange import BTCUSDT_PERP, FakeExchange

pytestmark = pytest.mark.integration

SYMBOL = "BTC/USDT:USDT"
FEE = 0.0004  # 4 bps


@pytest.fixture
def fx() -> Iterator[FakeExchange]:
    with FakeExchange(
        [BTCUSDT_PERP], balances={"USDT": 1_000.0}, fee_bps=4.0, market_type="usdm"
    ) as exchange:
        exchange.trade("BTCUSDT", 50_000.0)
        yield exchange


@pytest.fixture
def client(fx: FakeExchange) -> ccxt.binanceusdm:
    exchange = ccxt.binanceusdm(fx.ccxt_config(timeout=2_000))
    exchange.load_markets()
    return exchange


def orders_posted(fx: FakeExchange) -> int:
    return sum(1 for r in fx.requests if (r.method, r.path) == ("POST", "/fapi/v1/order"))


def test_the_perpetual_loads_with_its_filters_and_one_way_mode(
    fx: FakeExchange, client: ccxt.binanceusdm
) -> None:
    market = client.market(SYMBOL)
    assert (market["id"], market["swap"], market["linear"], market["settle"]) == (
        "BTCUSDT",
        True,
        True,
        "USDT",
    )
    assert market["precision"]["amount"] == 0.001 and market["precision"]["price"] == 0.1
    assert market["limits"]["amount"]["min"] == 0.001
    assert market["limits"]["cost"]["min"] == 5.0
    assert {(r.method, r.path) for r in fx.requests} == {("GET", "/fapi/v1/exchangeInfo")}
    assert abs(client.fetch_time() - client.milliseconds()) < 60_000
    assert client.fetch_position_mode(SYMBOL)["hedged"] is False
    assert client.fetch_ticker(SYMBOL)["last"] == 50_000.0
    assert client.fetch_ohlcv(SYMBOL, "1m")[-1][4] == 50_000.0
    assert client.fetch_positions() == []


def test_a_long_flipped_short_realises_pnl_into_the_wallet(
    fx: FakeExchange, client: ccxt.binanceusdm
) -> None:
    client.set_leverage(5, SYMBOL)
    assert fx.leverage("BTCUSDT") == 5
    client.create_order(SYMBOL, "market", "buy", 0.05, params={"newClientOrderId": "sig-1"})
    assert fx.positions == {}  # a market order fills at the next print
    fx.trade("BTCUSDT", 50_000.0)
    assert fx.positions == {"BTCUSDT": (0.05, 50_000.0)}

    fx.trade("BTCUSDT", 51_000.0, liquidity=0.0)  # the mark moves, nothing fills
    (long,) = client.fetch_positions()
    assert (long["side"], long["contracts"], long["entryPrice"]) == ("long", 0.05, 50_000.0)
    assert long["unrealizedPnl"] == pytest.approx(50.0)
    assert long["markPrice"] == 51_000.0
    balance = client.fetch_balance()
    wallet = 1_000.0 - 0.05 * 50_000.0 * FEE
    assert balance["USDT"]["total"] == pytest.approx(wallet + 50.0)  # margin balance
    assert balance["USDT"]["used"] == pytest.approx(0.05 * 51_000.0 / 5)

    client.create_order(SYMBOL, "market", "sell", 0.1)
    fx.trade("BTCUSDT", 51_000.0)
    assert fx.positions == {"BTCUSDT": (-0.05, 51_000.0)}
    wallet += 0.05 * 1_000.0 - 0.1 * 51_000.0 * FEE
    assert fx.balances()["USDT"][0] == pytest.approx(wallet)
    (short,) = client.fetch_positions()
    assert (short["side"], short["contracts"], short["entryPrice"]) == ("short", 0.05, 51_000.0)
    trades = client.fetch_my_trades(SYMBOL)
    assert [(t["side"], t["amount"], t["price"]) for t in trades] == [
        ("buy", 0.05, 50_000.0),
        ("sell", 0.1, 51_000.0),
    ]
    assert trades[1]["fee"] == {"currency": "USDT", "cost": pytest.approx(0.1 * 51_000.0 * FEE)}
    assert float(trades[1]["info"]["realizedPnl"]) == pytest.approx(50.0)

    fx.trade("BTCUSDT", 50_000.0, liquidity=0.0)
    (short,) = client.fetch_positions()
    assert short["unrealizedPnl"] == pytest.approx(50.0)  # a short gains as the price falls


def test_reduce_only_may_shrink_but_not_flip_and_margin_is_checked(
    fx: FakeExchange, client: ccxt.binanceusdm
) -> None:
    with pytest.raises(ccxt.InvalidOrder, match="-2022"):  # nothing to reduce
        client.create_order(SYMBOL, "market", "sell", 0.01, params={"reduceOnly": True})
    client.create_order(SYMBOL, "market", "buy", 0.01)
    fx.trade("BTCUSDT", 50_000.0)
    with pytest.raises(ccxt.InvalidOrder, match="-2022"):  # would flip
        client.create_order(SYMBOL, "market", "sell", 0.02, params={"reduceOnly": True})
    with pytest.raises(ccxt.InvalidOrder, match="-2022"):  # would increase
        client.create_order(SYMBOL, "market", "buy", 0.01, params={"reduceOnly": True})
    closing = client.create_order(SYMBOL, "market", "sell", 0.01, params={"reduceOnly": True})
    fx.trade("BTCUSDT", 50_000.0)
    assert client.fetch_order(closing["id"], SYMBOL)["reduceOnly"] is True
    assert fx.positions == {}

    # 1x leverage: 1000 USDT of wallet opens at most 0.02 BTC at 50000
    with pytest.raises(ccxt.InsufficientFunds, match="Margin is insufficient"):
        client.create_order(SYMBOL, "market", "sell", 0.03)
    with pytest.raises(ccxt.InvalidOrder, match="-4164"):
        client.create_order(SYMBOL, "limit", "buy", 0.001, 4_000.0)  # 4 USDT notional
    client.set_leverage(10, SYMBOL)
    client.create_order(SYMBOL, "market", "sell", 0.03)
    fx.trade("BTCUSDT", 50_000.0)
    assert fx.positions["BTCUSDT"][0] == pytest.approx(-0.03)


def test_a_limit_order_rests_then_fills_partially_as_prints_cross_it(
    fx: FakeExchange, client: ccxt.binanceusdm
) -> None:
    placed = client.create_order(SYMBOL, "limit", "sell", 0.015, 50_500.0)
    fx.trade("BTCUSDT", 50_400.0)
    assert client.fetch_open_orders(SYMBOL)[0]["id"] == placed["id"]
    fx.trade("BTCUSDT", 50_600.0, liquidity=0.01)
    order = client.fetch_order(placed["id"], SYMBOL)
    assert (order["status"], order["filled"], order["average"]) == ("open", 0.01, 50_500.0)
    assert fx.positions == {"BTCUSDT": (-0.01, 50_500.0)}
    fx.trade("BTCUSDT", 50_700.0)
    order = client.fetch_order(placed["id"], SYMBOL)
    assert (order["status"], order["filled"]) == ("closed", 0.015)
    assert [t["amount"] for t in client.fetch_my_trades(SYMBOL)] == [0.01, 0.005]
    assert client.fetch_orders(SYMBOL)[-1]["status"] == "closed"
    assert client.fetch_open_orders(SYMBOL) == []

    resting = client.create_order(SYMBOL, "limit", "buy", 0.01, 45_000.0)
    client.cancel_order(resting["id"], SYMBOL)
    assert client.fetch_order(resting["id"], SYMBOL)["status"] == "canceled"


def test_faults_hit_the_futures_order_path(fx: FakeExchange) -> None:
    client = ccxt.binanceusdm(fx.ccxt_config(timeout=500))
    client.load_markets()
    fx.faults.rate_limit = 1
    with pytest.raises(ccxt.DDoSProtection, match="429"):
        client.create_order(SYMBOL, "market", "buy", 0.01)
    assert fx.orders() == []

    fx.faults.drop_after_accept = 1
    with pytest.raises(ccxt.NetworkError):
        client.create_order(SYMBOL, "market", "buy", 0.01, params={"newClientOrderId": "lost-1"})
    (order,) = fx.orders()
    assert (order.client_order_id, order.status) == ("lost-1", "NEW")
    found = client.fetch_order(None, SYMBOL, params={"origClientOrderId": "lost-1"})
    assert found["status"] == "open"
    assert orders_posted(fx) == 2

    fx.faults.reject_next = "insufficient_balance"
    with pytest.raises(ccxt.InsufficientFunds):
        client.create_order(SYMBOL, "market", "buy", 0.01)


def test_changes_behind_the_clients_back_and_hedge_mode(
    fx: FakeExchange, client: ccxt.binanceusdm
) -> None:
    fx.set_position("BTCUSDT", -0.02, 49_000.0)
    fx.set_balance("USDT", 2_000.0)
    (short,) = client.fetch_positions()
    assert (short["side"], short["contracts"], short["entryPrice"]) == ("short", 0.02, 49_000.0)
    assert client.fetch_balance()["USDT"]["total"] == pytest.approx(2_000.0 - 0.02 * 1_000.0)

    foreign = fx.place_foreign_order("BTCUSDT", "buy", 0.01, 48_000.0)
    assert client.fetch_open_orders(SYMBOL)[0]["clientOrderId"] == foreign.client_order_id

    fx.set_hedge_mode(True)
    assert client.fetch_position_mode(SYMBOL)["hedged"] is True
    with pytest.raises(ccxt.ExchangeError, match="-4061"):
        client.create_order(SYMBOL, "market", "buy", 0.01)


def test_a_spot_fake_has_no_futures_account() -> None:
    with FakeExchange([BTCUSDT_PERP]) as spot, pytest.raises(RuntimeError, match="usdm"):
        _ = spot.positions
