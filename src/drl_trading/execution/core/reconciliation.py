"""Reconciliation of the local book with the venue's account, as pure functions.

Why: a live service can stop between sending an order and recording its acknowledgement, miss
fills while it is down, or find that someone traded the account by hand. At start and every few
bars the service compares what it believes (`LocalBook`: its portfolio snapshot and the ORDER and
FILL records it committed) with what an exchange adapter reads from the venue (`VenueState`), and
`reconcile` says what to do:

- an order we hold open that the venue no longer lists was filled or cancelled while we were away:
  its fills (from the venue's trade list) are adopted, and the rest of it is cancelled locally;
- an order of ours (client order id with our prefix) that the venue holds open but we never
  recorded was sent before a crash whose acknowledgement was lost: it is adopted as an ORDER;
- a fill of ours we have not recorded is adopted once, in trade time order; its identity is its
  FILL record id (`fill_record_id`: client order id and trade time, what the service writes for
  every fill), so a fill already recorded, by the normal path or an earlier reconciliation, is
  never adopted again;
- orders and fills that are not ours (another prefix, or no client order id: a manual trade) are
  reported and left alone; their effect on balances shows in the differences;
- after adopting, every position (base units) and the quote cash are compared with the venue's:
  a difference beyond `ReconcileTolerance` means the account changed behind the service's back,
  and the verdict is to halt, with the numbers in the reasons.

`adopt` turns a `Reconciliation` into the trade records and the portfolio snapshot to commit, with
the same accounting as a normal fill (`accounting.apply_fill`, cash moved by notional and fee).

Units: quantities in base units, prices and cash in the quote currency, times aware UTC.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from drl_trading.common.domain import Order, Side, Symbol, to_micros, utc
from drl_trading.execution.core.accounting import apply_fill, signed
from drl_trading.execution.core.records import (
    PortfolioSnapshot,
    Position,
    RecordKind,
    TradeRecord,
)

OUR_PREFIXES: tuple[str, ...] = ("sig-", "flat-")
"""Client order id prefixes the execution service uses (a signal's order, a halt's flatten)."""


def fill_record_id(client_order_id: str, filled_at: datetime) -> str:
    """The id of a fill's FILL record: one per order and trade time (microseconds)."""
    return f"fill:{client_order_id}:{to_micros(filled_at)}"


def fill_record(
    record_id: str,
    *,
    symbol: Symbol,
    at: datetime,
    client_order_id: str | None,
    side: Side,
    quantity: float,
    price: float,
    fee: float,
    realised_pnl: float,
    origin: TradeRecord | None,
    unattributed_check: str,
    reason: str = "",
) -> TradeRecord:
    """The FILL record of a fill, live or adopted: it inherits the signal, model version, risk
    check and signal time of its ORDER record ``origin``; without one, ``unattributed_check``
    stands as the risk check. Quantity in base units, price and fee in quote currency."""
    return TradeRecord(
        record_id=record_id,
        kind=RecordKind.FILL,
        symbol=symbol,
        at=at,
        client_order_id=client_order_id,
        signal_id=origin.signal_id if origin else None,
        side=side,
        quantity=quantity,
        price=price,
        fee=fee,
        realised_pnl=realised_pnl,
        model_version=origin.model_version if origin else None,
        risk_check=origin.risk_check if origin else unattributed_check,
        reason=reason,
        signal_time=origin.signal_time if origin else None,
    )


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """An order as the venue lists it. ``amount`` and ``filled`` in base units, ``limit_price``
    in quote (None for a market order); ``status`` is ccxt's unified one (open, closed, canceled,
    expired, rejected). ``client_order_id`` is None for an order placed without one (by hand)."""

    client_order_id: str | None
    order_id: str
    symbol: Symbol
    side: Side
    amount: float
    filled: float = 0.0
    limit_price: float | None = None
    status: str = "open"

    @property
    def remaining(self) -> float:
        """Base units still to fill (never negative)."""
        return max(self.amount - self.filled, 0.0)


