"""A live account (`drl-trading live`) seen from another process: its stored state and last
reconciliation (`live status`), and the kill switch that reaches the exchange when no session
runs on it (`kill [--flatten]`).

With a session running, a kill is a control request the session applies through its own
exchange broker (`app.paper_account.control_account`). With none, the request is applied here
through a ccxt broker built from ``execution.live`` for the venue the account trades on (its
``live.json`` marker: exchange, market, sandbox): our open orders are cancelled on the exchange
(client id prefix; other orders are left alone), ``--flatten`` sends the closing market orders,
the fills the exchange reports within a bounded wait are recorded (reconciliation adopts them
into the book), and the stored account is halted until `resume`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from drl_trading.app.paper_account import (
    HEARTBEAT_STALE_AFTER,
    LIVE_MARKER,
    STORED_ACCOUNT,
    AccountClock,
    AccountNotFoundError,
    ControlOutcome,
    account_dir,
    control_account,
    store_path,
)
from drl_trading.app.settings import AppSettings
from drl_trading.common.adapter.system_clock import SystemClock
from drl_trading.common.domain import Symbol
from drl_trading.execution.core.config import LiveSettings
from drl_trading.execution.core.ports import ExecutionStore
from drl_trading.execution.core.reconciliation import ReconciliationRecord
from drl_trading.execution.core.records import (
    Checkpoint,
    ControlKind,
    Position,
    RecordKind,
    SessionBeat,
    TradeRecord,
)

FILL_WAIT_S = 10.0
"""How long an idle ``kill --flatten`` waits for the exchange to fill its closing orders
(wall seconds); what is still open then rests there and the next session reconciles it."""
FILL_POLL_S = 0.25
"""Between two looks at the exchange while waiting for the closing orders (wall seconds)."""


def is_live_account(settings: AppSettings, account: str) -> bool:
    """``account`` trades on an exchange (`drl-trading live` marked its folder)."""
    return (account_dir(settings, account) / LIVE_MARKER).exists()


def account_live_settings(settings: AppSettings, account: str) -> LiveSettings:
    """``execution.live`` aimed at the venue ``account`` trades on: exchange, market and sandbox
    from its marker, so that a kill reaches that account whatever the configuration's default.
    A real account was confirmed when its session started; a kill only cancels and closes, so
    it is not asked to confirm again, nor changes a futures account's leverage."""
    live = settings.execution.live
    try:
        marker = json.loads((account_dir(settings, account) / LIVE_MARKER).read_text())
    except (OSError, ValueError):
        return live
    venue = {k: marker[k] for k in ("exchange", "market", "sandbox") if k in marker}
    if venue.get("sandbox") is False:
        venue["confirm_real_account"] = True
    venue["leverage"] = None
    return LiveSettings.model_validate(live.model_dump() | venue)


def open_account_store(settings: AppSettings, account: str) -> ExecutionStore:
    """The execution store holding ``account`` (SQLite in its folder, or PostgreSQL); raises
    `AccountNotFoundError` for an account never run or an in-memory store."""
    ex = settings.execution
    if ex.store == "memory":
        raise AccountNotFoundError(
            "execution.store is 'memory': a session's account lives in its own process only, "
            "no other process can reach it"
        )
    if ex.store == "postgres":
        from drl_trading.execution.adapter.postgres_store import PostgresExecutionStore

        pg = settings.postgres
        return PostgresExecutionStore(pg.dsn(), schema=pg.schema_name)
    from drl_trading.execution.adapter.sqlite_store import SQLiteExecutionStore

    path = store_path(settings, account)
    if not path.exists():
        raise AccountNotFoundError(
            f"no live account {account!r} ({path} does not exist); run `drl-trading live "
            f"--session {account}` first"
        )
    return SQLiteExecutionStore(path)


@dataclass(frozen=True, slots=True)
class LiveAccountStatus:
    """What the store holds of a live account: its last checkpoint (None before any commit),
    the session beating on it (None: idle), the venue of its marker and its last
    reconciliation report. Cash and positions are those of the last commit (the exchange's
    balances as the session last read them); equity marks positions at the last closes."""

    account: str
    venue: LiveSettings
    checkpoint: Checkpoint | None
    session: SessionBeat | None
    reconciliation: ReconciliationRecord | None

    @property
    def cash(self) -> float | None:
        return None if self.checkpoint is None else self.checkpoint.portfolio.cash

    @property
    def positions(self) -> dict[Symbol, Position]:
        if self.checkpoint is None:
            return {}
        return {s: p for s, p in self.checkpoint.portfolio.positions.items() if not p.is_flat}

    @property
    def equity(self) -> float | None:
        """Cash plus each position at its last close (its average price when unmarked)."""
        if self.checkpoint is None:
            return None
        marks = self.checkpoint.marks
        return self.checkpoint.portfolio.cash + sum(
            p.quantity * (marks[s].price if s in marks else p.avg_price)
            for s, p in self.checkpoint.portfolio.positions.items()
        )


def live_account_status(settings: AppSettings, account: str) -> LiveAccountStatus:
    """The stored state of live ``account`` (no exchange call). Raises `AccountNotFoundError`
    for an account never run, or a paper one."""
    paper = settings.execution.store == "sqlite" and not is_live_account(settings, account)
    if paper and store_path(settings, account).exists():
        raise AccountNotFoundError(
            f"account {account!r} is a paper account, not a live one: `drl-trading trades "
            f"--session {account}` shows it"
        )
    store = open_account_store(settings, account)
    try:
        return LiveAccountStatus(
            account=account,
            venue=account_live_settings(settings, account),
            checkpoint=store.load(),
            session=store.live_session(datetime.now(UTC) - HEARTBEAT_STALE_AFTER),
            reconciliation=store.last_reconciliation(),
        )
    finally:
        store.close()


