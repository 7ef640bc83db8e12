"""Checks of stored bars against the symbol's market sessions, before preprocessing uses them.

Preprocessing groups bars by the calendar (`drl_trading.common.bar_windows`): an intraday bar
belongs to the window of the epoch grid it opens in, a daily bar is one session. Two things make
that grouping wrong rather than merely different, and both are refused here with what to do:

* bars outside the sessions: they were ingested under another calendar setting (ingest
  quarantines or rejects them under the current one), so they belong to no bar of this one;
* bars that straddle a session boundary (4h bars on FX, whose sessions change at 21:00 or 22:00
  UTC): no daily bar (one session) can be built from them.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from drl_trading.common.bar_windows import bar_closes, bar_first_opens, bar_keys, bar_slots
from drl_trading.common.calendar import MarketCalendar, Micros
from drl_trading.common.domain import Symbol, Timeframe, from_micros
from drl_trading.common.errors import UsageError


class OutOfSessionError(UsageError):
    """Stored bars fall outside the symbol's market sessions (the calendar setting changed after
    they were ingested)."""

    retryable = False


class SessionStraddleError(UsageError):
    """The data's bars straddle session boundaries, so daily bars cannot be built from them."""

    retryable = False


def open_keys(bars: pl.DataFrame) -> Micros:
    """The bars' ``open_time`` as int64 µs (their keys)."""
    return np.asarray(bars["open_time"].dt.epoch("us").to_numpy(), dtype=np.int64)


def outside_sessions(calendar: MarketCalendar, timeframe: Timeframe, keys: Micros) -> Micros:
    """A boolean mask of the keys (µs, sorted) that are no ``timeframe`` bar of ``calendar``."""
    if keys.size == 0 or calendar.always_open:
        return np.zeros(keys.shape, dtype=bool)
    slots = bar_slots(
        calendar, timeframe, from_micros(int(keys[0])), from_micros(int(keys[-1]) + 1)
    )
    return np.asarray(~np.isin(keys, slots), dtype=bool)


def require_in_sessions(
    symbol: Symbol, calendar: MarketCalendar | None, timeframe: Timeframe, bars: pl.DataFrame
) -> None:
    """Raise `OutOfSessionError` naming how many of ``bars`` (sorted, of ``timeframe``) are
    outside ``calendar``'s sessions, the first of them and the setting to look at."""
    if calendar is None or calendar.always_open or bars.is_empty():
        return
    keys = open_keys(bars)
    bad = outside_sessions(calendar, timeframe, keys)
    if bad.any():
        first = from_micros(int(keys[np.flatnonzero(bad)[0]]))
        raise out_of_session_error(symbol, calendar, timeframe, int(bad.sum()), first)


def out_of_session_error(
    symbol: Symbol, calendar: MarketCalendar, timeframe: Timeframe, count: int, first: datetime
) -> OutOfSessionError:
    return OutOfSessionError(
        f"{symbol}: {count} stored {timeframe.value} bar{'s' if count != 1 else ''} "
        f"fall{'s' if count == 1 else ''} outside the sessions of market calendar "
        f"{calendar.name}, the first at {first:%Y-%m-%d %H:%M} UTC; they were ingested under "
        f"another calendar. Set markets.symbols.{symbol}.calendar to the market the data "
        f"comes from, or ingest the range again with --fresh under the current one"
    )


def first_straddling_bar(
    calendar: MarketCalendar | None, source: Timeframe, start: datetime, end: datetime
) -> datetime | None:
    """The first ``source`` bar keyed in ``[start, end)`` that holds parts of two sessions
    (labels), or None: daily bars can then be built from ``source`` bars."""
    if calendar is None or calendar.always_open or source is Timeframe.D1:
        return None
    keys = bar_slots(calendar, source, start, end)
    if keys.size == 0:
        return None
    first = bar_keys(calendar, Timeframe.D1, bar_first_opens(calendar, source, keys))
    last = bar_keys(calendar, Timeframe.D1, bar_closes(calendar, source, keys) - 1)
    bad = np.flatnonzero(first != last)
    return None if bad.size == 0 else from_micros(int(keys[bad[0]]))


def require_daily_buildable(
    symbol: Symbol,
    calendar: MarketCalendar | None,
    source: Timeframe,
    start: datetime,
    end: datetime,
) -> None:
    """Raise `SessionStraddleError` when ``source`` bars over ``[start, end)`` straddle session
    boundaries, naming the coarsest finer timeframe that does not."""
    at = first_straddling_bar(calendar, source, start, end)
    if at is None:
        return
    assert calendar is not None
    finer = [
        tf for tf in Timeframe if tf.minutes < source.minutes and source.minutes % tf.minutes == 0
    ]
    fits = next(
        (tf for tf in sorted(finer, key=lambda t: -t.minutes)
         if first_straddling_bar(calendar, tf, start, end) is None),
        Timeframe.M1,
    )  # fmt: skip
    raise SessionStraddleError(
        f"{symbol}: {source.value} bars straddle the session boundaries of market calendar "
        f"{calendar.name} (the first keyed {at:%Y-%m-%d %H:%M} UTC), so 1d bars (one per "
        f"session) cannot be built from them; ingest {fits.value} bars or finer, or drop 1d "
        "from the feature set"
    )
