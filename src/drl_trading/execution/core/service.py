"""The execution workflow: signal -> risk checks -> order -> broker, bar -> fills -> state.

Idempotency: a signal's client order id is derived from its event id, and the store commits the
order record together with the processed signal id, so a redelivered signal is dropped; after a
crash between `Broker.submit` and the commit the signal is redone with the same client order id,
which a venue refuses as a duplicate. Bars are idempotent too: a bar not newer than the symbol's
last mark is ignored.

Sizing follows the shared cost model (`drl_trading.common.costs`), as the training environment
and the backtest do: ``target_position`` is a fraction of equity, turned into a quantity at the
symbol's last close. Only the difference to the current position (open orders included) is
ordered, as a market order filling at the next bar's open. A target equal to the last one
reached is not rebalanced: between signals the position drifts with price.

Equity for sizing is either the whole account's (``capital=None``: symbols compete for one pool)
or, with per-symbol ``capital``, the symbol's own share: its allocation plus its realised and
unrealised PnL minus its fees. Per-symbol capital makes each symbol trade exactly as its
single-symbol backtest with that starting equity, which is what lets a paper session be
compared with the backtest symbol by symbol.

Drawdown halt flattens the book (cancel open orders, market-close every position), as
`RiskParameters.max_drawdown` promises; the manual kill switch cancels open orders and flattens
only when asked.

Kill and resume reach a running service from another process through its store: `kill` leaves
a `ControlRequest` there and the service applies every pending one before it acts on any signal
or bar (and whenever its runner calls `apply_controls`), at its own clock (market time in a
replay), committing the new trading state with the request's acknowledgement in one
transaction. So no order follows an acknowledged kill, and the halt is in the stored state the
moment the acknowledgement is. One service instance runs an account; should another process
commit the account meanwhile (a kill applied to a store it believed idle), the store refuses the
service's next commit (`ConcurrentCommitError`) and the service reloads the stored state.

What is committed when: a signal's decision (its order, the processed signal id), every fill,
every cancel and every change of trading state are committed, durably, before the call returns
(before the acknowledgement). A bar that fills nothing and changes no trading state only moves
the marks and the equity figures (peak, day start), which the next bars derive again: its commit
is not durable at once (`ExecutionStore.commit`, ``durable=False``) and, with
``mark_commit_bars`` > 1, waits in memory for the next commit (a signal's carries it), for
`flush` (the embedded runtime calls it after the bar's acknowledgement) or for the
``mark_commit_bars``-th such bar. After a crash, the account then resumes with the marks of the
last commit and the next bar marks it again; nothing that was acknowledged is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from drl_trading.common.bar_windows import BarWindows
from drl_trading.common.domain import Bar, Fill, Order, Side, Symbol, to_micros
from drl_trading.common.events import ErrorOccurred, PredictionCompleted, Topic
from drl_trading.common.ports import Clock, MessageBus
from drl_trading.execution.core.accounting import apply_fill, signed
from drl_trading.execution.core.ports import Broker, ExecutionStore, VenueStateSource
from drl_trading.execution.core.reconciliation import (
    LocalBook,
    ReconcilePolicy,
    Reconciliation,
    adopt,
    fill_record,
    fill_record_id,
    reconcile,
    reconciliation_record,
    relevant_order_ids,
)
from drl_trading.execution.core.records import (
    AppliedControl,
    Checkpoint,
    ControlKind,
    ControlRequest,
    Mark,
    OrderAck,
    PortfolioSnapshot,
    Position,
    RecordKind,
    RiskDecision,
    TradeRecord,
    TradingState,
)
from drl_trading.execution.core.risk import (
    BookView,
    ExecutionLimits,
    RiskEngine,
    StateChange,
    initial_risk_state,
)
from drl_trading.strategy.api import Strategy

log = structlog.get_logger(__name__)

_KEEPS_TARGET_OPEN = ("max_order_notional", "reducing_only")
"""Adjustments after which the target is not reached yet: the next equal signal must trade on."""


def client_order_id(event_id: str) -> str:
    """Deterministic per signal; 28 characters fit every venue's client-order-id limit (36)."""
    return "sig-" + event_id[:24]


