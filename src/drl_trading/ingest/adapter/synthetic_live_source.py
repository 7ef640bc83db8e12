"""A never-ending synthetic market: the synthetic provider's bars, bar by bar.

Bars are those `SyntheticProvider` would return for the same seed, timeframe and market
calendars (the series is a pure function of seed, symbol and minute), so a live session whose
history was filled from the synthetic provider continues it without a seam, and a paper-trading
run can be reproduced exactly. On a market that closes only the bars it makes are handed out (an
FX week's 1h bars, none at the weekend), paced over open time (`Pacer`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta

from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.bar_windows import BarWindows
from drl_trading.common.calendar import CalendarBook
from drl_trading.common.domain import Bar, Symbol, Timeframe, from_micros, to_micros, utc
from drl_trading.common.ports import Clock
from drl_trading.ingest.adapter.synthetic_provider import (
    ANCHOR,
    MINUTES_PER_DAY,
    SyntheticProvider,
)
from drl_trading.ingest.core.live import Pacer, slot_at

_DAY_US = 86_400_000_000
_MINUTE_US = 60_000_000

_Row = tuple[datetime, float, float, float, float, float]


class SyntheticLiveSource:
    def __init__(
        self,
        seed: int,
        symbols: Sequence[Symbol | str],
        start: datetime | None = None,
        *,
        speed: float | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        timeframe: Timeframe = Timeframe.M1,
        calendars: CalendarBook | None = None,
        edge: float = 0.0,
        edge_timeframe: Timeframe = Timeframe.H1,
    ) -> None:
        """Without ``start`` the stream begins at the last bar ``clock`` has seen close, so with
        ``speed=1`` no bar is handed out before its close time on that clock. ``timeframe``: the
        bars made; ``calendars``: the symbols' market calendar (None: 24/7; one calendar for all
        the symbols, `MixedCalendarsError` otherwise, since one schedule paces them); ``edge``,
        ``edge_timeframe``: the planted edge, as the provider's (the same bars as the history)."""
        self.symbols = tuple(sorted(dict.fromkeys(Symbol(s) for s in symbols)))
        if not self.symbols:
            raise ValueError("no symbol to stream")
        book = calendars or CalendarBook(AlwaysOpenCalendar())
        calendar = book.for_symbols(self.symbols)
        self.timeframe = timeframe
        self._windows = BarWindows(calendar, timeframe)
        if start is None:
            if clock is None:
                raise ValueError("give either a start time or a clock to start from")
            start = from_micros(self._windows.last_closed(to_micros(utc(clock.now()))))
        self.start = slot_at(self._windows, utc(start))
        if self.start < ANCHOR:
            raise ValueError(f"synthetic data starts at {ANCHOR.date()}; asked from {self.start}")
        self._minutes = calendar.always_open and timeframe is Timeframe.M1
        self._provider = SyntheticProvider(
            seed=seed, calendars=book, edge=edge, edge_timeframe=edge_timeframe
        )
        self._closed = threading.Event()
        self._pacer = Pacer(speed, sleep or self._interruptible_sleep, monotonic, calendar)

    def bars(self) -> Iterator[Bar]:
        return self._minute_bars() if self._minutes else self._market_bars()

    def close(self) -> None:
        self._closed.set()

    def _interruptible_sleep(self, seconds: float) -> None:
        self._closed.wait(seconds)

    def _minute_bars(self) -> Iterator[Bar]:
        """1m bars of a 24/7 market: the provider's minutes themselves, a day at a time."""
        offset = to_micros(self.start) - to_micros(ANCHOR)
        day, minute = offset // _DAY_US, (offset % _DAY_US) // _MINUTE_US
        while not self._closed.is_set():
            rows = {s: self._day_rows(s, day) for s in self.symbols}
            for m in range(minute, MINUTES_PER_DAY):
                open_time = rows[self.symbols[0]][m][0]
                self._pacer.wait_for(open_time)
                for s in self.symbols:
                    if self._closed.is_set():
                        return
                    t, o, h, low, c, v = rows[s][m]
                    yield Bar(s, Timeframe.M1, t, o, h, low, c, v)
            day, minute = day + 1, 0

    def _market_bars(self) -> Iterator[Bar]:
        """Bars of the timeframe keyed in each UTC day in turn (`SyntheticProvider.fetch` of the
        day), symbols interleaved by open time; each open time is due at its calendar close."""
        tf = self.timeframe
        day = datetime(self.start.year, self.start.month, self.start.day, tzinfo=ANCHOR.tzinfo)
        while not self._closed.is_set():
            upto = day + timedelta(days=1)
            rows = sorted(
                (row[0], s, row) for s in self.symbols for row in self._rows(s, tf, day, upto)
            )
            for open_time, s, (t, o, h, low, c, v) in rows:
                if open_time < self.start:
                    continue
                self._pacer.wait_for(from_micros(self._windows.close(to_micros(open_time))))
                if self._closed.is_set():
                    return
                yield Bar(s, tf, t, o, h, low, c, v)
            day = upto

    def _rows(
        self, symbol: Symbol, timeframe: Timeframe, start: datetime, end: datetime
    ) -> list[_Row]:
        rows: list[_Row] = []
        for frame in self._provider.fetch(symbol, timeframe, start, end):
            rows.extend(frame.rows())  # type: ignore[arg-type]
        return rows

    def _day_rows(self, symbol: Symbol, day: int) -> list[_Row]:
        rows: list[_Row] = self._provider.day(symbol, day).rows()  # type: ignore[assignment]
        return rows
