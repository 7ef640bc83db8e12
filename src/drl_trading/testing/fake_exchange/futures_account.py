"""The fake exchange's USD-M futures account: one-way mode, cross margin, linear perpetuals.

It is the spot matching engine (`Venue`: validation, crossing, partial fills) with a different
account: a wallet balance in the settle asset (USDT) instead of per-asset balances, and per
symbol a signed position amount (base units, negative = short) with its average entry price.

- A fill that reduces or flips a position realises ``closed qty * (exit - entry)`` (sign of the
  position) into the wallet; the part that flips opens the new side at the fill price.
- Commission is ``fee_bps`` of the fill's notional, taken from the wallet in the settle asset.
- Initial margin is ``|amount| * mark / leverage`` (leverage per symbol, 1 unless set); an order
  that increases exposure needs its share of that margin free: ``available = wallet +
  unrealised - position margin - open-order margin`` (Binance -2019 otherwise).
- ``reduceOnly`` orders that would open, increase or flip a position are refused (-2022), and at
  fill time never fill past the position (the rest expires).
- The mark price is the last trade print (the fake has no index or funding).

Liquidation and funding are not modelled: a test that needs a wallet move without a fill calls
`FakeExchange.set_balance`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from drl_trading.testing.fake_exchange.markets import MarketSpec
from drl_trading.testing.fake_exchange.matching import (
    ZERO,
    BinanceError,
    Venue,
    VenueFill,
    VenueOrder,
)

DEFAULT_LEVERAGE = 1
MAX_LEVERAGE = 125


def margin_insufficient() -> BinanceError:
    return BinanceError(-2019, "Margin is insufficient.")


def reduce_only_rejected() -> BinanceError:
    return BinanceError(-2022, "ReduceOnly Order is rejected.")


@dataclass(slots=True)
class FuturesVenue(Venue):
    """`Venue` with a futures account; ``balances[settle][0]`` is the wallet balance.

    ``positions`` maps a symbol to ``[amount, entry_price]`` (signed base units, quote per base);
    ``realised`` the realised PnL of each fill (trade id -> settle units); ``dual_side`` is the
    account's hedge mode, which the fake does not trade (every order is refused with -4061).
    """

    positions: dict[str, list[Decimal]] = field(default_factory=dict)
    leverage: dict[str, int] = field(default_factory=dict)
    realised: dict[int, Decimal] = field(default_factory=dict)
    dual_side: bool = False

    # -- the account, read -------------------------------------------------------------------

    def position(self, symbol: str) -> list[Decimal]:
        """``[amount, entry_price]`` of ``symbol``, created flat on first use."""
        return self.positions.setdefault(symbol, [ZERO, ZERO])

    def leverage_of(self, symbol: str) -> int:
        return self.leverage.get(symbol, DEFAULT_LEVERAGE)

    def mark(self, symbol: str) -> Decimal:
        """The mark price: the last trade print, else the entry price (no print yet)."""
        price = self.last_price.get(symbol)
        return price if price is not None else self.position(symbol)[1]

    def unrealised(self, symbol: str) -> Decimal:
        amount, entry = self.position(symbol)
        return amount * (self.mark(symbol) - entry) if amount else ZERO

    def position_margin(self, symbol: str) -> Decimal:
        return abs(self.position(symbol)[0]) * self.mark(symbol) / self.leverage_of(symbol)

    def order_margin(self, order: VenueOrder) -> Decimal:
        """The initial margin an open order holds: what its unfilled rest would add to the
        position's size, at its limit price (the mark for a market order), over leverage."""
        if order.reduce_only or not order.is_open:
            return ZERO
        amount = self.position(order.symbol)[0]
        rest = order.quantity - order.executed
        added = _added_exposure(amount, rest if order.side == "BUY" else -rest)
        price = order.price if order.price is not None else self.mark(order.symbol)
        return added * price / self.leverage_of(order.symbol)

    def wallet(self, asset: str) -> Decimal:
        return self.account(asset)[0]

    def available(self, asset: str) -> Decimal:
        """What new exposure may use (settle units): wallet + unrealised - margins held."""
        symbols = [s for s, spec in self.markets.items() if spec.quote == asset]
        held = sum((self.position_margin(s) for s in symbols), ZERO)
        orders = sum(
            (self.order_margin(o) for o in self.orders if o.symbol in symbols and o.is_open),
            ZERO,
        )
        upnl = sum((self.unrealised(s) for s in symbols), ZERO)
        return self.wallet(asset) + upnl - held - orders

    # -- the matching engine's hooks ---------------------------------------------------------

    def _notional_refusal(self, spec: MarketSpec) -> BinanceError:
        return BinanceError(
            -4164,
            f"Order's notional must be no smaller than {spec.min_notional:g} "
            "(unless you choose reduce only).",
        )

    def _reserve(self, order: VenueOrder, spec: MarketSpec, reference: Decimal | None) -> None:
        """Nothing is locked on futures: check hedge mode, reduce-only and margin instead."""
        if self.dual_side:
            raise BinanceError(-4061, "Order's position side does not match user's setting.")
        if order.quantity <= 0:
            raise BinanceError(
                -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed."
            )
        amount = self.position(order.symbol)[0]
        delta = order.quantity if order.side == "BUY" else -order.quantity
        if order.reduce_only:
            if amount == 0 or (amount > 0) == (delta > 0) or abs(delta) > abs(amount):
                raise reduce_only_rejected()
            return
        price = order.price if order.price is not None else reference
        added = _added_exposure(amount, delta)
        if price is None or added <= 0:
            return
        needed = added * price / self.leverage_of(order.symbol)
        if needed > self.available(spec.quote):
            raise margin_insufficient()

    def _fillable(
        self, order: VenueOrder, spec: MarketSpec, price: Decimal, left: Decimal
    ) -> Decimal:
        qty = min(left, order.quantity - order.executed)
        if order.reduce_only:
            amount = self.position(order.symbol)[0]
            reduces = (amount > 0 and order.side == "SELL") or (amount < 0 and order.side == "BUY")
            qty = min(qty, abs(amount)) if reduces else ZERO
        return qty

    def _apply(
        self, order: VenueOrder, spec: MarketSpec, price: Decimal, qty: Decimal, time_ms: int
    ) -> VenueFill:
        amount, entry = self.position(order.symbol)
        realised = _realised(amount, entry, qty if order.side == "BUY" else -qty, price)
        fill = Venue._apply(self, order, spec, price, qty, time_ms)
        self.realised[fill.trade_id] = realised
        return fill

    def _settle(
        self, order: VenueOrder, spec: MarketSpec, price: Decimal, qty: Decimal, fee: Decimal
    ) -> None:
        """Move the position (average entry on increase, realised PnL on reduction, the
        fill price on a flip) and the wallet (realised PnL less the fee)."""
        pos = self.position(order.symbol)
        amount, entry = pos
        delta = qty if order.side == "BUY" else -qty
        wallet = self.account(spec.quote)
        new = amount + delta
        if amount == 0 or (amount > 0) == (delta > 0):
            pos[1] = (abs(amount) * entry + qty * price) / abs(new)
        else:
            wallet[0] += _realised(amount, entry, delta, price)
            if new == 0:
                pos[1] = ZERO
            elif (new > 0) != (amount > 0):
                pos[1] = price
        pos[0] = new
        wallet[0] -= fee


def _realised(amount: Decimal, entry: Decimal, delta: Decimal, price: Decimal) -> Decimal:
    """The PnL (settle units) a fill of ``delta`` at ``price`` realises on a position of
    ``amount`` entered at ``entry``: the closed part times the price move, linear."""
    if not amount or (amount > 0) == (delta > 0):
        return ZERO
    closed = min(abs(delta), abs(amount))
    return closed * (price - entry) * (1 if amount > 0 else -1)


def _added_exposure(amount: Decimal, delta: Decimal) -> Decimal:
    """How much ``delta`` (signed base units) grows the position's size beyond ``|amount|``."""
    return max(abs(amount + delta) - abs(amount), ZERO)
