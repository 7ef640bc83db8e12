"""Market calendars: when a market is open, as arrays of open segments.

A calendar answers one question, `MarketCalendar.sessions`: the open segments overlapping a UTC
range. Everything built on it (the bar windows of `drl_trading.common.bar_windows`, gap reports,
resampling, annualisation) is pure arithmetic over those arrays, so that no per-bar call reaches a
calendar library (a pandas-backed call into exchange_calendars costs µs to tens of µs; a bisect
over the arrays well under 1 µs: benchmarks/market_calendars.py compares).

Times are int64 microseconds since the Unix epoch, UTC, the unit of every stored timestamp
(`drl_trading.common.domain.to_micros`). A session is one trading day; it has one segment, or two
when the market breaks for lunch (both rows carry the session's label). Its label is the session
date at 00:00 UTC: what a 1d bar of that session is labelled, whatever time of day (or of the
previous day, for FX) the session opens.

The adapters live in `drl_trading.common.adapter`: ``always_open_calendar`` (24/7, crypto),
``fx_calendar`` (Sunday 17:00 to Friday 17:00 New York time), ``exchange_calendars_calendar``
(exchange sessions from the exchange_calendars library) and ``memory_calendar`` (segments given as
a list: the fake for tests).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt

from drl_trading.common.domain import Symbol
from drl_trading.common.errors import UsageError

Micros = npt.NDArray[np.int64]
"""An int64 array of UTC microseconds since the epoch."""

DAY_US = 86_400_000_000
"""One day in microseconds."""


@dataclass(frozen=True, slots=True)
class Sessions:
    """Open segments ``[open, close)``, one row each, sorted by open and disjoint.

    ``label`` is the session date at 00:00 UTC (µs), non-decreasing; a session with a lunch break
    is two rows with one label. All three arrays are int64 µs of equal length.
    """

    label: Micros
    open: Micros
    close: Micros

    def __post_init__(self) -> None:
        n = len(self.open)
        if len(self.label) != n or len(self.close) != n:
            raise ValueError(
                f"sessions arrays differ in length: label {len(self.label)}, open {n}, "
                f"close {len(self.close)}"
            )

    def __len__(self) -> int:
        return len(self.open)

    @classmethod
    def empty(cls) -> Sessions:
        none = np.empty(0, dtype=np.int64)
        return cls(none, none.copy(), none.copy())

    @classmethod
    def of(cls, label: Iterable[int], open: Iterable[int], close: Iterable[int]) -> Sessions:
        """Sessions from three sequences of µs (converted to int64 arrays)."""
        return cls(
            np.asarray(list(label), dtype=np.int64),
            np.asarray(list(open), dtype=np.int64),
            np.asarray(list(close), dtype=np.int64),
        )

    def overlapping(self, start_us: int, end_us: int) -> Sessions:
        """The rows overlapping ``[start_us, end_us)`` (whole segments, not cut at the bounds)."""
        lo = int(np.searchsorted(self.close, start_us, side="right"))
        hi = int(np.searchsorted(self.open, end_us, side="left"))
        hi = max(lo, hi)
        return Sessions(self.label[lo:hi], self.open[lo:hi], self.close[lo:hi])


class MarketCalendar(Protocol):
    """When one market is open. Implementations must be picklable (engine snapshots hold one)."""

    @property
    def name(self) -> str:
        """The calendar's name as configured: ``24/7``, ``fx``, ``XNYS``..."""
        ...

    @property
    def always_open(self) -> bool:
        """True only for the 24/7 calendar: callers may then use closed-form arithmetic on the
        epoch grid (bit-identical to the code that assumed a 24/7 market)."""
        ...

    def sessions(self, start: datetime, end: datetime) -> Sessions:
        """Every open segment overlapping ``[start, end)``, whole (a segment that began before
        ``start`` or ends after ``end`` is returned with its true open and close)."""
        ...


class MixedCalendarsError(UsageError):
    """Symbols on different market calendars were asked for together (one request, one model):
    one clock steps the environment and one figure annualises its returns."""

    def __init__(self, by_calendar: Mapping[str, list[Symbol]]) -> None:
        self.by_calendar = dict(by_calendar)
        groups = "; ".join(
            f"{name}: {', '.join(syms)}" for name, syms in sorted(self.by_calendar.items())
        )
        super().__init__(
            f"symbols on different market calendars cannot go together ({groups}); run one "
            "calendar's symbols at a time, or set markets.symbols.<SYMBOL>.calendar so that they "
            "share one"
        )


@dataclass(frozen=True)
class CalendarBook:
    """The calendar of every symbol: ``markets.symbols.<SYMBOL>.calendar`` where set, else the
    default (``markets.calendar``)."""

    default: MarketCalendar
    by_symbol: Mapping[Symbol, MarketCalendar] = field(default_factory=dict)

    def for_symbol(self, symbol: Symbol | str) -> MarketCalendar:
        return self.by_symbol.get(Symbol(symbol), self.default)

    def for_symbols(self, symbols: Iterable[Symbol | str]) -> MarketCalendar:
        """The one calendar all ``symbols`` share; `MixedCalendarsError` when they do not."""
        by_name: dict[str, list[Symbol]] = {}
        found: dict[str, MarketCalendar] = {}
        for raw in symbols:
            sym = Symbol(raw)
            cal = self.for_symbol(sym)
            by_name.setdefault(cal.name, []).append(sym)
            found[cal.name] = cal
        if len(found) > 1:
            raise MixedCalendarsError(by_name)
        if not found:
            return self.default
        return next(iter(found.values()))
