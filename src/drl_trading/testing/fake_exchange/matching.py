"""The fake exchange's account and matching engine: orders, fills and balances, no I/O.

Matching runs against the exchange's own price path, one trade print at a time (`Venue.trade`):
a MARKET order fills at the *next* print's price, a LIMIT order when a print crosses it (at the
limit price), and one print fills at most its ``liquidity`` (base units) across all resting
orders, so large orders fill partially over several prints. Commission is ``fee_bps`` of each
fill's notional, always charged in the quote asset. Not thread-safe: `FakeExchange` serialises
access with its lock.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from drl_trading.testing.fake_exchange.markets import MarketSpec, dec, floor_to, is_multiple

OPEN_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED"})
CLIENT_ORDER_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
ZERO = Decimal(0)


class BinanceError(Exception):
    """A request the exchange refuses, carried as Binance's error body ``{"code", "msg"}``."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status


def insufficient_balance() -> BinanceError:
    return BinanceError(-2010, "Account has insufficient balance for requested action.")


def filter_failure(name: str) -> BinanceError:
    return BinanceError(-1013, f"Filter failure: {name}")


@dataclass(frozen=True, slots=True)
class FakeOrder:
    """A snapshot of one order the exchange accepted; amounts in base units, prices in quote.

    ``status`` is Binance's (NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED); ``price`` is
    None for MARKET orders; ``quote_quantity`` is set for market orders sized in quote units
    (``quoteOrderQty``); ``foreign`` marks orders placed with `FakeExchange.place_foreign_order`.
    """

    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    quantity: float
    price: float | None
    quote_quantity: float | None
    executed: float
    quote_executed: float
    status: str
    time_in_force: str | None
    created_ms: int
    updated_ms: int
    foreign: bool


@dataclass(frozen=True, slots=True)
class FakeFill:
    """One fill (a row of ``myTrades``): ``quantity`` base units at ``price``; ``commission`` in
    ``commission_asset`` (the quote asset); ``is_maker`` for a resting limit order."""

    trade_id: int
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    price: float
    quantity: float
    quote_quantity: float
    commission: float
    commission_asset: str
    time_ms: int
    is_maker: bool


@dataclass(slots=True)
class VenueOrder:
    """The engine's mutable order; `snapshot` gives the immutable view handed to tests."""

    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    quantity: Decimal
    price: Decimal | None
    quote_quantity: Decimal | None
    time_in_force: str | None
    created_ms: int
    updated_ms: int
    foreign: bool
    executed: Decimal = ZERO
    quote_executed: Decimal = ZERO
    status: str = "NEW"
    locked: Decimal = ZERO
    reduce_only: bool = False
    """A futures order that may only shrink the position (``reduceOnly``); never set on spot."""

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def snapshot(self) -> FakeOrder:
        return FakeOrder(
            order_id=self.order_id,
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=self.side,
            type=self.type,
            quantity=float(self.quantity),
            price=None if self.price is None else float(self.price),
            quote_quantity=None if self.quote_quantity is None else float(self.quote_quantity),
            executed=float(self.executed),
            quote_executed=float(self.quote_executed),
            status=self.status,
            time_in_force=self.time_in_force,
            created_ms=self.created_ms,
            updated_ms=self.updated_ms,
            foreign=self.foreign,
        )


@dataclass(slots=True)
class VenueFill:
    trade_id: int
    order: VenueOrder
    price: Decimal
    quantity: Decimal
    commission: Decimal
    commission_asset: str
    time_ms: int
    is_maker: bool

    @property
    def quote_quantity(self) -> Decimal:
        return self.price * self.quantity

    def snapshot(self) -> FakeFill:
        return FakeFill(
            trade_id=self.trade_id,
            order_id=self.order.order_id,
            client_order_id=self.order.client_order_id,
            symbol=self.order.symbol,
            side=self.order.side,
            price=float(self.price),
            quantity=float(self.quantity),
            quote_quantity=float(self.quote_quantity),
            commission=float(self.commission),
            commission_asset=self.commission_asset,
            time_ms=self.time_ms,
            is_maker=self.is_maker,
        )


