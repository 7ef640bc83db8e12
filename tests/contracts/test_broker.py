"""Contract of the broker port, over the paper broker and the ccxt broker on the fake exchange.

The paper broker is the port's fake as well as its embedded adapter: it is in memory,
deterministic and fills by documented rules, so no separate fake is kept beside it. The ccxt
broker runs against `FakeExchange`, Binance's spot REST API and its USD-M futures one (a linear
perpetual per symbol), each driven by the real ccxt client: each bar a test passes is printed
there as trades at its open, low, high and close before the broker polls (stamped inside the
bar), so a market order fills at the bar's open like the paper broker's (without slippage, with
the exchange's fee). Venues differ in two capabilities, which the tests that need them require:
``shorts`` (a spot account is long or flat; futures and paper go short) and ``rewinds`` (an
exchange keeps what it filled, so a restore rewinds only the ledger).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import ccxt
import pytest

from drl_trading.common.domain import Bar, Fill, Order, Side, Symbol, Timeframe, parse_time
from drl_trading.execution.adapter.ccxt_broker import CcxtBroker, CcxtBrokerSettings
from drl_trading.execution.adapter.paper_broker import PaperBroker
from drl_trading.execution.core.ports import Broker
from drl_trading.execution.core.records import PortfolioSnapshot
from drl_trading.testing.fake_exchange import FakeExchange, MarketSpec

S, E = Symbol("BTCUSDT"), Symbol("ETHUSDT")
T0 = parse_time("2024-01-01T00:00")
CASH = 10_000.0


@dataclass(frozen=True)
class Venue:
    make: Callable[[], Broker]
    """A broker holding `CASH` and nothing else; called again in a test, a restarted process
    on the same account (the paper broker: a fresh one, which ``restore`` fills)."""
    market_price: Callable[[Bar, Side], float]
    """Where the venue fills a market order on ``bar`` (its documented rule)."""
    fee: Callable[[float], float]
    """The fee of a fill of this notional (quote currency)."""
    see: Callable[[Bar], None] = lambda bar: None
    """What the venue itself makes of ``bar`` before a broker polls it (the fake exchange
    prints its prices as trades)."""
    shorts: bool = True
    """The venue sells what it does not hold (paper, futures); a spot account cannot."""
    rewinds: bool = True
    """``restore`` of an earlier snapshot undoes later fills (paper); an exchange keeps them."""

    def on_bar(self, broker: Broker, bar: Bar) -> list[Fill]:
        self.see(bar)
        return broker.on_bar(bar)

    def require(self, capability: str, reason: str) -> None:
        if not getattr(self, capability):
            pytest.skip(f"venue without {capability}: {reason}")


FEE_BPS, SLIPPAGE_BPS = 5.0, 2.0
FAKE_FEE_BPS = 10.0


def _paper_price(bar: Bar, side: Side) -> float:
    """The next bar's open, moved by the slippage against the trader."""
    sign = 1.0 if side is Side.BUY else -1.0
    return bar.open * (1.0 + sign * SLIPPAGE_BPS / 10_000)


def _paper() -> Venue:
    return Venue(
        lambda: PaperBroker(fee_bps=FEE_BPS, slippage_bps=SLIPPAGE_BPS, initial_cash=CASH),
        _paper_price,
        lambda notional: notional * FEE_BPS / 10_000,
    )


def _fake_exchange_venue(fx: FakeExchange) -> Venue:
    def see(bar: Bar) -> None:
        step = bar.timeframe.duration / 4
        for i, price in enumerate((bar.open, bar.low, bar.high, bar.close)):
            fx.trade(str(bar.symbol), price, liquidity=1_000.0, at=bar.open_time + i * step)

    futures = fx.market_type == "usdm"

    def make() -> Broker:
        settings = CcxtBrokerSettings(
            symbols=(S, E), cancel_after_s=None, market_type="futures" if futures else "spot"
        )
        client = (ccxt.binanceusdm if futures else ccxt.binance)(fx.ccxt_config())
        return CcxtBroker(client, settings, sleep=lambda s: None)

    return Venue(
        make,
        lambda bar, side: bar.open,
        lambda notional: notional * FAKE_FEE_BPS / 10_000,
        see=see,
        shorts=futures,
        rewinds=False,
    )


