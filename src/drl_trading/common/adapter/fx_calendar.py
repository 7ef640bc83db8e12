"""The FX calendar: Sunday 17:00 to Friday 17:00 New York time, the spot FX market's week.

Each weekday D (Monday to Friday) is one session ``[D-1 17:00, D 17:00)`` America/New_York,
labelled D (the closing date, as FX daily bars are). That is 22:00 UTC in New York's winter and
21:00 UTC in its summer (daylight saving time from zoneinfo, so the switch weeks in March and
November are right). Sessions are contiguous from Sunday evening to Friday evening.

No holidays: liquidity thins on 25 December and 1 January but the interbank market has no
official closure, and brokers differ. A broker whose feed stops on a holiday shows a gap there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from drl_trading.common.calendar import Sessions
from drl_trading.common.domain import to_micros, utc

NEW_YORK = ZoneInfo("America/New_York")
ROLL = time(17, 0)
"""The daily roll (close of one session, open of the next), New York time."""


@dataclass(frozen=True, slots=True)
class FxCalendar:
    name: str = "fx"

    @property
    def always_open(self) -> bool:
        return False

    def sessions(self, start: datetime, end: datetime) -> Sessions:
        lo, hi = to_micros(start), to_micros(end)
        if hi <= lo:
            return Sessions.empty()
        labels: list[int] = []
        opens: list[int] = []
        closes: list[int] = []
        day = utc(start).date() - timedelta(days=1)
        last = utc(end).date() + timedelta(days=2)
        while day <= last:
            if day.weekday() < 5:  # Monday..Friday closing dates
                close = _roll_us(day)
                open_ = _roll_us(day - timedelta(days=1))
                if open_ < hi and close > lo:
                    labels.append(to_micros(datetime.combine(day, time(), UTC)))
                    opens.append(open_)
                    closes.append(close)
            day += timedelta(days=1)
        return Sessions.of(labels, opens, closes)


def _roll_us(day: date) -> int:
    """17:00 New York time on ``day``, in UTC µs."""
    return to_micros(datetime.combine(day, ROLL, NEW_YORK))