@dataclass(frozen=True, slots=True)
class VenueFill:
    """One trade of the account as the venue lists it: ``quantity`` in base units (unsigned,
    ``side`` gives the direction), ``price`` and ``fee`` in quote (the adapter converts a fee paid
    in another asset), ``at`` the venue's trade time."""

    trade_id: str
    client_order_id: str | None
    order_id: str
    symbol: Symbol
    side: Side
    quantity: float
    price: float
    fee: float
    at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", utc(self.at))


@dataclass(frozen=True, slots=True)
class VenueState:
    """The venue's view of the account, read at ``taken_at``: its open orders, its trades at or
    after ``fills_since``, the holding of each traded symbol (signed base units; a spot symbol's
    base asset balance) and the quote cash. A symbol absent from ``positions`` holds nothing."""

    taken_at: datetime
    fills_since: datetime
    open_orders: tuple[VenueOrder, ...] = ()
    fills: tuple[VenueFill, ...] = ()
    positions: Mapping[Symbol, float] = field(default_factory=dict)
    cash: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "taken_at", utc(self.taken_at))
        object.__setattr__(self, "fills_since", utc(self.fills_since))


@dataclass(frozen=True, slots=True)
class LocalBook:
    """What the service believes: its portfolio, the ORDER records of the client order ids the
    venue state mentions (by client order id: an adopted fill inherits its signal), and the ids
    of the FILL records committed at or after the venue state's ``fills_since``."""

    portfolio: PortfolioSnapshot
    orders: Mapping[str, TradeRecord] = field(default_factory=dict)
    fill_ids: frozenset[str] = frozenset()

    @staticmethod
    def of(portfolio: PortfolioSnapshot, records: Iterable[TradeRecord]) -> LocalBook:
        """From a snapshot and records (ORDER and FILL ones are kept, the rest ignored)."""
        orders: dict[str, TradeRecord] = {}
        fills: set[str] = set()
        for r in records:
            if r.kind is RecordKind.ORDER and r.client_order_id is not None:
                orders[r.client_order_id] = r
            elif r.kind is RecordKind.FILL:
                fills.add(r.record_id)
        return LocalBook(portfolio, orders, frozenset(fills))


@dataclass(frozen=True, slots=True)
class ReconcileTolerance:
    """How far the venue may differ from the local book after adopting, before trading halts.

    A position is within tolerance when ``|venue - local| <= max(abs_units, relative ×
    max(|local|, |venue|))``, ``abs_units`` being ``position_units[symbol]`` or else
    ``default_units`` (base units); cash when ``|venue - local| <= cash_relative × max(|local|,
    |venue|)`` (+ ``cash_units``, quote). The defaults absorb the venue's rounding of amounts
    and fees (1e-8 units, 1 bp) but not one real trade (a minimum order is ~10 quote).
    """

    default_units: float = 1e-8
    position_units: Mapping[Symbol, float] = field(default_factory=dict)
    position_relative: float = 1e-4
    cash_relative: float = 1e-4
    cash_units: float = 1e-6

    def units(self, symbol: Symbol) -> float:
        return self.position_units.get(symbol, self.default_units)


@dataclass(frozen=True, slots=True)
class Difference:
    """A position (``symbol``) or the cash (``symbol`` None) compared after adopting: local and
    venue values, their absolute difference (base units or quote) and relative difference (of the
    larger magnitude; 0 when both are 0)."""

    symbol: Symbol | None
    local: float
    venue: float
    within: bool

    @property
    def absolute(self) -> float:
        return abs(self.venue - self.local)

    @property
    def relative(self) -> float:
        scale = max(abs(self.local), abs(self.venue))
        return self.absolute / scale if scale > 0 else 0.0

    def describe(self) -> str:
        what = "cash" if self.symbol is None else f"{self.symbol} position"
        return (
            f"{what}: local {self.local:.10g}, venue {self.venue:.10g} "
            f"(difference {self.venue - self.local:+.10g}, {self.relative:.4%})"
        )