@pytest.fixture(params=["paper", "ccxt-fake-exchange", "ccxt-futures-fake-exchange"])
def venue(request: pytest.FixtureRequest) -> Iterator[Venue]:
    if request.param == "paper":
        yield _paper()
        return
    specs = [
        MarketSpec(symbol="BTCUSDT", base="BTC", quote="USDT", min_notional=5.0),
        MarketSpec(symbol="ETHUSDT", base="ETH", quote="USDT", min_notional=5.0),
    ]
    market_type = "usdm" if request.param == "ccxt-futures-fake-exchange" else "spot"
    with FakeExchange(
        specs, balances={"USDT": CASH}, fee_bps=FAKE_FEE_BPS, market_type=market_type
    ) as fx:
        yield _fake_exchange_venue(fx)


def bar(symbol: Symbol, minute: int, o: float, low: float | None = None) -> Bar:
    low = o - 1.0 if low is None else low
    return Bar(symbol, Timeframe.M1, T0 + timedelta(minutes=minute), o, o + 1.0, low, o, 1.0)


def test_an_order_is_open_until_a_bar_of_its_symbol_fills_it(venue: Venue) -> None:
    broker = venue.make()
    order = Order("a", S, Side.BUY, 2.0)
    ack = broker.submit(order)
    assert ack.accepted and ack.client_order_id == "a"
    assert broker.open_orders() == [order]
    assert venue.on_bar(broker, bar(E, 0, 2_000.0)) == []
    assert broker.open_orders() == [order]

    fill_bar = bar(S, 1, 100.0)
    (fill,) = venue.on_bar(broker, fill_bar)
    price = venue.market_price(fill_bar, Side.BUY)
    assert (fill.client_order_id, fill.symbol, fill.side, fill.quantity) == ("a", S, Side.BUY, 2.0)
    assert fill.price == pytest.approx(price)
    assert fill.fee == pytest.approx(venue.fee(2.0 * price))
    assert fill.filled_at.tzinfo is not None
    assert fill_bar.open_time <= fill.filled_at <= fill_bar.close_time
    assert broker.open_orders() == []
    assert venue.on_bar(broker, bar(S, 2, 101.0)) == []  # filled once


def test_cash_and_positions_follow_the_fills(venue: Venue) -> None:
    broker = venue.make()
    broker.submit(Order("buy", S, Side.BUY, 3.0))
    (buy,) = venue.on_bar(broker, bar(S, 0, 100.0))
    assert broker.cash == pytest.approx(CASH - 3.0 * buy.price - buy.fee)
    held = broker.positions()[S]
    assert (held.quantity, held.avg_price) == (pytest.approx(3.0), pytest.approx(buy.price))

    broker.submit(Order("sell", S, Side.SELL, 3.0))
    (sell,) = venue.on_bar(broker, bar(S, 1, 110.0))
    # a flat symbol stays listed: it carries its realised PnL and fees
    flat = broker.positions()[S]
    assert flat.is_flat
    assert flat.realised_pnl == pytest.approx(3.0 * (sell.price - buy.price))
    assert flat.fees_paid == pytest.approx(buy.fee + sell.fee)
    assert broker.cash == pytest.approx(CASH + flat.realised_pnl - flat.fees_paid)


def test_equity_is_cash_plus_positions_at_the_marks(venue: Venue) -> None:
    venue.require("shorts", "the test holds a short")
    broker = venue.make()
    assert broker.equity({}) == CASH
    broker.submit(Order("long", S, Side.BUY, 2.0))
    broker.submit(Order("short", E, Side.SELL, 1.0))
    venue.on_bar(broker, bar(S, 0, 100.0))
    venue.on_bar(broker, bar(E, 0, 2_000.0))
    marks = {S: 120.0, E: 1_900.0}
    assert broker.equity(marks) == pytest.approx(broker.cash + 2.0 * 120.0 - 1.0 * 1_900.0)


def test_equity_of_long_positions_is_cash_plus_their_marked_value(venue: Venue) -> None:
    broker = venue.make()
    broker.submit(Order("btc", S, Side.BUY, 2.0))
    broker.submit(Order("eth", E, Side.BUY, 1.0))
    venue.on_bar(broker, bar(S, 0, 100.0))
    venue.on_bar(broker, bar(E, 0, 2_000.0))
    marks = {S: 120.0, E: 1_900.0}
    assert broker.equity(marks) == pytest.approx(broker.cash + 2.0 * 120.0 + 1.0 * 1_900.0)
    spent = 2.0 * venue.market_price(bar(S, 0, 100.0), Side.BUY)
    spent += venue.market_price(bar(E, 0, 2_000.0), Side.BUY)
    assert broker.cash == pytest.approx(CASH - spent - venue.fee(spent))


