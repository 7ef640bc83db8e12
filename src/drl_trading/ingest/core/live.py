"""The live side of ingest: where closed 1m bars come from once history is caught up.

A live source is deliberately dumb: it hands over bars as they arrive, in arrival order, with no
promise of uniqueness or order. Exchanges resend bars after a reconnect and correct bars after the
fact, so judging duplicates, late corrections and gaps is the online ingest service's job, done in
one place for every source (an exchange stream, a replay of stored history, the synthetic market).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Protocol

from drl_trading.common.domain import Bar


class LiveBarSource(Protocol):
    """Closed 1m bars of one or several symbols, interleaved, in arrival order.

    ``bars`` may block until the next bar closes and ends only when the source is exhausted (a
    replay reached its end) or ``close`` was called; ``close`` may be called from another thread
    to interrupt a waiting source.
    """

    def bars(self) -> Iterator[Bar]: ...

    def close(self) -> None: ...


class Pacer:
    """Holds bars back so that market time runs ``speed`` times faster than wall time.

    Waits are computed against the first bar's wall time rather than slept bar by bar, so time
    spent processing bars does not accumulate as drift over a long replay. ``speed=None`` never
    waits. The first bar is released at once: it anchors the schedule.
    """

    def __init__(
        self,
        speed: float | None,
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
    ) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be positive (or None for as fast as possible): {speed}")
        self._speed = speed
        self._sleep = sleep
        self._monotonic = monotonic
        self._anchor: tuple[datetime, float] | None = None

    @property
    def speed(self) -> float | None:
        return self._speed

    def wait_for(self, market_time: datetime) -> None:
        """Block until ``market_time`` is due; times at or before the previous one are due now."""
        if self._speed is None:
            return
        if self._anchor is None:
            self._anchor = (market_time, self._monotonic())
            return
        market0, wall0 = self._anchor
        due = wall0 + (market_time - market0).total_seconds() / self._speed
        delay = due - self._monotonic()
        if delay > 0:
            self._sleep(delay)