@dataclass(frozen=True, slots=True)
class ResolvedOrder:
    """An order we held open that the venue no longer lists: ``filled`` base units of it were
    found in the venue's fills (adopted now or recorded before); the rest is cancelled."""

    order: Order
    filled: float

    @property
    def resolution(self) -> str:
        return "filled" if self.filled >= self.order.quantity * (1 - 1e-9) else "cancelled"


@dataclass(frozen=True, slots=True)
class AdoptedFill:
    """A fill of ours the service had not recorded, with its record id and the price PnL it
    realises when booked in trade time order (quote, before fees)."""

    fill: VenueFill
    record_id: str
    realised_pnl: float


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """The report of one reconciliation: what was adopted, what is foreign, the differences that
    remain, the portfolio after adopting, and the verdict (``halt_reasons`` empty: ok)."""

    taken_at: datetime
    fills_since: datetime
    resolved_orders: tuple[ResolvedOrder, ...]
    adopted_orders: tuple[VenueOrder, ...]
    adopted_fills: tuple[AdoptedFill, ...]
    already_recorded: int
    """Fills of ours in the venue's list that were recorded before (not adopted)."""
    foreign_orders: tuple[VenueOrder, ...]
    foreign_fills: tuple[VenueFill, ...]
    differences: tuple[Difference, ...]
    portfolio: PortfolioSnapshot
    halt_reasons: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.halt_reasons

    @property
    def adopts_anything(self) -> bool:
        return bool(self.resolved_orders or self.adopted_orders or self.adopted_fills)

    def summary(self) -> str:
        """One line for logs and `live status`."""
        head = "ok" if self.ok else "HALT: " + "; ".join(self.halt_reasons)
        return (
            f"reconciliation {head} (adopted {len(self.adopted_fills)} fill(s), "
            f"{len(self.adopted_orders)} order(s); {len(self.resolved_orders)} order(s) closed "
            f"while away; {len(self.foreign_orders)} foreign order(s) left alone)"
        )


def is_ours(client_order_id: str | None, our_prefix: str | tuple[str, ...]) -> bool:
    return client_order_id is not None and client_order_id.startswith(our_prefix)


def reconcile(
    local: LocalBook,
    venue: VenueState,
    *,
    our_prefix: str | tuple[str, ...] = OUR_PREFIXES,
    tolerance: ReconcileTolerance | None = None,
) -> Reconciliation:
    """Compare ``local`` with ``venue`` and say what to adopt and whether to halt (see module)."""
    tol = tolerance if tolerance is not None else ReconcileTolerance()
    halts: list[str] = []
    foreign_orders = tuple(
        o for o in venue.open_orders if not is_ours(o.client_order_id, our_prefix)
    )
    ours_open = {
        o.client_order_id: o
        for o in venue.open_orders
        if o.client_order_id is not None and is_ours(o.client_order_id, our_prefix)
    }

    fills, foreign_fills, recorded = _new_fills(local, venue, our_prefix)
    positions = dict(local.portfolio.positions)
    cash = local.portfolio.cash
    adopted: list[AdoptedFill] = []
    for record_id, f in fills:
        held = positions.get(f.symbol, Position())
        positions[f.symbol], realised = apply_fill(held, signed(f.side, f.quantity), f.price, f.fee)
        cash -= signed(f.side, f.quantity) * f.price + f.fee
        adopted.append(AdoptedFill(f, record_id, realised))

    filled_by_order: dict[str, float] = {}
    for f in venue.fills:
        if f.client_order_id is not None and f.at >= venue.fills_since:
            filled_by_order[f.client_order_id] = filled_by_order.get(f.client_order_id, 0.0)
            filled_by_order[f.client_order_id] += f.quantity
    local_open = {o.client_order_id: o for o in local.portfolio.open_orders}
    resolved = tuple(
        ResolvedOrder(o, min(filled_by_order.get(coid, 0.0), o.quantity))
        for coid, o in local_open.items()
        if coid not in ours_open
    )
    adopted_orders: list[VenueOrder] = []
    open_orders: list[Order] = []
    for coid, vo in ours_open.items():
        if coid not in local_open and coid in local.orders:
            halts.append(
                f"order {coid} ({vo.symbol}) is open on the venue but closed here: cancel it on "
                "the venue or resume once it is understood"
            )
        elif coid not in local_open:
            adopted_orders.append(vo)
        open_orders.append(Order(coid, vo.symbol, vo.side, vo.remaining, vo.limit_price))

    # an order sent before a crash and filled while down: no longer open, never recorded
    gone: dict[str, list[VenueFill]] = {}
    for a in adopted:
        sent = a.fill.client_order_id
        if sent is not None and sent not in local.orders and sent not in ours_open:
            gone.setdefault(sent, []).append(a.fill)
    for sent, fs in gone.items():
        qty = sum(f.quantity for f in fs)
        adopted_orders.append(
            VenueOrder(sent, fs[0].order_id, fs[0].symbol, fs[0].side, qty, qty, None, "closed")
        )

    differences = _differences(positions, cash, venue, tol)
    halts += [
        f"{d.describe()} beyond tolerance: changed behind the service's back?"
        for d in differences
        if not d.within
    ]
    return Reconciliation(
        taken_at=venue.taken_at,
        fills_since=venue.fills_since,
        resolved_orders=resolved,
        adopted_orders=tuple(adopted_orders),
        adopted_fills=tuple(adopted),
        already_recorded=recorded,
        foreign_orders=foreign_orders,
        foreign_fills=foreign_fills,
        differences=differences,
        portfolio=PortfolioSnapshot(cash, positions, tuple(open_orders)),
        halt_reasons=tuple(halts),
    )


def _new_fills(
    local: LocalBook, venue: VenueState, our_prefix: str | tuple[str, ...]
) -> tuple[list[tuple[str, VenueFill]], tuple[VenueFill, ...], int]:
    """Our unrecorded fills in trade time order with their record ids, the foreign fills, and how
    many of ours were recorded already. A trade listed twice (by trade id) counts once; a trade
    before ``fills_since`` is outside the window whose records were compared, so it is skipped
    (adopting it could book it twice)."""
    seen: set[tuple[str, str]] = set()
    ordered: list[VenueFill] = []
    for f in sorted(venue.fills, key=lambda f: (f.at, f.trade_id)):
        key = (f.symbol, f.trade_id)
        if key in seen or f.at < venue.fills_since:
            continue
        seen.add(key)
        ordered.append(f)
    foreign = tuple(f for f in ordered if not is_ours(f.client_order_id, our_prefix))
    taken: set[str] = set()
    new: list[tuple[str, VenueFill]] = []
    recorded = 0
    for f in ordered:
        if f.client_order_id is None or not is_ours(f.client_order_id, our_prefix):
            continue
        record_id = fill_record_id(f.client_order_id, f.at)
        if record_id in taken:  # two trades of one order in the same microsecond
            record_id = f"{record_id}:{f.trade_id}"
        taken.add(record_id)
        if record_id in local.fill_ids:
            recorded += 1
        else:
            new.append((record_id, f))
    return new, foreign, recorded


def _differences(
    positions: Mapping[Symbol, Position],
    cash: float,
    venue: VenueState,
    tol: ReconcileTolerance,
) -> tuple[Difference, ...]:
    out: list[Difference] = []
    for symbol in sorted(set(positions) | set(venue.positions)):
        here = positions[symbol].quantity if symbol in positions else 0.0
        there = float(venue.positions.get(symbol, 0.0))
        bound = max(tol.units(symbol), tol.position_relative * max(abs(here), abs(there)))
        out.append(Difference(symbol, here, there, _within(here, there, bound)))
    cash_bound = tol.cash_units + tol.cash_relative * max(abs(cash), abs(venue.cash))
    out.append(Difference(None, cash, venue.cash, _within(cash, venue.cash, cash_bound)))
    return tuple(out)


def _within(a: float, b: float, bound: float) -> bool:
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= bound


