"""Fill prices, fees and average-cost position accounting, as pure functions.

They live in core rather than in the paper broker because the service replays the same arithmetic
to attribute realised PnL to each fill whatever the broker, and a live broker's fills must be
booked exactly as the simulated ones are.
"""

from __future__ import annotations

import math

from drl_trading.common import costs
from drl_trading.common.costs import fee, settle_units
from drl_trading.common.domain import Bar, Order, Side
from drl_trading.execution.core.records import Position

__all__ = [
    "apply_fill",
    "fee",
    "limit_fill_price",
    "market_fill_price",
    "signed",
]


def signed(side: Side, quantity: float) -> float:
    return quantity if side is Side.BUY else -quantity


def market_fill_price(open_price: float, side: Side, slippage_bps: float) -> float:
    """The shared cost model's fill price (`drl_trading.common.costs`) for an order side."""
    return costs.market_fill_price(open_price, side is Side.BUY, slippage_bps)


def limit_fill_price(order: Order, bar: Bar) -> float | None:
    """Price at which a limit order fills on ``bar``, or None if the bar never reached the limit.

    A bar that opens through the limit fills at its open (the better price); otherwise the fill is
    at the limit itself. No slippage: a resting order is the liquidity.
    """
    limit = order.limit_price
    if limit is None:
        raise ValueError(f"order {order.client_order_id} has no limit price")
    if order.side is Side.BUY:
        if bar.open <= limit:
            return bar.open
        return limit if bar.low <= limit else None
    if bar.open >= limit:
        return bar.open
    return limit if bar.high >= limit else None


def apply_fill(
    position: Position, quantity: float, price: float, fee_paid: float = 0.0
) -> tuple[Position, float]:
    """Book a signed fill of ``quantity`` at ``price``; returns the new position and realised PnL.

    Adding to a position (or opening one) moves the average price; reducing realises
    ``closed × (price − avg)`` (sign-adjusted for shorts) and keeps the average; a reversal
    realises the closed part and opens the remainder at ``price``.

    A fill that leaves only the float residue of a close is flat: the same relative rule as the
    simulated engines (`costs.settle_units`), so a tiny position that is really held (1e-13 BTC of
    an account that small) stays, however small in units.
    """
    if not math.isfinite(quantity) or not math.isfinite(price) or price <= 0:
        raise ValueError(f"invalid fill: quantity={quantity}, price={price}")
    held = position.quantity
    new_quantity = settle_units(held, quantity)
    realised = 0.0
    if held == 0.0 or (held > 0) == (quantity > 0):
        total = abs(held) + abs(quantity)
        avg = (abs(held) * position.avg_price + abs(quantity) * price) / total if total else 0.0
    else:
        closed = min(abs(quantity), abs(held))
        direction = 1.0 if held > 0 else -1.0
        realised = closed * (price - position.avg_price) * direction
        if new_quantity == 0.0:
            avg = 0.0
        elif (new_quantity > 0) == (held > 0):
            avg = position.avg_price
        else:
            avg = price
    updated = Position(
        quantity=new_quantity,
        avg_price=avg if new_quantity != 0.0 else 0.0,
        realised_pnl=position.realised_pnl + realised,
        fees_paid=position.fees_paid + fee_paid,
    )
    return updated, realised