@dataclass(frozen=True, slots=True)
class LiveKillOutcome:
    """A kill on a live account: ``control`` as for a paper account; with no session running,
    the orders cancelled on the exchange, the closing orders sent (their ORDER or REJECTION
    records) and the FILL records of those the exchange filled within the wait."""

    control: ControlOutcome
    cancelled: tuple[TradeRecord, ...] = ()
    sent: tuple[TradeRecord, ...] = ()
    filled: tuple[TradeRecord, ...] = field(default_factory=tuple)
    reconciliation: ReconciliationRecord | None = None

    @property
    def unfilled(self) -> tuple[TradeRecord, ...]:
        """Closing orders accepted by the exchange but not (fully) filled within the wait."""
        done = {f.client_order_id for f in self.filled}
        return tuple(
            s for s in self.sent if s.kind is RecordKind.ORDER and s.client_order_id not in done
        )


def kill_live_account(
    settings: AppSettings,
    account: str,
    *,
    reason: str = "manual",
    flatten: bool = False,
    wait_s: float = 15.0,
    fill_wait_s: float = FILL_WAIT_S,
    poll_s: float = FILL_POLL_S,
) -> LiveKillOutcome:
    """Kill live ``account``: through its running session when one beats on it (as
    `control_account`), else on the exchange from here (module docstring). Raises
    `LiveAccountError` (nothing asked, nothing sent) when the credentials are missing,
    `AccountNotFoundError` for an account never run."""
    from drl_trading.app.execution import bootstrap_execution
    from drl_trading.app.infrastructure import build_strategy
    from drl_trading.app.live_broker import LiveAccountError, build_live_broker

    store = open_account_store(settings, account)
    try:
        asked = datetime.now(UTC)
        running = store.live_session(asked - HEARTBEAT_STALE_AFTER)
        checkpoint = store.load() if running is None else None
    finally:
        store.close()
    if running is not None:
        return LiveKillOutcome(
            control_account(
                settings, account, ControlKind.KILL, reason=reason, flatten=flatten, wait_s=wait_s
            )
        )
    live = account_live_settings(settings, account)
    symbols = _traded_symbols(checkpoint)
    clock = AccountClock()
    try:  # the broker stamps its orders with the wall clock, as in a running session
        # a kill waits a few seconds for its closing fills: REST polling, no order stream
        broker = build_live_broker(
            live.model_copy(update={"order_stream": False}), symbols, SystemClock()
        )
    except LiveAccountError as exc:
        raise LiveAccountError(
            f"kill on live account {account!r} cancels its orders on {live.exchange}: {exc}"
        ) from None
    ex = settings.execution
    exec_settings = ex.model_copy(
        update={"store_path": store_path(settings, account), "capital": "shared", "live": live}
    )
    postgres = None
    if ex.store == "postgres":
        postgres = (settings.postgres.dsn(), settings.postgres.schema_name)
    parts = bootstrap_execution(
        exec_settings,
        build_strategy(settings).risk_parameters(),
        clock,
        settings.home,
        symbols,
        postgres,
        broker=broker,
        venue=broker,
    )
    clock.service = parts.service
    try:
        parts.service.attach(STORED_ACCOUNT)
        request = parts.store.request_control(
            ControlKind.KILL, asked, reason=reason, flatten=flatten
        )
        since = clock.now()  # the kill's records carry the account's market time
        before = {r.record_id for r in parts.store.records_since(since)}
        parts.service.apply_controls()
        new = [r for r in parts.store.records_since(since) if r.record_id not in before]
        cancelled = tuple(r for r in new if r.kind is RecordKind.CANCEL)
        sent = tuple(r for r in new if r.kind in (RecordKind.ORDER, RecordKind.REJECTION))
        closing = {r.client_order_id for r in sent if r.kind is RecordKind.ORDER}
        deadline = time.monotonic() + fill_wait_s
        while closing and time.monotonic() < deadline:
            resting = {o.client_order_id for o in broker.venue_state(asked).open_orders}
            if not closing & resting:
                break
            time.sleep(poll_s)
        # adopts the closing orders' fills (FILL records, the book from the exchange) and
        # keeps the report for `live status`
        parts.service.reconcile()
        filled = tuple(
            r
            for r in parts.store.records_since(since)
            if r.kind is RecordKind.FILL and r.client_order_id in closing
        )
        control = parts.store.control(request.control_id) or request
        return LiveKillOutcome(
            ControlOutcome(control, None),
            cancelled=cancelled,
            sent=sent,
            filled=filled,
            reconciliation=parts.store.last_reconciliation(),
        )
    finally:
        parts.close()


def _traded_symbols(checkpoint: Checkpoint | None) -> list[Symbol]:
    """The symbols the account ever marked, held or ordered (the broker looks at their
    balances and open orders)."""
    if checkpoint is None:
        return []
    found = [*checkpoint.marks, *checkpoint.portfolio.positions]
    found += [o.symbol for o in checkpoint.portfolio.open_orders]
    return sorted(set(found))