@dataclass(frozen=True, slots=True)
class Adoption:
    """What to commit for a reconciliation: the records (ORDER for each adopted order, FILL for
    each adopted fill, CANCEL for the unfilled rest of a resolved order) and the portfolio."""

    portfolio: PortfolioSnapshot
    records: tuple[TradeRecord, ...]


def adopt(rec: Reconciliation, orders: Mapping[str, TradeRecord], at: datetime) -> Adoption:
    """The records and snapshot that apply ``rec``. ``orders`` holds the ORDER records by client
    order id (an adopted fill takes its signal, model and risk check from its order, as a normal
    fill does); ``at`` stamps the ORDER and CANCEL records (the service's clock). A halting
    reconciliation is adopted too: the fills happened, whatever else is wrong."""
    micros = to_micros(at)
    records: list[TradeRecord] = []
    for vo in rec.adopted_orders:
        coid = vo.client_order_id or vo.order_id
        records.append(
            TradeRecord(
                record_id=f"order:{coid}",
                kind=RecordKind.ORDER,
                symbol=vo.symbol,
                at=at,
                client_order_id=coid,
                side=vo.side,
                quantity=vo.amount,
                price=vo.limit_price,
                risk_check="reconciliation",
                reason=f"adopted: open on the venue (order {vo.order_id}) but never recorded",
            )
        )
    known = {**orders, **{r.client_order_id: r for r in records if r.client_order_id}}
    for a in rec.adopted_fills:
        f = a.fill
        records.append(
            fill_record(
                a.record_id,
                symbol=f.symbol,
                at=f.at,
                client_order_id=f.client_order_id,
                side=f.side,
                quantity=f.quantity,
                price=f.price,
                fee=f.fee,
                realised_pnl=a.realised_pnl,
                origin=known.get(f.client_order_id or ""),
                unattributed_check="reconciliation",
                reason=f"adopted by reconciliation (trade {f.trade_id})",
            )
        )
    for r in rec.resolved_orders:
        rest = r.order.quantity - r.filled
        if r.resolution == "filled" or rest <= 0:
            continue
        records.append(
            TradeRecord(
                record_id=f"cancel:{r.order.client_order_id}:{micros}",
                kind=RecordKind.CANCEL,
                symbol=r.order.symbol,
                at=at,
                client_order_id=r.order.client_order_id,
                side=r.order.side,
                quantity=rest,
                price=r.order.limit_price,
                risk_check="reconciliation",
                reason=f"not open on the venue; {r.filled:.10g} of {r.order.quantity:.10g} filled",
            )
        )
    return Adoption(rec.portfolio, tuple(records))


def relevant_order_ids(venue: VenueState, portfolio: PortfolioSnapshot) -> set[str]:
    """The client order ids whose ORDER records a `LocalBook` for ``venue`` needs."""
    ids = {o.client_order_id for o in venue.open_orders if o.client_order_id is not None}
    ids |= {f.client_order_id for f in venue.fills if f.client_order_id is not None}
    return ids | {o.client_order_id for o in portfolio.open_orders}


@dataclass(frozen=True, slots=True)
class ReconcilePolicy:
    """When and how strictly the execution service reconciles: at its first bar or signal, then
    after every ``every_bars`` bars it processed (any symbol's); the venue's fills are read from
    the previous reconciliation (at start: the last bar the account saw, else now) minus
    ``lookback``, which covers a clock skew or a late trade report."""

    every_bars: int = 60
    lookback: timedelta = timedelta(hours=1)
    our_prefix: str | tuple[str, ...] = OUR_PREFIXES
    tolerance: ReconcileTolerance = field(default_factory=ReconcileTolerance)


