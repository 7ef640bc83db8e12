"""How much stored history preprocessing reads, and from which row on its values are settled.

Recursive indicators remember their seed, so rows from ``start`` on match another computation to
1e-9 only when every timeframe had its warm-up bars before them (`FeatureSetSpec.settle_time`).
On a market that closes those bars are counted in the market's own bars (an FX weekend adds
none, 200 XNYS daily bars reach about 290 calendar days back); on the 24/7 calendar (or without
one) they are the calendar spans the feature set states, exactly as before.
"""

from __future__ import annotations

from datetime import datetime

from drl_trading.common.bar_windows import bar_slots, history_start
from drl_trading.common.calendar import DAY_US, MarketCalendar
from drl_trading.common.domain import Timeframe, from_micros, to_micros, utc
from drl_trading.strategy.feature_set import FeatureSetSpec


def _closes(calendar: MarketCalendar | None) -> bool:
    return calendar is not None and not calendar.always_open


def read_start(spec: FeatureSetSpec, calendar: MarketCalendar | None, start: datetime) -> datetime:
    """Where to read stored bars from for the rows from ``start`` on to be settled (whole days):
    ``start - spec.lookback()`` on 24/7, else `FeatureSetSpec.history_start`."""
    start = utc(start)
    if calendar is None:
        return start - spec.lookback()
    return spec.history_start(calendar, start)


def settle_start(spec: FeatureSetSpec, calendar: MarketCalendar | None, at: datetime) -> datetime:
    """The latest first bar from which the row at ``at`` is settled (not rounded to days):
    ``at - spec.settle_time()`` on 24/7, else each timeframe's warm-up bars plus two before it."""
    at = utc(at)
    if not _closes(calendar):
        return at - spec.settle_time()
    assert calendar is not None
    return min(
        (history_start(calendar, t.timeframe, at, t.warmup_bars() + 2) for t in spec.timeframes),
        default=at,
    )


def _nth_slot_from(calendar: MarketCalendar, tf: Timeframe, first: datetime, n: int) -> int:
    """The key (µs) of the ``n``-th ``tf`` bar keyed at or after ``first`` (n >= 1)."""
    lo = to_micros(first)
    reach = n * tf.micros * 2 + 14 * DAY_US
    while True:
        slots = bar_slots(calendar, tf, first, from_micros(lo + reach))
        if slots.size >= n:
            return int(slots[n - 1])
        if reach > 50 * 366 * DAY_US:
            raise ValueError(f"calendar {calendar.name} has fewer than {n} {tf} bars after {first}")
        reach *= 2


def settled_from(
    spec: FeatureSetSpec, calendar: MarketCalendar | None, first_bar: datetime
) -> datetime:
    """The first base-bar open whose row is settled when the history starts at ``first_bar``:
    ``first_bar + settle_time()`` on 24/7; else the first base bar after every timeframe's
    warm-up bars plus two counted from ``first_bar`` in the market's bars."""
    first_bar = utc(first_bar)
    if not _closes(calendar):
        return first_bar + spec.settle_time()
    assert calendar is not None
    ends = [
        _nth_slot_from(calendar, t.timeframe, first_bar, t.warmup_bars() + 2) + t.timeframe.micros
        for t in spec.timeframes
    ]
    at = from_micros(max(ends, default=to_micros(first_bar)))
    return from_micros(_nth_slot_from(calendar, spec.base_timeframe, at, 1))