@dataclass(slots=True)
class Venue:
    """Markets, the one account, every order and fill, and the last trade price per symbol."""

    markets: dict[str, MarketSpec]
    fee_rate: Decimal
    balances: dict[str, list[Decimal]] = field(default_factory=dict)
    orders: list[VenueOrder] = field(default_factory=list)
    fills: list[VenueFill] = field(default_factory=list)
    last_price: dict[str, Decimal] = field(default_factory=dict)
    on_report: Callable[[VenueOrder, str, VenueFill | None], None] | None = None
    """Called with ``(order, execution type, fill)`` on every order state change: ``NEW`` on
    accept, ``TRADE`` per fill (with it), ``CANCELED``, ``EXPIRED``; the user data stream's
    hook (`UserDataStreams`), so the engine carries no websocket code."""
    _next_order_id: int = 1
    _next_trade_id: int = 1

    def market(self, symbol: str) -> MarketSpec:
        spec = self.markets.get(symbol)
        if spec is None:
            raise BinanceError(-1121, "Invalid symbol.")
        return spec

    def account(self, asset: str) -> list[Decimal]:
        """``[free, locked]`` of ``asset``, created empty on first use."""
        return self.balances.setdefault(asset, [ZERO, ZERO])

    def place(
        self,
        *,
        symbol: str,
        side: str,
        type: str,
        quantity: Decimal | None,
        quote_quantity: Decimal | None,
        price: Decimal | None,
        time_in_force: str | None,
        client_order_id: str,
        now_ms: int,
        foreign: bool = False,
        reduce_only: bool = False,
    ) -> VenueOrder:
        """Validate like Binance (filters, duplicate client id, balance), lock funds, rest it."""
        spec = self.market(symbol)
        if side not in ("BUY", "SELL"):
            raise BinanceError(-1117, "Invalid side.")
        if type not in ("MARKET", "LIMIT"):
            raise BinanceError(-1116, "Invalid orderType.")
        if not CLIENT_ORDER_ID.match(client_order_id):
            raise BinanceError(
                -1100,
                "Illegal characters found in parameter 'newClientOrderId'; "
                "legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
            )
        if type == "LIMIT":
            if price is None:
                raise _mandatory("price")
            if time_in_force is None:
                raise _mandatory("timeInForce")
            if time_in_force != "GTC":
                raise BinanceError(-1115, "Invalid timeInForce.")
            if quantity is None:
                raise _mandatory("quantity")
        elif quantity is None and quote_quantity is None:
            raise BinanceError(
                -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"
            )
        if any(
            o.client_order_id == client_order_id and o.status in (*OPEN_STATUSES, "FILLED")
            for o in self.orders
        ):
            raise BinanceError(-2010, "Duplicate order sent.")
        if price is not None and (
            price <= 0 or price > dec(spec.max_price) or not is_multiple(price, spec.tick)
        ):
            raise filter_failure("PRICE_FILTER")
        if quantity is not None and (
            quantity < dec(spec.min_qty)
            or quantity > dec(spec.max_qty)
            or not is_multiple(quantity, spec.step)
        ):
            raise filter_failure("LOT_SIZE")
        reference = price if type == "LIMIT" else self.last_price.get(symbol)
        notional = quote_quantity if quantity is None else None
        if notional is None and quantity is not None and reference is not None:
            notional = quantity * reference
        if notional is not None and notional < dec(spec.min_notional) and not reduce_only:
            raise self._notional_refusal(spec)
        order = VenueOrder(
            order_id=self._next_order_id,
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            type=type,
            quantity=quantity if quantity is not None else ZERO,
            price=price if type == "LIMIT" else None,
            quote_quantity=quote_quantity if quantity is None else None,
            time_in_force=time_in_force if type == "LIMIT" else None,
            created_ms=now_ms,
            updated_ms=now_ms,
            foreign=foreign,
            reduce_only=reduce_only,
        )
        self._reserve(order, spec, reference)
        self._next_order_id += 1
        self.orders.append(order)
        self._report(order, "NEW", None)
        return order

    def _report(self, order: VenueOrder, execution: str, fill: VenueFill | None) -> None:
        if self.on_report is not None:
            self.on_report(order, execution, fill)

    def _notional_refusal(self, spec: MarketSpec) -> BinanceError:
        """The refusal of an order below the minimum notional (spot: the NOTIONAL filter)."""
        return filter_failure("NOTIONAL")

    def _reserve(self, order: VenueOrder, spec: MarketSpec, reference: Decimal | None) -> None:
        """Lock what the order can spend: the base for a sell, notional plus fee for a buy limit.

        A market order whose cost is unknown until the next print (a buy, or a sell sized in
        quote) locks nothing but must be affordable at the last price; at fill time it fills only
        what the free balance still pays for.
        """
        if order.type == "MARKET" and (order.side == "BUY" or order.quote_quantity is not None):
            if reference is None:
                return
            if order.side == "BUY":
                cost = (
                    order.quote_quantity
                    if order.quote_quantity is not None
                    else order.quantity * reference
                )
                short = self.account(spec.quote)[0] < cost * (1 + self.fee_rate)
            else:
                assert order.quote_quantity is not None
                short = self.account(spec.base)[0] < floor_to(
                    order.quote_quantity / reference, spec.step
                )
            if short:
                raise insufficient_balance()
            return
        if order.side == "SELL":
            need, asset = order.quantity, spec.base
        else:
            assert order.price is not None
            need, asset = order.quantity * order.price * (1 + self.fee_rate), spec.quote
        account = self.account(asset)
        if account[0] < need:
            raise insufficient_balance()
        account[0] -= need
        account[1] += need
        order.locked = need

    def cancel(self, order: VenueOrder, now_ms: int) -> None:
        if not order.is_open:
            raise BinanceError(-2011, "Unknown order sent.")
        self._finish(order, "CANCELED", now_ms)

    def _finish(self, order: VenueOrder, status: str, now_ms: int) -> None:
        """End an order and hand whatever it still locks back to free."""
        order.status = status
        order.updated_ms = now_ms
        if order.locked:
            spec = self.markets[order.symbol]
            account = self.account(spec.base if order.side == "SELL" else spec.quote)
            account[1] -= order.locked
            account[0] += order.locked
            order.locked = ZERO
        if status != "FILLED":  # a fill's report (TRADE) carries FILLED
            self._report(order, status, None)

    def find(
        self, symbol: str, order_id: int | None, client_order_id: str | None
    ) -> VenueOrder | None:
        """By exchange id, else the latest order with that client id (reusable once closed)."""
        for order in reversed(self.orders):
            if order.symbol != symbol:
                continue
            if order_id is not None and order.order_id == order_id:
                return order
            if order_id is None and order.client_order_id == client_order_id:
                return order
        return None

    def trade(
        self, symbol: str, price: Decimal, liquidity: Decimal, time_ms: int
    ) -> list[VenueFill]:
        """One print at ``price`` offering ``liquidity`` base units: fill what it reaches."""
        spec = self.markets.get(symbol)
        if spec is None:
            raise ValueError(
                f"unknown symbol {symbol!r} for a trade print; "
                f"the fake lists {sorted(self.markets)}"
            )
        if price <= 0 or liquidity < 0:
            raise ValueError(
                f"a trade print needs price > 0 and liquidity >= 0, got {price} and {liquidity}"
            )
        self.last_price[symbol] = price
        left = floor_to(liquidity, spec.step)
        made: list[VenueFill] = []
        for order in self._crossed(symbol, price):
            if left <= 0:
                break
            fill_price = price if order.type == "MARKET" else order.price
            assert fill_price is not None
            qty = self._fillable(order, spec, fill_price, left)
            if qty <= 0:
                if order.type == "MARKET":
                    self._finish(order, "EXPIRED", time_ms)
                continue
            made.append(self._apply(order, spec, fill_price, qty, time_ms))
            left -= qty
        return made

    def _crossed(self, symbol: str, price: Decimal) -> list[VenueOrder]:
        """Open orders this print reaches: market orders first (by time), then limits by price."""
        resting = [o for o in self.orders if o.symbol == symbol and o.is_open]
        markets = [o for o in resting if o.type == "MARKET"]
        limits = [(o, o.price) for o in resting if o.price is not None]
        buys = sorted(
            ((o, p) for o, p in limits if o.side == "BUY" and price <= p),
            key=lambda op: (-op[1], op[0].order_id),
        )
        sells = sorted(
            ((o, p) for o, p in limits if o.side == "SELL" and price >= p),
            key=lambda op: (op[1], op[0].order_id),
        )
        return [*markets, *(o for o, _ in buys), *(o for o, _ in sells)]

    def _fillable(
        self, order: VenueOrder, spec: MarketSpec, price: Decimal, left: Decimal
    ) -> Decimal:
        if order.quote_quantity is not None:
            remaining_quote = order.quote_quantity - order.quote_executed
            qty = floor_to(min(left, remaining_quote / price), spec.step)
        else:
            qty = min(left, order.quantity - order.executed)
        if order.side == "BUY" and order.type == "MARKET":
            affordable = floor_to(
                self.account(spec.quote)[0] / (price * (1 + self.fee_rate)), spec.step
            )
            qty = min(qty, affordable)
        if order.side == "SELL" and order.quote_quantity is not None:
            qty = min(qty, floor_to(self.account(spec.base)[0], spec.step))
        return qty

    def _apply(
        self, order: VenueOrder, spec: MarketSpec, price: Decimal, qty: Decimal, time_ms: int
    ) -> VenueFill:
        notional = price * qty
        fee = notional * self.fee_rate
        self._settle(order, spec, price, qty, fee)
        order.executed += qty
        order.quote_executed += notional
        order.updated_ms = time_ms
        fill = VenueFill(
            trade_id=self._next_trade_id,
            order=order,
            price=price,
            quantity=qty,
            commission=fee,
            commission_asset=spec.quote,
            time_ms=time_ms,
            is_maker=order.type == "LIMIT",
        )
        self._next_trade_id += 1
        self.fills.append(fill)
        if order.quote_quantity is not None:
            done = order.quote_quantity - order.quote_executed < spec.step * price
            if done:
                order.quantity = order.executed
        else:
            done = order.executed >= order.quantity
        if done:
            self._finish(order, "FILLED", time_ms)
        else:
            order.status = "PARTIALLY_FILLED"
        self._report(order, "TRADE", fill)
        return fill

    def _settle(
        self, order: VenueOrder, spec: MarketSpec, price: Decimal, qty: Decimal, fee: Decimal
    ) -> None:
        """Move the account for one fill (spot: base against quote, the fee in quote)."""
        base, quote = self.account(spec.base), self.account(spec.quote)
        if order.side == "BUY":
            _spend(quote, order, price * qty + fee)
            base[0] += qty
        else:
            _spend(base, order, qty)
            quote[0] += price * qty - fee


def _spend(account: list[Decimal], order: VenueOrder, amount: Decimal) -> None:
    """Take ``amount`` from what ``order`` locked, the rest (rounding, market orders) from free."""
    from_locked = min(order.locked, amount)
    order.locked -= from_locked
    account[1] -= from_locked
    account[0] -= amount - from_locked


def _mandatory(name: str) -> BinanceError:
    return BinanceError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )
