"""Online preprocessing: catch-up from history, then one bar of the data timeframe at a time.

The data timeframe is the request's ``timeframe`` (the bars ingest stores and streams, 1m by
default), and bars are keyed and closed on the symbol's market calendar, as offline.

Catch-up builds each symbol's `OnlineFeatureEngine` by feeding it the stored history from the
feature set's look-back (in the market's bars) before the request's start: the same arithmetic
as the offline path, and enough history for every indicator's seed to weigh less than
`SEED_WEIGHT_TOLERANCE` by the first live bar, so the served values equal the offline ones to
1e-9 wherever either history started (where the store holds less, both start from its first
bar). A live bar for a symbol without state (the process restarted mid-stream: ingest's catch-up
went to its previous life) rebuilds it the same way from the stored bars before that bar, so a
restarted preprocess resumes from where its consumer group left off without missing a vector.
Several instances split the symbols (Kafka partitions): a symbol that moves to another instance
is `forget`-ten here, so that, should it come back, its state is rebuilt from the stored bars
(which the other instance's bars extended) instead of resuming from where this one left it.
Each live bar then costs a constant amount of work: resamplers, indicators, one online-store
write when a base bar closes, and events for what closed (``requested.store-resampled-data`` for
higher-timeframe bars, ``completed.preprocess-data.online`` for a new feature vector).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from drl_trading.common.calendar import CalendarBook, MarketCalendar
from drl_trading.common.domain import Bar, Symbol, Timeframe, utc
from drl_trading.common.events import (
    PreprocessDataCompleted,
    PreprocessDataRequested,
    ProcessingMode,
    ResampledBar,
    StoreResampledDataRequested,
    SymbolOutput,
    TimeframeOutput,
)
from drl_trading.common.latency import stamp
from drl_trading.common.ports import FeatureStore, FeatureViewSpec, MarketDataRepository
from drl_trading.preprocess.core.checks import require_base_at_least
from drl_trading.preprocess.core.completion import preprocess_completed
from drl_trading.preprocess.core.history import read_start, settle_start
from drl_trading.preprocess.core.market_sessions import (
    require_daily_buildable,
    require_in_sessions,
)
from drl_trading.preprocess.core.online import OnlineFeatureEngine, OnlineRow
from drl_trading.strategy.feature_set import FeatureSetSpec
from drl_trading.strategy.feature_view import view_for

RowCallback = Callable[[Symbol, OnlineRow], None]
log = structlog.get_logger(__name__)
_VECTOR_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "drl-trading/preprocess/online-vector")


@dataclass
class OnlineStats:
    bars: int = 0
    rows_written: int = 0
    incomplete_rows: int = 0
    skipped_old_bars: int = 0
    rewarmed: int = 0
    """Symbols whose state was rebuilt at a live bar (after a restart) rather than by catch-up."""
    resampled_bars: dict[str, int] = field(default_factory=dict)


class OnlinePreprocessService:
    """``calendars``: each symbol's market calendar (None: every symbol trades 24/7)."""

    def __init__(
        self,
        market_data: MarketDataRepository,
        feature_store: FeatureStore,
        feature_set: FeatureSetSpec,
        *,
        on_row: RowCallback | None = None,
        calendars: CalendarBook | None = None,
    ) -> None:
        self._repo = market_data
        self._features = feature_store
        self.feature_set = feature_set
        self.view = view_for(feature_set)
        self.engines: dict[Symbol, OnlineFeatureEngine] = {}
        self.stats = OnlineStats()
        self.on_row = on_row  # e.g. recording every served vector (`paper --record-features`)
        self._calendars = calendars
        self._registered = False

    def calendar_of(self, symbol: Symbol) -> MarketCalendar | None:
        """``symbol``'s market calendar; None when no book was given (24/7)."""
        return None if self._calendars is None else self._calendars.for_symbol(symbol)

    def _engine(self, symbol: Symbol, data_tf: Timeframe) -> OnlineFeatureEngine:
        return OnlineFeatureEngine(self.feature_set, symbol, data_tf, self.calendar_of(symbol))

    def _register(self) -> None:
        if not self._registered:
            self._features.register(self.view)
            self._registered = True

    # -- catch-up -------------------------------------------------------------------------------

    def catch_up(self, request: PreprocessDataRequested) -> PreprocessDataCompleted:
        """Rebuild each symbol's state from the stored bars of the request's timeframe in
        [start - look-back, end)."""
        require_base_at_least(self.feature_set, request.timeframe)
        self._register()
        outputs = []
        for symbol in request.symbols:
            engine = self._engine(symbol, request.timeframe)
            start, end = utc(request.start), utc(request.end)
            last: OnlineRow | None = None
            counts: dict[Timeframe, int] = {}
            warmup = 0
            for closed, rows in self._feed_stored(engine, symbol, start, end):
                for b in closed:
                    counts[b.timeframe] = counts.get(b.timeframe, 0) + 1
                for row in rows:
                    if row.complete:
                        last = row
                    elif row.event_time > start:
                        warmup += 1
            self.engines[symbol] = engine
            if last is not None:
                self._features.write_online(self.view, symbol, last.event_time, last.values)
            outputs.append(
                SymbolOutput(
                    symbol=symbol,
                    feature_rows=1 if last is not None else 0,
                    warmup_rows_dropped=warmup,
                    first_feature_time=last.event_time if last else None,
                    last_feature_time=last.event_time if last else None,
                    timeframes=[
                        TimeframeOutput(timeframe=tf, bars=n)
                        for tf, n in sorted(counts.items(), key=lambda kv: kv[0].minutes)
                    ],
                )
            )
        return self._completed(request, outputs, None)

    def forget(self, symbols: Iterable[str]) -> list[Symbol]:
        """Drop the online state of ``symbols`` (another instance serves them now); returns
        those that had state. Their next live bar here rebuilds it from the stored bars."""
        dropped = [Symbol(s) for s in symbols if self.engines.pop(Symbol(s), None) is not None]
        if dropped:
            log.info("online state dropped: symbols moved", symbols=[str(s) for s in dropped])
        return dropped

    # -- live bars ------------------------------------------------------------------------------

    def on_bar(
        self, request: PreprocessDataRequested
    ) -> tuple[list[StoreResampledDataRequested], PreprocessDataCompleted | None]:
        """Feed the request's new bar(s) of its timeframe; returns the events to publish."""
        require_base_at_least(self.feature_set, request.timeframe)
        self._register()
        stores: list[StoreResampledDataRequested] = []
        newest: datetime | None = None
        for symbol in request.symbols:
            engine = self.engines.get(symbol)
            if engine is not None and engine.source is not request.timeframe:
                log.info(
                    "data timeframe changed; rebuilding the online state",
                    symbol=str(symbol),
                    was=engine.source.value,
                    now=request.timeframe.value,
                )
                engine = None
            if engine is None:
                engine = self._rewarm(request, symbol)
            for bar in self._new_bars(request, symbol, engine):
                closed, rows = engine.update(
                    bar.open_time, bar.open, bar.high, bar.low, bar.close, bar.volume
                )
                self.stats.bars += 1
                if closed:
                    stores.extend(self._store_requests(request, symbol, closed))
                for row in rows:
                    if not row.complete:
                        self.stats.incomplete_rows += 1
                        continue
                    self._features.write_online(self.view, symbol, row.event_time, row.values)
                    self.stats.rows_written += 1
                    if self.on_row is not None:
                        self.on_row(symbol, row)
                    newest = row.event_time if newest is None else max(newest, row.event_time)
        done = None if newest is None else self._completed(request, [], newest)
        return stores, done

    def _rewarm(self, request: PreprocessDataRequested, symbol: Symbol) -> OnlineFeatureEngine:
        """State for ``symbol`` from the stored bars before the request's first bar (ingest
        stores a bar before it publishes it): from the session's catch-up origin, exactly the bars
        catch-up and the live stream fed the lost state; without it (an older producer), from the
        look-back before the bar, which settles every indicator as well (to 1e-12 of its seed)
        when the store holds that history."""
        first = min(utc(b.open_time) for b in request.bars) if request.bars else utc(request.start)
        engine = self._engine(symbol, request.timeframe)
        origin = request.catchup_start if request.catchup_start is not None else first
        if request.catchup_start is None:
            log.info("no catch-up origin on the request; rebuilding from the look-back")
        fed = sum(1 for _ in self._feed_stored(engine, symbol, origin, first))
        self.engines[symbol] = engine
        self.stats.rewarmed += 1
        log.info(
            "online state rebuilt from stored bars",
            symbol=str(symbol),
            bars=fed,
            before=first.isoformat(),
        )
        return engine

    def _feed_stored(
        self, engine: OnlineFeatureEngine, symbol: Symbol, origin: datetime, end: datetime
    ) -> Iterator[tuple[list[Bar], list[OnlineRow]]]:
        """Feed ``engine`` the stored bars of its data timeframe in [origin - look-back, end),
        yielding what each closed and computed: the one warm-up both catch-up and a rebuild
        after a restart use."""
        calendar = engine.calendar
        since = read_start(self.feature_set, calendar, origin)
        if Timeframe.D1 in self.feature_set.all_timeframes and engine.source is not Timeframe.D1:
            require_daily_buildable(symbol, calendar, engine.source, since, end)
        bars = self._repo.read_bars(symbol, engine.source, since, end)
        require_in_sessions(symbol, calendar, engine.source, bars)
        needed = settle_start(self.feature_set, calendar, end)
        if bars.height and bars["open_time"][0] > needed:
            log.warning(
                "online state built on less than the feature set's warm-up",
                symbol=str(symbol),
                first_stored=bars["open_time"][0].isoformat(),
                needed_from=needed.isoformat(),
                note="values match the offline features computed on the same stored history",
            )
        for t, o, h, lo, c, v in bars.select(
            "open_time", "open", "high", "low", "close", "volume"
        ).iter_rows():
            yield engine.update(t, o, h, lo, c, v)

    def _new_bars(
        self, request: PreprocessDataRequested, symbol: Symbol, engine: OnlineFeatureEngine
    ) -> list[ResampledBar]:
        last = engine.last_open_time
        if request.bars is not None and len(request.symbols) == 1:
            bars = list(request.bars)
        else:
            end = request.bar_close_time or request.end
            after = engine.next_open_time()
            begin = after if after is not None else request.start
            frame = self._repo.read_bars(symbol, engine.source, begin, utc(end))
            bars = [ResampledBar(**r) for r in frame.iter_rows(named=True)]
        fresh = [b for b in bars if last is None or utc(b.open_time) > last]
        self.stats.skipped_old_bars += len(bars) - len(fresh)  # redelivered: already counted
        return fresh

    def _store_requests(
        self, request: PreprocessDataRequested, symbol: Symbol, closed: list[Bar]
    ) -> list[StoreResampledDataRequested]:
        by_tf: dict[Timeframe, list[ResampledBar]] = {}
        for b in closed:
            by_tf.setdefault(b.timeframe, []).append(
                ResampledBar(
                    open_time=b.open_time,
                    open=b.open,
                    high=b.high,
                    low=b.low,
                    close=b.close,
                    volume=b.volume,
                )
            )
            self.stats.resampled_bars[b.timeframe.value] = (
                self.stats.resampled_bars.get(b.timeframe.value, 0) + 1
            )
        return [
            StoreResampledDataRequested(
                correlation_id=request.correlation_id, symbol=symbol, timeframe=tf, bars=bars
            )
            for tf, bars in by_tf.items()
        ]

    def _completed(
        self,
        request: PreprocessDataRequested,
        outputs: list[SymbolOutput],
        bar_close_time: datetime | None,
    ) -> PreprocessDataCompleted:
        mode = request.mode if request.mode is not ProcessingMode.OFFLINE else ProcessingMode.ONLINE
        done = preprocess_completed(
            request,
            self.view,
            outputs,
            mode=mode,
            bar_close_time=bar_close_time,
            stages=stamp(request.stages, "preprocess") if request.stages else None,
        )
        if bar_close_time is None:
            return done
        # the same vector announced again (a redelivered bar, on this or another instance)
        # carries the same id, so consumers can tell a repeat from a new vector
        return done.model_copy(
            update={"event_id": vector_event_id(self.view, request.symbols, bar_close_time)}
        )


def vector_event_id(view: FeatureViewSpec, symbols: Iterable[Symbol], bar_close: datetime) -> str:
    """The id of the online completion announcing ``symbols``' vectors of the base bar closing
    at ``bar_close``: deterministic, whichever instance computes it and however often."""
    names = ",".join(str(s) for s in symbols)
    key = f"{view.name}|{view.feature_set_version}|{names}|{utc(bar_close).isoformat()}"
    return uuid.uuid5(_VECTOR_IDS, key).hex
