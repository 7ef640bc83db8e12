"""The `Broker` port on a real exchange, through a ccxt client: spot markets (long or flat) or,
with ``market_type="futures"``, linear USD-margined perpetual swaps (long, short or flat; the
futures specifics are in `ccxt_futures`).

The broker keeps the book of the orders it placed (our client order id -> the exchange's client
and order ids, the trade ids already reported) and a ledger of the account: cash and holdings
as its reported fills made them, plus average prices, realised PnL and fees, which the exchange
does not keep. A fresh broker opens the ledger at the exchange's balances (spot: quote cash, the
base holdings of the known symbols at the reference price; futures: the signed positions at their
entry prices and the wallet less their cost, `ccxt_futures.ledger_cash`); `restore` sets it to the
stored book.

Order path. ``submit`` rounds the amount (``amount_to_precision``, truncating) and a limit price
(``price_to_precision``), checks the market's kind, minimum amount and minimum notional and, on
spot, that a sell does not exceed the free base balance, all before anything is sent: a refusal
is an ``OrderAck(accepted=False)`` naming the rule and the numbers. The order then goes out with a
client order id derived from ours (`venue_client_id`). A send whose outcome is unknown (timeout,
connection lost, 5xx) is resolved by fetching the order by that client id before any resend, so
an order reaches the exchange at most once; the exchange's refusal of a duplicate client id is
the second guard. Rate-limit answers (429/418) were refused before processing and are resent
after a backoff (``Retry-After`` honoured). Every retried call is bounded by
``CcxtBrokerSettings.max_attempts``; past it `ExchangeUnavailableError`, and refused credentials
or permissions raise `ExchangeAccountError` (both one line, credentials masked).

Fills. ``on_bar`` reports each exchange trade of the bar's symbol's orders once, as it comes: a
partial fill is a `Fill` of the increment, at the trade's price, with its fee converted to the
quote currency. With an ``order_stream`` (`CcxtOrderStream`: ccxt.pro's user-data stream) the
trades and order states it pushed are booked first, and an order is polled over REST
(``fetch_order``, then ``fetch_my_trades`` when the filled amount grew) only when the stream
cannot vouch for it: it was down at some point since the order's trades were last known, the
order was restored after a restart, the stream reported it finished with fills the broker has
not seen yet, or the exchange said more of it is filled (in its answer to the order, a pushed
update or a poll) than is booked: a market order filled on arrival is booked at the next bar
however late its push comes. Without a stream (or with one that gave up) every open order is
polled on every bar. Both paths share the seen-trade ids, so a trade pushed and polled is booked
once. Limit orders older than ``cancel_after_s`` are cancelled there.

The ledger, not the live balance, is what `cash`, `positions`, `equity` and `snapshot` report:
it is what the service recorded, and reconciliation (`venue_state` against that book) is what
compares it with the exchange's balances, adopts fills made while the process was down and halts
when the two differ beyond tolerance; reporting the exchange's balance here instead would make
that comparison the exchange against itself (an adopted fill counted twice, a balance changed
behind the service's back never seen). `CcxtBroker.venue_differences` gives the per-symbol
(ledger, exchange) quantities that differ by more than half an amount step.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import ccxt
import structlog

from drl_trading.common.adapter.system_clock import SystemClock
from drl_trading.common.domain import Bar, Fill, Order, Side, Symbol
from drl_trading.common.errors import ExchangeAccountError, ExchangeUnavailableError
from drl_trading.common.ports import Clock
from drl_trading.common.redaction import MASK, mask_secrets
from drl_trading.execution.adapter import ccxt_futures as futures
from drl_trading.execution.adapter.ccxt_futures import MarketType, VenuePosition, finite_number
from drl_trading.execution.adapter.ccxt_order_stream import CcxtOrderStream
from drl_trading.execution.core.accounting import apply_fill, signed
from drl_trading.execution.core.reconciliation import VenueFill, VenueOrder, VenueState
from drl_trading.execution.core.records import OrderAck, PortfolioSnapshot, Position

log = structlog.get_logger(__name__)

VENUE_CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
"""Binance's allowed client order ids (``newClientOrderId``): 1-36 of these characters."""
_HASHED_MARK = ":"
"""Separates the prefix from a hash: a plain id never starts with it, so the forms cannot meet."""
PUSHED_TRADES = 1_000
"""Pushed trades kept for orders not matched yet (others' orders, or an order whose id the
broker learns later); the oldest are dropped past it (REST polling is the fallback)."""
_TERMINAL = frozenset({"closed", "canceled", "cancelled", "expired", "rejected"})


