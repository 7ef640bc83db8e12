"""Paper broker: fills, fees, slippage, limit orders and average-cost accounting, by hand."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from drl_trading.common.domain import Bar, Order, Side, Symbol, Timeframe, parse_time
from drl_trading.execution.adapter.paper_broker import PaperBroker
from drl_trading.execution.core.accounting import apply_fill
from drl_trading.execution.core.records import Position

S = Symbol("BTCUSDT")
E = Symbol("ETHUSDT")
T0 = parse_time("2024-01-01T00:00")


def bar(i: int, o: float, h: float, lo: float, c: float, symbol: Symbol = S) -> Bar:
    t: datetime = T0 + timedelta(minutes=i)
    return Bar(symbol, Timeframe.M1, t, o, h, lo, c, 1.0)


def flat_bar(i: int, price: float, symbol: Symbol = S) -> Bar:
    return bar(i, price, price, price, price, symbol)


def test_market_buy_fills_next_open_paying_slippage_and_fee() -> None:
    broker = PaperBroker(fee_bps=5, slippage_bps=2, initial_cash=10_000)
    assert broker.submit(Order("a", S, Side.BUY, 2.0)).accepted
    assert broker.positions() == {}  # nothing fills before a bar
    (fill,) = broker.on_bar(bar(1, 100, 101, 99, 100.5))
    assert fill.price == pytest.approx(100.02)
    assert fill.fee == pytest.approx(2 * 100.02 * 0.0005)
    assert fill.filled_at == T0 + timedelta(minutes=1)
    assert broker.cash == pytest.approx(10_000 - 200.04 - 0.10002)
    pos = broker.positions()[S]
    assert (pos.quantity, pos.avg_price, pos.realised_pnl) == pytest.approx((2.0, 100.02, 0.0))
    assert broker.equity({S: 100.5}) == pytest.approx(10_000 - 200.04 - 0.10002 + 201.0)
    assert broker.open_orders() == []


def test_market_sell_receives_less_and_realises_pnl() -> None:
    broker = PaperBroker(fee_bps=5, slippage_bps=2, initial_cash=10_000)
    broker.submit(Order("a", S, Side.BUY, 2.0))
    broker.on_bar(flat_bar(1, 100))
    broker.submit(Order("b", S, Side.SELL, 2.0))
    (fill,) = broker.on_bar(flat_bar(2, 110))
    assert fill.price == pytest.approx(109.978)
    pos = broker.positions()[S]
    assert pos.quantity == 0.0 and pos.avg_price == 0.0
    assert pos.realised_pnl == pytest.approx(2 * (109.978 - 100.02))
    fees = 2 * 100.02 * 0.0005 + 2 * 109.978 * 0.0005
    assert pos.fees_paid == pytest.approx(fees)
    # flat: cash is the initial cash plus realised PnL minus every fee
    assert broker.cash == pytest.approx(10_000 + pos.realised_pnl - fees)


def test_orders_fill_only_on_their_symbol_in_submission_order() -> None:
    broker = PaperBroker(fee_bps=0, slippage_bps=0, initial_cash=1_000)
    broker.submit(Order("a", S, Side.BUY, 1.0))
    broker.submit(Order("b", E, Side.BUY, 1.0))
    broker.submit(Order("c", S, Side.SELL, 0.5))
    fills = broker.on_bar(flat_bar(1, 100))
    assert [f.client_order_id for f in fills] == ["a", "c"]
    assert [o.client_order_id for o in broker.open_orders()] == ["b"]
    assert broker.positions()[S].quantity == pytest.approx(0.5)


def test_average_price_moves_on_adds_and_stays_on_reductions() -> None:
    broker = PaperBroker(fee_bps=0, slippage_bps=0, initial_cash=10_000)
    broker.submit(Order("a", S, Side.BUY, 1.0))
    broker.on_bar(flat_bar(1, 100))
    broker.submit(Order("b", S, Side.BUY, 1.0))
    broker.on_bar(flat_bar(2, 110))
    assert broker.positions()[S].avg_price == pytest.approx(105)
    broker.submit(Order("c", S, Side.SELL, 1.0))
    broker.on_bar(flat_bar(3, 120))
    pos = broker.positions()[S]
    assert (pos.quantity, pos.avg_price, pos.realised_pnl) == (1.0, 105, 15)


def test_short_gains_when_price_falls() -> None:
    broker = PaperBroker(fee_bps=0, slippage_bps=0, initial_cash=10_000)
    broker.submit(Order("a", S, Side.SELL, 1.0))
    broker.on_bar(flat_bar(1, 100))
    assert broker.positions()[S].quantity == -1.0
    assert broker.cash == 10_100
    assert broker.equity({S: 90}) == pytest.approx(10_010)
    broker.submit(Order("b", S, Side.BUY, 1.0))
    broker.on_bar(flat_bar(2, 90))
    assert broker.positions()[S].realised_pnl == pytest.approx(10)
    assert broker.cash == pytest.approx(10_010)


def test_reversal_realises_the_closed_part_and_opens_the_rest_at_the_fill() -> None:
    broker = PaperBroker(fee_bps=5, slippage_bps=0, initial_cash=10_000)
    broker.submit(Order("a", S, Side.BUY, 1.0))
    broker.on_bar(flat_bar(1, 100))
    broker.submit(Order("b", S, Side.SELL, 3.0))  # long 1 -> short 2
    broker.on_bar(flat_bar(2, 110))
    pos = broker.positions()[S]
    assert (pos.quantity, pos.avg_price, pos.realised_pnl) == pytest.approx((-2.0, 110, 10))
    broker.submit(Order("c", S, Side.BUY, 2.0))
    broker.on_bar(flat_bar(3, 105))
    pos = broker.positions()[S]
    assert (pos.quantity, pos.realised_pnl) == pytest.approx((0.0, 20))
    fees = (100 + 330 + 210) * 0.0005
    assert pos.fees_paid == pytest.approx(fees)
    assert broker.cash == pytest.approx(10_000 + 20 - fees)


def test_limit_buy_waits_for_the_range_then_fills_at_the_limit_without_slippage() -> None:
    broker = PaperBroker(fee_bps=5, slippage_bps=2, initial_cash=10_000)
    broker.submit(Order("a", S, Side.BUY, 1.0, limit_price=95))
    assert broker.on_bar(bar(1, 100, 101, 96, 97)) == []
    (fill,) = broker.on_bar(bar(2, 97, 98, 94, 96))
    assert fill.price == 95
    assert fill.fee == pytest.approx(95 * 0.0005)
    assert fill.filled_at == bar(2, 0, 0, 0, 0).close_time
    assert broker.cash == pytest.approx(10_000 - 95 - 95 * 0.0005)


def test_limit_orders_that_gap_through_fill_at_the_open() -> None:
    broker = PaperBroker(fee_bps=0, slippage_bps=2, initial_cash=10_000)
    broker.submit(Order("buy", S, Side.BUY, 1.0, limit_price=95))
    (buy,) = broker.on_bar(bar(1, 93, 94, 92, 93))
    assert (buy.price, buy.filled_at) == (93, T0 + timedelta(minutes=1))
    broker.submit(Order("sell", S, Side.SELL, 1.0, limit_price=105))
    assert broker.on_bar(bar(2, 100, 104.9, 99, 104)) == []
    (sell,) = broker.on_bar(bar(3, 107, 108, 106, 107))
    assert sell.price == 107
    broker.submit(Order("sell2", S, Side.SELL, 1.0, limit_price=110))
    (sell2,) = broker.on_bar(bar(4, 108, 111, 107, 109))
    assert sell2.price == 110


def test_invalid_and_duplicate_orders_are_refused() -> None:
    broker = PaperBroker(fee_bps=0, slippage_bps=0, initial_cash=1_000)
    assert not broker.submit(Order("a", S, Side.BUY, 0.0)).accepted
    assert not broker.submit(Order("b", S, Side.BUY, float("nan"))).accepted
    assert not broker.submit(Order("c", S, Side.BUY, 1.0, limit_price=-1)).accepted
    assert broker.submit(Order("d", S, Side.BUY, 1.0)).accepted
    ack = broker.submit(Order("d", S, Side.BUY, 1.0))
    assert not ack.accepted and "already open" in ack.reason
    assert [o.client_order_id for o in broker.cancel_all()] == ["d"]
    assert broker.open_orders() == []


def test_snapshot_restores_an_identical_deterministic_broker() -> None:
    a = PaperBroker(fee_bps=5, slippage_bps=2, initial_cash=10_000)
    a.submit(Order("x", S, Side.SELL, 1.5))
    a.on_bar(flat_bar(1, 100))
    a.submit(Order("y", S, Side.BUY, 3.0))
    b = PaperBroker(fee_bps=5, slippage_bps=2, initial_cash=1)
    b.restore(a.snapshot())
    assert b.snapshot() == a.snapshot()
    assert a.on_bar(flat_bar(2, 90)) == b.on_bar(flat_bar(2, 90))
    assert b.snapshot() == a.snapshot()
    assert b.equity({S: 95}) == a.equity({S: 95})


def test_apply_fill_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="invalid fill"):
        apply_fill(Position(), 1.0, 0.0)


def test_a_tiny_position_really_held_is_kept_however_small_in_units() -> None:
    """1e-13 BTC bought and held is a position, not rounding: a fixed 1e-12-unit threshold
    flattened it while its cash was paid."""
    broker = PaperBroker(fee_bps=0, slippage_bps=0, initial_cash=1e-8)
    broker.submit(Order("tiny", S, Side.BUY, 1e-13))
    broker.on_bar(flat_bar(1, 40_000))
    pos = broker.positions()[S]
    assert pos.quantity == 1e-13 and pos.avg_price == 40_000
    assert broker.equity({S: 44_000}) == pytest.approx(1e-8 + 1e-13 * 4_000)
    added, _ = apply_fill(pos, 2e-13, 40_000)  # adding to it: no residue either
    assert added.quantity == pytest.approx(3e-13)


def test_the_float_residue_of_a_full_close_is_flat() -> None:
    # 0.1 + 0.2 - 0.3 leaves 5.6e-17 units: the residue of closing, not a position
    opened, _ = apply_fill(Position(), 0.1, 100.0)
    added, _ = apply_fill(opened, 0.2, 100.0)
    assert added.quantity - 0.3 != 0.0
    closed, realised = apply_fill(added, -0.3, 110.0)
    assert closed.quantity == 0.0 and closed.avg_price == 0.0 and closed.is_flat
    assert realised == pytest.approx(0.3 * 10.0)
    # a short of 1e-13 closed by a buy of 1e-13 is flat too; the same buy on 1 unit short is not
    assert apply_fill(Position(-1e-13, 100.0), 1e-13, 100.0)[0].quantity == 0.0
    assert apply_fill(Position(-1.0, 100.0), 1e-13, 100.0)[0].quantity == pytest.approx(-1.0)
