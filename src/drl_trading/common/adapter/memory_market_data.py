"""Dict-of-frames market-data repository: the fake for unit tests, same contract as DuckDB."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from drl_trading.common.adapter.duckdb_market_data import QUARANTINE_SCHEMA
from drl_trading.common.bars import VALUE_COLUMNS, bars_to_frame, conform, empty_bars
from drl_trading.common.domain import Bar, Symbol, Timeframe, utc
from drl_trading.common.events import now_utc
from drl_trading.common.ports import Coverage, UpsertResult


def split_by_change(
    incoming: pl.DataFrame, current: pl.DataFrame
) -> tuple[pl.DataFrame, UpsertResult]:
    """Compare ``incoming`` bars (distinct open times) with ``current`` (stored bars, distinct
    open times, any range): the rows to write, i.e. new ones and those with a value that differs,
    in ``incoming``'s order, and the counts. Values compare exactly, NaN equal to NaN, as
    DuckDB's and PostgreSQL's ``IS DISTINCT FROM`` do."""
    joined = incoming.join(
        current, on="open_time", how="left", suffix="_stored", maintain_order="left"
    )
    existed = pl.col("open_stored").is_not_null()
    same = existed & pl.all_horizontal(pl.col(c) == pl.col(f"{c}_stored") for c in VALUE_COLUMNS)
    flags = joined.select(existed.alias("existed"), same.alias("same"))
    inserted = int((~flags["existed"]).sum())
    unchanged = int(flags["same"].sum())
    changed = incoming.filter(~flags["same"])
    return changed, UpsertResult(inserted, incoming.height - inserted - unchanged, unchanged)


class InMemoryMarketData:
    def __init__(self) -> None:
        self._bars: dict[tuple[str, str], pl.DataFrame] = {}
        self._quarantine: list[pl.DataFrame] = []

    def upsert_bar(self, bar: Bar) -> UpsertResult:
        """A store writes at once: the bar's one-row frame, as `upsert_bars` writes it."""
        return self.upsert_bars(bar.symbol, bar.timeframe, bars_to_frame([bar]))

    def upsert_bars(self, symbol: Symbol, timeframe: Timeframe, bars: pl.DataFrame) -> UpsertResult:
        if bars.is_empty():
            return UpsertResult(0, 0)
        incoming = conform(bars).unique("open_time", keep="last", maintain_order=True)
        key = (str(symbol), timeframe.value)
        current = self._bars.get(key, empty_bars())
        changed, result = split_by_change(incoming, current)
        if not changed.is_empty():
            self._bars[key] = (
                pl.concat([current, changed])
                .unique("open_time", keep="last", maintain_order=True)
                .sort("open_time")
            )
        return result

    def read_bars(
        self, symbol: Symbol, timeframe: Timeframe, start: datetime, end: datetime
    ) -> pl.DataFrame:
        frame = self._bars.get((str(symbol), timeframe.value))
        if frame is None:
            return empty_bars()
        return frame.filter((pl.col("open_time") >= utc(start)) & (pl.col("open_time") < utc(end)))

    def coverage(self, symbol: Symbol, timeframe: Timeframe) -> Coverage | None:
        frame = self._bars.get((str(symbol), timeframe.value))
        if frame is None or frame.is_empty():
            return None
        return Coverage(frame["open_time"][0], frame["open_time"][-1], frame.height)

    def coverages(
        self, timeframe: Timeframe, start: datetime | None = None, end: datetime | None = None
    ) -> dict[Symbol, Coverage]:
        out: dict[Symbol, Coverage] = {}
        for (symbol, tf), frame in sorted(self._bars.items()):
            if tf != timeframe.value:
                continue
            if start is not None:
                frame = frame.filter(pl.col("open_time") >= utc(start))
            if end is not None:
                frame = frame.filter(pl.col("open_time") < utc(end))
            if not frame.is_empty():
                out[Symbol(symbol)] = Coverage(
                    frame["open_time"][0], frame["open_time"][-1], frame.height
                )
        return out

    def quarantine(
        self, symbol: Symbol, timeframe: Timeframe, rows: pl.DataFrame, batch_id: str
    ) -> int:
        if rows.is_empty():
            return 0
        frame = conform(rows).with_columns(
            pl.lit(str(symbol)).alias("symbol"),
            pl.lit(timeframe.value).alias("timeframe"),
            rows["rule"].cast(pl.String).alias("rule"),
            rows["detail"].cast(pl.String).alias("detail"),
            pl.lit(batch_id).alias("batch_id"),
            pl.lit(now_utc()).alias("quarantined_at"),
        )
        self._quarantine.append(frame.select(list(QUARANTINE_SCHEMA)).cast(QUARANTINE_SCHEMA))  # type: ignore[arg-type]
        return frame.height

    def read_quarantine(self, symbol: Symbol | None = None) -> pl.DataFrame:
        if not self._quarantine:
            return pl.DataFrame(schema=QUARANTINE_SCHEMA)
        frame = pl.concat(self._quarantine)
        return frame if symbol is None else frame.filter(pl.col("symbol") == str(symbol))

    def close(self) -> None:
        return None
