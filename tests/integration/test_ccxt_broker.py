"""`CcxtBroker` against the fake Binance exchange, through the real ccxt client: rounding,
refusals before sending, unknown send outcomes, rate limits and 5xx, partial fills, the
cancel-after rule, foreign orders, and a restart. Nothing leaves 127.0.0.1; the broker's
backoff sleeps are recorded, not slept."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import ccxt
import pytest

from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.domain import Bar, Order, Side, Symbol, Timeframe, parse_time
from drl_trading.common.errors import ExchangeAccountError, ExchangeUnavailableError
from drl_trading.execution.adapter.ccxt_broker import (
    CcxtBroker,
    CcxtBrokerSettings,
    venue_client_id,
)
from drl_trading.testing.fake_exchange import BTCUSDT, FakeExchange

pytestmark = pytest.mark.integration

S = Symbol("BTCUSDT")
T0 = parse_time("2024-01-01T00:00")
SPEC = BTCUSDT


@pytest.fixture
def fx() -> Iterator[FakeExchange]:
    with FakeExchange([SPEC], balances={"USDT": 10_000.0}, fee_bps=10.0) as exchange:
        yield exchange


class Harness:
    """A broker on the fake, its recorded backoff sleeps and its clock."""

    def __init__(self, fx: FakeExchange, **settings: object) -> None:
        self.fx = fx
        self.sleeps: list[float] = []
        self.clock = ManualClock(T0)
        options: dict[str, object] = {"symbols": (S,), "first_backoff_s": 0.25}
        options.update(settings)
        self.settings = CcxtBrokerSettings(**options)  # type: ignore[arg-type]
        self.broker = self.restart()

    def restart(self) -> CcxtBroker:
        """A new broker, as a restarted process builds it: a fresh ccxt client, an empty book."""
        config = self.fx.ccxt_config()
        config["timeout"] = 1_000  # ms: a held answer times out quickly
        return CcxtBroker(
            ccxt.binance(config), self.settings, clock=self.clock, sleep=self.sleeps.append
        )

    def bar(self, minute: int, price: float) -> Bar:
        return Bar(S, Timeframe.M1, T0 + timedelta(minutes=minute), price, price, price, price, 1)


def order_posts(fx: FakeExchange) -> list[object]:
    return [r for r in fx.requests if r.method == "POST" and r.path.endswith("/order")]


def test_amount_and_price_are_rounded_to_the_market_before_sending(fx: FakeExchange) -> None:
    h = Harness(fx)
    ack = h.broker.submit(Order("r", S, Side.BUY, 0.123456789, limit_price=40_000.123))
    assert ack.accepted, ack.reason
    (placed,) = fx.orders()
    assert (placed.quantity, placed.price) == (pytest.approx(0.12345), pytest.approx(40_000.12))
    assert placed.client_order_id == venue_client_id("drl-", "r")
    (mine,) = h.broker.open_orders()
    assert (mine.quantity, mine.limit_price) == (pytest.approx(0.12345), pytest.approx(40_000.12))


def test_a_min_notional_refusal_sends_no_request(fx: FakeExchange) -> None:
    h = Harness(fx)
    h.broker.positions()  # markets loaded (once per broker), as any earlier order does
    h.broker.on_bar(h.bar(0, 40_000.0))  # the last close prices market orders
    before = len(fx.requests)
    ack = h.broker.submit(Order("small", S, Side.BUY, 0.0001))
    assert not ack.accepted and ack.reason.startswith("min_notional: 0.0001 BTC x 40000 = 4")
    assert len(fx.requests) == before and fx.orders() == []


def test_a_send_that_times_out_after_accept_is_found_not_resent(fx: FakeExchange) -> None:
    h = Harness(fx)
    fx.faults.timeout_after_accept = 1
    ack = h.broker.submit(Order("t", S, Side.BUY, 0.01, limit_price=30_000.0))
    assert ack.accepted, ack.reason
    (placed,) = fx.orders()
    assert placed.client_order_id == venue_client_id("drl-", "t")
    assert len(order_posts(fx)) == 1
    assert [o.client_order_id for o in h.broker.open_orders()] == ["t"]
    assert [o.client_order_id for o in h.broker.cancel_all()] == ["t"]
    assert fx.orders()[0].status == "CANCELED"


def test_a_dropped_connection_after_accept_is_found_too(fx: FakeExchange) -> None:
    h = Harness(fx)
    fx.faults.drop_after_accept = 1
    assert h.broker.submit(Order("d", S, Side.BUY, 0.01, limit_price=30_000.0)).accepted
    assert len(fx.orders()) == 1 and len(order_posts(fx)) == 1


@pytest.mark.parametrize("fault", ["rate_limit", "ban", "server_errors"])
def test_rate_limits_and_5xx_are_retried_with_backoff(fx: FakeExchange, fault: str) -> None:
    h = Harness(fx)
    h.broker.open_orders()
    h.broker.positions()  # markets and balances loaded: the faults hit the order POST
    setattr(fx.faults, fault, 2)
    ack = h.broker.submit(Order("x", S, Side.BUY, 0.01, limit_price=30_000.0))
    assert ack.accepted, ack.reason
    assert len(fx.orders()) == 1
    assert [r.status for r in order_posts(fx)][-1] == 200
    assert len(h.sleeps) == 2  # one backoff per refused request (a 5xx send is looked up first)
    if fault == "server_errors":
        assert h.sleeps == [0.25, 0.25]
    else:
        assert min(h.sleeps) >= fx.faults.retry_after_s  # Retry-After honoured


def test_an_exchange_down_past_the_retries_is_one_operator_error(fx: FakeExchange) -> None:
    h = Harness(fx, max_attempts=3)
    h.broker.positions()
    fx.faults.server_errors = 50
    with pytest.raises(ExchangeUnavailableError) as raised:
        h.broker.submit(Order("down", S, Side.BUY, 0.01, limit_price=30_000.0))
    assert h.sleeps == [0.25, 0.5]  # exponential from first_backoff_s, then the last attempt
    message = str(raised.value)
    assert "binance" in message and "3 attempts" in message and "\n" not in message
    assert "signature" not in message


def test_insufficient_balance_is_a_rejection_with_the_exchanges_message(
    fx: FakeExchange,
) -> None:
    h = Harness(fx)
    ack = h.broker.submit(Order("big", S, Side.BUY, 1.0, limit_price=40_000.0))
    assert not ack.accepted
    assert ack.reason.startswith("exchange_rejected:") and "insufficient balance" in ack.reason
    fx.faults.reject_next = "insufficient_balance"
    ack = h.broker.submit(Order("forced", S, Side.BUY, 0.01, limit_price=30_000.0))
    assert not ack.accepted and "insufficient balance" in ack.reason
    fx.faults.reject_next = "min_notional"  # the exchange's own filter (ccxt: BadRequest)
    ack = h.broker.submit(Order("filtered", S, Side.BUY, 0.01, limit_price=30_000.0))
    assert not ack.accepted and ack.reason.startswith("exchange_rejected:")
    assert "NOTIONAL" in ack.reason
    assert h.broker.open_orders() == []


def test_a_spot_sell_beyond_the_holding_is_refused_before_sending(fx: FakeExchange) -> None:
    h = Harness(fx)
    ack = h.broker.submit(Order("short", S, Side.SELL, 0.01, limit_price=50_000.0))
    assert not ack.accepted and ack.reason.startswith("spot_long_flat")
    assert "0 is free" in ack.reason and order_posts(fx) == []


def test_partial_fills_are_reported_as_they_come_and_once(fx: FakeExchange) -> None:
    h = Harness(fx)
    assert h.broker.submit(Order("p", S, Side.BUY, 0.15)).accepted
    reported = []
    for minute in range(3):
        fx.trade("BTCUSDT", 40_000.0 + minute, liquidity=0.05)
        fills = h.broker.on_bar(h.bar(minute, 40_000.0 + minute))
        assert [f.quantity for f in fills] == [pytest.approx(0.05)]
        reported += fills
        assert h.broker.on_bar(h.bar(minute, 40_000.0 + minute)) == []  # once
    assert [f.price for f in reported] == [40_000.0, 40_001.0, 40_002.0]
    truth = fx.fills()
    assert [f.commission for f in truth] == pytest.approx([f.fee for f in reported])
    assert h.broker.open_orders() == []
    held = h.broker.positions()[S]
    assert held.quantity == pytest.approx(0.15)
    assert held.avg_price == pytest.approx(40_001.0)
    assert h.broker.venue_differences() == {}


def test_a_limit_order_is_cancelled_after_cancel_after(fx: FakeExchange) -> None:
    h = Harness(fx, cancel_after_s=60.0)
    assert h.broker.submit(Order("lim", S, Side.BUY, 0.2, limit_price=39_000.0)).accepted
    fx.trade("BTCUSDT", 38_900.0, liquidity=0.05)  # a partial fill before the deadline
    h.clock.advance(timedelta(seconds=30))
    (partial,) = h.broker.on_bar(h.bar(0, 39_500.0))
    assert partial.quantity == pytest.approx(0.05) and partial.price == 39_000.0
    assert h.broker.open_orders()[0].quantity == pytest.approx(0.15)
    h.clock.advance(timedelta(seconds=30))
    assert h.broker.on_bar(h.bar(1, 39_500.0)) == []
    assert fx.orders()[0].status == "CANCELED"
    assert h.broker.open_orders() == []
    assert h.broker.positions()[S].quantity == pytest.approx(0.05)


def test_cancel_all_leaves_foreign_orders_alone(fx: FakeExchange) -> None:
    h = Harness(fx)
    fx.place_foreign_order("BTCUSDT", "buy", 0.01, 20_000.0, client_order_id="web-1")
    assert h.broker.submit(Order("mine", S, Side.BUY, 0.01, limit_price=30_000.0)).accepted
    assert [o.client_order_id for o in h.broker.cancel_all()] == ["mine"]
    statuses = {o.client_order_id: o.status for o in fx.orders()}
    assert statuses == {"web-1": "NEW", venue_client_id("drl-", "mine"): "CANCELED"}


def test_a_restarted_broker_finds_its_open_order_and_reports_only_later_fills(
    fx: FakeExchange,
) -> None:
    h = Harness(fx)
    assert h.broker.submit(Order("sig-o", S, Side.BUY, 0.2, limit_price=40_000.0)).accepted
    fx.trade("BTCUSDT", 39_990.0, liquidity=0.05, at=T0)
    assert len(h.broker.on_bar(h.bar(0, 40_000.0))) == 1
    snap = h.broker.snapshot()
    assert snap.open_orders[0].quantity == pytest.approx(0.15)

    fx.trade("BTCUSDT", 39_980.0, liquidity=0.05, at=T0 + timedelta(minutes=1))  # while down
    restarted = h.restart()
    # reconciliation reads the trades since the snapshot, in the service's client ids
    state = restarted.venue_state(T0 + timedelta(seconds=30))
    (down,) = state.fills
    assert (down.client_order_id, down.quantity, down.price) == ("sig-o", 0.05, 40_000.0)
    assert down.fee == pytest.approx(0.05 * 40_000.0 * 10 / 10_000)
    (listed,) = state.open_orders
    assert (listed.client_order_id, listed.remaining) == ("sig-o", pytest.approx(0.1))
    assert state.positions == {S: pytest.approx(0.1)}
    assert state.cash == pytest.approx(fx.balances()["USDT"][0] + fx.balances()["USDT"][1])

    restarted.restore(snap)  # (reconciliation would have adopted `down` into it)
    assert [(o.client_order_id, o.quantity) for o in restarted.open_orders()] == [
        ("sig-o", pytest.approx(0.1))
    ]
    assert restarted.on_bar(h.bar(1, 40_000.0)) == []  # the fill while down is not reported again
    fx.trade("BTCUSDT", 39_970.0, liquidity=0.05)
    (later,) = restarted.on_bar(h.bar(2, 40_000.0))
    assert later.quantity == pytest.approx(0.05) and later.client_order_id == "sig-o"
    assert [o.client_order_id for o in restarted.cancel_all()] == ["sig-o"]
    assert restarted.open_orders() == []


def test_cancel_all_finds_our_orders_the_book_lost(fx: FakeExchange) -> None:
    h = Harness(fx)
    assert h.broker.submit(Order("sig-lost", S, Side.BUY, 0.01, limit_price=30_000.0)).accepted
    restarted = h.restart()  # a crash before the order was recorded: an empty book
    fx.place_foreign_order("BTCUSDT", "buy", 0.01, 20_000.0)
    (cancelled,) = restarted.cancel_all()
    assert (cancelled.client_order_id, cancelled.quantity) == ("sig-lost", pytest.approx(0.01))
    assert [o.status for o in fx.orders()] == ["CANCELED", "NEW"]


def test_a_balance_changed_behind_the_brokers_back_is_exposed_not_booked(fx: FakeExchange) -> None:
    """The ledger keeps what the fills made; the exchange's other balance is reported (for
    reconciliation to halt on), never silently taken as the book."""
    h = Harness(fx)
    assert h.broker.submit(Order("b", S, Side.BUY, 0.1)).accepted
    fx.trade("BTCUSDT", 40_000.0, liquidity=1.0)
    h.broker.on_bar(h.bar(0, 40_000.0))
    assert h.broker.venue_differences() == {}
    cash = h.broker.cash
    fx.set_balance("BTC", 0.25)  # a manual trade on the website
    h.broker.on_bar(h.bar(1, 40_000.0))  # balances are read again after a bar
    assert h.broker.positions()[S].quantity == pytest.approx(0.1)
    assert h.broker.positions()[S].avg_price == pytest.approx(40_000.0)
    ((symbol, (ours, venue)),) = h.broker.venue_differences().items()
    assert symbol == S and (ours, venue) == (pytest.approx(0.1), pytest.approx(0.25))
    assert h.broker.venue_state(h.bar(0, 40_000.0).open_time).positions[S] == pytest.approx(0.25)
    assert h.broker.cash == cash
    assert h.broker.equity({S: 41_000.0}) == pytest.approx(cash + 0.1 * 41_000.0)
    fx.set_balance("USDT", 123.0)  # and a withdrawal: the venue's cash, not the ledger's
    assert h.broker.venue_state(h.bar(0, 40_000.0).open_time).cash == pytest.approx(123.0)
    assert h.broker.cash == cash


def test_refused_credentials_are_one_line_without_the_secret(fx: FakeExchange) -> None:
    secret = "not-the-right-secret-0123456789"
    exchange = ccxt.binance(fx.ccxt_config(secret=secret))
    broker = CcxtBroker(exchange, CcxtBrokerSettings(symbols=(S,)), sleep=lambda s: None)
    with pytest.raises(ExchangeAccountError) as raised:
        broker.submit(Order("a", S, Side.BUY, 0.01, limit_price=30_000.0))
    message = str(raised.value)
    assert "refused the trading account" in message and "\n" not in message
    assert secret not in message and fx.ccxt_config()["apiKey"] not in message
    assert fx.orders() == []
