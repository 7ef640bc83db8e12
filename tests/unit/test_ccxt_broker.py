"""`CcxtBroker`'s decisions that need no exchange: the client order id scheme, its settings,
and the refusals made before anything is sent (a real ccxt binance client with its markets
parsed offline, whose HTTP layer fails the test if it is ever reached)."""

from __future__ import annotations

from typing import Any

import ccxt
import pytest

from drl_trading.common.domain import Order, Side, Symbol
from drl_trading.execution.adapter.ccxt_broker import (
    VENUE_CLIENT_ID,
    CcxtBroker,
    CcxtBrokerSettings,
    venue_client_id,
)
from drl_trading.testing.fake_exchange.markets import MarketSpec

S = Symbol("BTCUSDT")


class _OfflineBinance(ccxt.binance):  # type: ignore[misc]
    """ccxt's binance with its markets given, and no network: every HTTP call is recorded and
    refused, so a test sees whether the broker sent anything."""

    def __init__(self, specs: list[MarketSpec]) -> None:
        super().__init__({"options": {"fetchMarkets": {"types": ["spot"]}}})
        self.options["crossMarginPairsData"] = []
        self.options["isolatedMarginPairsData"] = []
        self.set_markets(self.parse_markets([s.exchange_info_entry() for s in specs]))
        self.sent: list[str] = []

    def fetch(self, url: str, method: str = "GET", *args: Any, **kwargs: Any) -> Any:
        self.sent.append(f"{method} {url}")
        raise AssertionError(f"the broker sent {method} {url}")


@pytest.fixture
def offline() -> _OfflineBinance:
    return _OfflineBinance([MarketSpec("BTCUSDT", "BTC", "USDT", min_notional=5.0)])


def test_signal_ids_are_sent_with_the_prefix_and_read_back_by_dropping_it() -> None:
    coid = "sig-" + "0123456789abcdef01234567"
    assert venue_client_id("drl-", coid) == "drl-" + coid
    assert VENUE_CLIENT_ID.match(venue_client_id("drl-", coid))


@pytest.mark.parametrize(
    "coid",
    ["x" * 40, "flatten 2024-01-01T00:00", "sig-é", ":looks-hashed"],
)
def test_ids_that_do_not_fit_binance_are_hashed_deterministically(coid: str) -> None:
    sent = venue_client_id("drl-", coid)
    assert VENUE_CLIENT_ID.match(sent) and sent.startswith("drl-:")
    assert len(sent) == 36
    assert venue_client_id("drl-", coid) == sent
    assert venue_client_id("drl-", coid + "2") != sent


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"client_id_prefix": "has space"}, "client_id_prefix"),
        ({"client_id_prefix": "much-too-long-prefix"}, "client_id_prefix"),
        ({"cancel_after_s": 0.0}, "cancel_after_s"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"first_backoff_s": 5.0, "max_backoff_s": 1.0}, "first_backoff_s"),
    ],
)
def test_settings_refuse_values_that_cannot_work(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        CcxtBrokerSettings(**kwargs)


@pytest.mark.parametrize(
    ("order", "rule"),
    [
        (Order("q", S, Side.BUY, 0.0), "quantity must be positive"),
        (Order("n", S, Side.BUY, float("nan")), "quantity must be positive"),
        (Order("p", S, Side.BUY, 1.0, limit_price=0.0), "limit price must be positive"),
        (Order("a", S, Side.BUY, 0.000004, limit_price=40_000.0), "min_amount"),
        (Order("c", S, Side.BUY, 0.0001, limit_price=40_000.0), "min_notional"),
        (Order("m", Symbol("ETHUSDT"), Side.BUY, 1.0, limit_price=2_000.0), "unknown_market"),
    ],
)
def test_refusals_name_the_rule_and_send_nothing(
    offline: _OfflineBinance, order: Order, rule: str
) -> None:
    broker = CcxtBroker(offline, sleep=lambda s: None)
    ack = broker.submit(order)
    assert not ack.accepted and ack.client_order_id == order.client_order_id
    assert rule in ack.reason
    assert offline.sent == []
    assert broker.open_orders() == []


def test_a_min_notional_refusal_gives_the_numbers(offline: _OfflineBinance) -> None:
    ack = CcxtBroker(offline).submit(Order("c", S, Side.BUY, 0.000123456, limit_price=40_000.004))
    # amount truncated to the 0.00001 step, price rounded to the 0.01 tick: 0.00012 x 40000
    assert ack.reason.startswith("min_notional: 0.00012 BTC x 40000 = 4.8 USDT")
    assert "minimum notional 5" in ack.reason


def test_a_quote_currency_other_than_the_accounts_is_refused() -> None:
    offline = _OfflineBinance([MarketSpec("ETHBTC", "ETH", "BTC", min_notional=0.0001)])
    ack = CcxtBroker(offline).submit(Order("x", Symbol("ETHBTC"), Side.BUY, 1.0, 0.05))
    assert not ack.accepted and ack.reason.startswith("quote_currency")
    assert offline.sent == []
