"""The fake exchange's matching engine on its own: priority, partial fills, quote-sized and
unaffordable market orders (no HTTP)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from drl_trading.testing.fake_exchange import BinanceError, MarketSpec
from drl_trading.testing.fake_exchange.matching import Venue, VenueOrder

SPEC = MarketSpec(
    symbol="BTCUSDT", base="BTC", quote="USDT", step_size=0.001, min_qty=0.001, min_notional=1.0
)


def venue(usdt: str = "10000", btc: str = "0") -> Venue:
    v = Venue(markets={"BTCUSDT": SPEC}, fee_rate=Decimal("0.001"))
    v.account("USDT")[0] = Decimal(usdt)
    v.account("BTC")[0] = Decimal(btc)
    return v


def place(
    v: Venue,
    side: str,
    type: str,
    qty: str | None,
    price: str | None = None,
    quote: Decimal | None = None,
) -> VenueOrder:
    return v.place(
        symbol="BTCUSDT",
        side=side,
        type=type,
        quantity=None if qty is None else Decimal(qty),
        quote_quantity=quote,
        price=None if price is None else Decimal(price),
        time_in_force="GTC" if type == "LIMIT" else None,
        client_order_id=f"c{len(v.orders)}",
        now_ms=0,
    )


def test_one_print_shares_its_liquidity_market_first_then_best_price() -> None:
    v = venue()
    low = place(v, "BUY", "LIMIT", "0.05", "99")
    high = place(v, "BUY", "LIMIT", "0.05", "100")
    market = place(v, "BUY", "MARKET", "0.05")
    fills = v.trade("BTCUSDT", Decimal("98"), Decimal("0.08"), 1)
    assert [(f.order.order_id, f.price, f.quantity) for f in fills] == [
        (market.order_id, Decimal("98"), Decimal("0.05")),
        (high.order_id, Decimal("100"), Decimal("0.03")),
    ]
    assert (high.status, low.status, market.status) == ("PARTIALLY_FILLED", "NEW", "FILLED")


def test_quote_sized_market_buy_spends_its_quote_plus_the_fee() -> None:
    v = venue(usdt="1000")
    sized = place(v, "BUY", "MARKET", None, quote=Decimal("500"))
    v.trade("BTCUSDT", Decimal("100"), Decimal("10"), 1)
    assert (sized.status, sized.executed, sized.quote_executed) == (
        "FILLED",
        Decimal("5"),
        Decimal("500"),
    )
    assert v.balances["USDT"] == [Decimal("499.5"), Decimal("0")]
    assert v.balances["BTC"] == [Decimal("5"), Decimal("0")]


def test_market_buy_unaffordable_at_the_last_price_is_refused_and_one_that_became_so_expires() -> (
    None
):
    v = venue(usdt="1000")
    v.trade("BTCUSDT", Decimal("100"), Decimal("1"), 0)
    with pytest.raises(BinanceError, match="insufficient balance"):
        place(v, "BUY", "MARKET", "10")
    order = place(v, "BUY", "MARKET", "9")
    v.account("USDT")[0] = Decimal("0")  # the money went elsewhere before the next print
    assert v.trade("BTCUSDT", Decimal("100"), Decimal("10"), 1) == []
    assert order.status == "EXPIRED"


def test_cancel_returns_what_a_limit_locked() -> None:
    v = venue(btc="1")
    sell = place(v, "SELL", "LIMIT", "0.4", "200")
    assert v.balances["BTC"] == [Decimal("0.6"), Decimal("0.4")]
    v.trade("BTCUSDT", Decimal("250"), Decimal("0.1"), 1)
    v.cancel(sell, 2)
    assert v.balances["BTC"] == [Decimal("0.9"), Decimal("0")]
    assert v.balances["USDT"][0] == Decimal("10000") + Decimal("20") - Decimal("0.02")
    with pytest.raises(BinanceError, match="Unknown order sent"):
        v.cancel(sell, 3)