@dataclass(frozen=True, slots=True)
class CcxtBrokerSettings:
    """How the broker talks to the exchange.

    ``client_id_prefix`` marks the orders this broker owns (``cancel_all`` leaves the others
    alone); ``quote_currency`` is the account currency (cash); ``symbols`` are listed by
    ``positions()`` even before trading (holdings found at start); ``cancel_after_s`` cancels a
    limit order that rested this long (seconds; None keeps it); retries back off exponentially
    from ``first_backoff_s`` to ``max_backoff_s`` (seconds), ``max_attempts`` tries in all.
    ``market_type`` is what the broker trades: ``spot`` markets, or ``futures``: the linear
    perpetual swap of each symbol settled in ``quote_currency`` (one-way mode; a hedge-mode
    account is refused at load); ``leverage`` (futures only) is set on each symbol at load, None
    leaves the account's.
    """

    client_id_prefix: str = "drl-"
    quote_currency: str = "USDT"
    symbols: tuple[str, ...] = ()
    cancel_after_s: float | None = 300.0
    max_attempts: int = 5
    first_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    market_type: MarketType = "spot"
    leverage: int | None = None

    def __post_init__(self) -> None:
        if self.market_type not in ("spot", "futures"):
            raise ValueError(f"market_type must be 'spot' or 'futures', got {self.market_type!r}")
        if self.leverage is not None and (self.market_type != "futures" or self.leverage < 1):
            raise ValueError(
                f"leverage {self.leverage} needs market_type 'futures' and a value >= 1"
            )
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,12}", self.client_id_prefix):
            raise ValueError(
                f"client_id_prefix {self.client_id_prefix!r} must be 1-12 letters, digits, _ or -"
            )
        if self.cancel_after_s is not None and not self.cancel_after_s > 0:
            raise ValueError(f"cancel_after_s must be > 0 or None, got {self.cancel_after_s}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if not 0 <= self.first_backoff_s <= self.max_backoff_s:
            raise ValueError(
                f"need 0 <= first_backoff_s ({self.first_backoff_s}) <= max_backoff_s "
                f"({self.max_backoff_s})"
            )


def venue_client_id(prefix: str, client_order_id: str) -> str:
    """The exchange-side client order id of ``client_order_id``: ``prefix + id`` when that fits
    Binance's pattern (the signal ids, ``sig-`` + 24 hex, do), else ``prefix + ':' + sha256``
    truncated to 36 characters. Deterministic, so a restarted broker recomputes it from the
    orders of its snapshot; a plain form gives the id back by dropping the prefix, a hashed one
    through those orders (the hash is 124+ bits: collisions are not a practical concern)."""
    plain = prefix + client_order_id
    if VENUE_CLIENT_ID.match(plain) and not client_order_id.startswith(_HASHED_MARK):
        return plain
    digest = hashlib.sha256(client_order_id.encode()).hexdigest()
    return (prefix + _HASHED_MARK + digest)[:36]


@dataclass(slots=True)
class _Tracked:
    """One of our orders on the exchange, until its last trade is reported."""

    order: Order
    """As sent: the rounded quantity (base units) and limit price."""
    market: str
    venue_client_id: str
    venue_id: str | None
    submitted_at: datetime
    seen_trades: set[str] = field(default_factory=set)
    filled: float = 0.0
    """Base units reported as fills so far."""
    venue_filled: float = 0.0
    """The most base units the exchange has said are filled (the order's ``filled`` in the
    submit response, a pushed update or a REST poll); above ``filled``, trades are owed."""
    cancelled: bool = False
    done: bool = False
    known_at: datetime | None = None
    """A time at which every trade of the order was known (before its send, or before its last
    REST poll); None: unknown, so the next ``on_bar`` polls it (see `CcxtOrderStream.covers`)."""

    @property
    def remaining(self) -> float:
        return max(self.order.quantity - self.filled, 0.0)


class CcxtBroker:
    """`Broker` on a ccxt exchange client (sync, e.g. ``ccxt.binance(config)`` with API keys).

    ``exchange`` is used as given, with rate limiting switched on; ``sleep`` (seconds) and
    ``clock`` are injected so that tests neither wait nor depend on the wall clock.
    """

    def __init__(
        self,
        exchange: Any,
        settings: CcxtBrokerSettings | None = None,
        *,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        order_stream: CcxtOrderStream | None = None,
    ) -> None:
        self._ex = exchange
        self._stream = order_stream
        self._pushed: deque[dict[str, Any]] = deque(maxlen=PUSHED_TRADES)
        self._pushed_states: dict[str, dict[str, Any]] = {}
        self.settings = settings or CcxtBrokerSettings()
        self._clock = clock or SystemClock()
        self._sleep = sleep
        exchange.enableRateLimit = True
        self._name = str(getattr(exchange, "id", None) or type(exchange).__name__)
        self._markets_loaded = False
        self._markets: dict[Symbol, dict[str, Any]] = {}
        self._book: dict[str, _Tracked] = {}
        self._positions: dict[Symbol, Position] = {}
        self._cash: float | None = None  # the ledger's quote cash; None until opened
        self._last_price: dict[Symbol, float] = {}
        self._balance: dict[str, Any] | None = None
        self._venue_positions: dict[str, VenuePosition] | None = None
        self._futures = self.settings.market_type == "futures"

    # -- the port ---------------------------------------------------------------------------

    @property
    def cash(self) -> float:
        """The ledger's quote cash (quote currency): the exchange's total quote balance (futures:
        the wallet less the positions' cost at entry) when the ledger was opened or restored,
        moved by every reported fill and its quote fee."""
        self._open_ledger()
        assert self._cash is not None
        return self._cash

    def submit(self, order: Order) -> OrderAck:
        coid = order.client_order_id
        refusal = self._refusal(order)
        if refusal:
            log.info("ccxt_broker.refused", client_order_id=coid, reason=refusal)
            return OrderAck(coid, False, refusal)
        market = self._market(order.symbol)
        assert market is not None  # _refusal checked it
        self._open_ledger()  # before anything is sent: the balances its fills then move
        sent_at = self._clock.now()  # no trade of the order can be older
        placed = self._place(market, order, venue_client_id(self.settings.client_id_prefix, coid))
        if isinstance(placed, str):
            log.info("ccxt_broker.rejected", client_order_id=coid, reason=placed)
            return OrderAck(coid, False, placed)
        rounded, venue = placed
        self._book[coid] = _Tracked(
            order=rounded,
            market=str(market["symbol"]),
            venue_client_id=venue_client_id(self.settings.client_id_prefix, coid),
            venue_id=_str_or_none(venue.get("id")),
            submitted_at=self._clock.now(),
            known_at=sent_at,
            venue_filled=finite_number(venue.get("filled"), 0.0),
        )
        self._forget_account()
        log.info("ccxt_broker.accepted", client_order_id=coid, venue_id=venue.get("id"))
        return OrderAck(coid, True)

    def cancel_all(self) -> list[Order]:
        """Cancel our open orders: those of the book, and any other order on the exchange whose
        client id carries our prefix (placed before a crash); others' orders are left alone."""
        cancelled: list[Order] = []
        for tracked in list(self._book.values()):
            if not (tracked.cancelled or tracked.done) and self._cancel(tracked):
                cancelled.append(replace(tracked.order, quantity=tracked.remaining))
        known = {t.venue_client_id for t in self._book.values()}
        for symbol in sorted(self._known_symbols()):
            market = self._market(symbol)
            if market is None:
                continue
            for venue in self._call(
                "fetch_open_orders", self._ex.fetch_open_orders, market["symbol"]
            ):
                client_id = str(venue.get("clientOrderId") or "")
                if not client_id.startswith(self.settings.client_id_prefix) or client_id in known:
                    continue
                if self._cancel_venue(market["symbol"], venue.get("id"), client_id):
                    coid = self._service_id(client_id) or client_id
                    cancelled.append(_order_of(venue, symbol, coid))
        self._forget_account()
        return cancelled

    def on_bar(self, bar: Bar) -> list[Fill]:
        """The fills of ``bar.symbol``'s orders since the last call, each trade once; limit
        orders older than ``cancel_after_s`` are cancelled (their fills up to then reported)."""
        self._last_price[bar.symbol] = bar.close
        self._forget_account()
        fills: list[Fill] = []
        now = self._clock.now()
        limit = self.settings.cancel_after_s
        self._take_pushed()
        for coid, tracked in list(self._book.items()):
            if tracked.order.symbol != bar.symbol:
                continue
            fills.extend(self._pushed_fills(tracked))
            if not (tracked.done or self._covered(tracked)):
                fills.extend(self._poll(tracked))
            too_old = (
                limit is not None
                and tracked.order.limit_price is not None
                and now - tracked.submitted_at >= timedelta(seconds=limit)
            )
            if too_old and not (tracked.done or tracked.cancelled):
                log.info("ccxt_broker.cancel_after", client_order_id=coid, after_s=limit)
                if self._cancel(tracked):
                    fills.extend(self._poll(tracked))
            if tracked.done:
                del self._book[coid]
                self._pushed_states.pop(tracked.venue_client_id, None)
        return fills

    def close(self) -> None:
        """Stop the order stream, if any (the REST client holds no connection to close)."""
        if self._stream is not None:
            self._stream.close()

    def positions(self) -> dict[Symbol, Position]:
        """Every symbol traded, restored or configured, as the ledger holds it (base units);
        where the exchange's balance differs, `venue_differences` says so."""
        self._open_ledger()
        return {s: self._positions.get(s, Position()) for s in sorted(self._known_symbols())}

    def open_orders(self) -> list[Order]:
        """Our working orders, in submission order, each with its unfilled quantity."""
        return [
            replace(t.order, quantity=t.remaining)
            for t in self._book.values()
            if not (t.cancelled or t.done)
        ]

    def equity(self, marks: Mapping[Symbol, float]) -> float:
        """Cash plus positions at ``marks``; an unmarked position counts at its average price."""
        held = self.positions()
        return self.cash + sum(p.quantity * marks.get(s, p.avg_price) for s, p in held.items())

    def snapshot(self) -> PortfolioSnapshot:
        """The ledger's cash and positions; open orders with their unfilled quantity, which
        tells `restore` how much of each was already reported."""
        return PortfolioSnapshot(self.cash, self.positions(), tuple(self.open_orders()))

    def restore(self, snapshot: PortfolioSnapshot) -> None:
        """Take the book over after a restart: the ledger (cash, quantities, average prices,
        realised PnL, fees) from the snapshot, and each open order looked up by its client id.
        Every trade an order made before the restore counts as reported: reconciliation
        (`venue_state`) adopted those made while the process was down into the snapshot (the
        `VenueStateSource` contract), so ``on_bar`` reports only later ones. An order the
        exchange does not know is dropped (with a warning): it never reached it."""
        self._positions = dict(snapshot.positions)
        self._cash = float(snapshot.cash)
        self._book = {}
        self._forget_account()
        for order in snapshot.open_orders:
            market = self._market(order.symbol)
            client_id = venue_client_id(self.settings.client_id_prefix, order.client_order_id)
            venue = self._lookup(str(market["symbol"]), client_id) if market else None
            if market is None or venue is None:
                log.warning("ccxt_broker.restore_unknown", client_order_id=order.client_order_id)
                continue
            timestamp = venue.get("timestamp")
            tracked = _Tracked(
                order=replace(order, quantity=finite_number(venue.get("amount"), order.quantity)),
                market=str(market["symbol"]),
                venue_client_id=client_id,
                venue_id=_str_or_none(venue.get("id")),
                submitted_at=_from_ms(timestamp) if timestamp else self._clock.now(),
            )
            if finite_number(venue.get("filled"), 0.0) > 0:
                for trade in self._trades(tracked):
                    tracked.seen_trades.add(str(trade.get("id")))
                    tracked.filled += finite_number(trade.get("amount"), 0.0)
            self._book[order.client_order_id] = tracked

    # -- for reconciliation -----------------------------------------------------------------

    def venue_differences(self) -> dict[Symbol, tuple[float, float]]:
        """``(ours, venue)`` base quantities of each symbol whose exchange balance (futures: the
        signed position) differs from the broker's own fill arithmetic by more than half an
        amount step (plain data for the reconciliation core); empty when they agree."""
        out: dict[Symbol, tuple[float, float]] = {}
        for symbol in sorted(self._known_symbols()):
            ours = self._positions.get(symbol, Position()).quantity
            venue = self._venue_quantity(symbol)
            if venue is not None and abs(venue - ours) > self._tolerance(symbol):
                out[symbol] = (ours, venue)
        return out

    def venue_state(self, since: datetime) -> VenueState:
        """The exchange's view of the account for reconciliation (`VenueStateSource`): open
        orders and trades at or after ``since`` (UTC) of the known symbols, their base
        balances (futures: signed positions) and the quote cash (futures: `ccxt_futures.
        ledger_cash`), read now. Client order ids are given back in the
        service's form (our prefix dropped; an id of another client is passed as it is)."""
        self._forget_account()
        taken_at = self._clock.now()
        since_ms = int(since.timestamp() * 1000)
        orders: list[VenueOrder] = []
        fills: list[VenueFill] = []
        positions: dict[Symbol, float] = {}
        client_ids: dict[str | None, str | None] = {
            t.venue_id: t.order.client_order_id for t in self._book.values()
        }
        for symbol in sorted(self._known_symbols()):
            market = self._market(symbol)
            if market is None:
                continue
            sym = str(market["symbol"])
            for venue in self._call("fetch_open_orders", self._ex.fetch_open_orders, sym):
                coid = self._service_id(venue.get("clientOrderId"))
                client_ids.setdefault(_str_or_none(venue.get("id")), coid)
                orders.append(
                    VenueOrder(
                        client_order_id=coid,
                        order_id=str(venue.get("id")),
                        symbol=symbol,
                        side=Side.BUY if venue.get("side") == "buy" else Side.SELL,
                        amount=finite_number(venue.get("amount"), 0.0),
                        filled=finite_number(venue.get("filled"), 0.0),
                        limit_price=finite_number(venue.get("price"), 0.0) or None
                        if venue.get("type") == "limit"
                        else None,
                        status=str(venue.get("status") or "open"),
                    )
                )
            trades = [
                trade
                for start, until in futures.trade_windows(
                    since_ms, int(taken_at.timestamp() * 1000), self._futures
                )
                for trade in self._call(
                    "fetch_my_trades", self._ex.fetch_my_trades, sym, start, None, until
                )
            ]
            for trade in sorted(trades, key=lambda t: (t.get("timestamp") or 0, str(t.get("id")))):
                order_id = _str_or_none(trade.get("order"))
                if order_id not in client_ids:
                    try:
                        owner = self._call("fetch_order", self._ex.fetch_order, order_id, sym)
                    except ccxt.OrderNotFound:
                        owner = {}
                    client_ids[order_id] = self._service_id(owner.get("clientOrderId"))
                price = finite_number(trade.get("price"), 0.0)
                fee, _, _ = self._fee(trade, market, price)
                fills.append(
                    VenueFill(
                        trade_id=str(trade.get("id")),
                        client_order_id=client_ids[order_id],
                        order_id=str(order_id),
                        symbol=symbol,
                        side=Side.BUY if trade.get("side") == "buy" else Side.SELL,
                        quantity=finite_number(trade.get("amount"), 0.0),
                        price=price,
                        fee=fee,
                        at=_from_ms(trade.get("timestamp") or since_ms),
                    )
                )
            positions[symbol] = self._venue_quantity(symbol) or 0.0
        cash = (
            self._futures_cash()
            if self._futures
            else self._asset_total(self.settings.quote_currency)
        )
        return VenueState(
            taken_at=taken_at,
            fills_since=since,
            open_orders=tuple(orders),
            fills=tuple(fills),
            positions={s: q for s, q in positions.items() if q},
            cash=cash,
        )

    def _service_id(self, client_id: Any) -> str | None:
        """The service's client order id of an exchange client id (see `venue_client_id`)."""
        if not client_id:
            return None
        text = str(client_id)
        for tracked in self._book.values():
            if tracked.venue_client_id == text:
                return tracked.order.client_order_id
        prefix = self.settings.client_id_prefix
        if text.startswith(prefix) and not text[len(prefix) :].startswith(_HASHED_MARK):
            return text[len(prefix) :]
        return text

    # -- checks before sending --------------------------------------------------------------

    def _refusal(self, order: Order) -> str:
        """Why ``order`` is refused without sending anything, or ""."""
        coid = order.client_order_id
        if not math.isfinite(order.quantity) or order.quantity <= 0:
            return f"quantity must be positive, got {order.quantity}"
        if order.limit_price is not None and not (
            math.isfinite(order.limit_price) and order.limit_price > 0
        ):
            return f"limit price must be positive, got {order.limit_price}"
        if coid in self._book and not self._book[coid].done:
            return f"client order id {coid!r} is already open"
        market = self._market(order.symbol)
        if market is None:
            return f"unknown_market: {order.symbol} is not a market of {self._name}"
        settle = self.settings.quote_currency
        if not futures.fits(market, self.settings.market_type, settle):
            return (
                f"market_type: {market['symbol']} is a {futures.kind(market)} market, this "
                f"broker trades {futures.wanted_kind(self.settings.market_type, settle)} "
                "(execution.live.market)"
            )
        if market.get("quote") != self.settings.quote_currency:
            return (
                f"quote_currency: {market['symbol']} is quoted in {market.get('quote')}, the "
                f"account in {self.settings.quote_currency}"
            )
        sym = str(market["symbol"])
        try:
            amount = float(self._ex.amount_to_precision(sym, order.quantity))
        except ccxt.InvalidOrder:
            amount = 0.0
        limits = market.get("limits") or {}
        min_amount = finite_number((limits.get("amount") or {}).get("min"), 0.0)
        if amount <= 0 or amount < min_amount:
            return (
                f"min_amount: {order.quantity:g} {market['base']} rounds to {amount:g}, below "
                f"{sym}'s minimum amount {min_amount:g}"
            )
        price = order.limit_price
        if price is not None:
            price = float(self._ex.price_to_precision(sym, price))
        reference = price if price is not None else self._reference_price(order.symbol, sym)
        min_cost = finite_number((limits.get("cost") or {}).get("min"), 0.0)
        if reference is not None and amount * reference < min_cost:
            return (
                f"min_notional: {amount:g} {market['base']} x {reference:g} = "
                f"{amount * reference:g} {market['quote']}, below {sym}'s minimum notional "
                f"{min_cost:g}"
            )
        if order.side is Side.SELL and not self._futures:
            free = self._asset_free(str(market["base"]))
            if amount > free + self._tolerance(order.symbol):
                return (
                    f"spot_long_flat: selling {amount:g} {market['base']} needs that much held, "
                    f"{free:g} is free (spot accounts cannot go short)"
                )
        return ""

    def _reference_price(self, symbol: Symbol, market: str) -> float | None:
        """The price a market order's notional is checked at: the last close seen, else the
        ticker's last price."""
        if symbol in self._last_price:
            return self._last_price[symbol]
        try:
            ticker = self._call("fetch_ticker", self._ex.fetch_ticker, market)
        except ccxt.ExchangeError as exc:  # no ticker: the exchange's own check decides
            log.info("ccxt_broker.no_reference_price", market=market, reason=self._scrub(exc))
            return None
        last = finite_number(ticker.get("last") or ticker.get("close"), 0.0)
        return last or None

    # -- the order path ---------------------------------------------------------------------

    def _place(
        self, market: Mapping[str, Any], order: Order, client_id: str
    ) -> tuple[Order, dict[str, Any]] | str:
        """Send ``order``; the rounded order and the exchange's answer, or the exchange's
        refusal as a reason. Unknown outcomes are looked up by ``client_id`` before a resend."""
        sym = str(market["symbol"])
        amount = float(self._ex.amount_to_precision(sym, order.quantity))
        price = (
            float(self._ex.price_to_precision(sym, order.limit_price))
            if order.limit_price is not None
            else None
        )
        rounded = replace(order, quantity=amount, limit_price=price)
        kind = "market" if price is None else "limit"
        params = {"newClientOrderId": client_id}
        sent = 0
        while True:
            sent += 1
            try:
                venue = self._ex.create_order(sym, kind, order.side.value, amount, price, params)
                return rounded, dict(venue)
            except ccxt.AuthenticationError as exc:
                raise ExchangeAccountError(self._name, self._scrub(exc)) from exc
            except (ccxt.InsufficientFunds, ccxt.InvalidOrder) as exc:
                if sent > 1:  # a duplicate client id after a resend: the first send got through
                    found = self._lookup(sym, client_id)
                    if found is not None:
                        return rounded, found
                return f"exchange_rejected: {self._scrub(exc)}"
            except (ccxt.DDoSProtection, ccxt.RateLimitExceeded) as exc:
                # refused before the exchange processed it: resending is safe
                self._backoff("create_order", sent, exc)
            except ccxt.NetworkError as exc:
                # timeout, lost connection, 5xx: the order may exist; look before resending
                found = self._lookup(sym, client_id)
                if found is not None:
                    log.info("ccxt_broker.found_after_error", client_id=client_id)
                    return rounded, found
                self._backoff("create_order", sent, exc)
            except ccxt.ExchangeError as exc:
                return f"exchange_rejected: {self._scrub(exc)}"

    def _lookup(self, market: str, client_id: str) -> dict[str, Any] | None:
        """The exchange's order with ``client_id``, or None if it has none."""
        try:
            found = self._call(
                "fetch_order",
                self._ex.fetch_order,
                None,
                market,
                {"origClientOrderId": client_id},
            )
        except ccxt.OrderNotFound:
            return None
        return dict(found) if found else None

    def _cancel(self, tracked: _Tracked) -> bool:
        """Cancel a booked order; False if it was no longer open (filled meanwhile). It stays
        in the book until its trades are reported."""
        ok = self._cancel_venue(tracked.market, tracked.venue_id, tracked.venue_client_id)
        tracked.cancelled = True
        return ok

    def _cancel_venue(self, market: str, venue_id: Any, client_id: str) -> bool:
        params = {} if venue_id else {"origClientOrderId": client_id}
        try:
            self._call(
                "cancel_order", self._ex.cancel_order, _str_or_none(venue_id), market, params
            )
        except ccxt.OrderNotFound:
            return False
        except ccxt.InvalidOrder as exc:  # e.g. "Unknown order sent": already closed
            log.info("ccxt_broker.cancel_refused", client_id=client_id, reason=self._scrub(exc))
            return False
        log.info("ccxt_broker.cancelled", client_id=client_id)
        return True

    # -- fills ------------------------------------------------------------------------------

    # -- pushed by the order stream ----------------------------------------------------------

    def _take_pushed(self) -> None:
        """Collect what the order stream pushed since the last bar: trades (kept until the bar
        of their order's symbol books them) and the latest state of each of our orders."""
        if self._stream is None:
            return
        self._pushed.extend(self._stream.drain())
        ours = {t.venue_id: t.venue_client_id for t in self._book.values() if t.venue_id}
        client_ids = set(ours.values())
        for update in self._stream.order_updates():
            client_id = ours.get(str(update.get("id"))) or update.get("clientOrderId")
            if client_id in client_ids:
                self._pushed_states[str(client_id)] = update

    def _pushed_fills(self, tracked: _Tracked) -> list[Fill]:
        """Book the pushed trades of ``tracked`` (each once: the same seen-trade ids as REST);
        done when the stream reported it closed and all of its fills are booked."""
        if self._stream is None:
            return []
        fills: list[Fill] = []
        others: deque[dict[str, Any]] = deque(maxlen=PUSHED_TRADES)
        for trade in self._pushed:
            order_id = _str_or_none(trade.get("order"))
            mine = (order_id is not None and order_id == tracked.venue_id) or (
                trade.get("clientOrderId") == tracked.venue_client_id
            )
            if not mine:
                others.append(trade)
            elif (trade_id := str(trade.get("id"))) not in tracked.seen_trades:
                tracked.seen_trades.add(trade_id)
                fills.append(self._book_trade(tracked, trade))
        self._pushed = others
        state = self._pushed_states.get(tracked.venue_client_id)
        if state is not None:
            said = finite_number(state.get("filled"), 0.0)
            tracked.venue_filled = max(tracked.venue_filled, said)
            if str(state.get("status")) in _TERMINAL:
                pushed_filled = finite_number(state.get("filled"), math.inf)
                if tracked.filled >= pushed_filled - self._tolerance(tracked.order.symbol):
                    tracked.done = True
        if fills:
            self._forget_account()
        return fills

    def _covered(self, tracked: _Tracked) -> bool:
        """No REST poll needed: the stream has been subscribed since the order's trades were
        last known, has not reported it finished with fills still missing, and the exchange
        has not said more is filled than is booked. Such trades are owed now: waiting on the
        push would book them a bar late (or later, where bars come faster than the push, as
        in a replay), and the next signal would be decided on a position the account no
        longer holds."""
        if self._stream is None or not self._stream.covers(tracked.known_at):
            return False
        if tracked.venue_filled > tracked.filled + self._tolerance(tracked.order.symbol):
            return False
        state = self._pushed_states.get(tracked.venue_client_id)
        return state is None or str(state.get("status")) not in _TERMINAL

    def _poll(self, tracked: _Tracked) -> list[Fill]:
        """Report ``tracked``'s new trades; mark it done once closed and fully reported."""
        tracked.known_at = self._clock.now()
        if tracked.venue_id:
            venue = self._call(
                "fetch_order", self._ex.fetch_order, tracked.venue_id, tracked.market
            )
        else:
            venue = self._lookup(tracked.market, tracked.venue_client_id)
            if venue is None:
                tracked.done = True
                return []
            tracked.venue_id = _str_or_none(venue.get("id"))
        filled = finite_number(venue.get("filled"), 0.0)
        tracked.venue_filled = max(tracked.venue_filled, filled)
        fills: list[Fill] = []
        tolerance = self._tolerance(tracked.order.symbol)
        if filled > tracked.filled + tolerance:
            for trade in self._trades(tracked):
                trade_id = str(trade.get("id"))
                if trade_id not in tracked.seen_trades:
                    tracked.seen_trades.add(trade_id)
                    fills.append(self._book_trade(tracked, trade))
        if str(venue.get("status")) in _TERMINAL and tracked.filled >= filled - tolerance:
            tracked.done = True
        if fills:
            self._forget_account()
        return fills

    def _trades(self, tracked: _Tracked) -> list[dict[str, Any]]:
        """The exchange's trades of ``tracked``, oldest first."""
        params = {"orderId": tracked.venue_id} if tracked.venue_id else {}
        trades = self._call(
            "fetch_my_trades", self._ex.fetch_my_trades, tracked.market, None, None, params
        )
        mine = [dict(t) for t in trades if str(t.get("order")) == str(tracked.venue_id)]
        return sorted(mine, key=lambda t: (t.get("timestamp") or 0, str(t.get("id"))))

    def _book_trade(self, tracked: _Tracked, trade: Mapping[str, Any]) -> Fill:
        order = tracked.order
        amount = finite_number(trade.get("amount"), 0.0)
        price = finite_number(trade.get("price"), 0.0)
        market = self._market(order.symbol) or {}
        fee_quote, fee_base, fee_paid_in_quote = self._fee(trade, market, price)
        self._open_ledger()
        assert self._cash is not None
        held = self._positions.get(order.symbol, Position())
        # a fee taken in the base asset leaves that much less held (Binance's default on buys);
        # cash pays the notional and only the part of the fee charged in the quote currency
        delta = signed(order.side, amount) - fee_base
        self._positions[order.symbol], _ = apply_fill(held, delta, price, fee_quote)
        self._cash -= signed(order.side, amount) * price + fee_paid_in_quote
        tracked.filled += amount
        timestamp = trade.get("timestamp")
        at = _from_ms(timestamp) if timestamp else self._clock.now()
        log.info(
            "ccxt_broker.fill",
            client_order_id=order.client_order_id,
            trade_id=trade.get("id"),
            quantity=amount,
            price=price,
            fee=fee_quote,
        )
        return Fill(order.client_order_id, order.symbol, order.side, amount, price, fee_quote, at)

    def _fee(
        self, trade: Mapping[str, Any], market: Mapping[str, Any], price: float
    ) -> tuple[float, float, float]:
        """The trade's fees in quote currency, the part of them paid in base units, and the
        part paid in the quote currency itself (what leaves cash)."""
        fees = trade.get("fees") or ([trade["fee"]] if trade.get("fee") else [])
        quote_total, base_units, in_quote = 0.0, 0.0, 0.0
        for entry in fees:
            cost = finite_number((entry or {}).get("cost"), 0.0)
            currency = (entry or {}).get("currency")
            if not cost:
                continue
            if currency in (None, market.get("quote")):
                quote_total += cost
                in_quote += cost
            elif currency == market.get("base"):
                quote_total += cost * price
                base_units += cost
            else:
                quote_total += cost * self._conversion(str(currency))
        return quote_total, base_units, in_quote

    def _conversion(self, currency: str) -> float:
        """The quote-currency price of a fee currency such as BNB (its ticker's last price);
        0 with a warning when the exchange lists no such market."""
        pair = f"{currency}/{self.settings.quote_currency}"
        try:
            ticker = self._call("fetch_ticker", self._ex.fetch_ticker, pair)
        except ccxt.ExchangeError:
            log.warning("ccxt_broker.fee_unconverted", currency=currency, pair=pair)
            return 0.0
        return finite_number(ticker.get("last"), 0.0)

    # -- balances and markets ---------------------------------------------------------------

    def _open_ledger(self) -> None:
        """Open a fresh broker's ledger at the exchange's balances: the quote cash, and the base
        holdings of the known symbols at the reference price (a holding bought before this
        account existed has no recorded price); futures: the signed positions at their entry
        prices and `ccxt_futures.ledger_cash`. A restored broker keeps its snapshot's."""
        if self._cash is not None:
            return
        if self._futures:
            self._cash = self._futures_cash()
            for symbol in sorted(self._known_symbols()):
                venue = self._venue_position(symbol)
                if venue is not None and venue.quantity and symbol not in self._positions:
                    self._positions[symbol] = Position(venue.quantity, venue.entry_price)
            return
        self._cash = self._asset_total(self.settings.quote_currency)
        for symbol in sorted(self._known_symbols()):
            market = self._market(symbol)
            held = self._venue_quantity(symbol) if market else None
            if held and symbol not in self._positions:
                price = self._reference_price(symbol, str(market["symbol"])) if market else None
                self._positions[symbol] = Position(quantity=held, avg_price=price or 0.0)

    def _balances(self) -> dict[str, Any]:
        """The account's balances, read once per bar and after each of our own actions."""
        if self._balance is None:
            self._balance = dict(self._call("fetch_balance", self._ex.fetch_balance))
        return self._balance

    def _forget_account(self) -> None:
        """Drop the balances and positions read: the next look reads them again."""
        self._balance = None
        self._venue_positions = None

    def _futures_positions(self) -> dict[str, VenuePosition]:
        """The exchange's signed positions by ccxt market symbol, read like the balances."""
        if self._venue_positions is None:
            raw = self._call("fetch_positions", self._ex.fetch_positions)
            self._venue_positions = futures.signed_positions([dict(r) for r in raw or []])
        return self._venue_positions

    def _venue_position(self, symbol: Symbol) -> VenuePosition | None:
        """The exchange's position in ``symbol``'s swap (flat if none); None if not listed."""
        market = self._market(symbol)
        if market is None:
            return None
        return self._futures_positions().get(str(market["symbol"]), VenuePosition(0.0, 0.0))

    def _futures_cash(self) -> float:
        """The exchange's account as ledger cash: wallet less the positions' entry cost."""
        positions = self._futures_positions()
        wallet = futures.wallet_balance(self._balances(), self.settings.quote_currency, positions)
        return futures.ledger_cash(wallet, positions)

    def _asset_total(self, asset: str) -> float:
        return finite_number((self._balances().get("total") or {}).get(asset), 0.0)

    def _asset_free(self, asset: str) -> float:
        return finite_number((self._balances().get("free") or {}).get(asset), 0.0)

    def _venue_quantity(self, symbol: Symbol) -> float | None:
        """The exchange's holding of ``symbol`` (base units; futures: signed position)."""
        if self._futures:
            held = self._venue_position(symbol)
            return None if held is None else held.quantity
        market = self._market(symbol)
        return self._asset_total(str(market["base"])) if market else None

    def _known_symbols(self) -> set[Symbol]:
        configured = {Symbol(s) for s in self.settings.symbols}
        return set(self._positions) | {t.order.symbol for t in self._book.values()} | configured

    def _tolerance(self, symbol: Symbol) -> float:
        """Half the market's amount step (base units): differences below it are rounding."""
        market = self._market(symbol) or {}
        step = finite_number((market.get("precision") or {}).get("amount"), 0.0)
        return step / 2 if 0 < step < 1 else 1e-12

    def load_markets(self) -> None:
        """Load the exchange's markets once, with the bounded retries of every call (a rate
        limit or a 5xx at start is as transient as one later; refused credentials fail at
        once with `ExchangeAccountError`)."""
        if not self._markets_loaded:
            self._call("load_markets", self._ex.load_markets)
            self._markets_loaded = True
            if self._futures:
                self._prepare_futures_account()

    def _prepare_futures_account(self) -> None:
        """One-way mode checked and ``leverage`` set (`ccxt_futures.prepare_account`)."""
        markets = [m for s in self.settings.symbols if (m := self._market(Symbol(s)))]
        futures.prepare_account(
            self._ex, self._call, self._name, markets, self.settings, self._scrub
        )

    def _market(self, symbol: Symbol) -> dict[str, Any] | None:
        """The ccxt market of a project symbol (``BTCUSDT`` or ``BTC/USDT``): among those with
        that id, the kind this broker trades first (spot, or the linear swap settled in the
        quote currency)."""
        if symbol in self._markets:
            return self._markets[symbol]
        self.load_markets()
        wanted = symbol.replace("/", "")
        matches = [
            m
            for m in (self._ex.markets or {}).values()
            if wanted in (str(m.get("id", "")).upper(), str(m.get("symbol", "")).replace("/", ""))
        ]
        if not matches:
            return None
        kind, settle = self.settings.market_type, self.settings.quote_currency
        matches.sort(key=lambda m: futures.preference(m, kind, settle))
        self._markets[symbol] = dict(matches[0])
        return self._markets[symbol]

    # -- calls, retries, messages -----------------------------------------------------------

    def _call(self, what: str, method: Callable[..., Any], *args: Any) -> Any:
        """``method(*args)`` with bounded retries of transient errors (rate limits, 5xx,
        network); refused credentials raise `ExchangeAccountError`, other refusals propagate
        as ccxt errors for the caller to judge."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return method(*args)
            except ccxt.AuthenticationError as exc:
                raise ExchangeAccountError(self._name, self._scrub(exc)) from exc
            except ccxt.NetworkError as exc:
                self._backoff(what, attempt, exc)

    def _backoff(self, what: str, attempt: int, exc: BaseException) -> None:
        """Sleep before try ``attempt + 1``, or raise `ExchangeUnavailableError` past the last:
        ``first_backoff_s * 2**(attempt-1)`` capped at ``max_backoff_s``, at least the
        exchange's ``Retry-After`` (seconds) on a rate-limit answer."""
        s = self.settings
        if attempt >= s.max_attempts:
            raise ExchangeUnavailableError(self._name, what, attempt, self._scrub(exc)) from exc
        delay = min(s.first_backoff_s * 2 ** (attempt - 1), s.max_backoff_s)
        if isinstance(exc, ccxt.DDoSProtection):
            delay = max(delay, self._retry_after())
        log.warning(
            "ccxt_broker.retry",
            call=what,
            attempt=attempt,
            max_attempts=s.max_attempts,
            delay_s=delay,
            error=f"{type(exc).__name__}: {self._scrub(exc)}",
        )
        self._sleep(delay)

    def _retry_after(self) -> float:
        headers = getattr(self._ex, "last_response_headers", None) or {}
        for key, value in dict(headers).items():
            if str(key).lower() == "retry-after":
                try:
                    return max(float(value), 0.0)
                except (TypeError, ValueError):
                    return 0.0
        return 0.0

    def _scrub(self, exc: BaseException) -> str:
        """An exchange error's first line without query strings (signed requests carry a
        signature there) and with the client's key and secret masked wherever they appear."""
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        text = re.sub(r"(https?://[^\s?'\"]+)\?[^\s'\"]*", r"\1", text)
        for secret in (getattr(self._ex, "apiKey", None), getattr(self._ex, "secret", None)):
            if secret:
                text = text.replace(str(secret), MASK)
        text = mask_secrets(text)
        return text if len(text) <= 300 else text[:299] + "…"


def _order_of(venue: Mapping[str, Any], symbol: Symbol, coid: str) -> Order:
    """An exchange order of ours that the book does not hold, as an `Order`."""
    side = Side.BUY if str(venue.get("side")) == "buy" else Side.SELL
    remaining = finite_number(venue.get("remaining"), finite_number(venue.get("amount"), 0.0))
    price = venue.get("price") if venue.get("type") == "limit" else None
    return Order(coid, symbol, side, remaining, float(price) if price else None)


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _from_ms(ms: Any) -> datetime:
    return datetime.fromtimestamp(float(ms) / 1000, tz=UTC)
