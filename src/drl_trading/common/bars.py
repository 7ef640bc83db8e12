"""The one tabular shape of OHLCV batches: a polars frame with a UTC microsecond `open_time`.

Every store, provider and computation speaks this schema, so no layer converts timestamps on its
own. Symbol and timeframe travel beside the frame, never inside it, because a batch always holds one
series.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import polars as pl

from drl_trading.common.domain import Bar, Symbol, Timeframe

TIME_DTYPE = pl.Datetime("us", "UTC")
PRICE_COLUMNS = ("open", "high", "low", "close")
VALUE_COLUMNS = (*PRICE_COLUMNS, "volume")
BAR_SCHEMA: dict[str, pl.DataType] = {
    "open_time": TIME_DTYPE,
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
}
_CANONICAL = pl.Schema(BAR_SCHEMA)


def ohlcv_aggregations() -> list[pl.Expr]:
    """How bars of one coarser bar combine (for a ``group_by(...).agg``): first open, highest
    high, lowest low, last close, summed volume. The rows of each group must be in time order."""
    return [
        pl.col("open").first(),
        pl.col("high").max(),
        pl.col("low").min(),
        pl.col("close").last(),
        pl.col("volume").sum(),
    ]


def empty_bars() -> pl.DataFrame:
    return pl.DataFrame(schema=BAR_SCHEMA)


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Cast a frame with the bar columns to the canonical schema (and column order).

    Raises `KeyError` naming the missing columns; extra columns are dropped. A frame already in
    the schema is returned as it is: the select costs ~0.15 ms even when it changes nothing,
    which online ingest would pay for every live and resampled bar.
    """
    if frame.schema == _CANONICAL:
        return frame
    missing = [c for c in BAR_SCHEMA if c not in frame.columns]
    if missing:
        raise KeyError(f"bar frame lacks columns {missing}; has {frame.columns}")
    exprs = []
    for name, dtype in BAR_SCHEMA.items():
        col = pl.col(name)
        if name == "open_time" and frame.schema[name] != TIME_DTYPE:
            src = frame.schema[name]
            if isinstance(src, pl.Datetime) and src.time_zone is None:
                col = col.dt.replace_time_zone("UTC")
            exprs.append(col.cast(TIME_DTYPE).alias(name))
        else:
            exprs.append(col.cast(dtype).alias(name))
    return frame.select(exprs)


def bars_to_frame(bars: Iterable[Bar]) -> pl.DataFrame:
    rows = [(b.open_time, b.open, b.high, b.low, b.close, b.volume) for b in bars]
    if not rows:
        return empty_bars()
    return pl.DataFrame(rows, schema=BAR_SCHEMA, orient="row")


def frame_to_bars(frame: pl.DataFrame, symbol: Symbol, timeframe: Timeframe) -> list[Bar]:
    return [
        Bar(symbol, timeframe, t, o, h, low, c, v)
        for t, o, h, low, c, v in frame.select(list(BAR_SCHEMA)).iter_rows()
    ]


def time_bounds(frame: pl.DataFrame) -> tuple[datetime, datetime] | None:
    """First and last open time of a non-empty frame."""
    if frame.is_empty():
        return None
    return frame["open_time"].min(), frame["open_time"].max()  # type: ignore[return-value]
