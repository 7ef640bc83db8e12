"""Resampling of 1m bars to higher timeframes.

A higher-timeframe bar ``[T, T + D)`` is emitted only when the covered span includes all of it:
bars are labelled by open time, windows are anchored at the Unix epoch (so 4h bars open at 00:00,
04:00, ... UTC and daily bars at midnight UTC), and the partial windows at either edge of the data
are left out rather than emitted with some minutes missing. Minutes missing *inside* a covered
window (an exchange outage) do not suppress the bar: it aggregates the minutes that exist, and the
gap itself is reported by ingest.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from drl_trading.common.bars import BAR_SCHEMA, empty_bars, ohlcv_aggregations
from drl_trading.common.domain import Timeframe, utc


def resample(
    bars: pl.DataFrame,
    timeframe: Timeframe,
    *,
    source: Timeframe = Timeframe.M1,
    covered_from: datetime | None = None,
    covered_to: datetime | None = None,
) -> pl.DataFrame:
    """Aggregate ``bars`` (sorted by ``open_time``, of timeframe ``source``) to ``timeframe``.

    ``covered_from``/``covered_to`` bound the span the caller knows to be complete; by default it
    is ``[first open, last open + source duration)`` of the data.
    """
    if timeframe.minutes % source.minutes:
        raise ValueError(f"cannot resample {source.value} bars to {timeframe.value}")
    if bars.is_empty():
        return empty_bars()
    if timeframe == source:
        return bars.select(list(BAR_SCHEMA))
    lo = utc(covered_from) if covered_from is not None else bars["open_time"][0]
    hi = utc(covered_to) if covered_to is not None else bars["open_time"][-1] + source.duration
    out = (
        bars.group_by_dynamic(
            "open_time",
            every=timeframe.polars_every,
            closed="left",
            label="left",
            start_by="window",
        )
        .agg(*ohlcv_aggregations())
        .filter(
            (pl.col("open_time") >= lo)
            & (pl.col("open_time") + timedelta(minutes=timeframe.minutes) <= hi)
        )
    )
    return out.select(list(BAR_SCHEMA))
