"""A calendar from segments given as a list: the fake for tests (half days, lunch breaks,
hand-made closures), and a way to state an unusual market in a few lines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time

from drl_trading.common.calendar import Sessions
from drl_trading.common.domain import to_micros, utc

Segment = tuple[datetime, datetime] | tuple[datetime, datetime, datetime]
"""``(open, close)`` labelled by the open's UTC date, or ``(open, close, label)``."""


@dataclass(frozen=True)
class MemoryCalendar:
    """Open segments ``[open, close)``, sorted and disjoint (checked). The label of a segment is
    its session date at 00:00 UTC; two segments with one label are a session with a break."""

    segments: Sequence[Segment]
    name: str = "memory"
    always_open: bool = False
    _all: Sessions = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        labels: list[int] = []
        opens: list[int] = []
        closes: list[int] = []
        for seg in self.segments:
            open_, close = utc(seg[0]), utc(seg[1])
            label = utc(seg[2]) if len(seg) == 3 else open_  # type: ignore[misc]
            day = datetime.combine(label.date(), time(), UTC)
            if close <= open_:
                raise ValueError(f"segment {open_}..{close}: close is not after open")
            if opens and to_micros(open_) < closes[-1]:
                raise ValueError(f"segment {open_}..{close} overlaps or precedes the one before")
            if labels and to_micros(day) < labels[-1]:
                raise ValueError(f"segment {open_}..{close}: label {day:%Y-%m-%d} goes back")
            labels.append(to_micros(day))
            opens.append(to_micros(open_))
            closes.append(to_micros(close))
        object.__setattr__(self, "_all", Sessions.of(labels, opens, closes))

    def sessions(self, start: datetime, end: datetime) -> Sessions:
        return self._all.overlapping(to_micros(start), to_micros(end))
