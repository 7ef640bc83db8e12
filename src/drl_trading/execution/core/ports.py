"""Ports the execution service owns: where orders go (`Broker`) and where its state and audit
trail are kept (`ExecutionStore`). The value types crossing them are in `records`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from drl_trading.common.domain import Bar, Fill, Order, Symbol
from drl_trading.execution.core.reconciliation import ReconciliationRecord, VenueState
from drl_trading.execution.core.records import (
    AppliedControl,
    Checkpoint,
    ControlKind,
    ControlRequest,
    OrderAck,
    PortfolioSnapshot,
    Position,
    RecordKind,
    SessionBeat,
    SymbolState,
    TradeRecord,
)


class DuplicateOrderError(Exception):
    """A store refused an ORDER record whose client order id it already holds."""

    def __init__(self, client_order_id: str) -> None:
        self.client_order_id = client_order_id
        super().__init__(
            f"client order id {client_order_id!r} is already recorded; an order is placed at "
            "most once per signal"
        )


class ConcurrentCommitError(Exception):
    """A store refused a commit because another handle (another process) committed the account
    since this one last loaded or committed it: the caller's state is stale and must be
    reloaded (the execution service does; the bus then retries the event on the stored state).
    This is what keeps a kill applied to a stored account from being overwritten by a session
    that loaded the account before it."""

    retryable = True

    def __init__(self) -> None:
        super().__init__(
            "the account was committed by another process since this one loaded it; reload it"
        )


class AccountInUseError(Exception):
    """A store refused to start the account over (`ExecutionStore.reset_account`): a session
    beats on it, and deleting its state under it would leave that session trading an account
    that no longer exists. Nothing was deleted."""

    def __init__(self, session: SessionBeat) -> None:
        self.session = session
        super().__init__(
            f"a session ({session.session_id}) is running on the account (heartbeat at "
            f"{session.at:%Y-%m-%d %H:%M:%S} UTC)"
        )


class Broker(Protocol):
    """Where orders go: the paper broker in embedded mode, an exchange adapter live.

    ``on_bar`` is how a simulated venue learns prices (a live broker reports the fills it received
    since the last call); ``snapshot``/``restore`` carry the book across restarts (a live broker
    would reconcile with the venue instead of trusting the snapshot).
    """

    @property
    def cash(self) -> float: ...

    def submit(self, order: Order) -> OrderAck: ...

    def cancel_all(self) -> list[Order]:
        """Cancel every open order; returns the cancelled ones."""
        ...

    def on_bar(self, bar: Bar) -> list[Fill]: ...

    def positions(self) -> dict[Symbol, Position]:
        """Every symbol ever traded, flat ones included (they still carry realised PnL and fees)."""
        ...

    def open_orders(self) -> list[Order]: ...

    def equity(self, marks: Mapping[Symbol, float]) -> float:
        """Cash plus positions at ``marks`` (quote currency)."""
        ...

    def snapshot(self) -> PortfolioSnapshot: ...

    def restore(self, snapshot: PortfolioSnapshot) -> None: ...


class VenueStateSource(Protocol):
    """Where reconciliation reads the venue's view of the account (an exchange adapter live; the
    in-memory fake in tests). A broker reading the same account must not report again, from
    `Broker.on_bar`, a fill that happened before its last `Broker.restore`: reconciliation
    adopted those into the restored snapshot."""

    def venue_state(self, since: datetime) -> VenueState:
        """Open orders, the account's trades at or after ``since`` (UTC), holdings and cash."""
        ...


