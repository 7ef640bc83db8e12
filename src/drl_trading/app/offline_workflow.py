"""The offline workflow in one process: ingest → preprocess → train, through the embedded bus.

What `drl-trading ingest`, `preprocess`, `train` and `quickstart` run. `OfflineWorkflow` holds
the embedded runtime of one command; its steps publish the requests, pump the bus until it is
idle, and collect what came back for the request's correlation id on the completion and error
topics (`WorkflowObserver`, consumer group ``cli``: a waiter for results, not a service).
Display is the caller's: every step takes progress callbacks and returns what happened; a step
that cannot run raises `WorkflowError` with the message for the user.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from drl_trading.app.data_timeframe import data_timeframe
from drl_trading.app.infrastructure import build_calendars, feature_set_for
from drl_trading.app.ingest import Source, bootstrap_ingest, build_provider
from drl_trading.app.runtime import EmbeddedRuntime
from drl_trading.app.settings import AppSettings
from drl_trading.common.bar_windows import bar_slots
from drl_trading.common.calendar import MarketCalendar
from drl_trading.common.domain import Symbol, Timeframe, TimeRange, parse_time, to_micros
from drl_trading.common.events import (
    ErrorOccurred,
    Event,
    PreprocessDataCompleted,
    PreprocessDataRequested,
    ProcessingMode,
    Topic,
)
from drl_trading.common.ports import MarketDataRepository, MessageBus
from drl_trading.ingest.adapter.file_provider import FileProvider, NoBarsInRangeError
from drl_trading.ingest.core.service import (
    BatchRejectedError,
    IngestReport,
    TrainingDataRequest,
)
from drl_trading.preprocess.core.checks import require_base_at_least

if TYPE_CHECKING:  # only types here: ingest and preprocess need not import training (torch)
    from drl_trading.training.core.progress import TrainingProgress
    from drl_trading.training.core.service import TrainingResult

OBSERVER = "cli"
"""The consumer group of the waiters for results (the CLI's commands)."""

PREPROCESS_STEPS = ("read", "resample", "features", "store")
"""The steps the preprocess service reports per symbol, in order."""

IngestProgress = Callable[[Symbol, int, int], None]
"""``(symbol, bars ingested, bars expected)``, counted in the market's bars of the requested
timeframe (a closure holds none): 0 for every symbol before the first bar, then as bars are
stored, and the total for every symbol once all are stored."""

PreprocessProgress = Callable[[Symbol, str], None]
"""``(symbol, step)`` at the end of each of `PREPROCESS_STEPS`."""

TrainProgress = Callable[["TrainingProgress"], None]


class WorkflowError(Exception):
    """A step of the offline workflow could not run; the message is the user's."""


class SourceError(WorkflowError):
    """The history source cannot be built from the arguments given (a usage error)."""


class NothingStoredError(WorkflowError):
    """Every row fetched for some symbols was quarantined, so none of their bars is stored.

    A run that stores nothing for a symbol it was asked for has failed, whatever the policy: its
    preprocessing (and training) could only fail further on. The other symbols' rows are stored;
    ``report`` says what happened to each."""

    def __init__(self, report: IngestReport) -> None:
        self.report = report
        parts = []
        for s in report.nothing_stored:
            first = s.examples[0].describe() if s.examples else "?"
            parts.append(
                f"{s.symbol}: all {s.quarantined_rows} fetched rows were quarantined "
                f"({s.violations()}), nothing stored; first: {first}"
            )
        super().__init__(
            "; ".join(parts) + ". Fix the source (the rows are kept in the quarantine table) "
            "and ingest again"
        )


@dataclass(frozen=True, slots=True)
class WorkflowOutcome:
    """What came back on the completion and error topics for one correlation id."""

    correlation_id: str
    completed: list[PreprocessDataCompleted]
    errors: list[ErrorOccurred]

    @property
    def succeeded(self) -> bool:
        """Preprocessing completed and no service reported an error."""
        return not self.errors and bool(self.completed)


class WorkflowObserver:
    """Collects the offline completions and the preprocess and training errors on ``bus``, by
    correlation id (subscribed once per bus, as group `OBSERVER`)."""

    def __init__(self, bus: MessageBus) -> None:
        self._completed: dict[str, list[PreprocessDataCompleted]] = defaultdict(list)
        self._errors: dict[str, list[ErrorOccurred]] = defaultdict(list)
        bus.subscribe(Topic.PREPROCESS_COMPLETED_OFFLINE, group=OBSERVER, handler=self._on_done)
        bus.subscribe(Topic.error("preprocess"), group=OBSERVER, handler=self._on_error)
        bus.subscribe(Topic.error("training"), group=OBSERVER, handler=self._on_error)

    def outcome(self, correlation_id: str) -> WorkflowOutcome:
        return WorkflowOutcome(
            correlation_id,
            list(self._completed.get(correlation_id, ())),
            list(self._errors.get(correlation_id, ())),
        )

    def _on_done(self, event: Event) -> None:
        if isinstance(event, PreprocessDataCompleted):
            self._completed[event.correlation_id].append(event)

    def _on_error(self, event: Event) -> None:
        if isinstance(event, ErrorOccurred):
            self._errors[event.correlation_id].append(event)


@dataclass(frozen=True, slots=True)
class HistoryRange:
    """The range a command ingests, and what it took from the file (None: nothing)."""

    range: TimeRange
    note: str | None = None
    """For the user, e.g. ``using the file's range 2024-05-01 00:00..2024-05-21 00:00 UTC``."""


def history_range(
    settings: AppSettings,
    source: Source,
    path: Path | None,
    symbols: Sequence[Symbol],
    start: str | None,
    end: str | None,
    timeframe: Timeframe = Timeframe.M1,
) -> HistoryRange:
    """``start``/``end`` as given (ISO, UTC); for ``--source file`` what is left out comes from
    the files' own range: the earliest first bar of ``symbols``' files to the latest last bar
    plus one bar of ``timeframe``. Other sources hold no range of their own, so both are then
    needed. Raises ValueError for an unparsable time, `SourceError` for a missing bound or path
    and `WorkflowError` for a file that cannot be read."""
    if start is not None and end is not None:
        return HistoryRange(TimeRange.parse(start, end))
    if source != "file":
        missing = [f"--{n}" for n, v in (("start", start), ("end", end)) if v is None]
        raise SourceError(
            f"{' and '.join(missing)} {'are' if len(missing) > 1 else 'is'} needed for --source "
            f"{source} (only --source file can take the range from its file)"
        )
    lo = parse_time(start) if start is not None else None
    hi = parse_time(end) if end is not None else None
    try:
        provider = build_provider(settings, source, path)
    except (ValueError, FileNotFoundError) as exc:
        raise SourceError(str(exc)) from None
    assert isinstance(provider, FileProvider)
    try:
        spans = [provider.span(symbol, timeframe) for symbol in symbols]
    except FileNotFoundError as exc:
        raise SourceError(str(exc)) from None
    except ValueError as exc:
        raise WorkflowError(str(exc)) from None
    held = TimeRange(min(s.start for s in spans), max(s.end for s in spans))
    first = held.start if lo is None else lo
    last = held.end if hi is None else hi
    if last <= first:
        given = f"--start {start}" if start is not None else f"--end {end}"
        raise SourceError(f"{given} leaves nothing of the file's range {held}")
    rng = TimeRange(first, last)
    what = "range" if lo is None and hi is None else "start" if lo is None else "end"
    shown = {"range": str(rng), "start": f"{rng.start:%Y-%m-%d %H:%M} UTC"}.get(
        what, f"{rng.end:%Y-%m-%d %H:%M} UTC"
    )
    return HistoryRange(rng, f"using the file's {what} {shown}")


def ingest_history(
    settings: AppSettings,
    bus: MessageBus,
    market_data: MarketDataRepository,
    source: Source,
    path: Path | None,
    request: TrainingDataRequest,
    *,
    request_preprocessing: bool,
    on_progress: IngestProgress | None = None,
) -> IngestReport:
    """Ingest ``request`` from ``source`` into ``market_data`` (then request its preprocessing
    on ``bus`` when asked). Raises `SourceError` for a source the arguments cannot build,
    `NothingStoredError` when every row of a symbol was quarantined (no preprocessing is then
    requested) and `WorkflowError` for a rejected batch or a failed fetch. The ingest core's
    usage errors (bars spaced unlike ``request.timeframe``, preprocessing asked for bars it cannot
    read yet) pass through as they are: exit code 2, nothing stored."""
    spec = feature_set_for(settings)
    if request_preprocessing:  # before anything is fetched
        require_base_at_least(spec, request.timeframe)
    try:
        provider = build_provider(settings, source, path)
    except (ValueError, FileNotFoundError) as exc:
        raise SourceError(str(exc)) from None
    if isinstance(provider, FileProvider):
        _check_file_range(provider, request)
    service = bootstrap_ingest(settings, provider, market_data, bus)
    # the features' warm-up comes too, so that no requested feature row is lost to it (a file
    # holding less gives what it has; preprocessing then says what that costs); it is counted
    # in each market's own bars, so a stock's 200 daily bars reach back about 290 days
    calendars = build_calendars(settings)
    rng = request.range
    warmup = max(
        rng.start - spec.history_start(calendars.for_symbol(s), rng.start) for s in request.symbols
    )
    request = replace(request, warmup=max(request.warmup, warmup))
    report_progress = None
    if on_progress is not None:
        counters = {
            s: _BarCounter(calendars.for_symbol(s), request.timeframe, request.fetch_from, rng.end)
            for s in request.symbols
        }
        for symbol in request.symbols:
            on_progress(symbol, 0, counters[symbol].total)

        def report_progress(symbol: Symbol, last: datetime, rows: int) -> None:
            counter = counters[symbol]
            on_progress(symbol, counter.done(last), counter.total)

    try:
        report = service.ingest_history(
            request, request_preprocessing=False, on_progress=report_progress
        )
    except BatchRejectedError as exc:
        raise WorkflowError(str(exc)) from None
    except (FileNotFoundError, LookupError, ValueError, KeyError) as exc:
        raise WorkflowError(f"{type(exc).__name__}: {exc}") from None
    if on_progress is not None:
        for symbol in request.symbols:
            on_progress(symbol, counters[symbol].total, counters[symbol].total)
    if report.nothing_stored:
        raise NothingStoredError(report)
    if request_preprocessing:
        report.preprocess_event_id = service.request_preprocessing(request).event_id
    return report


class _BarCounter:
    """Progress of one symbol's ingest in the market's bars: how many of the bars expected in
    ``[start, end)`` open at or before a time (a weekend or a night adds none)."""

    def __init__(
        self, calendar: MarketCalendar, timeframe: Timeframe, start: datetime, end: datetime
    ) -> None:
        self._slots = bar_slots(calendar, timeframe, start, end)
        self.total = int(self._slots.size)

    def done(self, last: datetime) -> int:
        return min(int(np.searchsorted(self._slots, to_micros(last), side="right")), self.total)


def _check_file_range(provider: FileProvider, request: TrainingDataRequest) -> None:
    """A requested range that holds none of a symbol's file is a usage error naming the file's
    own range (`SourceError`); a file that cannot be read fails as its fetch would."""
    rng = request.range
    try:
        for symbol in request.symbols:
            provider.check_range(symbol, rng.start, rng.end)
    except NoBarsInRangeError as exc:
        raise SourceError(str(exc)) from None
    except (FileNotFoundError, ValueError) as exc:
        raise WorkflowError(f"{type(exc).__name__}: {exc}") from None


def publish_preprocess_request(
    runtime: EmbeddedRuntime, symbols: Sequence[Symbol], start: datetime, end: datetime
) -> PreprocessDataRequested:
    """Publish an offline ``requested.preprocess-data`` for stored bars (pumped by the caller),
    of the symbols' data timeframe (`data_timeframe`: the finest stored there). Raises
    `BaseTimeframeError` before publishing when the feature set's base is finer than it."""
    timeframe = data_timeframe(runtime.market_data, symbols, start, end)
    require_base_at_least(feature_set_for(runtime.settings), timeframe)
    event = PreprocessDataRequested(
        mode=ProcessingMode.OFFLINE,
        symbols=list(symbols),
        timeframe=timeframe,
        start=start,
        end=end,
    )
    runtime.bus.publish(Topic.PREPROCESS_REQUESTED, event, key=str(symbols[0]))
    return event


class OfflineWorkflow:
    """The embedded runtime of one offline command and the steps run on it."""

    def __init__(self, runtime: EmbeddedRuntime) -> None:
        self.runtime = runtime
        self._observer: WorkflowObserver | None = None

    @classmethod
    def open(cls, settings: AppSettings, *, training: bool = False) -> OfflineWorkflow:
        """``training``: subscribe the training service too (imports torch and MLflow)."""
        runtime = EmbeddedRuntime.open(settings)
        try:
            if training:
                runtime.enable_training()
        except BaseException:
            runtime.close()
            raise
        return cls(runtime)

    def ingest(
        self,
        source: Source,
        path: Path | None,
        request: TrainingDataRequest,
        *,
        request_preprocessing: bool,
        on_progress: IngestProgress | None = None,
    ) -> IngestReport:
        """`ingest_history` into the runtime's stores and bus."""
        rt = self.runtime
        return ingest_history(
            rt.settings,
            rt.bus,
            rt.market_data,
            source,
            path,
            request,
            request_preprocessing=request_preprocessing,
            on_progress=on_progress,
        )

    def request_preprocessing(self, symbols: Sequence[Symbol], rng: TimeRange) -> str:
        """Ask for the features of stored bars; returns the request's correlation id."""
        return publish_preprocess_request(self.runtime, symbols, rng.start, rng.end).correlation_id

    def expect_training(
        self, symbols: Sequence[Symbol], rng: TimeRange, correlation_id: str
    ) -> None:
        """Train on ``symbols`` over ``rng`` once preprocessing of ``correlation_id`` completes
        (the training service's data request, answered through the bus)."""
        from drl_trading.training.core.service import TrainingRequest

        handlers = self.runtime.enable_training()
        handlers.expect(TrainingRequest(tuple(symbols), rng, correlation_id))

    def run(
        self,
        correlation_id: str,
        *,
        on_preprocess: PreprocessProgress | None = None,
        on_train: TrainProgress | None = None,
    ) -> WorkflowOutcome:
        """Pump the bus (the request must already be on it) until idle; returns what came back
        for ``correlation_id``. ``on_train`` reports an expected training run's progress."""
        runtime = self.runtime
        if self._observer is None:  # the in-memory bus hands a new group what it already holds
            self._observer = WorkflowObserver(runtime.bus)
        training = runtime.training
        runtime.preprocess.on_progress = on_preprocess
        if training is not None:
            training.service.on_progress = on_train
        try:
            runtime.run_until_idle()
        finally:
            runtime.preprocess.on_progress = None
            if training is not None:
                training.service.on_progress = None
        return self._observer.outcome(correlation_id)

    def training_result(self, correlation_id: str) -> TrainingResult | None:
        """The result of the expected training run of ``correlation_id``, once trained."""
        training = self.runtime.training
        return None if training is None else training.results.get(correlation_id)

    def train(
        self,
        symbols: Sequence[Symbol],
        rng: TimeRange,
        *,
        on_progress: TrainProgress | None = None,
    ) -> TrainingResult:
        """Train on the stored features of ``symbols`` over ``rng`` now, register the model,
        gate it and backtest it on the test split. `WorkflowError` names what was missing."""
        from drl_trading.common.events import new_id
        from drl_trading.training.core.service import TrainingRequest

        training = self.runtime.enable_training()
        request = TrainingRequest(tuple(symbols), rng, correlation_id=new_id())
        training.service.on_progress = on_progress
        try:
            return training.service.train(request)
        except (LookupError, ValueError, RuntimeError) as exc:
            raise WorkflowError(f"{type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        self.runtime.close()

    def __enter__(self) -> OfflineWorkflow:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
