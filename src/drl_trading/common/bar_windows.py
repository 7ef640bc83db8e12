"""Bar arithmetic on a market calendar: which bars exist, their keys, closes and ordinals.

A bar is named by its key, the UTC µs it is stored under (its ``open_time``):

- **intraday** (1m..4h): windows of the epoch grid, ``[k, k + tf)`` with ``k % tf == 0``. A window
  is a *slot* (a bar the market makes) when it intersects an open segment. Its close is the end of
  the window, or the end of the market's last segment inside it when the market closes earlier
  (an XLON 1h bar keyed 15:00 UTC closes at 15:30); its first open is the window start, or the
  segment open when the market opens later.
- **1d**: one slot per session, keyed by the session label (the session date at 00:00 UTC); it
  closes at the session close and first opens at the session open (an FX daily bar labelled D
  opens at D-1 21:00 or 22:00 UTC and closes on D at the same time).

On the 24/7 calendar (`MarketCalendar.always_open`) every function takes its closed form: slots
are every grid step, closes are ``key + tf`` and ordinals ``key // tf``, exactly what the code that
assumed an always-open market computed.

The vectorised functions take and return int64 µs arrays (`drl_trading.common.calendar.Micros`);
`BarWindows` answers the same questions one bar at a time with ``bisect`` over Python lists, for
per-bar code (an online engine, a live source): well under 1 µs a lookup, several times less than
asking a calendar library each time (benchmarks/market_calendars.py).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from drl_trading.common.calendar import DAY_US, CalendarBook, MarketCalendar, Micros, Sessions
from drl_trading.common.domain import Timeframe, from_micros, to_micros, utc

CLOSED = -1
"""The key `bar_keys` gives a time at which the market is closed."""

_LABEL_MARGIN_US = 7 * DAY_US
"""How far from its label a session may open or close (FX and futures sessions open on the
evening before their label): sessions are fetched this much beyond a range of labels."""

_SEARCH_LIMIT_US = 50 * 366 * DAY_US
"""How far `history_start` and `BarWindows.next_slot` look for a slot before giving up (a
calendar with no session for 50 years is a configuration mistake, not a long holiday)."""


@dataclass(frozen=True, slots=True)
class MissingRun:
    """Consecutive expected bars that are missing: ``missing_bars`` slots, the first keyed
    ``start``, the last closing at ``end``. A closure inside the run is not counted."""

    start: datetime
    end: datetime
    missing_bars: int


def _i64(values: Any) -> Micros:
    return np.asarray(values, dtype=np.int64)


def _ceil(x: int, step: int) -> int:
    return -(-x // step) * step


def _fetch(calendar: MarketCalendar, lo_us: int, hi_us: int) -> Sessions:
    return calendar.sessions(from_micros(lo_us), from_micros(hi_us))


def _window_keys(sessions: Sessions, step: int) -> Micros:
    """The distinct grid windows (keys, sorted) intersecting the segments."""
    if len(sessions) == 0:
        return np.empty(0, dtype=np.int64)
    first = sessions.open - sessions.open % step
    last = (sessions.close - 1) - (sessions.close - 1) % step
    counts = (last - first) // step + 1
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    within = np.arange(int(counts.sum()), dtype=np.int64) - offsets
    keys = np.repeat(first, counts) + step * within
    if keys.size > 1:  # neighbouring segments can share a window (a lunch break, FX's roll)
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    return _i64(keys)


def _unique_labels(sessions: Sessions) -> Micros:
    labels = sessions.label
    if labels.size > 1:
        labels = labels[np.concatenate(([True], labels[1:] != labels[:-1]))]
    return labels


def bar_slots(
    calendar: MarketCalendar, timeframe: Timeframe, start: datetime, end: datetime
) -> Micros:
    """Keys of the bars the market makes with a key in ``[start, end)``, sorted."""
    lo, hi = to_micros(start), to_micros(end)
    step = timeframe.micros
    if hi <= lo:
        return np.empty(0, dtype=np.int64)
    if calendar.always_open:
        return np.arange(_ceil(lo, step), hi, step, dtype=np.int64)
    if timeframe is Timeframe.D1:
        labels = _unique_labels(_fetch(calendar, lo - _LABEL_MARGIN_US, hi + _LABEL_MARGIN_US))
    else:
        labels = _window_keys(_fetch(calendar, lo, hi + step), step)
    return labels[(labels >= lo) & (labels < hi)]


def bar_keys(calendar: MarketCalendar, timeframe: Timeframe, times: Any) -> Micros:
    """The key of the bar each time (µs) falls in, or `CLOSED` where the market is closed."""
    t = _i64(times)
    step = timeframe.micros
    if calendar.always_open:
        return t - t % step
    if t.size == 0:
        return t.copy()
    s = _fetch(calendar, int(t.min()), int(t.max()) + 1)
    i = np.searchsorted(s.open, t, side="right") - 1
    ic = np.clip(i, 0, max(len(s) - 1, 0))
    inside = (i >= 0) & (t < s.close[ic]) if len(s) else np.zeros(t.shape, dtype=bool)
    keys = s.label[ic] if timeframe is Timeframe.D1 and len(s) else t - t % step
    return np.where(inside, keys, CLOSED).astype(np.int64)


def _not_slots(keys: Micros, bad: Any, calendar: MarketCalendar, timeframe: Timeframe) -> None:
    if np.any(bad):
        first = from_micros(int(keys[np.flatnonzero(bad)[0]]))
        raise ValueError(
            f"{int(np.count_nonzero(bad))} key(s) are not {timeframe} bars of calendar "
            f"{calendar.name}, the first {first:%Y-%m-%d %H:%M} UTC (the market is closed then "
            "or the time is off the grid)"
        )


def _key_sessions(calendar: MarketCalendar, timeframe: Timeframe, k: Micros) -> Sessions:
    lo, hi = int(k.min()), int(k.max())
    if timeframe is Timeframe.D1:
        return _fetch(calendar, lo - _LABEL_MARGIN_US, hi + DAY_US + _LABEL_MARGIN_US)
    return _fetch(calendar, lo, hi + timeframe.micros)


def bar_closes(calendar: MarketCalendar, timeframe: Timeframe, keys: Any) -> Micros:
    """When each bar (given by its key, µs) closes: the end of its window, or earlier where the
    market closes inside it; a 1d bar at its session close. `ValueError` for a key that is no
    bar of this calendar."""
    k = _i64(keys)
    step = timeframe.micros
    if k.size == 0:
        return k.copy()
    if calendar.always_open:
        _not_slots(k, k % step != 0, calendar, timeframe)
        return k + step
    s = _key_sessions(calendar, timeframe, k)
    n = len(s)
    if n == 0:
        _not_slots(k, np.ones(k.shape, dtype=bool), calendar, timeframe)
    if timeframe is Timeframe.D1:
        j = np.searchsorted(s.label, k, side="right") - 1
        jc = np.clip(j, 0, n - 1)
        _not_slots(k, (j < 0) | (s.label[jc] != k), calendar, timeframe)
        return s.close[jc]
    ends = k + step
    j = np.searchsorted(s.open, ends, side="left") - 1
    jc = np.clip(j, 0, n - 1)
    _not_slots(k, (k % step != 0) | (j < 0) | (s.close[jc] <= k), calendar, timeframe)
    return np.minimum(ends, s.close[jc])


def bar_first_opens(calendar: MarketCalendar, timeframe: Timeframe, keys: Any) -> Micros:
    """When the market first trades inside each bar: the window start, or the session open
    where the market opens later in the window (a 1d bar: its session's first open)."""
    k = _i64(keys)
    step = timeframe.micros
    if k.size == 0:
        return k.copy()
    if calendar.always_open:
        _not_slots(k, k % step != 0, calendar, timeframe)
        return k.copy()
    s = _key_sessions(calendar, timeframe, k)
    n = len(s)
    if n == 0:
        _not_slots(k, np.ones(k.shape, dtype=bool), calendar, timeframe)
    if timeframe is Timeframe.D1:
        j = np.searchsorted(s.label, k, side="left")
        jc = np.clip(j, 0, n - 1)
        _not_slots(k, (j >= n) | (s.label[jc] != k), calendar, timeframe)
        return s.open[jc]
    j = np.searchsorted(s.close, k, side="right")
    jc = np.clip(j, 0, n - 1)
    _not_slots(k, (k % step != 0) | (j >= n) | (s.open[jc] >= k + step), calendar, timeframe)
    return np.maximum(k, s.open[jc])


def slot_ordinals(calendar: MarketCalendar, timeframe: Timeframe, keys: Any) -> Micros:
    """Each bar's position among the market's bars, counted from the earliest key given (0):
    two bars are consecutive exactly when their ordinals differ by 1, across closures."""
    k = _i64(keys)
    step = timeframe.micros
    if k.size == 0:
        return k.copy()
    lo = int(k.min())
    if calendar.always_open:
        _not_slots(k, k % step != 0, calendar, timeframe)
        return (k - lo) // step
    slots = bar_slots(calendar, timeframe, from_micros(lo), from_micros(int(k.max()) + 1))
    pos = np.searchsorted(slots, k)
    pc = np.clip(pos, 0, max(slots.size - 1, 0))
    bad = (pos >= slots.size) | (slots[pc] != k) if slots.size else np.ones(k.shape, dtype=bool)
    _not_slots(k, bad, calendar, timeframe)
    return pos.astype(np.int64)


def find_missing(
    calendar: MarketCalendar,
    timeframe: Timeframe,
    times: Any,
    start: datetime,
    end: datetime,
) -> list[MissingRun]:
    """The bars expected in ``[start, end)`` (`bar_slots`) that ``times`` (stored open times,
    µs) lacks, grouped into runs of consecutive slots: a weekend or a holiday between two
    missing bars is neither a gap nor a break of one."""
    expected = bar_slots(calendar, timeframe, start, end)
    if expected.size == 0:
        return []
    missing = np.flatnonzero(~np.isin(expected, _i64(times)))
    if missing.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(missing) != 1)
    firsts = missing[np.concatenate(([0], breaks + 1))]
    lasts = missing[np.concatenate((breaks, [missing.size - 1]))]
    ends = bar_closes(calendar, timeframe, expected[lasts])
    return [
        MissingRun(from_micros(int(expected[a])), from_micros(int(e)), int(b - a + 1))
        for a, b, e in zip(firsts, lasts, ends, strict=True)
    ]