class ExecutionStore(Protocol):
    """Durable state and audit trail of the execution service, and the account's control channel.

    ``commit`` is one atomic unit (checkpoint, new records, the processed signal id, the
    acknowledgement of the control requests it applied): a crash can never leave an order
    recorded without its signal marked processed, which is what makes a redelivered signal safe
    to drop, nor a kill acknowledged without the HALTED state it produced.

    Kill and resume requests (`request_control`) and the heartbeats of a running session
    (`beat`) live here because the store is the one durable place that both the session and
    an operator's command in another process reach (a SQLite file embedded, PostgreSQL
    distributed). Neither changes the checkpoint, so neither conflicts with the session's
    commits.

    The last reconciliation report (`save_reconciliation`) is kept here for the same reason
    (`live status` in another process shows it), and written the same way: an observation, not
    state, so it is a write of its own after the reconciliation's commit, never part of
    ``commit`` and never refused by another handle's commit. A report lost to a crash between the
    two is only a report: the next reconciliation writes a new one, and what it adopted is in
    the records.
    """

    def load(self) -> Checkpoint | None:
        """The last committed checkpoint, or None for a fresh store."""
        ...

    def commit(
        self,
        checkpoint: Checkpoint,
        records: Sequence[TradeRecord] = (),
        processed_signal_id: str | None = None,
        applied_controls: Sequence[AppliedControl] = (),
        *,
        durable: bool = True,
    ) -> None:
        """Store all of it or nothing; raises `DuplicateOrderError` (writing nothing) when an ORDER
        record repeats a client order id already stored or repeated within ``records``, and
        `ConcurrentCommitError` (writing nothing) when another handle committed since this one
        last loaded or committed (a store shared by no other process never raises it).
        ``applied_controls`` marks those requests applied, with ``records_before`` counted
        before this commit's records.

        ``durable=False`` (the execution service passes it for a bar that only moved the marks
        and equity figures, state the next bars derive again; never with records, a processed
        signal or applied controls) lets the store return before the commit is on disk: it is
        visible to every reader at once and atomic as any other, but a crash of the *database*
        (not of this process) may lose it, and with it only such commits; any later durable
        commit makes it durable too (PostgreSQL: ``synchronous_commit`` off for that
        transaction, lost at most the WAL writer's last ~0.6 s; SQLite in WAL mode with
        ``synchronous=NORMAL`` and the in-memory store: no difference)."""
        ...

    def request_control(
        self, kind: ControlKind, requested_at: datetime, *, reason: str = "", flatten: bool = False
    ) -> ControlRequest:
        """Record a pending kill or resume; returns it with its id (increasing)."""
        ...

    def pending_controls(self) -> list[ControlRequest]:
        """The requests not applied yet, oldest first."""
        ...

    def control(self, control_id: int) -> ControlRequest | None: ...

    def beat(self, session_id: str, at: datetime) -> None:
        """A running session's sign of life at ``at`` (wall clock)."""
        ...

    def end_session(self, session_id: str) -> None:
        """The session stopped: forget its heartbeat."""
        ...

    def live_session(self, since: datetime) -> SessionBeat | None:
        """The session with the latest heartbeat at or after ``since``, if any."""
        ...

    def save_reconciliation(self, record: ReconciliationRecord) -> None:
        """Keep ``record`` as the account's last reconciliation report, replacing the one
        before (the history of what reconciliations adopted is in the records and the log)."""
        ...

    def last_reconciliation(self) -> ReconciliationRecord | None:
        """The report saved last, or None when the account was never reconciled."""
        ...

    def reset_account(self, live_since: datetime) -> None:
        """Start the account over (``paper --fresh``): delete its checkpoint (portfolio, open
        orders, marks, targets, entries, trading state), its records, processed signal ids,
        control requests, heartbeats and last reconciliation report, in one transaction, and
        count it as a commit (another handle's next commit is refused with
        `ConcurrentCommitError`, so a session that loaded the old account reloads the empty
        one). Raises `AccountInUseError`, deleting
        nothing, when a session beat at or after ``live_since`` (UTC): checked in the same
        transaction, so no session can start beating between the check and the delete."""
        ...

    def symbol_state(self, symbol: Symbol) -> SymbolState:
        """``symbol``'s mark, target, entry and position as last committed (absent ones empty)."""
        ...

    def is_processed(self, signal_id: str) -> bool: ...

    def has_order(self, client_order_id: str) -> bool: ...

    def order(self, client_order_id: str) -> TradeRecord | None:
        """The ORDER record of a client order id (fills look up their signal through it)."""
        ...

    def records_since(self, since: datetime) -> list[TradeRecord]:
        """Records with ``at >= since`` in the order they were committed."""
        ...

    def counts(self) -> dict[RecordKind, int]:
        """Number of records of each kind (every kind present, zero included)."""
        ...

    def close(self) -> None: ...