@dataclass(frozen=True, slots=True)
class AgentInputs:
    """What the policy observes about its own position (see `common.agent_state`)."""

    target_position: float
    entry_price: float
    bars_in_position: int


@dataclass(frozen=True, slots=True)
class SignalResult:
    """What `ExecutionService.on_signal` did; ``duplicate`` means the signal was seen before and
    nothing happened (``record`` is then None)."""

    duplicate: bool
    record: TradeRecord | None = None
    decision: RiskDecision | None = None
    ack: OrderAck | None = None


@dataclass(frozen=True, slots=True)
class ExecutionStatus:
    state: TradingState
    reason: str
    since: datetime
    cash: float
    equity: float
    peak_equity: float
    day_start_equity: float
    drawdown: float
    daily_loss: float
    positions: dict[Symbol, Position]
    open_orders: list[Order]
    marks: dict[Symbol, float]
    last_signal: TradeRecord | None
    counts: dict[RecordKind, int]
    reconciliation: Reconciliation | None = None
    """The last reconciliation with the venue in this session (None without a venue)."""


def bars_held(entered: datetime, at: datetime, bar: timedelta | BarWindows) -> int:
    """Base bars from a position's entry to ``at``: those that opened at or after ``entered``
    and closed by ``at``, what the training environment counts (the entry bar is 1 at its
    close). ``bar`` is the base duration on a 24/7 market, else the market's `BarWindows`,
    which count market bars only (an FX weekend adds none)."""
    if isinstance(bar, timedelta):
        return max(int((at - entered) // bar), 0)
    if bar.calendar.always_open:
        return max(int((at - entered) // bar.timeframe.duration), 0)
    t, e = to_micros(at), to_micros(entered)
    last = bar.last_closed(t)
    before = bar.last_closed(e)  # every bar after it opened at or after ``entered``...
    holding = bar.key(e)  # ...but the one ``entered`` falls inside when it opened earlier
    inside = holding is not None and bar.first_open(holding) < e
    return max(bar.slots_between(before, last) - int(inside), 0)


def agent_inputs(
    target: float,
    entry: Mark | None,
    position: Position | None,
    at: datetime,
    bar: timedelta | BarWindows,
) -> AgentInputs:
    """The policy's own state at ``at`` from the symbol's target, entry and position (shared by
    the execution service and by inference reading the execution store from another process).
    ``bar``: the base duration (24/7) or the symbol's base `BarWindows` (`bars_held`)."""
    if position is None or position.quantity == 0.0 or target == 0.0:
        return AgentInputs(0.0, 0.0, 0)
    if entry is None:  # entered before a restart: the average price stands in
        return AgentInputs(target, position.avg_price, 1)
    return AgentInputs(target, entry.price, bars_held(entry.as_of, at, bar))


class ExecutionService:
    def __init__(
        self,
        broker: Broker,
        store: ExecutionStore,
        limits: ExecutionLimits,
        clock: Clock,
        capital: Mapping[Symbol, float] | None = None,
        *,
        venue: VenueStateSource | None = None,
        reconciliation: ReconcilePolicy | None = None,
        bus: MessageBus | None = None,
        mark_commit_bars: int = 1,
    ) -> None:
        """``venue`` turns reconciliation on (`reconcile`); ``bus`` receives its halts as
        `ErrorOccurred` on ``error.execution``. ``mark_commit_bars``: how many bars that only
        moved the marks may wait in memory before one commit (1: every bar commits; more where
        nothing in another process reads the marks as they move, and `flush` is called when a
        bar is done)."""
        if mark_commit_bars < 1:
            raise ValueError(f"mark_commit_bars must be >= 1, got {mark_commit_bars}")
        self._mark_commit_bars = mark_commit_bars
        self._unsaved_bars = 0
        self._venue = venue
        self._policy = reconciliation if reconciliation is not None else ReconcilePolicy()
        self._bus = bus
        self._last_reconciliation: Reconciliation | None = None
        self._bars_since_reconcile = 0
        self._broker = broker
        self._initial_cash = broker.cash
        self._capital = dict(capital) if capital is not None else None
        self._store = store
        self._clock = clock
        self._limits = limits
        self._stale = False
        self.session_id = "execution"
        """Who acknowledges the control requests this service applies (`attach`)."""
        self._on_control: Callable[[ControlRequest], None] | None = None
        self._restore(store.load())

    def attach(
        self, session_id: str, on_control: Callable[[ControlRequest], None] | None = None
    ) -> None:
        """Name the session running this service (its acknowledgements carry it) and, with
        ``on_control``, be told of every control request applied (display)."""
        self.session_id = session_id
        self._on_control = on_control

    def _restore(self, checkpoint: Checkpoint | None) -> None:
        """Take the state of the last commit (at start, and after a commit failed)."""
        if checkpoint is None:
            self._broker.restore(PortfolioSnapshot(self._initial_cash, {}, ()))
            self._marks: dict[Symbol, Mark] = {}
            self._targets: dict[Symbol, float] = {}
            self._last_signal: TradeRecord | None = None
            state = initial_risk_state(self._broker.equity({}), self._clock.now())
        else:
            self._broker.restore(checkpoint.portfolio)
            self._marks = dict(checkpoint.marks)
            self._targets = dict(checkpoint.targets)
            self._last_signal = checkpoint.last_signal
            state = checkpoint.risk
        self._risk = RiskEngine(self._limits, state)
        self._unsaved_bars = 0  # marks not committed yet are gone with the memory that held them
        # entry of each open position, persisted with the checkpoint (a store written before
        # entries were kept has none: `agent_position` then falls back to the average price)
        self._entries: dict[Symbol, tuple[float, datetime]] = (
            {s: (m.price, m.as_of) for s, m in checkpoint.entries.items()}
            if checkpoint is not None
            else {}
        )

    def _commit(
        self,
        records: list[TradeRecord] | tuple[()] = (),
        processed_signal_id: str | None = None,
        applied_controls: Sequence[AppliedControl] = (),
        *,
        durable: bool = True,
    ) -> None:
        """Commit the state (the whole checkpoint: marks that waited go with it); when the store
        fails, the state in memory (broker included) is ahead of it, so it is reloaded from the
        store before the next call: the bus's retry of the event then redoes it from the
        committed state (same client order ids)."""
        try:
            self._store.commit(
                self._checkpoint(),
                records,
                processed_signal_id=processed_signal_id,
                applied_controls=applied_controls,
                durable=durable,
            )
        except Exception:
            self._stale = True
            raise
        self._unsaved_bars = 0

    def _commit_marks(self) -> None:
        """A bar that filled nothing and changed no trading state: its marks and equity figures
        are derived again by the next bars, so the commit is not durable at once and, with
        ``mark_commit_bars`` > 1, waits for the next commit, `flush` or the last bar allowed."""
        self._unsaved_bars += 1
        if self._unsaved_bars >= self._mark_commit_bars:
            self._commit(durable=False)

    def flush(self) -> None:
        """Commit the marks of the bars that wait (`mark_commit_bars`), if any: call it when a
        bar is done, after its order was acknowledged, so the commit stays off the path from
        bar close to order."""
        self._refresh()
        if self._unsaved_bars:
            self._commit(durable=False)

    @property
    def unsaved_bars(self) -> int:
        """Bars whose marks are in memory only (0 after any commit)."""
        return self._unsaved_bars

    def _refresh(self) -> None:
        if self._stale:
            self._restore(self._store.load())
            self._stale = False
            log.info("execution state reloaded from the store after a failed commit")

    def reload(self) -> None:
        """Take the stored state now: another instance of the service committed the account
        since this one last loaded or committed it (instances sharing one account hold it in
        turn, `drl_trading.execution.adapter.bus_handlers.AccountLock`)."""
        self._restore(self._store.load())
        self._stale = False

    def start_over(self, live_since: datetime) -> None:
        """Start the account over (``paper --fresh``): its state deleted in the store
        (`ExecutionStore.reset_account`), this service on the empty account (initial cash, no
        position, ACTIVE at its clock's time). Raises `AccountInUseError`, changing nothing,
        when a session beat on the account at or after ``live_since``."""
        self._store.reset_account(live_since)
        self._restore(self._store.load())
        self._stale = False

    @property
    def limits(self) -> ExecutionLimits:
        return self._risk.limits

    def apply_controls(self) -> list[ControlRequest]:
        """Apply the pending kill/resume requests of the store, oldest first, at this service's
        clock, and commit the resulting state with their acknowledgement (one transaction);
        returns them as applied (empty when none was pending)."""
        self._refresh()
        pending = self._store.pending_controls()
        if not pending:
            return []
        records: list[TradeRecord] = []
        applied: list[AppliedControl] = []
        for request in pending:
            now = self._clock.now()
            if request.kind is ControlKind.KILL:
                change = self._risk.kill(request.reason or "manual", now)
                records += self._halt_orders(flatten=request.flatten)
            else:
                change = self._risk.resume(now)
            if change is not None:
                self._log_change(change)
            st = self._risk.state
            outcome = f"trading state: {st.state.value} ({st.reason})"
            applied.append(AppliedControl(request.control_id, now, self.session_id, outcome))
        self._commit(records, applied_controls=applied)
        done = [self._store.control(a.control_id) for a in applied]
        out = [c for c in done if c is not None]
        for c in out:
            log.warning(
                "control request applied",
                control_id=c.control_id,
                kind=c.kind.value,
                session=c.applied_by,
                outcome=c.outcome,
            )
            if self._on_control is not None:
                self._on_control(c)
        return out

    def on_signal(self, event: PredictionCompleted, strategy: Strategy) -> SignalResult:
        self.apply_controls()  # a kill asked before this signal stops it
        if self._venue is not None and self._last_reconciliation is None:
            self.reconcile()  # at start: adopt what happened while down before deciding
        if self._store.is_processed(event.event_id):
            return SignalResult(duplicate=True)
        now = self._clock.now()
        symbol = event.symbol
        coid = client_order_id(event.event_id)
        ack: OrderAck | None = None
        if self._capital is not None and symbol not in self._capital:
            decision = RiskDecision(
                RecordKind.REJECTION,
                "no_capital",
                f"no capital allocated to {symbol} (allocated: {', '.join(self._capital)})",
                event.target_position,
            )
        else:
            decision = self._risk.evaluate(event, strategy, self._book(symbol), now)
        if self._reused_order_id(coid, decision):
            decision = RiskDecision(
                RecordKind.REJECTION,
                "duplicate_client_order_id",
                f"client order id {coid!r} already used by another signal",
                event.target_position,
            )
        notes = "; ".join(decision.adjustments)
        side = decision.side
        if decision.outcome is RecordKind.ORDER and side is not None:
            quantity = abs(decision.quantity)
            ack = self._broker.submit(Order(coid, symbol, side, quantity))
            if ack.accepted:
                record = self._signal_record(
                    event,
                    now,
                    RecordKind.ORDER,
                    f"order:{coid}",
                    decision.rule,
                    notes,
                    client_order_id=coid,
                    side=side,
                    quantity=quantity,
                )
                if not any(a.startswith(_KEEPS_TARGET_OPEN) for a in decision.adjustments):
                    self._targets[symbol] = decision.target_position
            else:
                record = self._signal_record(
                    event,
                    now,
                    RecordKind.REJECTION,
                    f"rejection:{event.event_id}",
                    "broker",
                    ack.reason,
                    side=side,
                    quantity=quantity,
                )
        else:
            reason = "; ".join(filter(None, [decision.reason, notes]))
            record_id = f"{decision.outcome.value}:{event.event_id}"
            record = self._signal_record(
                event, now, decision.outcome, record_id, decision.rule, reason
            )
            if decision.rule == "min_notional":
                self._targets[symbol] = decision.target_position
        self._last_signal = record
        self._commit([record], processed_signal_id=event.event_id)
        log.info(
            "signal handled",
            signal_id=event.event_id,
            correlation_id=event.correlation_id,
            symbol=symbol,
            outcome=record.kind.value,
            rule=record.risk_check,
        )
        return SignalResult(False, record, decision, ack)

    def _reused_order_id(self, coid: str, decision: RiskDecision) -> bool:
        """Whether an order would go out under a client order id the store already holds (a
        signal whose order went out before a crash, redelivered; or two signal ids sharing the
        id's 24 characters). Asked only for an order: a decision that sends none cannot repeat
        one, and the store's answer is a round trip on the signal's path (PostgreSQL)."""
        return decision.outcome is RecordKind.ORDER and self._store.has_order(coid)

    def on_bar(self, bar: Bar) -> list[Fill]:
        """Fill open orders on ``bar``, mark the book at its close and apply the risk states."""
        self.apply_controls()
        if self._venue is not None and self._last_reconciliation is None:
            self.reconcile()
        mark = self._marks.get(bar.symbol)
        if mark is not None and bar.close_time <= mark.as_of:
            return []
        positions = self._broker.positions()
        fills = self._broker.on_bar(bar)
        records: list[TradeRecord] = []
        for fill in fills:
            held = positions.get(fill.symbol, Position())
            quantity = signed(fill.side, fill.quantity)
            positions[fill.symbol], realised = apply_fill(held, quantity, fill.price, fill.fee)
            records.append(self._fill_record(fill, realised))
            self._track_entry(bar, held.quantity, positions[fill.symbol].quantity)
        self._marks[bar.symbol] = Mark(bar.close, bar.close_time)
        equity = self._broker.equity(self._prices())
        change = self._risk.observe(equity, bar.close_time)
        if change is not None:
            self._log_change(change)
            if change.current is TradingState.HALTED:
                records += self._halt_orders(flatten=True)
        if records or change is not None:
            self._commit(records)
        else:
            self._commit_marks()
        self._bars_since_reconcile += 1
        if self._venue is not None and self._bars_since_reconcile >= self._policy.every_bars:
            self.reconcile()
        return fills

    @property
    def last_reconciliation(self) -> Reconciliation | None:
        return self._last_reconciliation

    def reconcile(self) -> Reconciliation | None:
        """Reconcile the book with the venue (`reconciliation`): adopt the orders and fills it
        reveals and commit them with the adopted portfolio in one commit; on a mismatch beyond
        tolerance, HALTED (open orders cancelled, nothing flattened: the positions are in
        doubt), one log line and an `ErrorOccurred` on ``error.execution``. None without a
        venue. Runs at the first bar or signal and every ``every_bars`` bars by itself."""
        if self._venue is None:
            return None
        self._refresh()
        now = self._clock.now()
        previous = self._last_reconciliation
        start = previous.taken_at if previous is not None else (self.market_time() or now)
        venue = self._venue.venue_state(min(start, now) - self._policy.lookback)
        snapshot = self._broker.snapshot()
        orders = {c: r for c in relevant_order_ids(venue, snapshot) if (r := self._store.order(c))}
        local = LocalBook.of(
            snapshot, [*orders.values(), *self._store.records_since(venue.fills_since)]
        )
        rec = reconcile(
            local, venue, our_prefix=self._policy.our_prefix, tolerance=self._policy.tolerance
        )
        adoption = adopt(rec, orders, now)
        self._broker.restore(adoption.portfolio)
        for a in rec.adopted_fills:  # the entry bar is unknown: the average price stands in
            self._entries.pop(a.fill.symbol, None)
        records = list(adoption.records)
        change = None
        if not rec.ok:
            change = self._risk.halt("reconciliation: " + "; ".join(rec.halt_reasons), now)
            records += self._halt_orders(flatten=False)
        self._commit(records)
        self._last_reconciliation = rec
        self._bars_since_reconcile = 0
        try:  # an observation for `live status`: failing to keep it must not stop trading
            self._store.save_reconciliation(reconciliation_record(rec))
        except Exception as exc:
            log.warning("reconciliation report not stored", error=str(exc))
        if change is not None:
            self._log_change(change)
        if rec.ok:
            log.info("reconciled with the venue", report=rec.summary())
        else:
            log.error("reconciliation mismatch: trading halted", report=rec.summary())
            if self._bus is not None:
                topic = Topic.error("execution")
                self._bus.publish(topic, self._mismatch_event(rec), key="reconciliation")
        return rec

    def _mismatch_event(self, rec: Reconciliation) -> ErrorOccurred:
        return ErrorOccurred(
            service="execution",
            topic="reconciliation",
            failed_event_id=None,
            error_type="ReconciliationMismatch",
            message=rec.summary(),
            attempts=1,
        )

    def market_time(self) -> datetime | None:
        """The close of the last bar the account saw (any symbol); None before any."""
        return max((m.as_of for m in self._marks.values()), default=None)

    def mark(self, symbol: Symbol) -> Mark | None:
        """The last close seen for ``symbol`` and its time."""
        return self._marks.get(symbol)

    def _track_entry(self, bar: Bar, before: float, after: float) -> None:
        """Remember where and when the current position was entered, as the training
        environment does: the fill bar's open (no slippage) and its open time."""
        if after == 0.0:
            self._entries.pop(bar.symbol, None)
        elif before == 0.0 or (before > 0.0) != (after > 0.0):
            self._entries[bar.symbol] = (bar.open, bar.open_time)

    def agent_position(
        self, symbol: Symbol, at: datetime, bar: timedelta | BarWindows
    ) -> AgentInputs:
        """The policy's own state at ``at`` (a base bar's close): the last target reached, the
        entry reference price and the base bars since entry (the training env's encoding;
        ``bar`` as for `bars_held`)."""
        entry = self._entries.get(symbol)
        return agent_inputs(
            self._targets.get(symbol, 0.0),
            None if entry is None else Mark(*entry),
            self._broker.positions().get(symbol),
            at,
            bar,
        )

    def kill(self, reason: str = "manual", *, flatten: bool = False) -> StateChange | None:
        """Kill switch: HALTED until `resume`; open orders are cancelled, positions closed only
        with ``flatten`` (an operator may prefer to keep a hedge while investigating)."""
        self._refresh()
        change = self._risk.kill(reason, self._clock.now())
        records = self._halt_orders(flatten=flatten)
        if change is not None:
            self._log_change(change)
        self._commit(records)
        return change

    def resume(self) -> StateChange | None:
        self._refresh()
        change = self._risk.resume(self._clock.now())
        if change is not None:
            self._log_change(change)
        self._commit()
        return change

    def status(self) -> ExecutionStatus:
        s = self._risk.state
        prices = self._prices()
        return ExecutionStatus(
            state=s.state,
            reason=s.reason,
            since=s.since,
            cash=self._broker.cash,
            equity=self._broker.equity(prices),
            peak_equity=s.peak_equity,
            day_start_equity=s.day_start_equity,
            drawdown=self._risk.drawdown(),
            daily_loss=self._risk.daily_loss(),
            positions=self._broker.positions(),
            open_orders=self._broker.open_orders(),
            marks=prices,
            last_signal=self._last_signal,
            counts=self._store.counts(),
            reconciliation=self._last_reconciliation,
        )

    def _prices(self) -> dict[Symbol, float]:
        return {s: m.price for s, m in self._marks.items()}

    def _price(self, symbol: Symbol) -> float | None:
        mark = self._marks.get(symbol)
        return None if mark is None else mark.price

    def _book(self, symbol: Symbol) -> BookView:
        """Quantities include open orders, valued at the mark (the average price if unmarked)."""
        held = {s: p.quantity for s, p in self._broker.positions().items()}
        for order in self._broker.open_orders():
            held[order.symbol] = held.get(order.symbol, 0.0) + signed(order.side, order.quantity)
        positions = self._broker.positions()
        prices = self._prices()

        def value(s: Symbol, q: float) -> float:
            fallback = positions[s].avg_price if s in positions else 0.0
            return abs(q * prices.get(s, fallback))

        return BookView(
            equity=self.symbol_equity(symbol),
            price=prices.get(symbol),
            position=held.get(symbol, 0.0),
            other_exposure=sum(value(s, q) for s, q in held.items() if s != symbol),
            last_target=self._targets.get(symbol),
            own_capital=self._capital is not None,
        )

    def symbol_equity(self, symbol: Symbol) -> float:
        """The symbol's share of the account: its allocated capital plus `symbol_pnl` (0.0 for
        a symbol without capital). Without per-symbol capital, the whole account's equity."""
        if self._capital is None:
            return self._broker.equity(self._prices())
        return self._capital.get(symbol, 0.0) + self.symbol_pnl(symbol)

    def symbol_pnl(self, symbol: Symbol) -> float:
        """Realised plus unrealised (at the last mark) PnL of ``symbol``, net of its fees."""
        position = self._broker.positions().get(symbol)
        if position is None:
            return 0.0
        mark = self._price(symbol)
        unrealised = 0.0 if mark is None else position.quantity * (mark - position.avg_price)
        return position.realised_pnl - position.fees_paid + unrealised

    def positions(self) -> dict[Symbol, Position]:
        """Filled positions as the broker holds them (open orders not included)."""
        return self._broker.positions()

    def target(self, symbol: Symbol) -> float:
        """The last target reached for ``symbol`` (0.0 before any)."""
        return self._targets.get(symbol, 0.0)

    @property
    def capital(self) -> dict[Symbol, float] | None:
        return None if self._capital is None else dict(self._capital)

    def _signal_record(
        self,
        event: PredictionCompleted,
        now: datetime,
        kind: RecordKind,
        record_id: str,
        risk_check: str,
        reason: str,
        *,
        client_order_id: str | None = None,
        side: Side | None = None,
        quantity: float = 0.0,
    ) -> TradeRecord:
        """A record of a signal's outcome, priced at the mark the decision was sized on."""
        return TradeRecord(
            record_id=record_id,
            kind=kind,
            symbol=event.symbol,
            at=now,
            client_order_id=client_order_id,
            signal_id=event.event_id,
            side=side,
            quantity=quantity,
            price=self._price(event.symbol),
            model_version=event.model_version,
            risk_check=risk_check,
            reason=reason,
            signal_time=event.bar_close_time,
        )

    def _fill_record(self, fill: Fill, realised: float) -> TradeRecord:
        return fill_record(
            fill_record_id(fill.client_order_id, fill.filled_at),
            symbol=fill.symbol,
            at=fill.filled_at,
            client_order_id=fill.client_order_id,
            side=fill.side,
            quantity=fill.quantity,
            price=fill.price,
            fee=fill.fee,
            realised_pnl=realised,
            origin=self._store.order(fill.client_order_id),
            unattributed_check="",
        )

    def _halt_orders(self, *, flatten: bool) -> list[TradeRecord]:
        """Cancel open orders and, with ``flatten``, market-close every position."""
        now = self._clock.now()
        micros = to_micros(now)
        records: list[TradeRecord] = []
        for order in self._broker.cancel_all():
            self._targets.pop(order.symbol, None)
            records.append(
                TradeRecord(
                    record_id=f"cancel:{order.client_order_id}:{micros}",
                    kind=RecordKind.CANCEL,
                    symbol=order.symbol,
                    at=now,
                    client_order_id=order.client_order_id,
                    side=order.side,
                    quantity=order.quantity,
                    price=order.limit_price,
                    risk_check="halted",
                    reason=self._risk.state.reason,
                )
            )
        if not flatten:
            return records
        for symbol, position in sorted(self._broker.positions().items()):
            if position.is_flat:
                continue
            coid = self._flatten_id(micros, len(records))
            side = Side.SELL if position.quantity > 0 else Side.BUY
            ack = self._broker.submit(Order(coid, symbol, side, abs(position.quantity)))
            self._targets[symbol] = 0.0
            records.append(
                TradeRecord(
                    record_id=f"order:{coid}" if ack.accepted else f"rejection:{coid}",
                    kind=RecordKind.ORDER if ack.accepted else RecordKind.REJECTION,
                    symbol=symbol,
                    at=now,
                    client_order_id=coid if ack.accepted else None,
                    side=side,
                    quantity=abs(position.quantity),
                    price=self._price(symbol),
                    risk_check="halt_flatten" if ack.accepted else "broker",
                    reason=self._risk.state.reason if ack.accepted else ack.reason,
                )
            )
        return records

    def _flatten_id(self, micros: int, n: int) -> str:
        coid = f"flat-{micros}-{n}"
        while self._store.has_order(coid):
            n += 1
            coid = f"flat-{micros}-{n}"
        return coid

    def _checkpoint(self) -> Checkpoint:
        return Checkpoint(
            portfolio=self._broker.snapshot(),
            risk=self._risk.state,
            marks=dict(self._marks),
            entries={s: Mark(p, t) for s, (p, t) in self._entries.items()},
            targets=dict(self._targets),
            last_signal=self._last_signal,
        )

    def _log_change(self, change: StateChange) -> None:
        log.warning(
            "trading state changed",
            previous=change.previous.value,
            current=change.current.value,
            reason=change.reason,
        )
