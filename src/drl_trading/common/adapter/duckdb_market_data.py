"""Market-data repository in an embedded DuckDB file: the default store, no server needed.

Times are stored as naive ``TIMESTAMP`` in UTC (DuckDB's time-zone handling depends on an
extension and a session setting; a naive UTC column is unambiguous and converts for free).
Upserts go through Arrow: a million-row batch is one UPDATE of changed rows plus one INSERT.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from drl_trading.common.bars import BAR_SCHEMA, TIME_DTYPE, bars_to_frame, conform, empty_bars
from drl_trading.common.domain import Bar, Symbol, Timeframe, utc
from drl_trading.common.errors import HomeInUseError, Terminated, pending_interrupt
from drl_trading.common.events import now_utc
from drl_trading.common.ports import Coverage, UpsertResult

_DDL = """
CREATE TABLE IF NOT EXISTS bars (
    symbol VARCHAR NOT NULL,
    timeframe VARCHAR NOT NULL,
    open_time TIMESTAMP NOT NULL,
    open DOUBLE NOT NULL,
    high DOUBLE NOT NULL,
    low DOUBLE NOT NULL,
    close DOUBLE NOT NULL,
    volume DOUBLE NOT NULL,
    PRIMARY KEY (symbol, timeframe, open_time)
);
CREATE TABLE IF NOT EXISTS quarantine (
    symbol VARCHAR NOT NULL,
    timeframe VARCHAR NOT NULL,
    open_time TIMESTAMP,
    open DOUBLE,
    high DOUBLE,
    low DOUBLE,
    close DOUBLE,
    volume DOUBLE,
    rule VARCHAR NOT NULL,
    detail VARCHAR NOT NULL,
    batch_id VARCHAR NOT NULL,
    quarantined_at TIMESTAMP NOT NULL
);
"""

_UPDATE_CHANGED = """
UPDATE bars SET open = i.open, high = i.high, low = i.low, close = i.close, volume = i.volume
FROM incoming i
WHERE bars.symbol = i.symbol AND bars.timeframe = i.timeframe AND bars.open_time = i.open_time
  AND (bars.open, bars.high, bars.low, bars.close, bars.volume)
      IS DISTINCT FROM (i.open, i.high, i.low, i.close, i.volume)
"""

QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "timeframe": pl.String(),
    **BAR_SCHEMA,
    "rule": pl.String(),
    "detail": pl.String(),
    "batch_id": pl.String(),
    "quarantined_at": TIME_DTYPE,
}


_SMALL_BATCH = 16


def _naive(ts: datetime) -> datetime:
    return utc(ts).replace(tzinfo=None)


def _lock_holder(message: str) -> str:
    """The holder DuckDB names in its lock error ("... is held in /usr/bin/python (PID 42)")."""
    found = re.search(r"PID (\d+)", message)
    return f"PID {found.group(1)}" if found else ""


_INTERRUPT_SIGNS = (
    "Query interrupted",
    KeyboardInterrupt.__name__,
    f"{Terminated.__name__}: SIGTERM",
)
"""How DuckDB's errors show a Ctrl-C or SIGTERM: a query it interrupted, or the interrupt Python
raised while DuckDB read a registered frame or ran a Python function (an InvalidInputException
quoting the exception: ``KeyboardInterrupt``, or ``Terminated: SIGTERM`` where the CLI's
SIGTERM handler raised it)."""


@contextmanager
def _interrupts_as_keyboard_interrupt() -> Iterator[None]:
    """DuckDB answers a Ctrl-C during a query with ``RuntimeError("Query interrupted")`` (or
    another error quoting it) and swallows the KeyboardInterrupt; it is raised again as what it
    was, so that callers unwind as on any Ctrl-C (the CLI exits 130) instead of reporting a
    failure (`Terminated` when it was SIGTERM). The statement (and its transaction) is rolled
    back by then."""
    try:
        yield
    except (RuntimeError, duckdb.Error) as exc:
        if isinstance(exc, duckdb.InterruptException) or any(
            sign in str(exc) for sign in _INTERRUPT_SIGNS
        ):
            raise pending_interrupt() from exc
        raise


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back the open transaction; a statement that failed (or was interrupted) inside
    COMMIT may have ended it already, and the error that brought us here matters more."""
    with suppress(duckdb.Error, RuntimeError):
        con.execute("ROLLBACK")