@dataclass(frozen=True, slots=True)
class ReconciliationRecord:
    """A reconciliation's report as the execution store keeps it, for another process
    (`drl-trading live status`, `trades`) to show: ``at`` is when the venue state was read
    (UTC), ``ok`` the verdict, ``summary`` `Reconciliation.summary`'s line, and ``details`` JSON
    values only (str, int, float, bool, None, lists and dicts of them; a non-finite number as its
    text), so every store keeps and returns it exactly. The keys (`reconciliation_record`):
    ``fills_since`` (ISO time), ``adopted_orders`` (client order ids), ``adopted_fills`` (FILL
    record ids), ``closed_while_away`` (client order id, resolution, filled and ordered base
    units), ``already_recorded`` (count), ``foreign_orders`` and ``foreign_fills`` (venue ids,
    symbol, side, base units), ``differences`` (symbol, None for the cash; local and venue
    values; within tolerance), ``halt_reasons`` (all) and ``order_conflicts`` (the reasons that
    are not a difference: an order open on the venue but closed here)."""

    at: datetime
    ok: bool
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", utc(self.at))

    def headline(self) -> str:
        """One line for a status display: ``reconciliation 2026-12-01 19:30 UTC: ok (1 adopted,
        0 foreign)``, or what halted it (``HALTED: BTCUSDT position 0.5 here, 0.3 on the
        venue``)."""
        when = f"reconciliation {self.at:%Y-%m-%d %H:%M} UTC"
        d = self.details
        if self.ok:
            adopted = len(d.get("adopted_orders", ())) + len(d.get("adopted_fills", ()))
            return f"{when}: ok ({adopted} adopted, {len(d.get('foreign_orders', ()))} foreign)"
        parts = [_difference_phrase(x) for x in d.get("differences", ()) if not x.get("within")]
        parts += list(d.get("order_conflicts", ()))
        return f"{when}: HALTED: " + "; ".join(parts or d.get("halt_reasons", ()) or ["see log"])


def reconciliation_record(rec: Reconciliation) -> ReconciliationRecord:
    """The stored form of ``rec`` (`ReconciliationRecord`); no I/O."""
    bad = [d.describe() for d in rec.differences if not d.within]
    details: dict[str, Any] = {
        "fills_since": rec.fills_since.isoformat(),
        "adopted_orders": [o.client_order_id or o.order_id for o in rec.adopted_orders],
        "adopted_fills": [a.record_id for a in rec.adopted_fills],
        "closed_while_away": [
            {
                "client_order_id": r.order.client_order_id,
                "resolution": r.resolution,
                "filled": _json_number(r.filled),
                "quantity": _json_number(r.order.quantity),
            }
            for r in rec.resolved_orders
        ],
        "already_recorded": rec.already_recorded,
        "foreign_orders": [
            {
                "order_id": o.order_id,
                "client_order_id": o.client_order_id,
                "symbol": str(o.symbol),
                "side": o.side.value,
                "amount": _json_number(o.amount),
                "filled": _json_number(o.filled),
            }
            for o in rec.foreign_orders
        ],
        "foreign_fills": [
            {
                "trade_id": f.trade_id,
                "order_id": f.order_id,
                "symbol": str(f.symbol),
                "side": f.side.value,
                "quantity": _json_number(f.quantity),
            }
            for f in rec.foreign_fills
        ],
        "differences": [
            {
                "symbol": None if d.symbol is None else str(d.symbol),
                "local": _json_number(d.local),
                "venue": _json_number(d.venue),
                "within": d.within,
            }
            for d in rec.differences
        ],
        "halt_reasons": list(rec.halt_reasons),
        "order_conflicts": [r for r in rec.halt_reasons if not r.startswith(tuple(bad))],
    }
    return ReconciliationRecord(rec.taken_at, rec.ok, rec.summary(), details)


def _json_number(x: float) -> float | str:
    """``x`` as a JSON number; a non-finite one (which JSON cannot hold) as its text."""
    return float(x) if math.isfinite(x) else str(x)


def _difference_phrase(d: Mapping[str, Any]) -> str:
    def num(v: object, spec: str) -> str:
        return format(v, spec) if isinstance(v, int | float) else str(v)

    if d.get("symbol") is None:
        return (
            f"cash {num(d.get('local'), ',.2f')} here, {num(d.get('venue'), ',.2f')} on the venue"
        )
    return (
        f"{d['symbol']} position {num(d.get('local'), '.10g')} here, "
        f"{num(d.get('venue'), '.10g')} on the venue"
    )