def open_seconds(calendar: MarketCalendar, start: datetime, end: datetime) -> float:
    """Seconds the market is open within ``[start, end)`` (a paced replay waits this long, not
    through a weekend)."""
    lo, hi = to_micros(start), to_micros(end)
    if hi <= lo:
        return 0.0
    if calendar.always_open:
        return (hi - lo) / 1e6
    s = calendar.sessions(start, end)
    overlap = np.minimum(s.close, hi) - np.maximum(s.open, lo)
    return float(overlap[overlap > 0].sum()) / 1e6


def history_start(
    calendar: MarketCalendar, timeframe: Timeframe, start: datetime, n_bars: int
) -> datetime:
    """The key of the ``n_bars``-th bar before ``start``: fetching from there gives ``n_bars``
    bars of warm-up before it (200 daily XNYS bars reach about 290 calendar days back)."""
    if n_bars < 0:
        raise ValueError(f"n_bars must be >= 0, got {n_bars}")
    if n_bars == 0:
        return start
    step = timeframe.micros
    hi = to_micros(start)
    if calendar.always_open:
        return from_micros(_ceil(hi, step) - n_bars * step)
    reach = n_bars * step * 2 + 14 * DAY_US
    while True:
        slots = bar_slots(calendar, timeframe, from_micros(hi - reach), start)
        if slots.size >= n_bars:
            return from_micros(int(slots[-n_bars]))
        if reach > _SEARCH_LIMIT_US:
            raise ValueError(
                f"calendar {calendar.name} has only {slots.size} {timeframe} bars in the 50 "
                f"years before {start:%Y-%m-%d}, fewer than the {n_bars} asked for"
            )
        reach *= 2


