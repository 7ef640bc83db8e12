"""`BarWindows.last_closed`: the bar a decision at a time is on, across closures, against the
vectorised definition (the latest slot whose `bar_closes` is at or before the time)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.adapter.exchange_calendars_calendar import ExchangeCalendarsCalendar
from drl_trading.common.adapter.fx_calendar import FxCalendar
from drl_trading.common.adapter.memory_calendar import MemoryCalendar
from drl_trading.common.bar_windows import BarWindows, bar_closes, bar_slots
from drl_trading.common.domain import Timeframe, from_micros, to_micros
from tests.unit.test_bar_windows import T0, TIMEFRAMES, _d, _span, calendars

MIN_US = 60_000_000


def _expected(cal: MemoryCalendar, tf: Timeframe, t: int) -> int | None:
    keys = bar_slots(cal, tf, T0 - timedelta(days=20), T0 + timedelta(days=80))
    closes = bar_closes(cal, tf, keys)
    done = keys[closes <= t]
    return int(done[-1]) if done.size else None


@settings(max_examples=60, deadline=None)
@given(calendars(), st.sampled_from(TIMEFRAMES), st.integers(0, 10_000))
def test_last_closed_is_the_latest_slot_closed_by_then(
    cal: MemoryCalendar, tf: Timeframe, offset_min: int
) -> None:
    lo, hi = _span(cal)
    t = lo + (offset_min * MIN_US) % max(hi - lo + 2 * tf.micros, 1)
    want = _expected(cal, tf, t)
    windows = BarWindows(cal, tf)
    if want is None:
        with pytest.raises(ValueError, match=r"no .* bar in the 50 years"):
            windows.last_closed(t)
        return
    got = windows.last_closed(t)
    assert got == want
    assert windows.close(got) <= t
    # the bar before a bar is the last one closed by its first open
    prior = _expected(cal, tf, windows.first_open(got))
    if prior is not None:
        assert windows.last_closed(windows.first_open(got)) == prior
        assert windows.slots_between(prior, got) == 1


def test_24_7_is_the_window_ending_at_or_before() -> None:
    windows = BarWindows(AlwaysOpenCalendar(), Timeframe.M5)
    t = to_micros(T0)
    assert windows.last_closed(t) == t - Timeframe.M5.micros
    assert windows.last_closed(t + 1) == t - Timeframe.M5.micros
    assert windows.last_closed(t + Timeframe.M5.micros) == t


def test_across_an_fx_weekend_and_an_xlon_early_close() -> None:
    fx = BarWindows(FxCalendar(), Timeframe.H1)
    # summer: FX closes Friday 21:00 UTC and opens Sunday 21:00 UTC
    sunday = to_micros(_d("2024-06-09T21:30"))
    assert from_micros(fx.last_closed(sunday)) == _d("2024-06-07T20:00")
    days = BarWindows(FxCalendar(), Timeframe.D1)
    # the daily bar labelled Friday closed on Friday 21:00; Monday's is still open on Sunday
    assert from_micros(days.last_closed(sunday)) == _d("2024-06-07")
    xlon = BarWindows(ExchangeCalendarsCalendar("XLON"), Timeframe.H1)
    # XLON's last hourly bar (15:00 UTC in summer) closes at 15:30, off the hourly grid
    assert from_micros(xlon.last_closed(to_micros(_d("2024-06-10T15:30")))) == _d(
        "2024-06-10T15:00"
    )
    assert from_micros(xlon.last_closed(to_micros(_d("2024-06-10T15:29")))) == _d(
        "2024-06-10T14:00"
    )


def test_far_lookups_extend_the_built_span() -> None:
    windows = BarWindows(FxCalendar(), Timeframe.M1)
    late = to_micros(_d("2024-06-07T21:00"))
    assert windows.last_closed(late) == late - MIN_US
    early = to_micros(_d("2021-01-04T00:00"))  # built around 2024 so far: reaching back rebuilds
    assert windows.last_closed(early) == early - MIN_US
    # and a bar before a long closure is found however far back the span was built
    assert from_micros(windows.last_closed(to_micros(_d("2021-01-03T12:00")))) == _d(
        "2021-01-01T21:59"
    )
