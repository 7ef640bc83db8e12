"""`CcxtBroker` in futures mode against the fake Binance USD-M venue, through the real
``ccxt.binanceusdm`` client: a short opened, flipped and flattened, the ledger's equity equal
to the exchange's wallet plus unrealised PnL, a position changed behind the broker's back seen by
reconciliation, hedge mode refused, leverage set, and market kinds that do not match refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import ccxt
import pytest

from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.domain import Bar, Order, Side, Symbol, Timeframe, parse_time
from drl_trading.common.errors import ExchangeAccountError
from drl_trading.execution.adapter.ccxt_broker import CcxtBroker, CcxtBrokerSettings
from drl_trading.testing.fake_exchange import BTCUSDT, BTCUSDT_PERP, FakeExchange

pytestmark = pytest.mark.integration

S = Symbol("BTCUSDT")
T0 = parse_time("2024-01-01T00:00")
WALLET = 2_000.0
FEE = 0.0004  # 4 bps


@pytest.fixture
def fx() -> Iterator[FakeExchange]:
    with FakeExchange(
        [BTCUSDT_PERP], balances={"USDT": WALLET}, fee_bps=4.0, market_type="usdm"
    ) as exchange:
        exchange.trade("BTCUSDT", 50_000.0, liquidity=0.0)
        yield exchange


def make(fx: FakeExchange, **settings: object) -> CcxtBroker:
    options: dict[str, object] = {"symbols": (S,), "market_type": "futures"}
    options.update(settings)
    return CcxtBroker(
        ccxt.binanceusdm(fx.ccxt_config(timeout=2_000)),
        CcxtBrokerSettings(**options),  # type: ignore[arg-type]
        clock=ManualClock(datetime.now(UTC)),  # the fake stamps its trades with the wall clock
        sleep=lambda s: None,
    )


def fill_at(fx: FakeExchange, broker: CcxtBroker, minute: int, price: float) -> float:
    """Print ``price`` on the fake and let the broker poll; the quantity it filled (signed)."""
    fx.trade("BTCUSDT", price)
    bar = Bar(S, Timeframe.M1, T0 + timedelta(minutes=minute), price, price, price, price, 1)
    return sum(f.quantity if f.side is Side.BUY else -f.quantity for f in broker.on_bar(bar))


def exchange_equity(fx: FakeExchange, mark: float) -> float:
    """The exchange's margin balance: wallet plus unrealised PnL at ``mark``."""
    wallet = fx.balances()["USDT"][0]
    return wallet + sum(q * (mark - entry) for q, entry in fx.positions.values())


def test_open_short_flip_and_flatten_keep_equity_equal_to_the_exchanges(fx: FakeExchange) -> None:
    broker = make(fx)
    assert broker.cash == WALLET and broker.positions()[S].is_flat

    assert broker.submit(Order("short", S, Side.SELL, 0.02)).accepted  # no holding needed
    assert fill_at(fx, broker, 0, 50_000.0) == pytest.approx(-0.02)
    assert fx.positions == {"BTCUSDT": (-0.02, 50_000.0)}
    held = broker.positions()[S]
    assert (held.quantity, held.avg_price) == (pytest.approx(-0.02), pytest.approx(50_000.0))
    assert broker.cash == pytest.approx(WALLET + 0.02 * 50_000.0 - 0.02 * 50_000.0 * FEE)
    for mark in (48_000.0, 52_000.0):
        assert broker.equity({S: mark}) == pytest.approx(exchange_equity(fx, mark))

    assert broker.submit(Order("flip", S, Side.BUY, 0.04)).accepted
    assert fill_at(fx, broker, 1, 49_000.0) == pytest.approx(0.04)
    assert fx.positions == {"BTCUSDT": (0.02, 49_000.0)}
    held = broker.positions()[S]
    assert held.quantity == pytest.approx(0.02)
    assert held.realised_pnl == pytest.approx(0.02 * 1_000.0)
    assert broker.equity({S: 51_000.0}) == pytest.approx(exchange_equity(fx, 51_000.0))

    assert broker.submit(Order("flat", S, Side.SELL, 0.02)).accepted
    fill_at(fx, broker, 2, 51_000.0)
    assert fx.positions == {}
    assert broker.positions()[S].is_flat
    assert broker.cash == pytest.approx(fx.balances()["USDT"][0])
    assert broker.venue_differences() == {}
    state = broker.venue_state(datetime.now(UTC) - timedelta(days=8))  # two trade windows
    assert state.positions == {} and state.cash == pytest.approx(broker.cash)
    assert [(f.side, f.quantity) for f in state.fills] == [
        (Side.SELL, 0.02),
        (Side.BUY, 0.04),
        (Side.SELL, 0.02),
    ]


