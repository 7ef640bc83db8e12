"""Resampling of bars to coarser timeframes, on the symbol's market calendar.

A coarser bar is emitted only when the covered span includes all of it: bars are labelled by
their key (`drl_trading.common.bar_windows`): intraday bars are windows of the epoch grid (4h bars
open at 00:00, 04:00, ... UTC) and a daily bar is one session, labelled by its date at 00:00 UTC.
The partial bars at either edge of the data are left out rather than emitted with some of their
bars missing: a bar counts as covered when the market first trades in it at or after the data's
first bar and it closes (its calendar close: an XLON 1h bar keyed 15:00 closes at 15:30) by the
end of the data's last bar. Bars missing *inside* a covered window (an exchange outage) do not
suppress it: it aggregates the bars that exist, and the gap itself is reported by ingest.

On the 24/7 calendar (or without one) this is the epoch-grid resampling of a market that never
closes, computed as it always was.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl

from drl_trading.common.bar_windows import CLOSED, bar_closes, bar_first_opens, bar_keys
from drl_trading.common.bars import BAR_SCHEMA, TIME_DTYPE, empty_bars, ohlcv_aggregations
from drl_trading.common.calendar import MarketCalendar
from drl_trading.common.domain import Timeframe, from_micros, to_micros, utc
from drl_trading.preprocess.core.market_sessions import (
    first_straddling_bar,
    open_keys,
    outside_sessions,
)


def resample(
    bars: pl.DataFrame,
    timeframe: Timeframe,
    *,
    source: Timeframe = Timeframe.M1,
    covered_from: datetime | None = None,
    covered_to: datetime | None = None,
    calendar: MarketCalendar | None = None,
) -> pl.DataFrame:
    """Aggregate ``bars`` (sorted by ``open_time``, of timeframe ``source``) to ``timeframe``.

    ``covered_from``/``covered_to`` bound the span the caller knows to be complete; by default it
    is from the first bar's open to the last bar's close. ``calendar``: the symbol's market
    (None: 24/7). `ValueError` for bars outside its sessions, or for daily bars asked of bars
    that straddle its session boundaries (see `market_sessions`).
    """
    if timeframe.minutes % source.minutes:
        raise ValueError(f"cannot resample {source.value} bars to {timeframe.value}")
    if bars.is_empty():
        return empty_bars()
    if timeframe == source:
        return bars.select(list(BAR_SCHEMA))
    if calendar is not None and not calendar.always_open:
        return _resample_on(calendar, bars, timeframe, source, covered_from, covered_to)
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


def _resample_on(
    calendar: MarketCalendar,
    bars: pl.DataFrame,
    timeframe: Timeframe,
    source: Timeframe,
    covered_from: datetime | None,
    covered_to: datetime | None,
) -> pl.DataFrame:
    """`resample` on a calendar that closes: each source bar goes to the ``timeframe`` bar that
    holds the first minute it trades (`bar_keys` of its first open)."""
    times = open_keys(bars)
    bad = outside_sessions(calendar, source, times)
    if bad.any():
        first = from_micros(int(times[np.flatnonzero(bad)[0]]))
        raise ValueError(
            f"{int(bad.sum())} {source.value} bar(s) are outside the sessions of calendar "
            f"{calendar.name}, the first at {first:%Y-%m-%d %H:%M} UTC"
        )
    if timeframe is Timeframe.D1:
        at = first_straddling_bar(
            calendar, source, from_micros(int(times[0])), from_micros(int(times[-1]) + 1)
        )
        if at is not None:
            raise ValueError(
                f"{source.value} bars straddle the session boundaries of calendar "
                f"{calendar.name} (the first keyed {at:%Y-%m-%d %H:%M} UTC): no 1d bar can be "
                "built from them"
            )
    keys = bar_keys(calendar, timeframe, bar_first_opens(calendar, source, times))
    assert not np.any(keys == CLOSED), "a source bar's first open is inside a session"
    lo = to_micros(utc(covered_from)) if covered_from is not None else int(times[0])
    hi = (
        to_micros(utc(covered_to))
        if covered_to is not None
        else int(bar_closes(calendar, source, times[-1:])[0])
    )
    grouped = (
        bars.with_columns(pl.Series("key", keys, dtype=pl.Int64))
        .group_by("key", maintain_order=True)
        .agg(*ohlcv_aggregations())
    )
    out_keys = grouped["key"].to_numpy()
    covered = (bar_first_opens(calendar, timeframe, out_keys) >= lo) & (
        bar_closes(calendar, timeframe, out_keys) <= hi
    )
    out = grouped.filter(pl.Series(covered)).with_columns(
        pl.col("key").cast(pl.Datetime("us")).dt.replace_time_zone("UTC").cast(TIME_DTYPE)
    )
    return out.rename({"key": "open_time"}).select(list(BAR_SCHEMA))
