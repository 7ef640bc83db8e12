"""Online preprocessing: bars of the data timeframe one at a time → closed coarser bars → rows.

This is the live twin of `resample` + `build_feature_matrix`, and it must produce the same
numbers (training/serving parity): the same windows (keyed by the market calendar's
`BarWindows`: epoch-grid windows, a daily bar per session; the partial window at the start of the
stream left out), the same indicators (incremental versions of the batch ones, see
`incremental.py`), the same alignment (a coarser bar's features count from its calendar close on)
and the same calendar encodings. Work per bar is constant: each timeframe keeps one open window
and each indicator its own small state, never the history; calendar lookups are bisects over
arrays cached by `BarWindows`.

The engine is a plain picklable object so a process can snapshot it and resume after a restart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from drl_trading.common.bar_windows import BarWindows
from drl_trading.common.calendar import MarketCalendar
from drl_trading.common.domain import Bar, Symbol, Timeframe, from_micros, to_micros
from drl_trading.preprocess.core.incremental import IncrementalFeatureSet
from drl_trading.preprocess.core.market_sessions import out_of_session_error
from drl_trading.strategy.feature_set import FeatureSetSpec


class LateBarError(ValueError):
    """A bar at or before one already processed: online state only moves forward."""


@dataclass
class IncrementalResampler:
    """One open window of ``symbol``'s ``timeframe``; bars of ``source`` go in, the window comes
    out (a `Bar`) once it is over.

    A window is complete when a bar reaching its calendar close arrives (``open + source >=
    close``), or when a later bar shows it is over (its last bars are missing: an outage,
    aggregated from the bars that exist, as the batch resampler does). The window the stream
    starts inside (the market first traded in it before the first bar) is partial and never
    emitted. ``windows``: the calendar's windows of ``timeframe`` (None: 24/7, closed form).
    """

    symbol: Symbol
    timeframe: Timeframe
    source: Timeframe = Timeframe.M1
    windows: BarWindows | None = None
    _start_us: int | None = None  # key of the current window
    _first_seen_us: int | None = None
    _o: float = 0.0
    _h: float = 0.0
    _l: float = 0.0
    _c: float = 0.0
    _v: float = 0.0
    _step_us: int = 0  # the timeframe's and the source's durations (µs), set at construction:
    _source_us: int = 0  # `Timeframe.micros` is a lookup per call, this runs for every bar

    def __post_init__(self) -> None:
        self._step_us = self.timeframe.micros
        self._source_us = self.source.micros

    def update(
        self,
        open_us: int,
        o: float,
        h: float,
        low: float,
        c: float,
        v: float,
        first_open_us: int | None = None,
    ) -> list[Bar]:
        """Feed one bar keyed ``open_us``; ``first_open_us`` is when the market first traded in
        it (its key on 24/7; required with ``windows``)."""
        step = self._step_us
        windows = self.windows
        if windows is None:
            window = open_us - open_us % step
        else:
            assert first_open_us is not None, "a calendar resampler needs the bar's first open"
            key = windows.key(first_open_us)
            assert key is not None, "a bar's first open is inside a session"
            window = key
        out: list[Bar] = []
        if self._first_seen_us is None:
            self._first_seen_us = open_us
        if self._start_us is not None and window != self._start_us:
            out.extend(self._emit())  # bars missing at the end of the previous window
        if self._start_us != window:
            self._start_us = window
            self._o, self._h, self._l, self._c, self._v = o, h, low, c, v
        else:
            self._h = max(self._h, h)
            self._l = min(self._l, low)
            self._c = c
            self._v += v
        end = window + step if windows is None else windows.close(window)
        if open_us + self._source_us >= end:  # the window's last bar: it is over now
            out.extend(self._emit())
        return out

    def _emit(self) -> list[Bar]:
        start = self._start_us
        assert start is not None
        self._start_us = None
        first = self._first_seen_us
        opened = start if self.windows is None else self.windows.first_open(start)
        if first is not None and opened < first:  # the stream began inside this window
            return []
        return [
            Bar(
                self.symbol,
                self.timeframe,
                from_micros(start),
                self._o,
                self._h,
                self._l,
                self._c,
                self._v,
            )
        ]


@dataclass(frozen=True, slots=True)
class OnlineRow:
    """One base-timeframe feature vector: ``values`` in ``spec.columns`` order."""

    event_time: datetime
    values: tuple[float, ...]

    @property
    def complete(self) -> bool:
        return all(math.isfinite(v) for v in self.values)


@dataclass
class OnlineFeatureEngine:
    """All timeframes and indicators of one symbol; the bars it closes carry that symbol.

    ``source``: the data timeframe, the bars `update` is fed (none of the feature set's
    timeframes may be finer). ``calendar``: the symbol's market (None: 24/7); bars are keyed and
    closed by its `BarWindows`, and a row's ``event_time`` is its base bar's calendar close.
    """

    spec: FeatureSetSpec
    symbol: Symbol
    source: Timeframe = Timeframe.M1
    calendar: MarketCalendar | None = None
    _resamplers: dict[Timeframe, IncrementalResampler] = field(default_factory=dict)
    _features: dict[Timeframe, IncrementalFeatureSet] = field(default_factory=dict)
    _latest: dict[Timeframe, tuple[float, ...]] = field(default_factory=dict)
    _last_open_us: int | None = None
    _order: list[tuple[Timeframe, int]] = field(default_factory=list)
    _windows: dict[Timeframe, BarWindows] = field(default_factory=dict)
    _source_is_feature: bool = False  # the data timeframe has features of its own
    _minutes: dict[Timeframe, int] = field(default_factory=dict)  # sort keys of closed bars

    def __post_init__(self) -> None:
        # what `update` needs per bar, computed once (the spec's properties build new objects)
        all_timeframes = self.spec.all_timeframes
        self._source_is_feature = self.source in all_timeframes
        self._minutes = {tf: tf.minutes for tf in {self.source, *all_timeframes}}
        finer = [tf for tf in all_timeframes if tf.minutes < self.source.minutes]
        if finer:
            raise ValueError(
                f"feature set {self.spec.name} uses {finer[0].value} bars, finer than the "
                f"data's {self.source.value}"
            )
        cal = self.calendar
        if cal is not None and not cal.always_open:
            for tf in {self.source, *self.spec.all_timeframes}:
                self._windows[tf] = BarWindows(cal, tf)
        for tf in self.spec.all_timeframes:
            if tf is not self.source:
                self._resamplers[tf] = IncrementalResampler(
                    self.symbol, tf, self.source, self._windows.get(tf)
                )
        for tf_spec in self.spec.timeframes:
            fs = IncrementalFeatureSet(tf_spec)
            self._features[tf_spec.timeframe] = fs
            self._latest[tf_spec.timeframe] = tuple(math.nan for _ in fs.columns)
        index = {c: i for i, c in enumerate(self.spec.columns)}
        for tf_spec in self.spec.timeframes:
            fs = self._features[tf_spec.timeframe]
            for j, col in enumerate(fs.columns):
                self._order.append((tf_spec.timeframe, j))
                assert index[col] == len(self._order) - 1, "feature set column order"

    @property
    def last_open_time(self) -> datetime | None:
        return None if self._last_open_us is None else from_micros(self._last_open_us)

    def next_open_time(self) -> datetime | None:
        """The key of the data-timeframe bar after the last one processed (across any market
        closure); None before the first."""
        last = self._last_open_us
        if last is None:
            return None
        windows = self._windows.get(self.source)
        step = self.source.micros
        return from_micros(
            last - last % step + step if windows is None else windows.next_slot(last)
        )

    def close_us(self, timeframe: Timeframe, key_us: int) -> int:
        """When the ``timeframe`` bar keyed ``key_us`` closes on the calendar (µs)."""
        windows = self._windows.get(timeframe)
        return key_us + timeframe.micros if windows is None else windows.close(key_us)

    def update(
        self, open_time: datetime, o: float, h: float, low: float, c: float, v: float
    ) -> tuple[list[Bar], list[OnlineRow]]:
        """Feed one bar of the data timeframe. Returns the coarser bars it closed and the feature
        rows of the base-timeframe bars it closed (usually none or one; complete or still
        warming up). `OutOfSessionError` for a bar outside the calendar's sessions."""
        open_us = to_micros(open_time)
        if self._last_open_us is not None and open_us <= self._last_open_us:
            raise LateBarError(
                f"{self.source.value} bar {open_time.isoformat()} is not after the last "
                f"processed {from_micros(self._last_open_us).isoformat()}"
            )
        first_open_us = open_us
        source_windows = self._windows.get(self.source)
        if source_windows is not None:
            try:
                first_open_us = source_windows.first_open(open_us)
            except ValueError:
                assert self.calendar is not None
                raise out_of_session_error(
                    self.symbol, self.calendar, self.source, 1, from_micros(open_us)
                ) from None
        self._last_open_us = open_us
        closed: list[tuple[int, Bar]] = []
        for resampler in self._resamplers.values():  # ascending timeframes
            for bar in resampler.update(open_us, o, h, low, c, v, first_open_us):
                closed.append((self.close_us(bar.timeframe, to_micros(bar.open_time)), bar))
        if self._source_is_feature:
            bar = Bar(self.symbol, self.source, open_time, o, h, low, c, v)
            closed.insert(0, (self.close_us(self.source, open_us), bar))
        if not closed:
            return [], []
        rows: list[OnlineRow] = []
        base = self.spec.base_timeframe
        minutes = self._minutes
        # by close time, a base bar after the other bars closing with it: a base row sees exactly
        # the bars closed by its own close (after an outage several windows close at once)
        closed.sort(key=lambda cb: (cb[0], cb[1].timeframe is base, minutes[cb[1].timeframe]))
        for close, bar in closed:
            fs = self._features.get(bar.timeframe)
            if fs is not None:
                self._latest[bar.timeframe] = fs.update(
                    bar.open, bar.high, bar.low, bar.close, bar.volume
                )
            if bar.timeframe is base:
                values = [self._latest[tf][j] for tf, j in self._order]
                if self.spec.time_encodings:
                    values.extend(time_encodings(bar.open_time))
                rows.append(OnlineRow(from_micros(close), tuple(values)))
        return [b for _, b in closed if b.timeframe is not self.source], rows


def time_encodings(open_time: datetime) -> tuple[float, float, float, float]:
    """The batch `features.time_encodings` for one open time (same arithmetic, same order)."""
    seconds = float(open_time.hour) * 3600 + float(open_time.minute) * 60 + float(open_time.second)
    day = (float(open_time.isoweekday()) - 1.0 + seconds / 86_400.0) / 7.0
    tod = seconds / 86_400.0
    two_pi = 2.0 * math.pi
    return (
        math.sin(tod * two_pi),
        math.cos(tod * two_pi),
        math.sin(day * two_pi),
        math.cos(day * two_pi),
    )