def test_a_fresh_broker_opens_its_ledger_at_the_exchanges_positions(fx: FakeExchange) -> None:
    fx.set_position("BTCUSDT", -0.03, 52_000.0)
    broker = make(fx)
    held = broker.positions()[S]
    assert (held.quantity, held.avg_price) == (pytest.approx(-0.03), pytest.approx(52_000.0))
    assert broker.cash == pytest.approx(WALLET + 0.03 * 52_000.0)
    assert broker.equity({S: 50_000.0}) == pytest.approx(exchange_equity(fx, 50_000.0))


def test_a_position_changed_behind_the_brokers_back_shows_in_reconciliation(
    fx: FakeExchange,
) -> None:
    broker = make(fx)
    broker.submit(Order("long", S, Side.BUY, 0.01))
    fill_at(fx, broker, 0, 50_000.0)
    assert broker.venue_differences() == {}

    fx.set_position("BTCUSDT", -0.01, 50_000.0)  # closed and reversed on the website
    bar = Bar(S, Timeframe.M1, T0 + timedelta(minutes=1), 50_000.0, 50_000.0, 50_000.0, 50_000.0, 1)
    broker.on_bar(bar)
    assert broker.venue_differences() == {S: (pytest.approx(0.01), pytest.approx(-0.01))}
    state = broker.venue_state(datetime.now(UTC) - timedelta(hours=1))
    assert state.positions == {S: pytest.approx(-0.01)}
    assert state.cash == pytest.approx(fx.balances()["USDT"][0] + 0.01 * 50_000.0)
    assert broker.positions()[S].quantity == pytest.approx(0.01)  # the ledger is not rewritten


def test_margin_refusals_are_the_exchanges_and_leverage_is_set_at_load(fx: FakeExchange) -> None:
    broker = make(fx)
    ack = broker.submit(Order("big", S, Side.SELL, 0.1))  # 5000 USDT at 1x on a 2000 wallet
    assert not ack.accepted and "Margin is insufficient" in ack.reason

    levered = make(fx, leverage=5)
    levered.load_markets()
    assert fx.leverage("BTCUSDT") == 5
    assert levered.submit(Order("big", S, Side.SELL, 0.1)).accepted


def test_hedge_mode_is_refused_at_load_with_the_setting_to_change(fx: FakeExchange) -> None:
    fx.set_hedge_mode(True)
    with pytest.raises(ExchangeAccountError, match="hedge mode") as refused:
        make(fx).load_markets()
    assert "One-way" in str(refused.value)
    assert fx.orders() == []


def test_market_kinds_that_do_not_match_are_refused_naming_both() -> None:
    with FakeExchange([BTCUSDT], balances={"USDT": WALLET}) as spot:
        spot.trade("BTCUSDT", 50_000.0)
        broker = CcxtBroker(
            ccxt.binance(spot.ccxt_config()),
            CcxtBrokerSettings(symbols=(S,), market_type="futures"),
            sleep=lambda s: None,
        )
        broker._prepare_futures_account = lambda: None  # type: ignore[method-assign]
        ack = broker.submit(Order("a", S, Side.SELL, 0.01))
    assert not ack.accepted
    assert "BTC/USDT is a spot market" in ack.reason
    assert "linear swap settled in USDT" in ack.reason
