"""The live side of ingest: where closed bars come from once history is caught up.

A live source is deliberately dumb: it hands over bars as they arrive, in arrival order, with no
promise of uniqueness or order. Exchanges resend bars after a reconnect and correct bars after the
fact, so judging duplicates, late corrections and gaps is the online ingest service's job, done in
one place for every source (an exchange stream, a replay of stored history, the synthetic market).

A session streams bars of one timeframe (the *data timeframe*, 1m by default) of markets that may
close (`drl_trading.common.calendar`): the helpers here place times on the bars a market makes, so
that a source expects the next open bar across a closure and a paced replay does not sleep
through a weekend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Protocol

from drl_trading.common.bar_windows import BarWindows, open_seconds
from drl_trading.common.calendar import MarketCalendar
from drl_trading.common.domain import Bar, from_micros, to_micros, utc


class LiveBarSource(Protocol):
    """Closed bars of one or several symbols, interleaved, in arrival order.

    ``bars`` may block until the next bar closes and ends only when the source is exhausted (a
    replay reached its end) or ``close`` was called; ``close`` may be called from another thread
    to interrupt a waiting source.
    """

    def bars(self) -> Iterator[Bar]: ...

    def close(self) -> None: ...


def slot_at(windows: BarWindows, when: datetime) -> datetime:
    """The key (open time) of the first bar not yet closed at ``when``: the bar open then, one
    that opens later in its window (an XNYS 1h bar keyed 14:00 at 14:15 UTC, a daily bar before
    its session opens), else the next bar the market makes. Where a stream asked to start at
    ``when`` begins, and the bound below which every bar has closed. On a 24/7 market this is
    ``timeframe.floor(when)``."""
    t = to_micros(utc(when))
    window = t - t % windows.timeframe.micros  # intraday: the grid window; 1d: the day's label
    try:
        if windows.close(window) > t:
            return from_micros(window)
    except ValueError:  # not a bar of the market: it is closed through that window
        pass
    return from_micros(windows.next_slot(t))


class Pacer:
    """Holds bars back so that market time runs ``speed`` times faster than wall time.

    Market time is the time the market is open (``calendar``; None: 24/7): a replay of an FX week
    at ``speed=60`` takes 2 hours of its 120 open hours and nothing of its weekend. Waits are
    computed against the first bar's wall time rather than slept bar by bar, so time spent
    processing bars does not accumulate as drift over a long replay. ``speed=None`` never waits.
    The first bar is released at once: it anchors the schedule.
    """

    def __init__(
        self,
        speed: float | None,
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
        calendar: MarketCalendar | None = None,
    ) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be positive (or None for as fast as possible): {speed}")
        self._speed = speed
        self._sleep = sleep
        self._monotonic = monotonic
        self._calendar = None if calendar is None or calendar.always_open else calendar
        self._anchor: tuple[datetime, float] | None = None
        self._last: datetime | None = None
        self._open_elapsed = 0.0  # open seconds from the anchor's market time to ``_last``

    @property
    def speed(self) -> float | None:
        return self._speed

    def wait_for(self, market_time: datetime) -> None:
        """Block until ``market_time`` is due; times at or before the previous one are due now."""
        if self._speed is None:
            return
        if self._anchor is None:
            self._anchor = (market_time, self._monotonic())
            self._last = market_time
            return
        market0, wall0 = self._anchor
        if self._calendar is None:
            elapsed = (market_time - market0).total_seconds()
        else:
            assert self._last is not None
            if market_time <= self._last:
                return
            # counted from the previous time: each call asks the calendar about a short span
            self._open_elapsed += open_seconds(self._calendar, self._last, market_time)
            self._last = market_time
            elapsed = self._open_elapsed
        due = wall0 + elapsed / self._speed
        delay = due - self._monotonic()
        if delay > 0:
            self._sleep(delay)
