"""Execution store in an embedded SQLite file (stdlib ``sqlite3``): the default paper store.

SQLite is made for the small transactions a commit per bar and per signal is (a DuckDB store,
tried first, cost 3-9 ms per commit): in WAL mode with ``synchronous=NORMAL`` a commit costs about a
tenth of a millisecond (durable against a process crash; a power loss may lose the last commits,
never corrupt the file). Times are integer microseconds since the Unix epoch, UTC (exact
round-trip); dates are ISO strings; floats are 8-byte IEEE (exact).

The WAL is copied back into the database file (a checkpoint, with its fsync: 3-7 ms) by the store
itself rather than by SQLite's automatic checkpoint, which runs inside whichever commit crosses
1,000 pages: often a signal's, on the path from bar close to order. The store checkpoints at the
end of a commit that need not be durable (a bar's marks; embedded, those are committed after the
order's acknowledgement) once `CHECKPOINT_AFTER_COMMITS` commits have gone into the WAL, and at
any commit once `FORCE_CHECKPOINT_AFTER_COMMITS` have, so the WAL stays bounded whoever calls.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from drl_trading.common.domain import Order, Side, Symbol, utc
from drl_trading.common.events import now_utc
from drl_trading.execution.adapter.memory_store import check_new_orders
from drl_trading.execution.adapter.store_rows import (
    RECONCILIATION_COLUMNS,
    RECORD_COLUMNS,
    reconciliation_from_row,
    reconciliation_row,
    record_from_row,
    record_row,
)
from drl_trading.execution.core.ports import AccountInUseError, ConcurrentCommitError
from drl_trading.execution.core.reconciliation import ReconciliationRecord
from drl_trading.execution.core.records import (
    AppliedControl,
    Checkpoint,
    ControlKind,
    ControlRequest,
    Mark,
    PortfolioSnapshot,
    Position,
    RecordKind,
    RiskState,
    SessionBeat,
    SymbolState,
    TradeRecord,
    TradingState,
)

log = structlog.get_logger(__name__)

_DDL = """
CREATE TABLE IF NOT EXISTS portfolio (cash REAL NOT NULL, saved_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS positions (
    symbol TEXT NOT NULL,
    quantity REAL NOT NULL,
    avg_price REAL NOT NULL,
    realised_pnl REAL NOT NULL,
    fees_paid REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS open_orders (
    position INTEGER NOT NULL,
    client_order_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    quantity REAL NOT NULL,
    limit_price REAL
);
CREATE TABLE IF NOT EXISTS marks (symbol TEXT NOT NULL, price REAL NOT NULL,
    as_of INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS targets (symbol TEXT NOT NULL, target REAL NOT NULL);
CREATE TABLE IF NOT EXISTS entries (symbol TEXT NOT NULL, price REAL NOT NULL,
    as_of INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS trading_state (
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    since INTEGER NOT NULL,
    peak_equity REAL NOT NULL,
    day_start_equity REAL NOT NULL,
    last_equity REAL NOT NULL,
    day TEXT,
    last_signal_record_id TEXT
);
CREATE TABLE IF NOT EXISTS processed_signals (
    signal_id TEXT PRIMARY KEY,
    processed_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    symbol TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    client_order_id TEXT,
    signal_id TEXT,
    side TEXT,
    quantity REAL NOT NULL,
    price REAL,
    fee REAL NOT NULL,
    realised_pnl REAL NOT NULL,
    model_version TEXT,
    risk_check TEXT NOT NULL,
    reason TEXT NOT NULL,
    signal_time INTEGER
);
CREATE INDEX IF NOT EXISTS records_client_order_id ON records (client_order_id);
CREATE INDEX IF NOT EXISTS records_at ON records (occurred_at);
CREATE TABLE IF NOT EXISTS checkpoint_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO checkpoint_version VALUES (1, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS stale_commit_guard (
    generation INTEGER,
    CONSTRAINT commit_over_a_newer_checkpoint CHECK (generation IS NULL)
);
CREATE TABLE IF NOT EXISTS controls (
    control_id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    reason TEXT NOT NULL,
    flatten INTEGER NOT NULL,
    applied_at INTEGER,
    applied_by TEXT,
    outcome TEXT NOT NULL DEFAULT '',
    records_before INTEGER
);
CREATE TABLE IF NOT EXISTS sessions (session_id TEXT PRIMARY KEY, beat_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reconciliation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    taken_at INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    summary TEXT NOT NULL,
    details TEXT NOT NULL
);
"""

_CONTROL_COLUMNS = (
    "control_id, kind, requested_at, reason, flatten, applied_at, applied_by, outcome, "
    "records_before"
)
_GUARD = "commit_over_a_newer_checkpoint"
"""The CHECK constraint a commit trips when the stored checkpoint generation is not the one the
committing handle expects: one statement, the same on SQLite and PostgreSQL, that aborts the
transaction (inside PostgreSQL's pipeline too, where a Python check would cost a round trip)."""


_ACCOUNT_TABLES = (
    "portfolio",
    "positions",
    "open_orders",
    "marks",
    "targets",
    "entries",
    "trading_state",
    "processed_signals",
    "records",
    "controls",
    "sessions",
    "reconciliation",
)
"""Every table holding the account's state: what `reset_account` empties (the checkpoint
generation is bumped instead)."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(ts: datetime) -> int:
    return (utc(ts) - _EPOCH) // _MICROSECOND


def _micros_or_none(ts: datetime | None) -> int | None:
    return None if ts is None else _micros(ts)


def _time(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _time_or_none(micros: int | None) -> datetime | None:
    return None if micros is None else _time(micros)


def _control(row: tuple[Any, ...]) -> ControlRequest:
    cid, kind, requested, reason, flatten, applied, by, outcome, before = row
    return ControlRequest(
        control_id=int(cid),
        kind=ControlKind(kind),
        requested_at=_time(requested),
        reason=reason,
        flatten=bool(flatten),
        applied_at=_time_or_none(applied),
        applied_by=by,
        outcome=outcome,
        records_before=None if before is None else int(before),
    )


CHECKPOINT_AFTER_COMMITS = 100
"""Commits in the WAL (a few pages each) after which a non-durable commit checkpoints it."""
FORCE_CHECKPOINT_AFTER_COMMITS = 1_000
"""Commits after which any commit checkpoints: the bound when no non-durable commit comes."""


class SQLiteExecutionStore:
    """Every commit bumps the checkpoint generation and checks, in the same transaction, that
    the stored one is the generation this handle last loaded or committed: a second writer (a
    `kill` applied to the stored account while a session was starting) makes the other's next
    commit fail with `ConcurrentCommitError` instead of being overwritten by it."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # autocommit mode (isolation_level=None): transactions are the explicit BEGIN/COMMIT
            # of `commit`; one connection shared by the service's threads under `_lock`
            self._con = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=5.0
            )
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=NORMAL")
            self._con.execute(f"PRAGMA wal_autocheckpoint={self.AUTOCHECKPOINT_PAGES}")
            self._con.executescript(_DDL)
        except sqlite3.Error as exc:
            raise RuntimeError(f"cannot open execution store {self.path}: {exc}") from exc
        self._lock = threading.Lock()
        self._written: Checkpoint | None = None  # what the last successful commit wrote
        self._generation = self._read_generation()
        self._uncheckpointed = 0  # commits in the WAL since this handle's last checkpoint

    AUTOCHECKPOINT_PAGES = 0
    """SQLite's automatic checkpoint, off: `_after_commit` checkpoints (see the module)."""

    def _read_generation(self) -> int:
        """The stored checkpoint's generation (commits since the store was created)."""
        with self._lock:
            row = self._con.execute("SELECT generation FROM checkpoint_version").fetchone()
        return int(row[0])

    def load(self) -> Checkpoint | None:
        with self._lock:
            con = self._con
            try:
                with self._batch():
                    con.execute("BEGIN")  # one consistent read snapshot
                    # every query is sent before any result is read: one round trip on PostgreSQL
                    cursors = [
                        con.execute(sql)
                        for sql in (
                            "SELECT * FROM trading_state",
                            "SELECT cash FROM portfolio",
                            "SELECT symbol, quantity, avg_price, realised_pnl, fees_paid "
                            "FROM positions ORDER BY symbol",
                            "SELECT client_order_id, symbol, side, quantity, limit_price "
                            "FROM open_orders ORDER BY position",
                            "SELECT symbol, price, as_of FROM marks ORDER BY symbol",
                            "SELECT symbol, price, as_of FROM entries ORDER BY symbol",
                            "SELECT symbol, target FROM targets ORDER BY symbol",
                            "SELECT generation FROM checkpoint_version",
                        )
                    ]
                    (
                        state_rows,
                        cash_rows,
                        position_rows,
                        order_rows,
                        mark_rows,
                        entry_rows,
                        target_rows,
                        generation_rows,
                    ) = [c.fetchall() for c in cursors]
                    last_signal_id = state_rows[0][7] if state_rows else None
                    last_signal = self._record_by_id(last_signal_id) if last_signal_id else None
                    # unconditionally: inside PostgreSQL's pipeline the connection reports no
                    # transaction between syncs, and one left open would hide every later
                    # write of this connection (heartbeats, requests) until the next commit
                    con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
            # the tables may hold another writer's commit: rewrite them all next time
            self._generation, self._written = int(generation_rows[0][0]), None
        if not state_rows or not cash_rows:
            return None
        (state, reason, since, peak, day_start, last, day, _) = state_rows[0]
        positions = {Symbol(s): Position(q, a, r, f) for s, q, a, r, f in position_rows}
        orders = tuple(
            Order(coid, Symbol(s), Side(side), q, limit) for coid, s, side, q, limit in order_rows
        )
        marks = {Symbol(s): Mark(p, _time(t)) for s, p, t in mark_rows}
        entries = {Symbol(s): Mark(p, _time(t)) for s, p, t in entry_rows}
        targets = {Symbol(s): t for s, t in target_rows}
        return Checkpoint(
            portfolio=PortfolioSnapshot(cash_rows[0][0], positions, orders),
            risk=RiskState(
                state=TradingState(state),
                reason=reason,
                since=_time(since),
                peak_equity=peak,
                day_start_equity=day_start,
                last_equity=last,
                day=None if day is None else date.fromisoformat(day),
            ),
            marks=marks,
            targets=targets,
            entries=entries,
            last_signal=last_signal,
        )

    def commit(
        self,
        checkpoint: Checkpoint,
        records: Sequence[TradeRecord] = (),
        processed_signal_id: str | None = None,
        applied_controls: Sequence[AppliedControl] = (),
        *,
        durable: bool = True,
    ) -> None:
        ids = [r.client_order_id for r in records if r.kind is RecordKind.ORDER]
        with self._lock:
            con = self._con
            known = self._existing_orders([i for i in ids if i is not None])
            check_new_orders(records, known)
            generation = self._generation + 1
            previous = self._written  # the stored checkpoint at the generation before
            try:
                with self._write_batch():  # PostgreSQL: one round trip, one query
                    con.execute("BEGIN IMMEDIATE")
                    if not durable and not (records or processed_signal_id or applied_controls):
                        self._relax_durability()
                    # bump first: on PostgreSQL the row lock orders concurrent committers, so
                    # the second one sees the first one's generation in its guard
                    con.execute("UPDATE checkpoint_version SET generation = generation + 1")
                    con.execute(
                        "INSERT INTO stale_commit_guard (generation) SELECT generation "
                        "FROM checkpoint_version WHERE generation <> ?",
                        (generation,),
                    )
                    if applied_controls:
                        con.executemany(
                            "UPDATE controls SET applied_at = ?, applied_by = ?, outcome = ?, "
                            "records_before = (SELECT count(*) FROM records) "
                            "WHERE control_id = ? AND applied_at IS NULL",
                            [
                                (_micros(a.at), a.by, a.outcome, a.control_id)
                                for a in applied_controls
                            ],
                        )
                    self._write_checkpoint(checkpoint)
                    if records:
                        con.executemany(
                            f"INSERT INTO records ({RECORD_COLUMNS}) "
                            f"VALUES ({', '.join('?' * 15)})",
                            [record_row(r, _micros) for r in records],
                        )
                    if processed_signal_id is not None:
                        con.execute(
                            "INSERT INTO processed_signals VALUES (?, ?) ON CONFLICT DO NOTHING",
                            (processed_signal_id, _micros(now_utc())),
                        )
                    self._notify(generation, checkpoint, previous)
                    con.execute("COMMIT")
                    self._after_commit_statements()
                self._written, self._generation = checkpoint, generation
            except BaseException as exc:
                if con.in_transaction:  # some errors make SQLite roll back on its own
                    con.execute("ROLLBACK")
                if _GUARD in str(exc):
                    raise ConcurrentCommitError() from exc
                raise
            self._after_commit(durable)

    def reset_account(self, live_since: datetime) -> None:
        with self._lock:
            con = self._con
            try:
                con.execute("BEGIN IMMEDIATE")  # SQLite: the write lock, beats wait for it
                self._lock_sessions()
                live = con.execute(
                    "SELECT session_id, beat_at FROM sessions WHERE beat_at >= ? "
                    "ORDER BY beat_at DESC LIMIT 1",
                    (_micros(live_since),),
                ).fetchone()
                if live is not None:
                    raise AccountInUseError(SessionBeat(live[0], _time(live[1])))
                for table in _ACCOUNT_TABLES:
                    con.execute(f"DELETE FROM {table}")
                rows = con.execute(
                    "UPDATE checkpoint_version SET generation = generation + 1 RETURNING generation"
                ).fetchall()
                self._notify()
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
            self._generation, self._written = int(rows[0][0]), None

    def _lock_sessions(self) -> None:
        """Keep sessions from beating until the transaction ends (SQLite: BEGIN IMMEDIATE
        already holds the database's write lock)."""

    def _batch(self) -> AbstractContextManager[object]:
        """Statements sent together, results read at the end (SQLite: nothing to batch)."""
        return nullcontext()

    def _write_batch(self) -> AbstractContextManager[object]:
        """Statements whose results nobody reads (a commit's writes), sent together at the end
        of the block (SQLite: nothing to batch)."""
        return nullcontext()

    def _notify(
        self,
        generation: int | None = None,
        checkpoint: Checkpoint | None = None,
        previous: Checkpoint | None = None,
    ) -> None:
        """Tell readers in other processes that a checkpoint was committed (SQLite: none);
        ``generation``, ``checkpoint`` and ``previous`` (what was stored before, None when
        unknown) let a store send what changed with it (`state_notices`)."""

    def _after_commit_statements(self) -> None:
        """Statements sent with a commit, after its COMMIT, that run only when it committed
        (SQLite: none; PostgreSQL: the account's lock released in the same round trip)."""

    def _after_commit(self, durable: bool) -> None:
        """Checkpoint the WAL when it is due (see the module); PASSIVE: it copies what no reader
        still needs and never waits for one, so a busy reader only defers the rest."""
        if not self.AUTOCHECKPOINT_PAGES:
            self._uncheckpointed += 1
            due = FORCE_CHECKPOINT_AFTER_COMMITS if durable else CHECKPOINT_AFTER_COMMITS
            if self._uncheckpointed >= due:
                self._uncheckpointed = 0
                try:
                    self._con.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:  # the commit stands; the WAL waits for the next
                    log.warning("execution store WAL checkpoint failed", error=str(exc))

    def _relax_durability(self) -> None:
        """Let this transaction's commit return before it is on disk (``commit(durable=False)``;
        SQLite: nothing to do, WAL with ``synchronous=NORMAL`` does not sync at a commit)."""

    def symbol_state(self, symbol: Symbol) -> SymbolState:
        with self._lock:
            row = self._con.execute(
                "SELECT m.price, m.as_of, t.target, e.price, e.as_of, p.quantity, p.avg_price, "
                "p.realised_pnl, p.fees_paid FROM (SELECT CAST(? AS TEXT) AS symbol) AS s "
                "LEFT JOIN marks AS m ON m.symbol = s.symbol "
                "LEFT JOIN targets AS t ON t.symbol = s.symbol "
                "LEFT JOIN entries AS e ON e.symbol = s.symbol "
                "LEFT JOIN positions AS p ON p.symbol = s.symbol",
                (str(symbol),),
            ).fetchone()
        mark_price, mark_at, target, entry_price, entry_at, q, avg, realised, fees = row
        return SymbolState(
            None if mark_at is None else Mark(mark_price, _time(mark_at)),
            0.0 if target is None else target,
            None if entry_at is None else Mark(entry_price, _time(entry_at)),
            None if q is None else Position(q, avg, realised, fees),
        )

    def is_processed(self, signal_id: str) -> bool:
        with self._lock:
            row = self._con.execute(
                "SELECT 1 FROM processed_signals WHERE signal_id = ?", (signal_id,)
            ).fetchone()
        return row is not None

    def has_order(self, client_order_id: str) -> bool:
        return self.order(client_order_id) is not None

    def order(self, client_order_id: str) -> TradeRecord | None:
        with self._lock:
            row = self._con.execute(
                f"SELECT {RECORD_COLUMNS} FROM records WHERE kind = ? AND client_order_id = ? "
                "ORDER BY seq LIMIT 1",
                (RecordKind.ORDER.value, client_order_id),
            ).fetchone()
        return None if row is None else record_from_row(row, _time)

    def records_since(self, since: datetime) -> list[TradeRecord]:
        with self._lock:
            rows = self._con.execute(
                f"SELECT {RECORD_COLUMNS} FROM records WHERE occurred_at >= ? ORDER BY seq",
                (_micros(since),),
            ).fetchall()
        return [record_from_row(row, _time) for row in rows]

    def counts(self) -> dict[RecordKind, int]:
        with self._lock:
            rows = self._con.execute("SELECT kind, count(*) FROM records GROUP BY kind").fetchall()
        out = dict.fromkeys(RecordKind, 0)
        out.update({RecordKind(kind): int(n) for kind, n in rows})
        return out

    def request_control(
        self, kind: ControlKind, requested_at: datetime, *, reason: str = "", flatten: bool = False
    ) -> ControlRequest:
        with self._lock:
            con = self._con
            try:
                con.execute("BEGIN IMMEDIATE")
                rows = con.execute(
                    "INSERT INTO controls (kind, requested_at, reason, flatten) "
                    "VALUES (?, ?, ?, ?) RETURNING control_id",
                    (kind.value, _micros(requested_at), reason, int(flatten)),
                ).fetchall()
                self._notify_control()
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
        return ControlRequest(int(rows[0][0]), kind, requested_at, reason, flatten)

    def pending_controls(self) -> list[ControlRequest]:
        with self._lock:
            rows = self._con.execute(
                f"SELECT {_CONTROL_COLUMNS} FROM controls WHERE applied_at IS NULL "
                "ORDER BY control_id"
            ).fetchall()
        return [_control(r) for r in rows]

    def control(self, control_id: int) -> ControlRequest | None:
        with self._lock:
            row = self._con.execute(
                f"SELECT {_CONTROL_COLUMNS} FROM controls WHERE control_id = ?", (control_id,)
            ).fetchone()
        return None if row is None else _control(row)

    def beat(self, session_id: str, at: datetime) -> None:
        with self._lock:
            self._con.execute(
                "INSERT INTO sessions VALUES (?, ?) "
                "ON CONFLICT (session_id) DO UPDATE SET beat_at = excluded.beat_at",
                (session_id, _micros(at)),
            )

    def end_session(self, session_id: str) -> None:
        with self._lock:
            self._con.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))

    def live_session(self, since: datetime) -> SessionBeat | None:
        with self._lock:
            row = self._con.execute(
                "SELECT session_id, beat_at FROM sessions WHERE beat_at >= ? "
                "ORDER BY beat_at DESC LIMIT 1",
                (_micros(since),),
            ).fetchone()
        return None if row is None else SessionBeat(row[0], _time(row[1]))

    def save_reconciliation(self, record: ReconciliationRecord) -> None:
        # one statement in autocommit mode, like `beat`: no checkpoint generation involved
        row = reconciliation_row(record, _micros)
        with self._lock:
            self._con.execute(
                f"INSERT INTO reconciliation (id, {RECONCILIATION_COLUMNS}) VALUES (1, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET taken_at = excluded.taken_at, ok = excluded.ok, "
                "summary = excluded.summary, details = excluded.details",
                row,
            )

    def last_reconciliation(self) -> ReconciliationRecord | None:
        with self._lock:
            row = self._con.execute(
                f"SELECT {RECONCILIATION_COLUMNS} FROM reconciliation WHERE id = 1"
            ).fetchone()
        return None if row is None else reconciliation_from_row(row, _time)

    def _notify_control(self) -> None:
        """Tell a running session that a control request is pending (SQLite: it looks)."""

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def _existing_orders(self, client_order_ids: list[str]) -> set[str]:
        if not client_order_ids:
            return set()
        marks = ", ".join("?" * len(client_order_ids))
        rows = self._con.execute(
            f"SELECT client_order_id FROM records WHERE kind = ? AND client_order_id IN ({marks})",
            (RecordKind.ORDER.value, *client_order_ids),
        ).fetchall()
        return {row[0] for row in rows}

    def _record_by_id(self, record_id: str) -> TradeRecord | None:
        row = self._con.execute(
            f"SELECT {RECORD_COLUMNS} FROM records WHERE record_id = ?", (record_id,)
        ).fetchone()
        return None if row is None else record_from_row(row, _time)

    def _write_checkpoint(self, cp: Checkpoint) -> None:
        """Rewrite the tables whose part of the checkpoint changed since the last commit of this
        store (all of them after a start or a failed commit): a bar usually changes only the
        marks and the risk state, two tables out of seven."""
        last = self._written
        self._written = None  # until the commit succeeds

        def replace(
            table: str, part: Callable[[Checkpoint], object], rows: list[tuple[object, ...]]
        ) -> None:
            if last is not None and part(last) == part(cp):
                return
            self._con.execute(f"DELETE FROM {table}")
            if rows:
                marks = ", ".join("?" * len(rows[0]))
                self._con.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)

        pf, r = cp.portfolio, cp.risk
        replace("portfolio", lambda c: c.portfolio.cash, [(float(pf.cash), _micros(now_utc()))])
        replace(
            "positions",
            lambda c: c.portfolio.positions,
            [
                (
                    str(s),
                    float(p.quantity),
                    float(p.avg_price),
                    float(p.realised_pnl),
                    float(p.fees_paid),
                )
                for s, p in pf.positions.items()
            ],
        )
        replace(
            "open_orders",
            lambda c: c.portfolio.open_orders,
            [
                (
                    i,
                    o.client_order_id,
                    str(o.symbol),
                    o.side.value,
                    float(o.quantity),
                    None if o.limit_price is None else float(o.limit_price),
                )
                for i, o in enumerate(pf.open_orders)
            ],
        )
        replace(
            "marks",
            lambda c: c.marks,
            [(str(s), float(m.price), _micros(m.as_of)) for s, m in cp.marks.items()],
        )
        replace(
            "entries",
            lambda c: c.entries,
            [(str(s), float(m.price), _micros(m.as_of)) for s, m in cp.entries.items()],
        )
        replace("targets", lambda c: c.targets, [(str(s), float(t)) for s, t in cp.targets.items()])
        replace(
            "trading_state",
            lambda c: (c.risk, None if c.last_signal is None else c.last_signal.record_id),
            [
                (
                    r.state.value,
                    r.reason,
                    _micros(r.since),
                    float(r.peak_equity),
                    float(r.day_start_equity),
                    float(r.last_equity),
                    None if r.day is None else r.day.isoformat(),
                    None if cp.last_signal is None else cp.last_signal.record_id,
                )
            ],
        )
