"""A live source that moves the market clock: in a replay "now" is the replayed time.

Signal-age and feature-age checks then judge by market time, as they would live; observers (the
session recorder) see each bar before the services do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.bar_windows import BarWindows
from drl_trading.common.calendar import CalendarBook
from drl_trading.common.domain import Bar, Symbol, Timeframe, from_micros, to_micros, utc
from drl_trading.ingest.core.live import LiveBarSource


class ClockedSource:
    """Moves the market clock to each bar's close as it is delivered (in a replay "now" is the
    replayed time, so signal-age and feature-age checks judge by market time) and shows each bar
    to the observers first.

    The close is the calendar close of the bar's market (``calendars``; None: 24/7, where it is
    `Bar.close_time`): the last XLON 1h bar, keyed 15:00, closes at 15:30 when the session does,
    so its features are not judged 30 minutes old on arrival.
    """

    def __init__(
        self,
        inner: LiveBarSource,
        clock: ManualClock | None,
        observers: tuple[Callable[[Bar], None], ...] = (),
        *,
        calendars: CalendarBook | None = None,
    ) -> None:
        """``clock=None`` for a live exchange: services then judge by the wall clock."""
        self._inner = inner
        self._clock = clock
        self._calendars = calendars
        self._windows: dict[tuple[Symbol, Timeframe], BarWindows] = {}
        self.observers = list(observers)
        self.last: Bar | None = None

    def bars(self) -> Iterator[Bar]:
        for bar in self._inner.bars():
            if self._clock is not None:
                self._clock.set(self.close_of(bar))
            self.last = bar
            for observe in self.observers:
                observe(bar)
            yield bar

    def close(self) -> None:
        self._inner.close()

    def close_of(self, bar: Bar) -> datetime:
        """When ``bar`` closes on its market's calendar; its nominal close for a bar the market
        does not make (online ingest quarantines it)."""
        if self._calendars is None:
            return bar.close_time
        key = (bar.symbol, bar.timeframe)
        windows = self._windows.get(key)
        if windows is None:
            calendar = self._calendars.for_symbol(bar.symbol)
            if calendar.always_open:
                return bar.close_time
            windows = self._windows[key] = BarWindows(calendar, bar.timeframe)
        try:
            return from_micros(windows.close(to_micros(utc(bar.open_time))))
        except ValueError:
            return bar.close_time
