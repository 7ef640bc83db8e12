"""How a target position becomes units, and what a fill costs: one model for every engine.

The training environment, the vectorised backtest and the paper broker with the execution service
all follow these rules, so a policy is trained on, evaluated with and traded under the same
accounting (a test replays the event-driven path against the vectorised one and finds the same
positions and PnL):

* A decision at the close of bar t names a target as a fraction of equity. The order is the
  difference in units: ``target * equity / close[t] - units`` (equity marked at that close).
* A target equal to the last one reached is not traded again: between decisions the position is
  held in units and its share of equity drifts with the price.
* An order smaller than ``min_order_notional`` (at the decision close) is skipped as dust; the
  target then counts as reached.
* Market orders fill at the next bar's open, ``slippage_bps`` against the trader, and pay
  ``fee_bps`` of the filled notional. Cash pays units times fill price plus the fee.
"""

from __future__ import annotations

from dataclasses import dataclass

RESIDUE_TOLERANCE = 1e-12
"""Relative size (of the larger of the units held and ordered) below which the sum of the two is
cancellation residue, i.e. a position closed to flat."""

TARGET_TOLERANCE = 1e-9
"""Targets (fractions of equity) closer than this are the same target."""


@dataclass(frozen=True, slots=True)
class CostModel:
    fee_bps: float = 5.0
    slippage_bps: float = 2.0
    min_order_notional: float = 0.0
    """Quote currency; the backtest's equity starts at ``initial_equity`` for this to mean the
    same as in a paper account."""

    def __post_init__(self) -> None:
        if self.fee_bps < 0 or self.slippage_bps < 0 or self.min_order_notional < 0:
            raise ValueError(
                f"costs must be >= 0: fee_bps={self.fee_bps}, slippage_bps={self.slippage_bps}, "
                f"min_order_notional={self.min_order_notional}"
            )

    @property
    def rate(self) -> float:
        """Fee plus slippage as a fraction: the round cost of trading one unit of equity."""
        return (self.fee_bps + self.slippage_bps) / 1e4


def fee(notional: float, fee_bps: float) -> float:
    """Exchange fee on a traded notional; ``fee_bps`` is in basis points of the notional."""
    return abs(notional) * fee_bps / 1e4


def market_fill_price(open_price: float, buy: bool, slippage_bps: float) -> float:
    """A market order pays up when buying and receives less when selling, by ``slippage_bps``."""
    factor = slippage_bps / 1e4
    return open_price * (1 + factor) if buy else open_price * (1 - factor)


def order_units(target: float, equity: float, price: float, units: float) -> float:
    """Signed units to order so that ``units`` become ``target`` of ``equity`` at ``price``."""
    return target * equity / price - units


def settle_units(held: float, dq: float) -> float:
    """Units after ordering ``dq`` on top of ``held``, with closing residue rounded to flat.

    The threshold is relative to the sizes that cancelled, not a fixed number of units: a fixed
    one turned every order of an account whose equity / price had fallen below it into zero
    units while its cash was still paid, so equity jumped to <= 0 with no price move. Closing
    to a target of 0 is exact (``dq == -held``); the tolerance only removes the last bits of a
    sum of two nearly opposite sizes.
    """
    units = held + dq
    return 0.0 if abs(units) <= RESIDUE_TOLERANCE * max(abs(held), abs(dq)) else units
