"""The offline preprocess workflow: read the data's bars -> resample to coarser timeframes ->
store them -> features -> store.

The request names the *data timeframe*, the one ingest stored the bars under (1m by default):
those bars are read, and only coarser timeframes are built from them (a feature set whose base is
finer is refused before anything is read, `checks.require_base_at_least`). Bars are grouped and
stamped by the symbol's market calendar (`resample`, `features`): a daily bar is a session, a
feature row's ``event_time`` is its base bar's calendar close.

Each request is extended backwards by the feature set's look-back, counted in the market's bars
(`history.read_start`), so that recursive indicators have settled by the first stored row (their
seed weighs less than `SEED_WEIGHT_TOLERANCE`); rows are then written only for base bars that open
inside the requested range. Re-running a request rewrites the same rows (idempotent). Where the
stored history starts inside the look-back, the first rows are computed from the first stored
bar, the bar the online catch-up then also starts from; `warmup_note` says how many rows that
concerns, and how many had no value at all yet.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import polars as pl
import structlog

from drl_trading.common.bar_windows import bar_closes
from drl_trading.common.calendar import CalendarBook, MarketCalendar
from drl_trading.common.domain import Symbol, Timeframe, from_micros, to_micros, utc
from drl_trading.common.events import (
    PreprocessDataCompleted,
    PreprocessDataRequested,
    SymbolOutput,
    TimeframeOutput,
)
from drl_trading.common.ports import FeatureStore, MarketDataRepository
from drl_trading.preprocess.core.checks import require_base_at_least
from drl_trading.preprocess.core.completion import preprocess_completed
from drl_trading.preprocess.core.features import EVENT_TIME, build_feature_matrix, close_times
from drl_trading.preprocess.core.history import read_start, settle_start, settled_from
from drl_trading.preprocess.core.market_sessions import (
    first_straddling_bar,
    require_daily_buildable,
    require_in_sessions,
)
from drl_trading.preprocess.core.resample import resample
from drl_trading.strategy.feature_set import SEED_WEIGHT_TOLERANCE, FeatureSetSpec
from drl_trading.strategy.feature_view import view_for

log = structlog.get_logger(__name__)

ProgressCallback = Callable[[Symbol, str], None]
"""Called with the symbol and the step just finished (``read``, ``resample``, ``features``...)."""


class NoDataError(LookupError):
    """No bars of the data timeframe are stored for a symbol in the requested range."""

    retryable = False


class PreprocessService:
    """``calendars``: each symbol's market calendar (None: every symbol trades 24/7)."""

    def __init__(
        self,
        market_data: MarketDataRepository,
        feature_store: FeatureStore,
        feature_set: FeatureSetSpec,
        store_timeframes: tuple[Timeframe, ...] = (),
        calendars: CalendarBook | None = None,
    ) -> None:
        self._repo = market_data
        self._features = feature_store
        self.feature_set = feature_set
        self.view = view_for(feature_set)
        self._store_only = set(store_timeframes) - set(feature_set.all_timeframes)
        wanted = {*feature_set.all_timeframes, *store_timeframes}
        self._wanted = sorted(wanted, key=lambda t: t.minutes)
        self._calendars = calendars
        self._registered = False

    @property
    def timeframes(self) -> list[Timeframe]:
        """The timeframes built from 1m data (`timeframes_for`)."""
        return self.timeframes_for(Timeframe.M1)

    def timeframes_for(self, data_timeframe: Timeframe) -> list[Timeframe]:
        """The timeframes resampled and stored from bars of ``data_timeframe``: those of the
        feature set and ``store_timeframes`` coarser than it (the data's own are stored)."""
        return [tf for tf in self._wanted if tf.minutes > data_timeframe.minutes]

    def calendar_of(self, symbol: Symbol) -> MarketCalendar | None:
        """``symbol``'s market calendar; None when no book was given (24/7)."""
        return None if self._calendars is None else self._calendars.for_symbol(symbol)

    def preprocess(
        self, request: PreprocessDataRequested, on_progress: ProgressCallback | None = None
    ) -> PreprocessDataCompleted:
        require_base_at_least(self.feature_set, request.timeframe)
        if not self._registered:
            self._features.register(self.view)
            self._registered = True
        outputs = [
            self._preprocess_symbol(sym, request.timeframe, request.start, request.end, on_progress)
            for sym in request.symbols
        ]
        return preprocess_completed(request, self.view, outputs, mode=request.mode)

    def _preprocess_symbol(
        self,
        symbol: Symbol,
        data_tf: Timeframe,
        start: datetime,
        end: datetime,
        on_progress: ProgressCallback | None,
    ) -> SymbolOutput:
        def step(name: str) -> None:
            if on_progress is not None:
                on_progress(symbol, name)

        start, end = utc(start), utc(end)
        calendar = self.calendar_of(symbol)
        read_from = read_start(self.feature_set, calendar, start)
        timeframes = self._buildable(symbol, calendar, data_tf, read_from, end)
        bars = self._repo.read_bars(symbol, data_tf, read_from, end)
        step("read")
        if bars.is_empty() or bars["open_time"][-1] < start:
            raise NoDataError(
                f"{symbol}: no {data_tf.value} bars stored in [{start.isoformat()}, "
                f"{end.isoformat()}); run `drl-trading ingest` for this range first"
            )
        require_in_sessions(symbol, calendar, data_tf, bars)
        by_tf: dict[Timeframe, pl.DataFrame] = {data_tf: bars}
        tf_outputs: list[TimeframeOutput] = []
        for tf in timeframes:
            by_tf[tf] = resample(bars, tf, source=data_tf, calendar=calendar)
            stored = by_tf[tf].filter(pl.col("open_time") >= start)
            self._repo.upsert_bars(symbol, tf, stored)
            tf_outputs.append(TimeframeOutput(timeframe=tf, bars=stored.height))
        step("resample")
        matrix = build_feature_matrix(by_tf, self.feature_set, calendar)
        base_tf = self.feature_set.base_timeframe
        if calendar is None or calendar.always_open:
            base_dur = base_tf.duration
            rows = matrix.frame.filter(
                (pl.col(EVENT_TIME) - base_dur >= start) & (pl.col(EVENT_TIME) <= end)
            )
        else:  # base open >= start: closes rise with opens, so from the first such bar's close
            in_range = by_tf[base_tf].filter(pl.col("open_time") >= start).head(1)
            first_close = close_times(in_range, base_tf, calendar)
            rows = (
                matrix.frame.filter(
                    (pl.col(EVENT_TIME) >= first_close[0]) & (pl.col(EVENT_TIME) <= end)
                )
                if first_close.len()
                else matrix.frame.clear()
            )
        step("features")
        if matrix.undefined_rows:
            log.warning(
                "feature rows undefined after warm-up",
                symbol=str(symbol),
                rows=matrix.undefined_rows,
            )
        written = self._features.write_offline(self.view, symbol, rows)
        step("store")
        in_range_total = (
            by_tf[self.feature_set.base_timeframe].filter(pl.col("open_time") >= start).height
        )
        dropped = max(in_range_total - rows.height, 0)
        note = warmup_note(
            self.feature_set,
            symbol,
            start,
            bars["open_time"][0],
            rows[EVENT_TIME],
            dropped,
            calendar=calendar,
            data_timeframe=data_tf,
        )
        if note is not None:
            log.info("feature rows without their full warm-up", note=note)  # in the output
        log.info(
            "preprocessed",
            symbol=str(symbol),
            feature_rows=written,
            base_bars=in_range_total,
            feature_view=self.view.name,
        )
        return SymbolOutput(
            symbol=symbol,
            feature_rows=written,
            warmup_rows_dropped=dropped,
            warmup_note=note,
            first_feature_time=rows[EVENT_TIME][0] if rows.height else None,
            last_feature_time=rows[EVENT_TIME][-1] if rows.height else None,
            timeframes=tf_outputs,
        )

    def _buildable(
        self,
        symbol: Symbol,
        calendar: MarketCalendar | None,
        data_tf: Timeframe,
        start: datetime,
        end: datetime,
    ) -> list[Timeframe]:
        """`timeframes_for` the data, less 1d where the data's bars straddle session boundaries
        (4h on FX): refused when the feature set needs 1d, skipped with a warning when only
        ``store_timeframes`` asks for it."""
        timeframes = self.timeframes_for(data_tf)
        if Timeframe.D1 not in timeframes:
            return timeframes
        if Timeframe.D1 not in self._store_only:
            require_daily_buildable(symbol, calendar, data_tf, start, end)
            return timeframes
        at = first_straddling_bar(calendar, data_tf, start, end)
        if at is None:
            return timeframes
        log.warning(
            "1d bars not stored: the data's bars straddle session boundaries",
            symbol=str(symbol),
            data_timeframe=data_tf.value,
            calendar=None if calendar is None else calendar.name,
            first=at.isoformat(),
        )
        return [tf for tf in timeframes if tf is not Timeframe.D1]