def test_a_limit_order_rests_until_a_bar_reaches_its_price(venue: Venue) -> None:
    broker = venue.make()
    order = Order("lim", S, Side.BUY, 1.0, limit_price=95.0)
    assert broker.submit(order).accepted
    assert venue.on_bar(broker, bar(S, 0, 100.0, low=96.0)) == []
    assert broker.open_orders() == [order]
    (fill,) = venue.on_bar(broker, bar(S, 1, 100.0, low=94.0))
    assert fill.price <= 95.0
    assert broker.open_orders() == []


def test_invalid_and_duplicate_orders_are_refused(venue: Venue) -> None:
    broker = venue.make()
    assert broker.submit(Order("a", S, Side.BUY, 1.0)).accepted
    for refused in (
        Order("a", S, Side.SELL, 1.0),  # its client order id is open
        Order("b", S, Side.BUY, 0.0),
        Order("c", S, Side.BUY, -1.0),
        Order("d", S, Side.BUY, float("nan")),
        Order("e", S, Side.BUY, 1.0, limit_price=0.0),
    ):
        ack = broker.submit(refused)
        assert not ack.accepted and ack.reason, refused
        assert ack.client_order_id == refused.client_order_id
    assert [o.client_order_id for o in broker.open_orders()] == ["a"]


def test_cancel_all_returns_the_open_orders_and_removes_them(venue: Venue) -> None:
    broker = venue.make()
    orders = [Order("a", S, Side.BUY, 1.0), Order("b", E, Side.BUY, 2.0, limit_price=1_000.0)]
    for order in orders:
        broker.submit(order)
    assert broker.cancel_all() == orders
    assert broker.open_orders() == []
    assert broker.cancel_all() == []
    assert venue.on_bar(broker, bar(S, 0, 100.0)) == []
    assert broker.cash == CASH


def test_snapshot_and_restore_carry_the_book_over(venue: Venue) -> None:
    broker = venue.make()
    broker.submit(Order("a", S, Side.BUY, 2.0))
    venue.on_bar(broker, bar(S, 0, 100.0))
    pending = Order("b", S, Side.SELL, 1.0)  # placed at a close, fills at the next open
    broker.submit(pending)
    snap = broker.snapshot()
    assert snap.cash == broker.cash
    assert dict(snap.positions) == broker.positions()
    assert snap.open_orders == (pending,)

    restarted = venue.make()
    restarted.restore(snap)
    assert restarted.cash == broker.cash
    assert restarted.positions() == broker.positions()
    assert restarted.open_orders() == [pending]
    marks = {S: 104.0}
    assert restarted.equity(marks) == broker.equity(marks)
    nxt = bar(S, 1, 105.0)
    assert venue.on_bar(restarted, nxt) == venue.on_bar(broker, nxt)
    assert restarted.snapshot() == broker.snapshot()


def test_a_snapshot_is_not_changed_by_later_trading(venue: Venue) -> None:
    venue.require("rewinds", "the exchange keeps the fills the restored snapshot predates")
    broker = venue.make()
    broker.submit(Order("a", S, Side.BUY, 2.0))
    snap = broker.snapshot()
    venue.on_bar(broker, bar(S, 0, 100.0))
    broker.submit(Order("b", E, Side.BUY, 1.0))
    assert snap.cash == CASH
    assert dict(snap.positions) == {}
    assert [o.client_order_id for o in snap.open_orders] == ["a"]
    broker.restore(snap)
    assert broker.positions() == {} and broker.cash == CASH
    assert [o.client_order_id for o in broker.open_orders()] == ["a"]


def test_restoring_an_empty_book_starts_over(venue: Venue) -> None:
    venue.require("rewinds", "the exchange keeps the fills the restored snapshot predates")
    broker = venue.make()
    broker.submit(Order("a", S, Side.BUY, 2.0))
    venue.on_bar(broker, bar(S, 0, 100.0))
    broker.restore(PortfolioSnapshot(cash=5_000.0))
    assert broker.cash == 5_000.0
    assert broker.positions() == {} and broker.open_orders() == []
    assert broker.equity({S: 100.0}) == 5_000.0
