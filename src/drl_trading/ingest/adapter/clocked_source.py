"""A live source that moves the market clock: in a replay "now" is the replayed time.

Signal-age and feature-age checks then judge by market time, as they would live; observers (the
session recorder) see each bar before the services do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.domain import Bar
from drl_trading.ingest.core.live import LiveBarSource


class ClockedSource:
    """Moves the market clock to each bar's close as it is delivered (in a replay "now" is the
    replayed time, so signal-age and feature-age checks judge by market time) and shows each bar
    to the observers first."""

    def __init__(
        self,
        inner: LiveBarSource,
        clock: ManualClock | None,
        observers: tuple[Callable[[Bar], None], ...] = (),
    ) -> None:
        """``clock=None`` for a live exchange: services then judge by the wall clock."""
        self._inner = inner
        self._clock = clock
        self.observers = list(observers)
        self.last: Bar | None = None

    def bars(self) -> Iterator[Bar]:
        for bar in self._inner.bars():
            if self._clock is not None:
                self._clock.set(bar.close_time)
            self.last = bar
            for observe in self.observers:
                observe(bar)
            yield bar

    def close(self) -> None:
        self._inner.close()