def bars_per_year(
    calendar: MarketCalendar, timeframe: Timeframe, start: datetime, end: datetime
) -> float:
    """The annualisation factor of returns over ``[start, end)``: bars per year.

    24/7: 365 × 1440 / minutes, the convention of `drl_trading.evaluation.metrics.
    periods_per_year` (figures unchanged). Other calendars: the mean number of bars in the whole
    UTC years the range touches (XNYS 1d about 251, FX 1h about 6,258).
    """
    if calendar.always_open:
        return 365.0 * 24 * 60 / timeframe.minutes
    first = utc(start).year
    last = (utc(end) - timedelta(microseconds=1)).year
    last = max(first, last)
    count = bar_slots(
        calendar, timeframe, datetime(first, 1, 1, tzinfo=UTC), datetime(last + 1, 1, 1, tzinfo=UTC)
    ).size
    return count / (last - first + 1)


class BarWindows:
    """Per-bar lookups for one calendar and timeframe, on Python lists with ``bisect``.

    Times and keys are int µs. The segments of the span asked about so far are kept (a year
    beyond it on either side is added at each extension), so a lookup touches no calendar
    library once the span covers it. Picklable: the cached segments are dropped and rebuilt.
    """

    _CHUNK_US = 366 * DAY_US

    def __init__(self, calendar: MarketCalendar, timeframe: Timeframe) -> None:
        self.calendar = calendar
        self.timeframe = timeframe
        self._step = timeframe.micros
        self._open = calendar.always_open
        self._daily = timeframe is Timeframe.D1
        self._reset()

    def _reset(self) -> None:
        self._built_lo = 0
        self._built_hi = 0
        self._lo = 0  # lookups in [_lo, _hi) need no rebuild: the built span less a margin
        self._hi = 0
        self._opens: list[int] = []
        self._closes: list[int] = []
        self._first: list[int] = []  # intraday: first window key of each segment
        self._last: list[int] = []  # intraday: last window key of each segment
        self._base: list[int] = []  # intraday: ordinal of each segment's first window
        self._seg_labels: list[int] = []  # 1d: the label of each segment
        self._labels: list[int] = []  # 1d: distinct labels, sorted
        self._by_label: dict[int, tuple[int, int, int]] = {}  # 1d: label -> (ordinal, open, close)
        self._label_closes: list[int] = []  # 1d: the close of each label's session, sorted

    def __getstate__(self) -> dict[str, Any]:
        return {"calendar": self.calendar, "timeframe": self.timeframe}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["calendar"], state["timeframe"])  # type: ignore[misc]

    def _ensure(self, lo: int, hi: int) -> None:
        """Build (or extend, by a chunk beyond what is asked, on the side that needs it) the
        segments so that lookups in ``[lo, hi)`` need no calendar call."""
        if self._lo <= lo and hi <= self._hi and self._hi > self._lo:
            return
        pad = self._CHUNK_US + _LABEL_MARGIN_US
        if self._hi <= self._lo:
            self._build(lo - pad, hi + pad)
            return
        new_lo = self._built_lo if lo >= self._lo else lo - pad
        new_hi = self._built_hi if hi <= self._hi else hi + pad
        self._build(new_lo, new_hi)

    def _build(self, lo: int, hi: int) -> None:
        s = _fetch(self.calendar, lo, hi)
        self._reset()
        self._built_lo, self._built_hi = lo, hi
        self._lo, self._hi = lo + _LABEL_MARGIN_US, hi - _LABEL_MARGIN_US
        self._opens = s.open.tolist()
        self._closes = s.close.tolist()
        if self._daily:
            self._seg_labels = s.label.tolist()
            labels = _unique_labels(s)
            first = np.searchsorted(s.label, labels, side="left")
            last = np.searchsorted(s.label, labels, side="right") - 1
            self._labels = labels.tolist()
            self._by_label = {
                int(lab): (i, int(s.open[a]), int(s.close[b]))
                for i, (lab, a, b) in enumerate(zip(labels, first, last, strict=True))
            }
            self._label_closes = s.close[last].tolist()
            return
        step = self._step
        first_k = s.open - s.open % step
        last_k = (s.close - 1) - (s.close - 1) % step
        counts = (last_k - first_k) // step + 1
        shared = np.concatenate(([0], (first_k[1:] == last_k[:-1]).astype(np.int64)))
        base = np.cumsum(np.concatenate(([0], counts[:-1]))) - np.cumsum(shared)
        self._first = first_k.tolist()
        self._last = last_k.tolist()
        self._base = base.tolist()

    def _not_a_slot(self, key: int) -> ValueError:
        return ValueError(
            f"{from_micros(key):%Y-%m-%d %H:%M} UTC is not a {self.timeframe} bar of calendar "
            f"{self.calendar.name} (the market is closed then or the time is off the grid)"
        )

    def key(self, t: int) -> int | None:
        """The key of the bar holding time ``t``; None while the market is closed."""
        if self._open:
            return t - t % self._step
        if not (self._lo <= t < self._hi):
            self._ensure(t, t + 1)
        i = bisect.bisect_right(self._opens, t) - 1
        if i < 0 or t >= self._closes[i]:
            return None
        if self._daily:
            return self._seg_labels[i]
        return t - t % self._step

    def close(self, key: int) -> int:
        """When the bar keyed ``key`` closes (µs); `ValueError` for a key that is no bar."""
        if self._open:
            if key % self._step:
                raise self._not_a_slot(key)
            return key + self._step
        if self._daily:
            return self._daily_row(key)[2]
        end = key + self._step
        if not (self._lo <= key and end <= self._hi):
            self._ensure(key, end)
        j = bisect.bisect_left(self._opens, end) - 1
        if key % self._step or j < 0 or self._closes[j] <= key:
            raise self._not_a_slot(key)
        c = self._closes[j]
        return c if c < end else end

    def first_open(self, key: int) -> int:
        """When the market first trades inside the bar keyed ``key`` (µs)."""
        if self._open:
            if key % self._step:
                raise self._not_a_slot(key)
            return key
        if self._daily:
            return self._daily_row(key)[1]
        end = key + self._step
        if not (self._lo <= key and end <= self._hi):
            self._ensure(key, end)
        j = bisect.bisect_right(self._closes, key)
        if key % self._step or j >= len(self._opens) or self._opens[j] >= end:
            raise self._not_a_slot(key)
        o = self._opens[j]
        return o if o > key else key

    def _daily_row(self, key: int) -> tuple[int, int, int]:
        if not (self._lo <= key - _LABEL_MARGIN_US and key + _LABEL_MARGIN_US <= self._hi):
            self._ensure(key - _LABEL_MARGIN_US, key + _LABEL_MARGIN_US)
        row = self._by_label.get(key)
        if row is None:
            raise self._not_a_slot(key)
        return row

    def next_slot(self, t: int) -> int:
        """The key of the first bar keyed after ``t`` (µs): what a live source waits for next,
        across any closure."""
        step = self._step
        if self._open:
            return t - t % step + step
        limit = t + _SEARCH_LIMIT_US
        if self._daily:
            while True:
                self._ensure(t, t + _LABEL_MARGIN_US)
                i = bisect.bisect_right(self._labels, t)
                # a label within the margin of the built end may lack its later segments
                if i < len(self._labels) and self._labels[i] + _LABEL_MARGIN_US <= self._hi:
                    return self._labels[i]
                self._next_chunk(t, limit)
        c = t - t % step + step
        while True:
            self._ensure(c, c + step)
            j = bisect.bisect_right(self._closes, c)
            if j < len(self._opens):
                o = self._opens[j]
                return c if o < c + step else o - o % step
            self._next_chunk(t, limit)

    def last_closed(self, t: int) -> int:
        """The key of the last bar closed at or before ``t`` (µs): the bar a decision at ``t``
        is on, across any closure (24/7: the grid window ending at or before ``t``). The bar
        before the one keyed ``k`` is ``last_closed(first_open(k))``. `ValueError` when the
        calendar has no bar in the 50 years before ``t``."""
        step = self._step
        if self._open:
            return t - t % step - step
        limit = t - _SEARCH_LIMIT_US
        margin = _LABEL_MARGIN_US + step
        self._ensure(t - margin, t + margin)
        while True:
            if self._daily:
                i = bisect.bisect_right(self._label_closes, t) - 1
                if i >= 0:
                    return self._labels[i]
            else:
                c = t - t % step  # the window holding t: closed at t only where the market is
                while True:
                    i = bisect.bisect_right(self._first, c) - 1
                    if i < 0:
                        break
                    c = min(c, self._last[i])  # a segment's windows are first..last, no hole
                    if self.close(c) <= t:
                        return c
                    c -= step
            if self._lo <= limit:
                raise ValueError(
                    f"calendar {self.calendar.name} has no {self.timeframe} bar in the 50 "
                    f"years before {from_micros(t):%Y-%m-%d}"
                )
            self._ensure(self._lo - self._CHUNK_US, t + margin)

    def _next_chunk(self, t: int, limit: int) -> None:
        if self._hi >= limit:
            raise ValueError(
                f"calendar {self.calendar.name} has no {self.timeframe} bar in the 50 years "
                f"after {from_micros(t):%Y-%m-%d}"
            )
        self._ensure(self._hi, self._hi + self._CHUNK_US)

    def ordinal(self, key: int) -> int:
        """The bar's position among the market's bars in the built span; only differences of
        ordinals mean anything (use `slots_between`)."""
        if self._open:
            if key % self._step:
                raise self._not_a_slot(key)
            return key // self._step
        if self._daily:
            return self._daily_row(key)[0]
        end = key + self._step
        if not (self._lo <= key and end <= self._hi):
            self._ensure(key, end)
        return self._intraday_ordinal(key)

    def _intraday_ordinal(self, key: int) -> int:
        i = bisect.bisect_right(self._first, key) - 1
        if key % self._step or i < 0 or key > self._last[i]:
            raise self._not_a_slot(key)
        return self._base[i] + (key - self._first[i]) // self._step

    def slots_between(self, a: int, b: int) -> int:
        """How many bars from the bar keyed ``a`` to the bar keyed ``b`` (1 for neighbours,
        across closures; negative when ``b`` comes first)."""
        step = self._step
        if self._open:
            if a % step or b % step:
                raise self._not_a_slot(a if a % step else b)
            return (b - a) // step
        lo, hi = (a, b) if a <= b else (b, a)
        margin = _LABEL_MARGIN_US if self._daily else step
        if not (self._lo <= lo - margin and hi + margin <= self._hi):
            self._ensure(lo - margin, hi + margin)
        if self._daily:
            return self._daily_row(b)[0] - self._daily_row(a)[0]
        return self._intraday_ordinal(b) - self._intraday_ordinal(a)


class SymbolWindows:
    """Each symbol's `BarWindows` of one timeframe, from a `CalendarBook`, built once per
    calendar and shared by the symbols on it; None where the symbol's market never closes (or
    no book is given), so that callers keep the closed-form 24/7 arithmetic there."""

    def __init__(self, calendars: CalendarBook | None, timeframe: Timeframe) -> None:
        self.calendars = calendars
        self.timeframe = timeframe
        self._by_calendar: dict[str, BarWindows] = {}

    def for_symbol(self, symbol: str) -> BarWindows | None:
        if self.calendars is None:
            return None
        calendar = self.calendars.for_symbol(symbol)
        if calendar.always_open:
            return None
        windows = self._by_calendar.get(calendar.name)
        if windows is None:
            windows = self._by_calendar[calendar.name] = BarWindows(calendar, self.timeframe)
        return windows
