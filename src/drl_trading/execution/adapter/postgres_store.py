"""The execution store on PostgreSQL: the SQLite store's logic over a psycopg connection.

Both stores keep the same tables (migrations ``V003__execution_store`` to
``V005__execution_reconciliation``) and run the same statements, so this adapter only
translates the connection: ``?`` placeholders become ``%s`` and the explicit
``BEGIN``/``COMMIT`` of the SQLite store run on an autocommit psycopg connection.
Trade records, portfolio and trading state then live in the database that holds the market data,
where every service (inference reads positions from it) and an operator can reach them.

PostgreSQL specifics: a commit is sent as one query (its statements bound on the client, one
round trip and one result instead of one per statement) and a load as one pipeline; each commit
sends a ``NOTIFY`` on the schema's channel, which `wait_for_commit` (inference, in another
process) listens to instead of polling; its payload carries the symbol states the commit changed
(`state_notices`), so the listener knows them without reading the store (`listened_state`).
A control request (`request_control`) notifies the schema's control channel in its transaction, so
`pending_controls`, which the execution service asks before every event, reads the database
only when a request was announced (or the last read found one pending): no round trip on the
hot path. Another process's request is therefore seen once its notification has arrived
(milliseconds after its commit), at the latest at the event after that. A broken
connection (server restart) fails the call with the retryable `DatabaseConnectionError`, and
the next call reconnects: the transaction in flight was rolled back by the server, so the store
holds the last committed checkpoint (the execution service reloads it before going on).

Several execution instances (a consumer group split by symbol) share one account: one cash, one
risk state. Each event is handled under `hold_account`, a PostgreSQL advisory lock on the schema's
account taken together with the stored checkpoint generation in one round trip (and released by
the event's commit, in the commit's own query); an instance that finds the generation moved
(another instance committed) reloads the account before deciding. So
no two instances decide on the same cash, and an instance killed while holding the lock releases
it with its connection. The events of the instances are serialised on the account: execution
scales out for availability and rebalancing, not for throughput.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import psycopg
import structlog

from drl_trading.common.adapter.postgres_schema import connect, connection_error, open_connection
from drl_trading.common.domain import Symbol
from drl_trading.common.errors import DatabaseConnectionError
from drl_trading.execution.adapter import state_notices
from drl_trading.execution.adapter.sqlite_store import SQLiteExecutionStore
from drl_trading.execution.core.records import (
    AppliedControl,
    Checkpoint,
    ControlRequest,
    RecordKind,
    SymbolState,
    TradeRecord,
)

log = structlog.get_logger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


class _Connection:
    """The few `sqlite3.Connection` methods the SQLite store calls, on psycopg.

    Inside `script` the statements are not sent one by one: each is bound on the client
    (psycopg's `ClientCursor.mogrify`, the server's quoting rules) and the block's statements
    go to the server as one query when it ends. A commit is about ten statements; sent in a
    pipeline each still costs psycopg ~0.1 ms of CPU to send and to collect its result, one
    query costs that once. Statements inside a script return no result to read."""

    def __init__(self, con: psycopg.Connection[Any]) -> None:
        self._con = con
        self._script: list[str] | None = None
        self._binder: psycopg.ClientCursor[Any] | None = None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any] | None:
        if sql.startswith("BEGIN"):
            sql = "BEGIN"  # SQLite's BEGIN IMMEDIATE: PostgreSQL locks rows as it writes them
        sql = sql.replace("?", "%s")
        if self._script is not None:
            self._script.append(self._bound(sql, params))
            return None
        return self._con.execute(sql, params or None)  # type: ignore[arg-type]

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        sql = sql.replace("?", "%s")
        if self._script is not None:
            self._script.extend(self._bound(sql, row) for row in rows)
            return
        with self._con.cursor() as cur:
            cur.executemany(sql, list(rows))  # type: ignore[arg-type]

    def _bound(self, sql: str, params: Sequence[Any]) -> str:
        if not params:
            return sql
        if self._binder is None:
            self._binder = psycopg.ClientCursor(self._con)
        return self._binder.mogrify(sql, params)  # type: ignore[arg-type]

    @contextmanager
    def script(self) -> Iterator[None]:
        """Collect the block's statements and send them as one query at its end (not when it
        raises: then nothing of it was sent)."""
        self._script = []
        try:
            yield
            statements, self._script = self._script, None
            if statements:
                self._con.execute(";\n".join(statements))  # type: ignore[call-overload]
        finally:
            self._script = None

    @property
    def in_transaction(self) -> bool:
        return self._con.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    def close(self) -> None:
        self._con.close()


def _reconnecting(method: Callable[P, R]) -> Callable[P, R]:
    """Turn a broken connection into `DatabaseConnectionError` and reconnect on the next call."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        store = args[0]
        assert isinstance(store, PostgresExecutionStore)
        store._ensure_connected()
        try:
            return method(*args, **kwargs)
        except psycopg.OperationalError as exc:
            if not store._raw.closed and not store._raw.broken:
                raise
            store._broken = True
            log.warning("execution store connection lost", error=str(exc).strip())
            raise connection_error(store._dsn, exc, lost=True) from exc

    return call


