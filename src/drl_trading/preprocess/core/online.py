"""Online preprocessing: 1m bars one at a time → closed higher-timeframe bars → feature rows.

This is the live twin of `resample` + `build_feature_matrix`, and it must produce the same
numbers (training/serving parity): the same windows (epoch-anchored, labelled by open time, the
partial window at the start of the stream left out), the same indicators (incremental versions of
the batch ones, see `incremental.py`), the same alignment (a higher-timeframe bar's features count
from its close on) and the same calendar encodings. Work per bar is constant: each timeframe keeps
one open window and each indicator its own small state, never the history.

The engine is a plain picklable object so a process can snapshot it and resume after a restart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from drl_trading.common.domain import Bar, Symbol, Timeframe, from_micros, to_micros
from drl_trading.preprocess.core.incremental import IncrementalFeatureSet
from drl_trading.strategy.feature_set import FeatureSetSpec

_MINUTE_US = 60_000_000


class LateBarError(ValueError):
    """A 1m bar at or before one already processed: online state only moves forward."""


@dataclass
class IncrementalResampler:
    """One open window of ``symbol``'s ``timeframe``; 1m bars go in, the window comes out (a
    `Bar`) once it is over.

    A window is complete when its last minute arrives, or when a later minute shows it is over
    (its last minutes are missing: an outage, aggregated from the minutes that exist, as the batch
    resampler does). The window the stream starts inside is partial and never emitted.
    """

    symbol: Symbol
    timeframe: Timeframe
    _start_us: int | None = None  # open time of the current window
    _first_seen_us: int | None = None
    _o: float = 0.0
    _h: float = 0.0
    _l: float = 0.0
    _c: float = 0.0
    _v: float = 0.0

    def update(self, open_us: int, o: float, h: float, low: float, c: float, v: float) -> list[Bar]:
        step = self.timeframe.micros
        window = open_us - open_us % step
        out: list[Bar] = []
        if self._first_seen_us is None:
            self._first_seen_us = open_us
        if self._start_us is not None and window != self._start_us:
            out.extend(self._emit())  # minutes missing at the end of the previous window
        if self._start_us != window:
            self._start_us = window
            self._o, self._h, self._l, self._c, self._v = o, h, low, c, v
        else:
            self._h = max(self._h, h)
            self._l = min(self._l, low)
            self._c = c
            self._v += v
        if open_us + _MINUTE_US == window + step:  # the window's last minute: it is over now
            out.extend(self._emit())
        return out

    def _emit(self) -> list[Bar]:
        start = self._start_us
        assert start is not None
        self._start_us = None
        first = self._first_seen_us
        if first is not None and start < first:  # the stream began inside this window
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
    """All timeframes and indicators of one symbol; the bars it closes carry that symbol."""

    spec: FeatureSetSpec
    symbol: Symbol
    _resamplers: dict[Timeframe, IncrementalResampler] = field(default_factory=dict)
    _features: dict[Timeframe, IncrementalFeatureSet] = field(default_factory=dict)
    _latest: dict[Timeframe, tuple[float, ...]] = field(default_factory=dict)
    _last_open_us: int | None = None
    _order: list[tuple[Timeframe, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for tf in self.spec.all_timeframes:
            if tf is not Timeframe.M1:
                self._resamplers[tf] = IncrementalResampler(self.symbol, tf)
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

    def update(
        self, open_time: datetime, o: float, h: float, low: float, c: float, v: float
    ) -> tuple[list[Bar], list[OnlineRow]]:
        """Feed one 1m bar. Returns the higher-timeframe bars it closed and the feature rows of
        the base-timeframe bars it closed (usually none or one; complete or still warming up)."""
        open_us = to_micros(open_time)
        if self._last_open_us is not None and open_us <= self._last_open_us:
            raise LateBarError(
                f"1m bar {open_time.isoformat()} is not after the last processed "
                f"{from_micros(self._last_open_us).isoformat()}"
            )
        self._last_open_us = open_us
        closed: list[Bar] = []
        for resampler in self._resamplers.values():  # ascending timeframes
            closed.extend(resampler.update(open_us, o, h, low, c, v))
        if Timeframe.M1 in self.spec.all_timeframes:
            closed.insert(0, Bar(self.symbol, Timeframe.M1, open_time, o, h, low, c, v))
        rows: list[OnlineRow] = []
        base = self.spec.base_timeframe
        # by close time, a base bar after the other bars closing with it: a base row sees exactly
        # the bars closed by its own close (after an outage several windows close at once)
        closed.sort(key=lambda b: (b.close_time, b.timeframe is base, b.timeframe.minutes))
        for bar in closed:
            fs = self._features.get(bar.timeframe)
            if fs is not None:
                self._latest[bar.timeframe] = fs.update(
                    bar.open, bar.high, bar.low, bar.close, bar.volume
                )
            if bar.timeframe is base:
                values = [self._latest[tf][j] for tf, j in self._order]
                if self.spec.time_encodings:
                    values.extend(time_encodings(bar.open_time))
                rows.append(OnlineRow(bar.close_time, tuple(values)))
        return [b for b in closed if b.timeframe is not Timeframe.M1], rows


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
