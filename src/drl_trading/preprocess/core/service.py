"""The offline preprocess workflow: read 1m -> resample -> store HTF bars -> features -> store.

Each request is extended backwards by the feature set's look-back so that recursive indicators
have settled by the first stored row (their seed weighs less than `SEED_WEIGHT_TOLERANCE`); rows
are then written only for base bars that open inside the requested range. Re-running a request
rewrites the same rows (idempotent). Where the stored history starts inside the look-back, the
first rows are computed from the first stored bar, the bar the online catch-up then also starts
from; `warmup_note` says how many rows that concerns, and how many had no value at all yet.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import polars as pl
import structlog

from drl_trading.common.domain import Symbol, Timeframe, utc
from drl_trading.common.events import (
    PreprocessDataCompleted,
    PreprocessDataRequested,
    SymbolOutput,
    TimeframeOutput,
)
from drl_trading.common.ports import FeatureStore, MarketDataRepository
from drl_trading.preprocess.core.completion import preprocess_completed
from drl_trading.preprocess.core.features import EVENT_TIME, build_feature_matrix
from drl_trading.preprocess.core.resample import resample
from drl_trading.strategy.feature_set import SEED_WEIGHT_TOLERANCE, FeatureSetSpec
from drl_trading.strategy.feature_view import view_for

log = structlog.get_logger(__name__)

ProgressCallback = Callable[[Symbol, str], None]
"""Called with the symbol and the step just finished (``read``, ``resample``, ``features``...)."""


class NoDataError(LookupError):
    """No 1m bars are stored for a symbol in the requested range."""

    retryable = False


class PreprocessService:
    def __init__(
        self,
        market_data: MarketDataRepository,
        feature_store: FeatureStore,
        feature_set: FeatureSetSpec,
        store_timeframes: tuple[Timeframe, ...] = (),
    ) -> None:
        self._repo = market_data
        self._features = feature_store
        self.feature_set = feature_set
        self.view = view_for(feature_set)
        wanted = {*feature_set.all_timeframes, *store_timeframes} - {Timeframe.M1}
        self._timeframes = sorted(wanted, key=lambda t: t.minutes)
        self._registered = False

    @property
    def timeframes(self) -> list[Timeframe]:
        return list(self._timeframes)

    def preprocess(
        self, request: PreprocessDataRequested, on_progress: ProgressCallback | None = None
    ) -> PreprocessDataCompleted:
        if not self._registered:
            self._features.register(self.view)
            self._registered = True
        outputs = [
            self._preprocess_symbol(sym, request.start, request.end, on_progress)
            for sym in request.symbols
        ]
        return preprocess_completed(request, self.view, outputs, mode=request.mode)

    def _preprocess_symbol(
        self,
        symbol: Symbol,
        start: datetime,
        end: datetime,
        on_progress: ProgressCallback | None,
    ) -> SymbolOutput:
        def step(name: str) -> None:
            if on_progress is not None:
                on_progress(symbol, name)

        start, end = utc(start), utc(end)
        read_from = start - self.feature_set.lookback()
        bars_1m = self._repo.read_bars(symbol, Timeframe.M1, read_from, end)
        step("read")
        if bars_1m.is_empty() or bars_1m["open_time"][-1] < start:
            raise NoDataError(
                f"{symbol}: no 1m bars stored in [{start.isoformat()}, {end.isoformat()}); "
                "run `drl-trading ingest` for this range first"
            )
        by_tf: dict[Timeframe, pl.DataFrame] = {Timeframe.M1: bars_1m}
        tf_outputs: list[TimeframeOutput] = []
        for tf in self._timeframes:
            by_tf[tf] = resample(bars_1m, tf)
            stored = by_tf[tf].filter(pl.col("open_time") >= start)
            self._repo.upsert_bars(symbol, tf, stored)
            tf_outputs.append(TimeframeOutput(timeframe=tf, bars=stored.height))
        step("resample")
        matrix = build_feature_matrix(by_tf, self.feature_set)
        base_dur = self.feature_set.base_timeframe.duration
        rows = matrix.frame.filter(
            (pl.col(EVENT_TIME) - base_dur >= start) & (pl.col(EVENT_TIME) <= end)
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
            self.feature_set, symbol, start, bars_1m["open_time"][0], rows[EVENT_TIME], dropped
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


def warmup_note(
    spec: FeatureSetSpec,
    symbol: Symbol,
    start: datetime,
    first_bar: datetime,
    event_times: pl.Series,
    dropped: int,
) -> str | None:
    """What the user needs to know when the stored 1m history (first bar ``first_bar``) holds less
    than the feature set's warm-up before ``start``: how many requested rows had no value yet and
    were dropped, and how many were kept without a settled warm-up (their values depend on where
    the stored history starts). None when the history held the whole warm-up."""
    settle = spec.settle_time()
    first_bar = utc(first_bar)
    base = spec.base_timeframe.duration
    if first_bar <= start - settle:
        return None
    settled_from = first_bar + settle  # first base open with the whole warm-up before it
    unsettled = int((event_times - base < settled_from).sum()) if event_times.len() else 0
    if not dropped and not unsettled:
        return None
    head = (
        f"{symbol}: the stored 1m history starts {first_bar:%Y-%m-%d %H:%M} UTC, inside the "
        f"feature set's warm-up of {_span(settle)} before a row (for every indicator's seed to "
        f"weigh below {SEED_WEIGHT_TOLERANCE:g})"
    )
    parts = []
    if dropped:
        parts.append(f"{dropped} requested rows dropped (an indicator had no value yet)")
    if unsettled:
        parts.append(
            f"{unsettled} rows before {settled_from:%Y-%m-%d %H:%M} UTC kept, computed from that "
            "first bar (a session serves the same values while the stored history starts there)"
        )
    want = start - spec.lookback()
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