@dataclass(frozen=True, slots=True)
class _Probe:
    """What the account's lock read about the event in hand (None: not asked)."""

    signal_id: str | None
    processed: bool | None
    client_order_id: str | None
    ordered: bool | None


class PostgresExecutionStore(SQLiteExecutionStore):
    def __init__(self, dsn: str, *, schema: str = "public", migrate: bool = True) -> None:
        self._dsn = dsn
        self.schema = schema
        self.path = None  # type: ignore[assignment]
        self._lock = threading.Lock()
        self._written = None
        self._listener: psycopg.Connection[Any] | None = None
        self._listened = state_notices.ListenedStates()
        self._control_listener: psycopg.Connection[Any] | None = None
        self._none_pending = False  # the last read of the pending controls found none
        self._probe: _Probe | None = None  # what the account's lock read with it
        self._in_block = False  # inside a `hold_account` block
        self._held = False  # this session holds the account's lock
        self._releasing = False  # the commit in flight releases it after its COMMIT
        self._broken = False
        self._raw = self._connect(migrate)
        self._con = _Connection(self._raw)  # type: ignore[assignment]
        self._generation = self._read_generation()

    @property
    def channel(self) -> str:
        return f"drl_execution_{self.schema}"

    @property
    def control_channel(self) -> str:
        return f"drl_execution_control_{self.schema}"

    def _connect(self, migrate: bool) -> psycopg.Connection[Any]:
        return connect(self._dsn, self.schema, autocommit=True, apply_migrations=migrate)

    def _ensure_connected(self) -> None:
        if not self._broken:
            return
        with self._lock:
            if not self._broken:
                return
            old = self._raw
            self._raw = self._connect(migrate=False)
            self._con = _Connection(self._raw)  # type: ignore[assignment]
            self._broken = False
            self._written = None  # what the server holds is known again only after a commit
            old.close()
            log.info("execution store reconnected")

    def _batch(self) -> AbstractContextManager[object]:
        return self._raw.pipeline()

    def _write_batch(self) -> AbstractContextManager[object]:
        return self._con.script()  # type: ignore[attr-defined,no-any-return]

    def _lock_sessions(self) -> None:
        # a heartbeat (INSERT ... ON CONFLICT UPDATE) waits until the reset's transaction ends
        self._raw.execute("LOCK TABLE sessions IN SHARE ROW EXCLUSIVE MODE")

    def _notify(
        self,
        generation: int | None = None,
        checkpoint: Checkpoint | None = None,
        previous: Checkpoint | None = None,
    ) -> None:
        if generation is None or checkpoint is None:
            self._con.execute(f'NOTIFY "{self.channel}"')
            return
        payload = state_notices.encode(
            generation, state_notices.changed_states(checkpoint, previous)
        )
        self._con.execute("SELECT pg_notify(?, ?)", (self.channel, payload))

    def _after_commit_statements(self) -> None:
        """Inside `hold_account`, release the account's lock in the commit's own query, after
        its COMMIT: the unlock's round trip is then not on the event's path. The server skips it
        when a statement before it fails, so a commit that raises leaves the lock held (the
        block's end releases it)."""
        self._releasing = self._held
        if self._held:
            self._con.execute(
                "SELECT pg_advisory_unlock(hashtextextended(?, 0))", (self._account_key,)
            )

    def _after_commit(self, durable: bool) -> None:
        """No WAL checkpoint (PostgreSQL checkpoints in its own processes); the processed mark
        read with the lock is out of date once this handle committed (it may have marked it).
        A commit that released the lock leaves the rest of the block without it."""
        self._probe = None
        if self._releasing:
            self._held = self._releasing = False

    def _relax_durability(self) -> None:
        # a bar's marks: the commit need not wait for the WAL flush (~5 ms with fsync on a
        # disk); a later synchronous commit (an order, a fill, a signal) flushes it with its own
        self._con.execute("SET LOCAL synchronous_commit TO OFF")

    def _notify_control(self) -> None:
        self._raw.execute(f'NOTIFY "{self.control_channel}"')
        self._none_pending = False  # this handle's own request is pending for it at once

    def pending_controls(self) -> list[ControlRequest]:
        if self._quiet():
            return []
        pending = self._read_pending()
        self._none_pending = not pending  # while one is pending, read again at every call
        return pending

    def _quiet(self) -> bool:
        """No request can be pending: the last read found none and no request was announced
        since (the control listener has been listening all along)."""
        listener = self._control_listener
        try:
            if listener is None or listener.closed or listener.broken:
                self._none_pending = False  # requests made before the LISTEN: read them
                self._control_listener = open_connection(self._dsn, autocommit=True)
                self._control_listener.execute(f'LISTEN "{self.control_channel}"')
                return False
            if any(True for _ in listener.notifies(timeout=0)):
                self._none_pending = False  # until a read succeeds and finds none
                return False
            return self._none_pending
        except (psycopg.OperationalError, DatabaseConnectionError) as exc:
            log.warning("execution control listener lost", error=str(exc).strip())
            if self._control_listener is not None:
                self._control_listener.close()
            self._control_listener = None
            self._none_pending = False
            return False

    @contextmanager
    def hold_account(
        self, signal_id: str | None = None, client_order_id: str | None = None
    ) -> Iterator[bool]:
        """Hold the account against the other processes that hold it this way (execution
        instances sharing it) for the ``with`` block; yields whether another process committed
        it since this handle last loaded or committed (then the caller reloads before deciding).
        The lock is the session's: released by the block's first commit (in the commit's own
        query) or at the block's end, or by the server when the process dies.

        With ``signal_id`` (the signal the block handles) whether it was processed is read in
        the same round trip and `is_processed` answers it without another; with
        ``client_order_id`` (the id an order for it would carry) whether an order holds that id
        is read too, and `has_order` and the commit's check of new orders answer it. While the
        lock is held no other instance commits, and only commits mark signals processed or store
        orders; the answers are dropped at this handle's own commit."""
        self._ensure_connected()
        columns = [
            "pg_advisory_lock(hashtextextended(%s, 0))",
            "(SELECT generation FROM checkpoint_version)",
        ]
        params: list[str] = [self._account_key]
        if signal_id is not None:  # a bar has no signal to look up
            columns.append("EXISTS (SELECT 1 FROM processed_signals WHERE signal_id = %s)")
            params.append(signal_id)
        if client_order_id is not None:
            columns.append(
                "EXISTS (SELECT 1 FROM records WHERE kind = %s AND client_order_id = %s)"
            )
            params += [RecordKind.ORDER.value, client_order_id]
        try:
            with self._lock:
                row = self._raw.execute(f"SELECT {', '.join(columns)}", params).fetchone()
        except psycopg.OperationalError as exc:
            self._broken = True
            raise connection_error(self._dsn, exc, lost=True) from exc
        assert row is not None
        answers = iter(row[2:])
        self._probe = _Probe(
            signal_id,
            None if signal_id is None else bool(next(answers)),
            client_order_id,
            None if client_order_id is None else bool(next(answers)),
        )
        self._in_block = self._held = True
        try:
            yield int(row[1]) != self._generation
        finally:
            self._probe = None
            self._in_block = False
            if self._held:  # no commit released it
                self._held = False
                try:
                    with self._lock:
                        self._raw.execute(
                            "SELECT pg_advisory_unlock(hashtextextended(%s, 0))",
                            (self._account_key,),
                        )
                except psycopg.OperationalError as exc:  # the server released it with the session
                    self._broken = True
                    log.warning(
                        "account lock not released: connection lost", error=str(exc).strip()
                    )

    def _probed(self, signal_id: str) -> bool | None:
        """Whether ``signal_id`` was processed, as read with the account's lock; None when it
        was not read so (not inside `hold_account` for this signal)."""
        probe = self._probe
        if probe is None or probe.signal_id != signal_id:
            return None
        return probe.processed

    def _probed_order(self, client_order_id: str) -> bool | None:
        """Whether an order holds ``client_order_id``, as read with the account's lock; None
        when it was not read so."""
        probe = self._probe
        if probe is None or probe.client_order_id != client_order_id:
            return None
        return probe.ordered

    def is_processed(self, signal_id: str) -> bool:
        probed = self._probed(signal_id)
        if probed is not None:
            return probed
        return self._read_processed(signal_id)

    def has_order(self, client_order_id: str) -> bool:
        probed = self._probed_order(client_order_id)
        if probed is not None:
            return probed
        return self.order(client_order_id) is not None

    def _existing_orders(self, client_order_ids: list[str]) -> set[str]:
        """The commit's check of new orders (under the store's lock): a signal's one order
        answered from what the account's lock read."""
        if len(client_order_ids) == 1:
            probed = self._probed_order(client_order_ids[0])
            if probed is not None:
                return set(client_order_ids) if probed else set()
        return super()._existing_orders(client_order_ids)

    @property
    def _account_key(self) -> str:
        return f"drl_execution_account.{self.schema}"

    def wait_for_commit(self, timeout: float) -> bool:
        """Block until execution commits a checkpoint (a NOTIFY) or ``timeout`` seconds pass;
        returns whether one came. The first call starts listening (and returns at once). The
        symbol states the notifications carry are kept for `listened_state`."""
        try:
            if self._listener is None or self._listener.closed or self._listener.broken:
                self._listened.forget()
                self._listener = open_connection(self._dsn, autocommit=True)
                self._listener.execute(f'LISTEN "{self.channel}"')
                return True  # a commit may have come before the LISTEN: let the caller look
            # commits notified while nobody waited are still queued: take them all at once
            # (one wake-up, not one store read per stale notification)
            if self._take_notifications(0.0):
                return True
            return self._take_notifications(timeout, stop_after=1)
        except psycopg.OperationalError as exc:
            self._listened.forget()
            if self._listener is not None:
                self._listener.close()
            self._listener = None
            raise connection_error(self._dsn, exc, lost=True) from exc

    def _take_notifications(self, timeout: float, stop_after: int | None = None) -> bool:
        """Apply the notifications that come within ``timeout`` seconds (``stop_after``: once
        that many came); with no timeout, all that have arrived: psycopg's poll with a zero
        timeout returns one batch of what the socket holds, so it is repeated until one finds
        none (a listener that looks once per decision has several commits queued)."""
        assert self._listener is not None
        came = False
        while True:
            got = 0
            for notice in self._listener.notifies(timeout=timeout, stop_after=stop_after):
                self._listened.apply(notice.payload)
                got += 1
            came = came or got > 0
            if not got or timeout > 0.0:
                return came

    def listened_state(self, symbol: Symbol) -> SymbolState | None:
        """``symbol``'s state as the commits notified so far left it, without a round trip; None
        when this handle does not know it (not listening, no commit since it started listening
        changed the symbol, or a notification without states came: then read `symbol_state`).
        Notifications that arrived since the last call are taken first."""
        listener = self._listener
        if listener is None or listener.closed or listener.broken:
            return None
        try:
            self._take_notifications(0.0)
        except psycopg.OperationalError:
            self._listened.forget()
            return None  # the next wait_for_commit reconnects
        return self._listened.get(symbol)

    def commit(
        self,
        checkpoint: Checkpoint,
        records: Sequence[TradeRecord] = (),
        processed_signal_id: str | None = None,
        applied_controls: Sequence[AppliedControl] = (),
        *,
        durable: bool = True,
    ) -> None:
        """The base class's commit, one query. Inside `hold_account` the first commit releases
        the account's lock with it (`_after_commit_statements`); a later commit in the same
        block takes the lock again first, and its generation guard refuses it when another
        instance committed in between (`ConcurrentCommitError`: the service reloads)."""
        if self._in_block and not self._held:
            self._hold_again()
        self._releasing = False
        self._commit(
            checkpoint,
            records,
            processed_signal_id=processed_signal_id,
            applied_controls=applied_controls,
            durable=durable,
        )

    @_reconnecting
    def _hold_again(self) -> None:
        with self._lock:
            self._raw.execute(
                "SELECT pg_advisory_lock(hashtextextended(%s, 0))", (self._account_key,)
            )
        self._held = True

    load = _reconnecting(SQLiteExecutionStore.load)
    _commit = _reconnecting(SQLiteExecutionStore.commit)
    symbol_state = _reconnecting(SQLiteExecutionStore.symbol_state)
    _read_processed = _reconnecting(SQLiteExecutionStore.is_processed)
    order = _reconnecting(SQLiteExecutionStore.order)
    records_since = _reconnecting(SQLiteExecutionStore.records_since)
    counts = _reconnecting(SQLiteExecutionStore.counts)
    request_control = _reconnecting(SQLiteExecutionStore.request_control)
    _read_pending = _reconnecting(SQLiteExecutionStore.pending_controls)
    control = _reconnecting(SQLiteExecutionStore.control)
    beat = _reconnecting(SQLiteExecutionStore.beat)
    end_session = _reconnecting(SQLiteExecutionStore.end_session)
    live_session = _reconnecting(SQLiteExecutionStore.live_session)
    reset_account = _reconnecting(SQLiteExecutionStore.reset_account)
    save_reconciliation = _reconnecting(SQLiteExecutionStore.save_reconciliation)
    last_reconciliation = _reconnecting(SQLiteExecutionStore.last_reconciliation)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._control_listener is not None:
            self._control_listener.close()
        with self._lock:
            self._raw.close()
