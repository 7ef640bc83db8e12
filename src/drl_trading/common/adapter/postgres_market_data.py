"""The market-data repository on PostgreSQL (TimescaleDB when available), through psycopg 3.

Bulk paths use PostgreSQL's binary COPY, built and parsed with numpy rather than row by row: a
bar is six fixed-size fields (a timestamp and five float8), so a whole frame becomes one
big-endian record array, and a read comes back as one. Writes go to a temporary staging table by
COPY, then one ``INSERT ... ON CONFLICT DO UPDATE`` moves them (idempotent upsert; ``xmax = 0``
tells inserted rows from updated ones, and a stored row with equal values is not rewritten, so
it counts as unchanged). The schema is created by versioned migrations (`postgres_schema`), at
start when ``migrate`` is true or with ``drl-trading db migrate``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl
import psycopg

from drl_trading.common.adapter.duckdb_market_data import QUARANTINE_SCHEMA
from drl_trading.common.adapter.postgres_schema import connect, connection_error
from drl_trading.common.bars import BAR_SCHEMA, TIME_DTYPE, bars_to_frame, conform, empty_bars
from drl_trading.common.domain import Bar, Symbol, Timeframe, to_micros, utc
from drl_trading.common.ports import Coverage, UpsertResult

_PG_EPOCH_US = to_micros(datetime(2000, 1, 1, tzinfo=UTC))
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_TRAILER = b"\xff\xff"
# one binary COPY row: field count, then (length, value) for open_time and five float8
_FIELDS = ("o", "h", "l", "c", "v")
_VALUES = ("open", "high", "low", "close", "volume")
_ROW = np.dtype(
    [("n", ">i2"), ("lt", ">i4"), ("t", ">i8")]
    + [pair for f in _FIELDS for pair in ((f"l{f}", ">i4"), (f, ">f8"))]
)
_COLUMNS = "open_time, open, high, low, close, volume"


class PostgresMarketData:
    def __init__(self, dsn: str, *, schema: str = "public", migrate: bool = True) -> None:
        self.schema = schema
        self._dsn = dsn
        self._lock = threading.Lock()
        self._con = connect(dsn, schema, autocommit=False, apply_migrations=migrate)
        self.reconnects = 0

    def _connect(self) -> psycopg.Connection[Any]:
        return connect(self._dsn, self.schema, autocommit=False, apply_migrations=False)

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[Any]]:
        """One transaction on a live connection: a connection found broken is replaced first,
        and one that breaks inside is dropped (the error says so; the next call reconnects)."""
        with self._lock:
            if self._con.closed or self._con.broken:
                self._con = self._connect()
                self.reconnects += 1
            try:
                with self._con.transaction():
                    yield self._con
            except psycopg.OperationalError as exc:
                if self._con.broken or self._con.closed:
                    raise connection_error(self._dsn, exc, lost=True) from exc
                raise

    def upsert_bar(self, bar: Bar) -> UpsertResult:
        """A store writes at once: the bar's one-row frame, as `upsert_bars` writes it."""
        return self.upsert_bars(bar.symbol, bar.timeframe, bars_to_frame([bar]))

    def upsert_bars(self, symbol: Symbol, timeframe: Timeframe, bars: pl.DataFrame) -> UpsertResult:
        if bars.is_empty():
            return UpsertResult(0, 0)
        frame = conform(bars)
        distinct = frame["open_time"].n_unique()
        payload = _encode(frame)
        with self._tx() as con:
            con.execute(
                "CREATE TEMP TABLE IF NOT EXISTS ohlcv_stage (open_time timestamptz, open float8,"
                " high float8, low float8, close float8, volume float8) ON COMMIT DELETE ROWS"
            )
            with con.cursor().copy(
                f"COPY ohlcv_stage ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.write(payload)
            # a frame may repeat an open time: the last row wins, as consecutive upserts would;
            # a stored row whose values are equal is left alone and not returned (unchanged)
            rows = con.execute(
                f"INSERT INTO ohlcv (symbol, timeframe, {_COLUMNS}) "
                f"SELECT DISTINCT ON (open_time) %s, %s, {_COLUMNS} FROM "
                "(SELECT *, row_number() OVER () AS n FROM ohlcv_stage) s "
                "ORDER BY open_time, n DESC "
                "ON CONFLICT (symbol, timeframe, open_time) DO UPDATE SET open = excluded.open, "
                "high = excluded.high, low = excluded.low, close = excluded.close, "
                "volume = excluded.volume "
                "WHERE (ohlcv.open, ohlcv.high, ohlcv.low, ohlcv.close, ohlcv.volume) "
                "IS DISTINCT FROM (excluded.open, excluded.high, excluded.low, excluded.close, "
                "excluded.volume) RETURNING (xmax = 0)",
                [str(symbol), timeframe.value],
            ).fetchall()
        inserted = sum(1 for (new,) in rows if new)
        updated = len(rows) - inserted
        return UpsertResult(inserted, updated, distinct - inserted - updated)

    def read_bars(
        self, symbol: Symbol, timeframe: Timeframe, start: datetime, end: datetime
    ) -> pl.DataFrame:
        query = (
            f"COPY (SELECT {_COLUMNS} FROM ohlcv WHERE symbol = {_literal(str(symbol))} "
            f"AND timeframe = {_literal(timeframe.value)} "
            f"AND open_time >= '{utc(start).isoformat()}' AND open_time < '{utc(end).isoformat()}'"
            " ORDER BY open_time) TO STDOUT (FORMAT BINARY)"
        )
        buf = bytearray()
        with self._tx() as con, con.cursor().copy(query) as copy:
            for chunk in copy:
                buf += chunk
        return _decode(bytes(buf))

    def coverage(self, symbol: Symbol, timeframe: Timeframe) -> Coverage | None:
        with self._tx() as con:
            row = con.execute(
                "SELECT min(open_time), max(open_time), count(*) FROM ohlcv "
                "WHERE symbol = %s AND timeframe = %s",
                [str(symbol), timeframe.value],
            ).fetchone()
        if row is None or not row[2]:
            return None
        return Coverage(utc(row[0]), utc(row[1]), int(row[2]))

    def coverages(
        self, timeframe: Timeframe, start: datetime | None = None, end: datetime | None = None
    ) -> dict[Symbol, Coverage]:
        where, params = "timeframe = %s", list[object]([timeframe.value])
        if start is not None:
            where += " AND open_time >= %s"
            params.append(utc(start))
        if end is not None:
            where += " AND open_time < %s"
            params.append(utc(end))
        with self._tx() as con:
            rows = con.execute(
                "SELECT symbol, min(open_time), max(open_time), count(*) FROM ohlcv "
                f"WHERE {where} GROUP BY symbol ORDER BY symbol",
                params,
            ).fetchall()
        return {Symbol(r[0]): Coverage(utc(r[1]), utc(r[2]), int(r[3])) for r in rows}

    def quarantine(
        self, symbol: Symbol, timeframe: Timeframe, rows: pl.DataFrame, batch_id: str
    ) -> int:
        if rows.is_empty():
            return 0
        frame = conform(rows)
        records = [
            (str(symbol), timeframe.value, t, o, h, lo, c, v, str(rule), str(detail), batch_id)
            for (t, o, h, lo, c, v), rule, detail in zip(
                frame.iter_rows(), rows["rule"], rows["detail"], strict=True
            )
        ]
        with self._tx() as con, con.cursor() as cur:
            cur.executemany(
                "INSERT INTO ohlcv_quarantine (symbol, timeframe, open_time, open, high, low, "
                "close, volume, rule, detail, batch_id) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                records,
            )
        return len(records)

    def read_quarantine(self, symbol: Symbol | None = None) -> pl.DataFrame:
        sql = (
            "SELECT symbol, timeframe, open_time, open, high, low, close, volume, rule, detail, "
            "batch_id, quarantined_at FROM ohlcv_quarantine"
        )
        params: list[object] = []
        if symbol is not None:
            sql += " WHERE symbol = %s"
            params.append(str(symbol))
        with self._tx() as con:
            rows = con.execute(sql + " ORDER BY quarantined_at, id", params).fetchall()
        if not rows:
            return pl.DataFrame(schema=QUARANTINE_SCHEMA)
        return pl.DataFrame(rows, schema=QUARANTINE_SCHEMA, orient="row").with_columns(
            pl.col("open_time").cast(TIME_DTYPE), pl.col("quarantined_at").cast(TIME_DTYPE)
        )

    def close(self) -> None:
        with self._lock:
            self._con.close()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _encode(frame: pl.DataFrame) -> bytes:
    """Bars as a binary COPY stream (header, fixed-size records, trailer)."""
    n = frame.height
    rec = np.empty(n, dtype=_ROW)
    rec["n"] = 6
    rec["lt"] = 8
    micros = frame["open_time"].dt.epoch("us").to_numpy().astype(np.int64)
    rec["t"] = micros - _PG_EPOCH_US
    for name, col in zip(
        ("o", "h", "l", "c", "v"), ("open", "high", "low", "close", "volume"), strict=True
    ):
        rec[f"l{name}"] = 8
        rec[name] = frame[col].to_numpy().astype(np.float64)
    return _SIGNATURE + rec.tobytes() + _TRAILER


def _decode(payload: bytes) -> pl.DataFrame:
    body = payload[len(_SIGNATURE) : len(payload) - len(_TRAILER)]
    if not body:
        return empty_bars()
    rec = np.frombuffer(body, dtype=_ROW)
    micros = rec["t"].astype(np.int64) + _PG_EPOCH_US
    data = {
        "open_time": pl.Series(micros).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        **{col: rec[name].astype(np.float64) for name, col in zip(_FIELDS, _VALUES, strict=True)},
    }
    return pl.DataFrame(data).select(list(BAR_SCHEMA))
