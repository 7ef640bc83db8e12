"""A simulated venue that fills on the next bar with the training environment's costs.

Market orders fill at the next bar's open moved by ``slippage_bps`` against the trader; limit
orders rest until a bar's range reaches the limit and fill there (or at the open if the bar gaps
through), without slippage. Every fill pays ``fee_bps`` of its notional. With the training defaults
(5 bps fee, 2 bps slippage) a paper account pays what the backtest charged.

There is no margin model: shorts and leverage are possible, and the risk engine's exposure limit is
what keeps them bounded. Deterministic: the same orders and bars give the same fills.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

from drl_trading.common.domain import Bar, Fill, Order, Symbol
from drl_trading.execution.core.accounting import (
    apply_fill,
    fee,
    limit_fill_price,
    market_fill_price,
    signed,
)
from drl_trading.execution.core.records import OrderAck, PortfolioSnapshot, Position


class PaperBroker:
    def __init__(self, fee_bps: float, slippage_bps: float, initial_cash: float) -> None:
        if fee_bps < 0 or slippage_bps < 0:
            raise ValueError(f"fee_bps ({fee_bps}) and slippage_bps ({slippage_bps}) must be >= 0")
        self.fee_bps = fee_bps
        self.slippage_bps = slippage_bps
        self._cash = float(initial_cash)
        self._positions: dict[Symbol, Position] = {}
        self._open: list[Order] = []

    @property
    def cash(self) -> float:
        return self._cash

    def submit(self, order: Order) -> OrderAck:
        coid = order.client_order_id
        if not math.isfinite(order.quantity) or order.quantity <= 0:
            return OrderAck(coid, False, f"quantity must be positive, got {order.quantity}")
        if order.limit_price is not None and not order.limit_price > 0:
            return OrderAck(coid, False, f"limit price must be positive, got {order.limit_price}")
        if any(o.client_order_id == coid for o in self._open):
            return OrderAck(coid, False, f"client order id {coid!r} is already open")
        self._open.append(order)
        return OrderAck(coid, True)

    def cancel_all(self) -> list[Order]:
        cancelled, self._open = self._open, []
        return cancelled

    def on_bar(self, bar: Bar) -> list[Fill]:
        """Fill this symbol's open orders against ``bar``, in submission order.

        Market fills are stamped at the bar's open time, limit fills at its close time (the first
        moment the bar proves the limit was reached), unless the bar opened through the limit.
        """
        fills: list[Fill] = []
        resting: list[Order] = []
        for order in self._open:
            if order.symbol != bar.symbol:
                resting.append(order)
                continue
            if order.limit_price is None:
                price = market_fill_price(bar.open, order.side, self.slippage_bps)
                at = bar.open_time
            else:
                limit_price = limit_fill_price(order, bar)
                if limit_price is None:
                    resting.append(order)
                    continue
                price = limit_price
                at = bar.open_time if limit_price == bar.open else bar.close_time
            fills.append(self._book(order, price, at))
        self._open = resting
        return fills

    def positions(self) -> dict[Symbol, Position]:
        return dict(self._positions)

    def open_orders(self) -> list[Order]:
        return list(self._open)

    def equity(self, marks: Mapping[Symbol, float]) -> float:
        """Cash plus positions at ``marks``; an unmarked position counts at its average price."""
        value = sum(p.quantity * marks.get(s, p.avg_price) for s, p in self._positions.items())
        return self._cash + value

    def snapshot(self) -> PortfolioSnapshot:
        return PortfolioSnapshot(self._cash, dict(self._positions), tuple(self._open))

    def restore(self, snapshot: PortfolioSnapshot) -> None:
        self._cash = snapshot.cash
        self._positions = dict(snapshot.positions)
        self._open = list(snapshot.open_orders)

    def _book(self, order: Order, price: float, at: datetime) -> Fill:
        notional = order.quantity * price
        cost = fee(notional, self.fee_bps)
        quantity = signed(order.side, order.quantity)
        held = self._positions.get(order.symbol, Position())
        self._positions[order.symbol], _ = apply_fill(held, quantity, price, cost)
        self._cash -= quantity * price + cost
        return Fill(
            order.client_order_id, order.symbol, order.side, order.quantity, price, cost, at
        )