def warmup_note(
    spec: FeatureSetSpec,
    symbol: Symbol,
    start: datetime,
    first_bar: datetime,
    event_times: pl.Series,
    dropped: int,
    *,
    calendar: MarketCalendar | None = None,
    data_timeframe: Timeframe = Timeframe.M1,
) -> str | None:
    """What the user needs to know when the stored history of ``data_timeframe`` bars (first bar
    ``first_bar``) holds less than the feature set's warm-up before ``start`` (counted in
    ``calendar``'s bars; None: 24/7): how many requested rows had no value yet and were dropped,
    and how many were kept without a settled warm-up (their values depend on where the stored
    history starts). None when the history held the whole warm-up."""
    first_bar = utc(first_bar)
    if first_bar <= settle_start(spec, calendar, start):
        return None
    settled = settled_from(spec, calendar, first_bar)  # first base open with its whole warm-up
    if calendar is None or calendar.always_open:
        base = spec.base_timeframe.duration
        unsettled = int((event_times - base < settled).sum()) if event_times.len() else 0
        warmup = _span(spec.settle_time())
    else:  # closes rise with opens: the rows before the close of the first settled base bar
        close = from_micros(int(bar_closes(calendar, spec.base_timeframe, [to_micros(settled)])[0]))
        unsettled = int((event_times < close).sum()) if event_times.len() else 0
        longest = max(spec.timeframes, key=lambda t: t.timeframe.micros * (t.warmup_bars() + 2))
        warmup = (
            f"{longest.warmup_bars() + 2} {longest.timeframe.value} bars of market calendar "
            f"{calendar.name}"
        )
    if not dropped and not unsettled:
        return None
    head = (
        f"{symbol}: the stored {data_timeframe.value} history starts {first_bar:%Y-%m-%d %H:%M} "
        f"UTC, inside the feature set's warm-up of {warmup} before a row (for every "
        f"indicator's seed to weigh below {SEED_WEIGHT_TOLERANCE:g})"
    )
    parts = []
    if dropped:
        parts.append(f"{dropped} requested rows dropped (an indicator had no value yet)")
    if unsettled:
        parts.append(
            f"{unsettled} rows before {settled:%Y-%m-%d %H:%M} UTC kept, computed from that "
            "first bar (a session serves the same values while the stored history starts there)"
        )
    want = read_start(spec, calendar, start)
    return (
        f"{head}: {'; '.join(parts)}. Ingest history from {want:%Y-%m-%d} for features that do "
        "not depend on where the history starts"
    )


def _span(t: timedelta) -> str:
    """``65 days`` or ``2 days 13:55``."""
    days, rest = divmod(int(t.total_seconds()), 86_400)
    hours, minutes = divmod(rest // 60, 60)
    day_part = f"{days} day{'s' if days != 1 else ''}" if days else ""
    clock = f"{hours:02d}:{minutes:02d}" if hours or minutes else ""
    return " ".join(p for p in (day_part, clock) if p) or "0 minutes"
