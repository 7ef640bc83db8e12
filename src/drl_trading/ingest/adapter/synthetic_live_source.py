"""A never-ending synthetic market: the synthetic provider's bars, minute by minute.

Bars are those `SyntheticProvider` would return for the same seed (the series is a pure function
of seed, symbol and minute), so a live session whose history was filled from the synthetic
provider continues it without a seam, and a paper-trading run can be reproduced exactly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

from drl_trading.common.domain import Bar, Symbol, Timeframe, to_micros, utc
from drl_trading.common.ports import Clock
from drl_trading.ingest.adapter.synthetic_provider import (
    ANCHOR,
    MINUTES_PER_DAY,
    SyntheticProvider,
)
from drl_trading.ingest.core.live import Pacer

_DAY_US = 86_400_000_000
_MINUTE_US = 60_000_000


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
    ) -> None:
        """Without ``start`` the stream begins at the last minute ``clock`` has seen close, so with
        ``speed=1`` no bar is handed out before its close time on that clock."""
        self.symbols = tuple(sorted(dict.fromkeys(Symbol(s) for s in symbols)))
        if not self.symbols:
            raise ValueError("no symbol to stream")
        if start is None:
            if clock is None:
                raise ValueError("give either a start time or a clock to start from")
            start = Timeframe.M1.floor(clock.now()) - Timeframe.M1.duration
        self.start = Timeframe.M1.floor(utc(start))
        if self.start < ANCHOR:
            raise ValueError(f"synthetic data starts at {ANCHOR.date()}; asked from {self.start}")
        self._provider = SyntheticProvider(seed=seed)
        self._closed = threading.Event()
        self._pacer = Pacer(speed, sleep or self._interruptible_sleep, monotonic)

    def bars(self) -> Iterator[Bar]:
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

    def close(self) -> None:
        self._closed.set()

    def _interruptible_sleep(self, seconds: float) -> None:
        self._closed.wait(seconds)

    def _day_rows(
        self, symbol: Symbol, day: int
    ) -> list[tuple[datetime, float, float, float, float, float]]:
        rows: list[tuple[datetime, float, float, float, float, float]] = self._provider.day(
            symbol, day
        ).rows()  # type: ignore[assignment]
        return rows
