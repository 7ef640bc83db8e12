"""Contract of the market calendar port, over every adapter: 24/7, FX, exchange_calendars (XNYS,
XLON, XHKG with its lunch break) and the in-memory fake. Then the dates each real calendar must
know: the XNYS early close and holiday of July 2024, Good Friday on XLON, FX's daylight-saving
switch weeks and its weekend."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.adapter.exchange_calendars_calendar import ExchangeCalendarsCalendar
from drl_trading.common.adapter.fx_calendar import FxCalendar
from drl_trading.common.adapter.memory_calendar import MemoryCalendar
from drl_trading.common.calendar import DAY_US, MarketCalendar, Sessions
from drl_trading.common.domain import from_micros, to_micros
from drl_trading.common.errors import UsageError

START = datetime(2024, 2, 26, tzinfo=UTC)
END = datetime(2024, 4, 8, tzinfo=UTC)
"""Six weeks across the US and UK daylight-saving switches and Easter."""


def _d(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _memory() -> MemoryCalendar:
    """Weekdays 14:30-21:00 with a lunch break on Wednesdays, a half day on Thursdays and the
    Friday of 2024-03-29 closed: the shapes an exchange has."""
    segments: list[tuple[datetime, datetime] | tuple[datetime, datetime, datetime]] = []
    day = START
    while day < END:
        if day.weekday() < 5 and day.date() != _d("2024-03-29").date():
            open_, close = day + timedelta(hours=14, minutes=30), day + timedelta(hours=21)
            if day.weekday() == 2:
                segments.append((open_, day + timedelta(hours=16), day))
                segments.append((day + timedelta(hours=17), close, day))
            elif day.weekday() == 3:
                segments.append((open_, day + timedelta(hours=18)))
            else:
                segments.append((open_, close))
        day += timedelta(days=1)
    return MemoryCalendar(segments, name="memory")


ADAPTERS = {
    "24/7": AlwaysOpenCalendar,
    "fx": FxCalendar,
    "XNYS": lambda: ExchangeCalendarsCalendar("XNYS"),
    "XLON": lambda: ExchangeCalendarsCalendar("XLON"),
    "XHKG": lambda: ExchangeCalendarsCalendar("XHKG"),
    "memory": _memory,
}


@pytest.fixture(params=list(ADAPTERS), scope="module")
def calendar(request: pytest.FixtureRequest) -> MarketCalendar:
    cal: MarketCalendar = ADAPTERS[request.param]()
    return cal


def _rows(s: Sessions) -> list[tuple[int, int, int]]:
    return list(zip(s.label.tolist(), s.open.tolist(), s.close.tolist(), strict=True))


def test_segments_are_sorted_disjoint_and_non_empty(calendar: MarketCalendar) -> None:
    s = calendar.sessions(START, END)
    assert len(s) > 0
    assert s.open.dtype == s.close.dtype == s.label.dtype == np.int64
    assert np.all(s.open < s.close)
    assert np.all(s.close[:-1] <= s.open[1:])


def test_labels_are_midnights_that_never_go_back(calendar: MarketCalendar) -> None:
    s = calendar.sessions(START, END)
    assert np.all(s.label % DAY_US == 0)
    assert np.all(np.diff(s.label) >= 0)
    # a session is labelled with a date near its open (FX: the closing date, the next day)
    assert np.all(np.abs(s.open - s.label) < 2 * DAY_US)


def test_exactly_the_segments_overlapping_the_range_are_returned_whole(
    calendar: MarketCalendar,
) -> None:
    wide = calendar.sessions(START - timedelta(days=10), END + timedelta(days=10))
    for lo, hi in [
        (START, END),
        (_d("2024-03-06T15:17"), _d("2024-03-07T15:31")),  # cuts through segments
        (_d("2024-03-09T12:00"), _d("2024-03-09T13:00")),  # a Saturday hour
        (_d("2024-03-13T16:30"), _d("2024-03-13T16:40")),  # a lunch break (memory)
    ]:
        got = calendar.sessions(lo, hi)
        a, b = to_micros(lo), to_micros(hi)
        expected = [r for r in _rows(wide) if r[1] < b and r[2] > a]
        assert _rows(got) == expected


def test_adjacent_ranges_give_the_sessions_of_their_union(calendar: MarketCalendar) -> None:
    mid = _d("2024-03-14T15:00")
    left, right = _rows(calendar.sessions(START, mid)), _rows(calendar.sessions(mid, END))
    merged = left + [r for r in right if r not in left]
    assert merged == _rows(calendar.sessions(START, END))


def test_an_empty_or_reversed_range_has_no_sessions(calendar: MarketCalendar) -> None:
    assert len(calendar.sessions(START, START)) == 0
    assert len(calendar.sessions(END, START)) == 0


def test_only_the_24_7_calendar_says_always_open(calendar: MarketCalendar) -> None:
    assert calendar.always_open is (calendar.name == "24/7")
    if calendar.always_open:
        s = calendar.sessions(START, END)
        assert np.all(s.close[:-1] == s.open[1:]) and s.open[0] == to_micros(START)


def test_a_calendar_survives_pickling(calendar: MarketCalendar) -> None:
    copy = pickle.loads(pickle.dumps(calendar))
    assert copy.name == calendar.name
    assert _rows(copy.sessions(START, END)) == _rows(calendar.sessions(START, END))


# Known dates -------------------------------------------------------------------------------


def _day(cal: MarketCalendar, date: str) -> list[tuple[datetime, datetime]]:
    """The segments labelled ``date``."""
    s = cal.sessions(_d(date) - timedelta(days=2), _d(date) + timedelta(days=2))
    label = to_micros(_d(date))
    return [(from_micros(o), from_micros(c)) for lab, o, c in _rows(s) if lab == label]


def test_xnys_closes_early_on_3_july_2024_and_is_closed_on_the_4th() -> None:
    xnys = ExchangeCalendarsCalendar("XNYS")
    assert _day(xnys, "2024-07-03") == [(_d("2024-07-03T13:30"), _d("2024-07-03T17:00"))]
    assert _day(xnys, "2024-07-04") == []
    assert _day(xnys, "2024-07-05") == [(_d("2024-07-05T13:30"), _d("2024-07-05T20:00"))]


def test_xlon_is_closed_on_good_friday_2024() -> None:
    xlon = ExchangeCalendarsCalendar("XLON")
    assert _day(xlon, "2024-03-29") == []
    assert _day(xlon, "2024-03-28") == [(_d("2024-03-28T08:00"), _d("2024-03-28T16:30"))]


def test_a_lunch_break_is_two_segments_with_one_label() -> None:
    xhkg = ExchangeCalendarsCalendar("XHKG")
    assert _day(xhkg, "2024-03-05") == [
        (_d("2024-03-05T01:30"), _d("2024-03-05T04:00")),
        (_d("2024-03-05T05:00"), _d("2024-03-05T08:00")),
    ]


def test_an_exchange_calendar_reaches_back_before_the_library_default_bounds() -> None:
    xnys = ExchangeCalendarsCalendar("XNYS")
    assert _day(xnys, "1999-06-15") == [(_d("1999-06-15T13:30"), _d("1999-06-15T20:00"))]
    assert _day(xnys, "2024-07-03")[0][1] == _d("2024-07-03T17:00")  # and forward again


@pytest.mark.parametrize(
    ("friday", "friday_close", "monday", "monday_open"),
    [
        # New York switches to summer time on Sunday 10 March 2024: 22:00 UTC before, 21:00 after
        ("2024-03-08", "2024-03-08T22:00", "2024-03-11", "2024-03-10T21:00"),
        # and back on Sunday 3 November 2024: 21:00 UTC before, 22:00 after
        ("2024-11-01", "2024-11-01T21:00", "2024-11-04", "2024-11-03T22:00"),
    ],
)
def test_fx_sessions_follow_new_york_across_the_daylight_saving_switch(
    friday: str, friday_close: str, monday: str, monday_open: str
) -> None:
    fx = FxCalendar()
    assert _day(fx, friday)[0][1] == _d(friday_close)
    assert _day(fx, monday)[0][0] == _d(monday_open)
    assert _day(fx, monday)[0][1] == _d(monday_open) + timedelta(days=1)


def test_fx_is_closed_over_the_weekend_and_open_through_the_week() -> None:
    fx = FxCalendar()
    s = fx.sessions(_d("2024-03-04"), _d("2024-03-18"))
    labels = [from_micros(v).strftime("%a") for v in s.label.tolist()]
    assert labels == ["Mon", "Tue", "Wed", "Thu", "Fri"] * 2 + ["Mon"]
    assert len(fx.sessions(_d("2024-03-09T00:00"), _d("2024-03-10T20:59"))) == 0
    week = fx.sessions(_d("2024-03-12"), _d("2024-03-14"))
    assert np.all(week.close[:-1] == week.open[1:])  # one session rolls into the next


def test_the_memory_calendar_refuses_overlapping_or_empty_segments() -> None:
    with pytest.raises(ValueError, match="overlaps"):
        MemoryCalendar([(_d("2024-01-01T10:00"), _d("2024-01-01T12:00")),
                        (_d("2024-01-01T11:00"), _d("2024-01-01T13:00"))])  # fmt: skip
    with pytest.raises(ValueError, match="not after open"):
        MemoryCalendar([(_d("2024-01-01T10:00"), _d("2024-01-01T10:00"))])


def test_an_unknown_exchange_calendar_is_a_usage_error_naming_the_keys() -> None:
    with pytest.raises(UsageError, match=r"exchange_calendars has no calendar 'NOPE'.*markets"):
        ExchangeCalendarsCalendar("NOPE").sessions(START, END)
