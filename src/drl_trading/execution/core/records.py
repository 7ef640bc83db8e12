"""The value types of the execution service: positions, portfolio snapshots, risk state and
decisions, trade records and the checkpoint that crosses its ports.

Quantities are in units of the base asset (signed where the type says so: negative = short),
prices and money in the quote currency, times are aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from drl_trading.common.domain import Order, Side, Symbol, utc


class TradingState(StrEnum):
    """How much trading the risk engine allows (the nautilus_trader states).

    ACTIVE: every order that passes the rules. REDUCING: only orders that shrink |position|
    (set by a daily-loss breach, lifted at the next UTC day). HALTED: no orders at all (set by a
    drawdown breach or the kill switch, lifted only by a manual resume).
    """

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


class RecordKind(StrEnum):
    """Every processed signal leaves exactly one ORDER, REJECTION or SKIP record (the audit trail
    answers "what happened to signal X"); FILL and CANCEL records follow orders."""

    ORDER = "order"
    FILL = "fill"
    REJECTION = "rejection"
    SKIP = "skip"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class Position:
    """A signed holding under the average-cost method.

    ``realised_pnl`` is the price PnL of closed quantity, before fees (quote currency); fees are
    kept apart in ``fees_paid`` so that both are visible, and cash already reflects both.
    """

    quantity: float = 0.0
    avg_price: float = 0.0
    realised_pnl: float = 0.0
    fees_paid: float = 0.0

    @property
    def is_flat(self) -> bool:
        return self.quantity == 0.0


@dataclass(frozen=True, slots=True)
class OrderAck:
    """The broker's answer to a submission; acceptance means "queued", not "filled"."""

    client_order_id: str
    accepted: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PortfolioSnapshot:
    """Everything a broker needs to resume after a restart: cash, positions, open orders.

    Open orders are part of it because a market order placed at a bar's close fills only at the
    next bar: a restart in between must not lose it.
    """

    cash: float
    positions: Mapping[Symbol, Position] = field(default_factory=dict)
    open_orders: tuple[Order, ...] = ()


@dataclass(frozen=True, slots=True)
class Mark:
    """The last close seen for a symbol, and the close time of its bar (used to drop stale or
    re-delivered bars, since the bus delivers at least once)."""

    price: float
    as_of: datetime


@dataclass(frozen=True, slots=True)
class RiskState:
    """The risk engine's memory: the trading state and the equity references of its limits.

    ``day`` is the UTC date whose loss is measured from ``day_start_equity``; ``last_equity`` is the
    latest marked equity, which becomes the next day's starting equity at the day roll.
    """

    state: TradingState
    reason: str
    since: datetime
    peak_equity: float
    day_start_equity: float
    last_equity: float
    day: date | None = None


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """The risk engine's verdict on one signal.

    ``outcome`` is one of ORDER (place ``quantity``), REJECTION (a rule refused it) or SKIP (nothing
    to do: target unchanged or the difference is dust). ``rule`` names the rule that decided
    ("accepted" for an order); ``adjustments`` lists the limits that clipped the order on the way.
    """

    outcome: RecordKind
    rule: str
    reason: str
    target_position: float
    quantity: float = 0.0
    """Signed order quantity (base units); 0 unless ``outcome`` is ORDER."""
    adjustments: tuple[str, ...] = ()

    @property
    def side(self) -> Side | None:
        if self.quantity > 0:
            return Side.BUY
        if self.quantity < 0:
            return Side.SELL
        return None


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """One row of the audit trail: an order, a fill, a rejection, a skip or a cancellation.

    ``at`` is when it happened (the decision time for orders, rejections and skips, the fill time
    for fills); ``signal_time`` is the close time of the bar the signal was computed on, kept so
    that latency from bar to order can be measured. ``quantity`` is unsigned (``side`` gives the
    direction) and ``realised_pnl`` is the price PnL a fill realised, before fees.
    """

    record_id: str
    kind: RecordKind
    symbol: Symbol
    at: datetime
    client_order_id: str | None = None
    signal_id: str | None = None
    side: Side | None = None
    quantity: float = 0.0
    price: float | None = None
    fee: float = 0.0
    realised_pnl: float = 0.0
    model_version: str | None = None
    risk_check: str = ""
    reason: str = ""
    signal_time: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", utc(self.at))
        if self.signal_time is not None:
            object.__setattr__(self, "signal_time", utc(self.signal_time))


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What the service persists after every signal and bar so that a restart resumes exactly.

    ``targets`` holds the last target position (fraction of equity) the service reached per
    symbol: a repeated target is not rebalanced. ``last_signal`` is the record of the latest signal;
    it must be committed as a record too (the SQL store keeps only its id).
    """

    portfolio: PortfolioSnapshot
    risk: RiskState
    marks: Mapping[Symbol, Mark] = field(default_factory=dict)
    targets: Mapping[Symbol, float] = field(default_factory=dict)
    last_signal: TradeRecord | None = None
    entries: Mapping[Symbol, Mark] = field(default_factory=dict)
    """Where and when each open position was entered (the fill bar's open price and time): the
    policy's agent state needs it, so a restart must not lose it."""


@dataclass(frozen=True, slots=True)
class SymbolState:
    """One symbol's part of the last checkpoint: what another process (inference) needs to know
    about the agent's position, read without loading the whole account."""

    mark: Mark | None
    target: float
    entry: Mark | None
    position: Position | None


class ControlKind(StrEnum):
    """What an operator can ask of an account from another process: the kill switch (HALTED,
    open orders cancelled, positions closed with ``flatten``) and the manual resume."""

    KILL = "kill"
    RESUME = "resume"


@dataclass(frozen=True, slots=True)
class ControlRequest:
    """A kill or resume asked for the account, kept in its execution store (the one place both
    a running session and the `kill` command reach, embedded or distributed).

    ``requested_at`` is the wall clock of the asking process; ``applied_at`` is the clock of the
    service that applied it (market time in a replay), None while pending. ``applied_by`` names
    that service's session. ``records_before`` is how many trade records the account held when
    it was applied: ``records_since(epoch)[records_before:]`` are the records after it (a kill's
    CANCEL and flatten ORDER records first).
    """

    control_id: int
    kind: ControlKind
    requested_at: datetime
    reason: str = ""
    flatten: bool = False
    applied_at: datetime | None = None
    applied_by: str | None = None
    outcome: str = ""
    """The trading state after it was applied, e.g. ``trading state: halted (kill switch: x)``."""
    records_before: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "requested_at", utc(self.requested_at))
        if self.applied_at is not None:
            object.__setattr__(self, "applied_at", utc(self.applied_at))

    @property
    def pending(self) -> bool:
        return self.applied_at is None


@dataclass(frozen=True, slots=True)
class AppliedControl:
    """The acknowledgement of a `ControlRequest`, committed with the state it produced."""

    control_id: int
    at: datetime
    by: str
    outcome: str


@dataclass(frozen=True, slots=True)
class SessionBeat:
    """The last sign of life of a session running on the account (wall clock)."""

    session_id: str
    at: datetime