def _count(row: tuple[object, ...] | None) -> int:
    """The row count a DuckDB INSERT or UPDATE returns."""
    return 0 if row is None else int(row[0])  # type: ignore[call-overload]


def _same_values(stored: tuple[object, ...], incoming: tuple[object, ...]) -> bool:
    """Exact equality, NaN equal to NaN, as the batch path's ``IS DISTINCT FROM`` has it."""
    return all(
        a == b
        or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
        for a, b in zip(stored, incoming, strict=True)
    )


class DuckDBMarketData:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(str(self.path))
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise HomeInUseError(self.path, _lock_holder(str(exc))) from exc
            raise
        self._con.execute(_DDL)
        self._lock = threading.Lock()

    def upsert_bar(self, bar: Bar) -> UpsertResult:
        """A store writes at once: the bar's one-row frame, as `upsert_bars` writes it."""
        return self.upsert_bars(bar.symbol, bar.timeframe, bars_to_frame([bar]))

    def upsert_bars(self, symbol: Symbol, timeframe: Timeframe, bars: pl.DataFrame) -> UpsertResult:
        if bars.is_empty():
            return UpsertResult(0, 0)
        frame = conform(bars)
        if frame["open_time"].n_unique() < frame.height:  # the last row of an open time wins
            frame = frame.unique("open_time", keep="last", maintain_order=True)
        frame = frame.with_columns(
            pl.col("open_time").dt.replace_time_zone(None),
            pl.lit(str(symbol)).alias("symbol"),
            pl.lit(timeframe.value).alias("timeframe"),
        )
        if frame.height <= _SMALL_BATCH:
            return self._upsert_small(frame)
        with self._lock, _interrupts_as_keyboard_interrupt():
            con = self._con
            con.register("incoming", frame.to_arrow())
            # UPDATE only rows whose values changed, then INSERT the new keys: far faster in
            # DuckDB than INSERT OR REPLACE, which rewrites every conflicting index entry. Each
            # statement returns the rows it changed; the rest of the frame was already stored.
            con.execute("BEGIN")
            try:
                updated = _count(con.execute(_UPDATE_CHANGED).fetchone())
                inserted = _count(
                    con.execute(
                        "INSERT INTO bars SELECT symbol, timeframe, open_time, open, high, low,"
                        " close, volume FROM incoming ON CONFLICT DO NOTHING"
                    ).fetchone()
                )
                con.execute("COMMIT")
            except BaseException:  # a Ctrl-C between statements too: nothing half-written
                _rollback(con)
                raise
            finally:
                con.unregister("incoming")
        return UpsertResult(inserted, updated, frame.height - inserted - updated)

    def _upsert_small(self, frame: pl.DataFrame) -> UpsertResult:
        """Live bars arrive one at a time: parameterised statements cost a fraction of a
        millisecond where registering a frame and joining it costs several."""
        inserted = updated = unchanged = 0
        rows = frame.select(
            "symbol", "timeframe", "open_time", "open", "high", "low", "close", "volume"
        ).rows()
        with self._lock, _interrupts_as_keyboard_interrupt():
            con = self._con
            con.execute("BEGIN")
            try:
                for sym, tf, t, o, h, lo, c, v in rows:
                    got = con.execute(
                        "SELECT open, high, low, close, volume FROM bars "
                        "WHERE symbol = ? AND timeframe = ? AND open_time = ?",
                        [sym, tf, t],
                    ).fetchone()
                    if got is None:
                        con.execute(
                            "INSERT INTO bars VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            [sym, tf, t, o, h, lo, c, v],
                        )
                        inserted += 1
                    elif not _same_values(got, (o, h, lo, c, v)):
                        con.execute(
                            "UPDATE bars SET open = ?, high = ?, low = ?, close = ?, volume = ? "
                            "WHERE symbol = ? AND timeframe = ? AND open_time = ?",
                            [o, h, lo, c, v, sym, tf, t],
                        )
                        updated += 1
                    else:
                        unchanged += 1
                con.execute("COMMIT")
            except BaseException:
                _rollback(con)
                raise
        return UpsertResult(inserted, updated, unchanged)

    def read_bars(
        self, symbol: Symbol, timeframe: Timeframe, start: datetime, end: datetime
    ) -> pl.DataFrame:
        with self._lock, _interrupts_as_keyboard_interrupt():
            table = self._con.sql(
                "SELECT open_time, open, high, low, close, volume FROM bars "
                "WHERE symbol = ? AND timeframe = ? AND open_time >= ? AND open_time < ? "
                "ORDER BY open_time",
                params=[str(symbol), timeframe.value, _naive(start), _naive(end)],
            ).to_arrow_table()
        if table.num_rows == 0:
            return empty_bars()
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        return conform(frame)

    def coverage(self, symbol: Symbol, timeframe: Timeframe) -> Coverage | None:
        with self._lock, _interrupts_as_keyboard_interrupt():
            (row,) = self._con.execute(
                "SELECT min(open_time), max(open_time), count(*) FROM bars "
                "WHERE symbol = ? AND timeframe = ?",
                [str(symbol), timeframe.value],
            ).fetchall()
        if not row[2]:
            return None
        return Coverage(utc(row[0]), utc(row[1]), int(row[2]))

    def coverages(
        self, timeframe: Timeframe, start: datetime | None = None, end: datetime | None = None
    ) -> dict[Symbol, Coverage]:
        where, params = "timeframe = ?", list[object]([timeframe.value])
        if start is not None:
            where += " AND open_time >= ?"
            params.append(_naive(start))
        if end is not None:
            where += " AND open_time < ?"
            params.append(_naive(end))
        with self._lock:
            rows = self._con.execute(
                "SELECT symbol, min(open_time), max(open_time), count(*) FROM bars "
                f"WHERE {where} GROUP BY symbol ORDER BY symbol",
                params,
            ).fetchall()
        return {Symbol(r[0]): Coverage(utc(r[1]), utc(r[2]), int(r[3])) for r in rows}

    def quarantine(
        self, symbol: Symbol, timeframe: Timeframe, rows: pl.DataFrame, batch_id: str
    ) -> int:
        if rows.is_empty():
            return 0
        frame = conform(rows).with_columns(
            pl.col("open_time").dt.replace_time_zone(None),
            pl.lit(str(symbol)).alias("symbol"),
            pl.lit(timeframe.value).alias("timeframe"),
            rows["rule"].cast(pl.String).alias("rule"),
            rows["detail"].cast(pl.String).alias("detail"),
            pl.lit(batch_id).alias("batch_id"),
            pl.lit(_naive(now_utc())).alias("quarantined_at"),
        )
        with self._lock, _interrupts_as_keyboard_interrupt():
            self._con.register("q", frame.select(list(QUARANTINE_SCHEMA)).to_arrow())
            self._con.execute("INSERT INTO quarantine SELECT * FROM q")
            self._con.unregister("q")
        return frame.height

    def read_quarantine(self, symbol: Symbol | None = None) -> pl.DataFrame:
        sql = "SELECT * FROM quarantine"
        params: list[object] = []
        if symbol is not None:
            sql += " WHERE symbol = ?"
            params.append(str(symbol))
        with self._lock, _interrupts_as_keyboard_interrupt():
            table = self._con.sql(sql + " ORDER BY quarantined_at, open_time", params=params)
            frame = pl.from_arrow(table.to_arrow_table())
        assert isinstance(frame, pl.DataFrame)
        if frame.is_empty():
            return pl.DataFrame(schema=QUARANTINE_SCHEMA)
        return frame.with_columns(
            pl.col("open_time").dt.replace_time_zone("UTC").cast(TIME_DTYPE),
            pl.col("quarantined_at").dt.replace_time_zone("UTC").cast(TIME_DTYPE),
        )

    def close(self) -> None:
        with self._lock:
            self._con.close()
