"""Exchange sessions (XNYS, XLON, XTKS...) from the exchange_calendars library.

The library's schedule is turned into arrays once per build (a session with a lunch break becomes
two segments with one label) and every question after that is answered from the arrays: a call
into the library costs µs to tens of µs. The library is imported on first use only (about 0.3 s),
so a 24/7 or FX user never pays for it, and a calendar is built (about 0.1 s a decade) only when
its sessions are first asked for, with ``start=`` at the earliest year asked: the library's
default bounds (about 2006 to next year) would miss older data.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import numpy as np

from drl_trading.common.calendar import Micros, Sessions
from drl_trading.common.domain import to_micros, utc
from drl_trading.common.errors import UsageError

_MARGIN_YEARS = 1
"""Years built beyond what is asked on either side, so that a stream crossing New Year or a
slightly earlier warm-up does not rebuild the schedule."""


def exchange_calendar_names() -> dict[str, str]:
    """Every name exchange_calendars knows (aliases too), mapped to its canonical name:
    ``{"NYSE": "XNYS", "XNYS": "XNYS", ...}``. Imports the library."""
    import exchange_calendars as xc

    names: list[str] = xc.get_calendar_names(include_aliases=True)
    return {name: str(xc.resolve_alias(name)) for name in names}


class ExchangeCalendarsCalendar:
    """The sessions of one exchange_calendars calendar (``name``: a canonical name such as
    ``XNYS``; aliases are resolved by the settings). Holidays and early closes are the
    library's (2024-07-03: XNYS closes 17:00 UTC; 2024-07-04: closed)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._first_year = 0
        self._last_year = -1
        self._all = Sessions.empty()

    @property
    def name(self) -> str:
        return self._name

    @property
    def always_open(self) -> bool:
        return False

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self._name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["name"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"ExchangeCalendarsCalendar({self._name!r})"

    def sessions(self, start: datetime, end: datetime) -> Sessions:
        lo, hi = to_micros(start), to_micros(end)
        if hi <= lo:
            return Sessions.empty()
        # a session overlapping [start, end) is labelled within a day or so of it
        first, last = utc(start).year, utc(end).year
        if first - 1 < self._first_year or last + 1 > self._last_year:
            with self._lock:
                self._build(first, last)
        return self._all.overlapping(lo, hi)

    def _build(self, first: int, last: int) -> None:
        if self._last_year >= self._first_year:
            first, last = min(first, self._first_year), max(last, self._last_year)
        first, last = first - _MARGIN_YEARS, last + _MARGIN_YEARS
        import exchange_calendars as xc

        try:
            cal = xc.get_calendar(self._name, start=f"{first}-01-01", end=f"{last}-12-31")
        except xc.errors.InvalidCalendarName:
            raise UsageError(
                f"exchange_calendars has no calendar {self._name!r}; set a name it lists "
                "(e.g. XNYS, XLON) in markets.calendar or markets.symbols.<SYMBOL>.calendar"
            ) from None
        except ValueError as exc:
            raise UsageError(
                f"calendar {self._name} cannot cover {first}..{last}: {exc}; ask for a range "
                "inside the calendar's history"
            ) from exc
        self._all = _segments(cal.schedule)
        self._first_year, self._last_year = first, last


def _segments(schedule: Any) -> Sessions:
    """The library's schedule (one row per session: open, break_start, break_end, close, UTC)
    as sorted segments, a session with a break as two."""
    label = _micros(schedule.index)  # session dates, naive: 00:00 UTC of the date
    open_ = _micros(schedule["open"])
    close = _micros(schedule["close"])
    has_break = (
        schedule["break_start"].notna().to_numpy() & schedule["break_end"].notna().to_numpy()
    )
    if not has_break.any():
        return Sessions(label, open_, close)
    b_start = _micros(schedule["break_start"].where(has_break, schedule["close"]))
    b_end = _micros(schedule["break_end"].where(has_break, schedule["close"]))
    # each session: [open, break_start) then, with a break, [break_end, close)
    labels = np.concatenate([label, label[has_break]])
    opens = np.concatenate([open_, b_end[has_break]])
    closes = np.concatenate([np.where(has_break, b_start, close), close[has_break]])
    order = np.argsort(opens, kind="stable")
    return Sessions(labels[order], opens[order], closes[order])


def _micros(values: Any) -> Micros:
    """Datetimes (pandas; naive ones are UTC) as int64 µs."""
    import pandas as pd  # type: ignore[import-untyped]

    index = pd.DatetimeIndex(values)
    index = index.tz_localize(UTC) if index.tz is None else index.tz_convert(UTC)
    return np.asarray(index.as_unit("us").asi8, dtype=np.int64)
