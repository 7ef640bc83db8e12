"""Execution store in an embedded DuckDB file: paper trading survives restarts, no server needed.

The checkpoint is spread over small tables an operator can query (``positions``, ``open_orders``,
``marks``, ``targets``, ``trading_state``) and rewritten whole on every commit, inside the same
transaction as the new ``records`` and the ``processed_signals`` row. Times are naive UTC
``TIMESTAMP`` columns, as in the market-data store.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb

from drl_trading.common.domain import Order, Side, Symbol, utc
from drl_trading.common.events import now_utc
from drl_trading.execution.adapter.memory_store import check_new_orders
from drl_trading.execution.core.ports import (
    Checkpoint,
    Mark,
    PortfolioSnapshot,
    Position,
    RecordKind,
    RiskState,
    TradeRecord,
    TradingState,
)

_DDL = """
CREATE TABLE IF NOT EXISTS portfolio (cash DOUBLE NOT NULL, saved_at TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS positions (
    symbol VARCHAR NOT NULL,
    quantity DOUBLE NOT NULL,
    avg_price DOUBLE NOT NULL,
    realised_pnl DOUBLE NOT NULL,
    fees_paid DOUBLE NOT NULL
);
CREATE TABLE IF NOT EXISTS open_orders (
    position INTEGER NOT NULL,
    client_order_id VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    side VARCHAR NOT NULL,
    quantity DOUBLE NOT NULL,
    limit_price DOUBLE
);
CREATE TABLE IF NOT EXISTS marks (symbol VARCHAR NOT NULL, price DOUBLE NOT NULL,
    as_of TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS targets (symbol VARCHAR NOT NULL, target DOUBLE NOT NULL);
CREATE TABLE IF NOT EXISTS trading_state (
    state VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    since TIMESTAMP NOT NULL,
    peak_equity DOUBLE NOT NULL,
    day_start_equity DOUBLE NOT NULL,
    last_equity DOUBLE NOT NULL,
    day DATE,
    last_signal_record_id VARCHAR
);
CREATE TABLE IF NOT EXISTS processed_signals (
    signal_id VARCHAR PRIMARY KEY,
    processed_at TIMESTAMP NOT NULL
);
CREATE SEQUENCE IF NOT EXISTS record_seq;
CREATE TABLE IF NOT EXISTS records (
    seq BIGINT NOT NULL DEFAULT nextval('record_seq'),
    record_id VARCHAR PRIMARY KEY,
    kind VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    client_order_id VARCHAR,
    signal_id VARCHAR,
    side VARCHAR,
    quantity DOUBLE NOT NULL,
    price DOUBLE,
    fee DOUBLE NOT NULL,
    realised_pnl DOUBLE NOT NULL,
    model_version VARCHAR,
    risk_check VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    signal_time TIMESTAMP
);
CREATE INDEX IF NOT EXISTS records_client_order_id ON records (client_order_id);
CREATE INDEX IF NOT EXISTS records_at ON records (occurred_at);
"""

_RECORD_COLUMNS = (
    "record_id, kind, symbol, occurred_at, client_order_id, signal_id, side, quantity, price, fee, "
    "realised_pnl, model_version, risk_check, reason, signal_time"
)


def _naive(ts: datetime | None) -> datetime | None:
    return None if ts is None else utc(ts).replace(tzinfo=None)


def _aware(ts: datetime | None) -> datetime | None:
    return None if ts is None else utc(ts)


def _record_row(r: TradeRecord) -> list[Any]:
    return [
        r.record_id,
        r.kind.value,
        str(r.symbol),
        _naive(r.at),
        r.client_order_id,
        r.signal_id,
        None if r.side is None else r.side.value,
        r.quantity,
        r.price,
        r.fee,
        r.realised_pnl,
        r.model_version,
        r.risk_check,
        r.reason,
        _naive(r.signal_time),
    ]


def _record(row: tuple[Any, ...]) -> TradeRecord:
    (rid, kind, symbol, at, coid, sid, side, qty, price, fee, pnl, version, check, reason, st) = row
    return TradeRecord(
        record_id=rid,
        kind=RecordKind(kind),
        symbol=Symbol(symbol),
        at=utc(at),
        client_order_id=coid,
        signal_id=sid,
        side=None if side is None else Side(side),
        quantity=qty,
        price=price,
        fee=fee,
        realised_pnl=pnl,
        model_version=version,
        risk_check=check,
        reason=reason,
        signal_time=_aware(st),
    )


class DuckDBExecutionStore:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(str(self.path))
        except duckdb.IOException as exc:
            raise RuntimeError(
                f"cannot open execution store {self.path}: {exc}. DuckDB allows one writing "
                "process per file, and one execution service owns a store; stop the other one"
            ) from exc
        self._con.execute(_DDL)
        self._lock = threading.Lock()

    def load(self) -> Checkpoint | None:
        with self._lock:
            con = self._con
            state_rows = con.execute("SELECT * FROM trading_state").fetchall()
            cash_rows = con.execute("SELECT cash FROM portfolio").fetchall()
            if not state_rows or not cash_rows:
                return None
            (state, reason, since, peak, day_start, last, day, last_signal_id) = state_rows[0]
            positions = {
                Symbol(s): Position(q, a, r, f)
                for s, q, a, r, f in con.execute(
                    "SELECT symbol, quantity, avg_price, realised_pnl, fees_paid FROM positions "
                    "ORDER BY symbol"
                ).fetchall()
            }
            orders = tuple(
                Order(coid, Symbol(s), Side(side), q, limit)
                for coid, s, side, q, limit in con.execute(
                    "SELECT client_order_id, symbol, side, quantity, limit_price FROM open_orders "
                    "ORDER BY position"
                ).fetchall()
            )
            marks = {
                Symbol(s): Mark(p, utc(t))
                for s, p, t in con.execute(
                    "SELECT symbol, price, as_of FROM marks ORDER BY symbol"
                ).fetchall()
            }
            targets = {
                Symbol(s): t
                for s, t in con.execute(
                    "SELECT symbol, target FROM targets ORDER BY symbol"
                ).fetchall()
            }
            last_signal = self._record_by_id(last_signal_id) if last_signal_id else None
        day_value: date | None = day
        return Checkpoint(
            portfolio=PortfolioSnapshot(cash_rows[0][0], positions, orders),
            risk=RiskState(
                state=TradingState(state),
                reason=reason,
                since=utc(since),
                peak_equity=peak,
                day_start_equity=day_start,
                last_equity=last,
                day=day_value,
            ),
            marks=marks,
            targets=targets,
            last_signal=last_signal,
        )

    def commit(
        self,
        checkpoint: Checkpoint,
        records: Sequence[TradeRecord] = (),
        processed_signal_id: str | None = None,
    ) -> None:
        ids = [r.client_order_id for r in records if r.kind is RecordKind.ORDER]
        with self._lock:
            con = self._con
            known = {row[0] for row in self._existing_orders([i for i in ids if i is not None])}
            check_new_orders(records, known)
            con.execute("BEGIN")
            try:
                self._write_checkpoint(checkpoint)
                if records:
                    con.executemany(
                        f"INSERT INTO records ({_RECORD_COLUMNS}) VALUES ({', '.join('?' * 15)})",
                        [_record_row(r) for r in records],
                    )
                if processed_signal_id is not None:
                    con.execute(
                        "INSERT INTO processed_signals VALUES (?, ?) ON CONFLICT DO NOTHING",
                        [processed_signal_id, _naive(now_utc())],
                    )
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise

    def is_processed(self, signal_id: str) -> bool:
        with self._lock:
            rows = self._con.execute(
                "SELECT 1 FROM processed_signals WHERE signal_id = ?", [signal_id]
            ).fetchall()
        return bool(rows)

    def has_order(self, client_order_id: str) -> bool:
        return self.order(client_order_id) is not None

    def order(self, client_order_id: str) -> TradeRecord | None:
        with self._lock:
            rows = self._con.execute(
                f"SELECT {_RECORD_COLUMNS} FROM records WHERE kind = ? AND client_order_id = ?",
                [RecordKind.ORDER.value, client_order_id],
            ).fetchall()
        return _record(rows[0]) if rows else None

    def records_since(self, since: datetime) -> list[TradeRecord]:
        with self._lock:
            rows = self._con.execute(
                f"SELECT {_RECORD_COLUMNS} FROM records WHERE occurred_at >= ? ORDER BY seq",
                [_naive(since)],
            ).fetchall()
        return [_record(row) for row in rows]

    def counts(self) -> dict[RecordKind, int]:
        with self._lock:
            rows = self._con.execute("SELECT kind, count(*) FROM records GROUP BY kind").fetchall()
        out = dict.fromkeys(RecordKind, 0)
        out.update({RecordKind(kind): int(n) for kind, n in rows})
        return out

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def _existing_orders(self, client_order_ids: list[str]) -> list[tuple[Any, ...]]:
        if not client_order_ids:
            return []
        return self._con.execute(
            "SELECT client_order_id FROM records WHERE kind = ? AND list_contains(?, "
            "client_order_id)",
            [RecordKind.ORDER.value, client_order_ids],
        ).fetchall()

    def _record_by_id(self, record_id: str) -> TradeRecord | None:
        rows = self._con.execute(
            f"SELECT {_RECORD_COLUMNS} FROM records WHERE record_id = ?", [record_id]
        ).fetchall()
        return _record(rows[0]) if rows else None

    def _write_checkpoint(self, cp: Checkpoint) -> None:
        con = self._con
        for table in ("portfolio", "positions", "open_orders", "marks", "targets", "trading_state"):
            con.execute(f"DELETE FROM {table}")
        con.execute("INSERT INTO portfolio VALUES (?, ?)", [cp.portfolio.cash, _naive(now_utc())])
        if cp.portfolio.positions:
            con.executemany(
                "INSERT INTO positions VALUES (?, ?, ?, ?, ?)",
                [
                    [str(s), p.quantity, p.avg_price, p.realised_pnl, p.fees_paid]
                    for s, p in cp.portfolio.positions.items()
                ],
            )
        if cp.portfolio.open_orders:
            con.executemany(
                "INSERT INTO open_orders VALUES (?, ?, ?, ?, ?, ?)",
                [
                    [i, o.client_order_id, str(o.symbol), o.side.value, o.quantity, o.limit_price]
                    for i, o in enumerate(cp.portfolio.open_orders)
                ],
            )
        if cp.marks:
            con.executemany(
                "INSERT INTO marks VALUES (?, ?, ?)",
                [[str(s), m.price, _naive(m.as_of)] for s, m in cp.marks.items()],
            )
        if cp.targets:
            con.executemany(
                "INSERT INTO targets VALUES (?, ?)", [[str(s), t] for s, t in cp.targets.items()]
            )
        r = cp.risk
        con.execute(
            "INSERT INTO trading_state VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                r.state.value,
                r.reason,
                _naive(r.since),
                r.peak_equity,
                r.day_start_equity,
                r.last_equity,
                r.day,
                None if cp.last_signal is None else cp.last_signal.record_id,
            ],
        )
