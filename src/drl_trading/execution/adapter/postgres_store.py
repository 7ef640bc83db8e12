"""The execution store on PostgreSQL: the SQLite store's logic over a psycopg connection.

Both stores keep the same tables (migration ``V003__execution_store``) and run the same
statements, so this adapter only translates the connection: ``?`` placeholders become ``%s`` and
the explicit ``BEGIN``/``COMMIT`` of the SQLite store run on an autocommit psycopg connection.
Trade records, portfolio and trading state then live in the database that holds the market data,
where every service (inference reads positions from it) and an operator can reach them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from drl_trading.common.adapter.postgres_schema import migrate as run_migrations
from drl_trading.execution.adapter.sqlite_store import SQLiteExecutionStore


class _Connection:
    """The few `sqlite3.Connection` methods the SQLite store calls, on psycopg."""

    def __init__(self, con: psycopg.Connection[Any]) -> None:
        self._con = con

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        if sql.startswith("BEGIN"):
            sql = "BEGIN"  # SQLite's BEGIN IMMEDIATE: PostgreSQL locks rows as it writes them
        return self._con.execute(sql.replace("?", "%s"), params or None)  # type: ignore[arg-type]

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._con.cursor() as cur:
            cur.executemany(sql.replace("?", "%s"), list(rows))  # type: ignore[arg-type]

    @property
    def in_transaction(self) -> bool:
        return self._con.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    def close(self) -> None:
        self._con.close()


class PostgresExecutionStore(SQLiteExecutionStore):
    def __init__(self, dsn: str, *, schema: str = "public", migrate: bool = True) -> None:
        try:
            con = psycopg.connect(dsn, autocommit=True)
        except psycopg.OperationalError as exc:
            raise RuntimeError(f"cannot connect to PostgreSQL: {exc}") from exc
        if migrate:
            con.autocommit = False
            run_migrations(con, schema)
            con.commit()
            con.autocommit = True
        con.execute(f'SET search_path TO "{schema}", public')
        self.path = None  # type: ignore[assignment]
        self.schema = schema
        self._con = _Connection(con)  # type: ignore[assignment]
        self._lock = threading.Lock()
