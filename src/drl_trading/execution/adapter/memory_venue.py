"""An in-memory venue account behind `VenueStateSource`: the fake for reconciliation tests.

Tests arrange it as an exchange would have left the account (open orders, trades, balances) and
`trade` books a fill the way a spot venue moves balances (base units and quote cash, fee in quote).
"""

from __future__ import annotations

from datetime import datetime

from drl_trading.common.domain import Symbol, utc
from drl_trading.execution.core.accounting import signed
from drl_trading.execution.core.reconciliation import VenueFill, VenueOrder, VenueState


class InMemoryVenue:
    def __init__(self, cash: float, now: datetime) -> None:
        self.cash = float(cash)
        self.positions: dict[Symbol, float] = {}
        self.open_orders: list[VenueOrder] = []
        self.fills: list[VenueFill] = []
        self.now = utc(now)
        """The time `venue_state` reports as taken (tests move it with their clock)."""
        self.reads: list[datetime] = []
        """The ``since`` of every read, in order."""

    def trade(self, fill: VenueFill) -> None:
        """A trade of the account: listed, and applied to the balances."""
        self.fills.append(fill)
        q = signed(fill.side, fill.quantity)
        self.positions[fill.symbol] = self.positions.get(fill.symbol, 0.0) + q
        self.cash -= q * fill.price + fill.fee

    def venue_state(self, since: datetime) -> VenueState:
        since = utc(since)
        self.reads.append(since)
        return VenueState(
            taken_at=self.now,
            fills_since=since,
            open_orders=tuple(self.open_orders),
            fills=tuple(f for f in self.fills if f.at >= since),
            positions=dict(self.positions),
            cash=self.cash,
        )
