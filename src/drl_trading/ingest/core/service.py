"""The ingest workflow: fetch -> check spacing -> validate -> store -> report -> request
preprocessing, for the bars of one timeframe (`TrainingDataRequest.timeframe`, 1m by default).

Storage is chunk by chunk (bounded memory on long ranges) and idempotent (an upsert keyed by
symbol, timeframe and open time), so re-running an interrupted or repeated ingest is always safe;
the report tells new, updated and unchanged rows apart, so a repeat reports 0 new and 0 updated.
Bad rows are named by their data row (1-based; see `ingest.core.validation`). Each symbol's
market calendar (a `CalendarBook`; none: every symbol 24/7) decides which bars are expected, so a
weekend or a holiday is no gap, and which are `Rule.MARKET_CLOSED`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import structlog

from drl_trading.common.bar_windows import bar_slots
from drl_trading.common.calendar import CalendarBook, MarketCalendar
from drl_trading.common.domain import Symbol, Timeframe, TimeRange
from drl_trading.common.errors import UsageError
from drl_trading.common.events import (
    PreprocessDataRequested,
    ProcessingMode,
    Topic,
    new_id,
)
from drl_trading.common.ports import Coverage, MarketDataRepository, MessageBus
from drl_trading.ingest.core.ports import SOURCE_ROW, HistoricalDataProvider, RowNumberedProvider
from drl_trading.ingest.core.spacing import MIN_ROWS, check_spacing
from drl_trading.ingest.core.validation import (
    Gap,
    Rule,
    ValidationPolicy,
    ValidationReport,
    Violation,
    find_gaps,
    validate_bars,
    where,
)

log = structlog.get_logger(__name__)

ProgressCallback = Callable[[Symbol, datetime, int], None]
"""Called after each stored chunk with the symbol, the chunk's last open time and rows stored."""


@dataclass(frozen=True, slots=True)
class TrainingDataRequest:
    """What a user (or the training service) asks ingest for: history of some symbols in bars
    of ``timeframe``, fetched, checked and stored under it."""

    symbols: tuple[Symbol, ...]
    range: TimeRange
    request_id: str = field(default_factory=new_id)
    timeframe: Timeframe = Timeframe.M1
    warmup: timedelta = timedelta(0)
    """History fetched and stored before ``range.start`` as well: the feature set's look-back, so
    that the first requested feature rows have settled indicators (none is lost to warm-up).
    Outside the range's gap report: a source that holds less (a file) simply has less."""

    @property
    def fetch_from(self) -> datetime:
        """The first time asked of the provider."""
        return self.range.start - self.warmup


class FinerBarsStoredError(UsageError):
    """Bars finer than the requested timeframe are stored over the requested range: the stored
    bars of the requested timeframe there were resampled from them, and ingesting others over
    them would mix two sources in one series (exit code 2, before any fetch)."""

    def __init__(
        self, timeframe: Timeframe, finer: Timeframe, held: dict[Symbol, Coverage]
    ) -> None:
        self.timeframe = timeframe
        self.finer = finer
        each = "; ".join(
            f"{s} {c.first_open_time:%Y-%m-%d %H:%M} .. {c.last_open_time:%Y-%m-%d %H:%M}"
            for s, c in held.items()
        )
        super().__init__(
            f"{finer} bars are stored over the requested range ({each}), so the {timeframe} bars "
            f"there are resampled from them; ingest {finer} bars again (preprocessing makes the "
            f"{timeframe} ones), or ingest {timeframe} bars into another --home or another range"
        )


def require_no_finer_bars(market_data: MarketDataRepository, request: TrainingDataRequest) -> None:
    """Raise `FinerBarsStoredError` if bars finer than ``request.timeframe`` are stored for its
    symbols anywhere in what it would fetch (its warm-up included)."""
    wanted = set(request.symbols)
    for finer in Timeframe:
        if finer.minutes >= request.timeframe.minutes:
            continue
        held = market_data.coverages(finer, request.fetch_from, request.range.end)
        clash = {s: c for s, c in held.items() if s in wanted}
        if clash:
            raise FinerBarsStoredError(request.timeframe, finer, clash)


class BatchRejectedError(Exception):
    """Raised under the ``reject`` policy; names the rule, row and the part already stored."""

    def __init__(
        self,
        symbol: Symbol,
        chunk_start: datetime,
        report: ValidationReport,
        stored_until: datetime | None,
    ) -> None:
        self.symbol = symbol
        self.report = report
        self.stored_until = stored_until
        first = report.first_violation()
        stored = (
            f"bars before {stored_until.isoformat()} were valid and are stored"
            if stored_until
            else "nothing of this symbol was stored"
        )
        super().__init__(
            f"{symbol}: batch starting {chunk_start.isoformat()} rejected: {report.summary()}; "
            f"first: {first.describe() if first else '?'}; {stored}. Fix the source or set "
            "ingest.validation.policy=quarantine to store the valid rows and keep the bad ones "
            "in the quarantine table"
        )


@dataclass
class SymbolIngestReport:
    """What ingest did with one symbol's rows: ``stored_rows`` (valid rows now in the store) is
    ``inserted_rows`` (new open times) + ``updated_rows`` (a value changed) + ``unchanged_rows``
    (already stored as they are); fetched = stored + quarantined."""

    symbol: Symbol
    fetched_rows: int = 0
    stored_rows: int = 0
    inserted_rows: int = 0
    updated_rows: int = 0
    unchanged_rows: int = 0
    quarantined_rows: int = 0
    violation_counts: dict[Rule, int] = field(default_factory=dict)
    examples: list[Violation] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    first_open_time: datetime | None = None
    last_open_time: datetime | None = None
    warmup_rows: int = 0
    """Of ``stored_rows``, the bars before the range's start (the features' warm-up history)."""

    @property
    def missing_bars(self) -> int:
        return sum(g.missing_bars for g in self.gaps)

    @property
    def nothing_stored(self) -> bool:
        """Rows were fetched and every one was quarantined: no bar of the range is stored."""
        return self.quarantined_rows > 0 and self.stored_rows == 0

    def violations(self) -> str:
        """The rules broken and how often, e.g. ``off_grid=180``."""
        return ", ".join(f"{rule.value}={n}" for rule, n in self.violation_counts.items())


@dataclass
class IngestReport:
    request_id: str
    source: str
    range: TimeRange
    symbols: list[SymbolIngestReport]
    preprocess_event_id: str | None = None

    @property
    def stored_rows(self) -> int:
        return sum(s.stored_rows for s in self.symbols)

    @property
    def nothing_stored(self) -> list[SymbolIngestReport]:
        """The symbols whose every fetched row was quarantined (see `SymbolIngestReport`)."""
        return [s for s in self.symbols if s.nothing_stored]


class IngestService:
    def __init__(
        self,
        provider: HistoricalDataProvider,
        market_data: MarketDataRepository,
        bus: MessageBus,
        policy: ValidationPolicy = ValidationPolicy.REJECT,
        calendars: CalendarBook | None = None,
    ) -> None:
        """``calendars``: each symbol's market calendar (None: every symbol trades 24/7)."""
        self._provider = provider
        self._repo = market_data
        self._bus = bus
        self._policy = policy
        self._calendars = calendars

    def calendar_of(self, symbol: Symbol) -> MarketCalendar | None:
        """``symbol``'s calendar; None when no book was given (24/7)."""
        return None if self._calendars is None else self._calendars.for_symbol(symbol)

    def ingest_history(
        self,
        request: TrainingDataRequest,
        *,
        request_preprocessing: bool = True,
        mode: ProcessingMode = ProcessingMode.OFFLINE,
        on_progress: ProgressCallback | None = None,
    ) -> IngestReport:
        require_no_finer_bars(self._repo, request)  # before any fetch: nothing stored
        report = IngestReport(request.request_id, self._provider.name, request.range, symbols=[])
        for symbol in request.symbols:
            report.symbols.append(self._ingest_symbol(symbol, request, on_progress))
        if request_preprocessing:
            report.preprocess_event_id = self.request_preprocessing(request, mode).event_id
        return report

    def request_preprocessing(
        self, request: TrainingDataRequest, mode: ProcessingMode = ProcessingMode.OFFLINE
    ) -> PreprocessDataRequested:
        """Publish the preprocessing request of ``request``'s stored bars (correlation id: the
        request's id); `ingest_history` does this itself unless told not to. The request
        carries the data timeframe: preprocessing reads the bars stored under it."""
        event = PreprocessDataRequested(
            correlation_id=request.request_id,
            mode=mode,
            symbols=list(request.symbols),
            timeframe=request.timeframe,
            start=request.range.start,
            end=request.range.end,
        )
        self._bus.publish(Topic.PREPROCESS_REQUESTED, event, key=str(request.symbols[0]))
        return event

    def _ingest_symbol(
        self, symbol: Symbol, request: TrainingDataRequest, on_progress: ProgressCallback | None
    ) -> SymbolIngestReport:
        rep = SymbolIngestReport(symbol)
        last_time: datetime | None = None
        stored_times: list[pl.Series] = []
        rng = request.range
        tf = request.timeframe
        calendar = self.calendar_of(symbol)
        provider = self._provider
        begin = request.fetch_from
        if isinstance(provider, RowNumberedProvider):
            chunks = provider.fetch_numbered(symbol, tf, begin, rng.end)
            numbered, source = True, provider.source_of(symbol)
        else:
            chunks = provider.fetch(symbol, tf, begin, rng.end)
            numbered, source = False, f"source {provider.name}"
        for chunk in _spacing_checked(chunks, symbol, source, tf):
            if chunk.is_empty():
                continue
            if numbered:  # the source's own row numbers, as its errors give them
                rows = chunk[SOURCE_ROW].to_numpy()
                chunk = chunk.drop(SOURCE_ROW)
            else:  # data rows are positions among the rows fetched for the symbol
                rows = np.arange(rep.fetched_rows + 1, rep.fetched_rows + chunk.height + 1)
            rep.fetched_rows += chunk.height
            check = validate_bars(
                chunk, tf, previous_open_time=last_time, row_numbers=rows, calendar=calendar
            )
            if not check.ok:
                for rule, n in check.counts.items():
                    if n:
                        rep.violation_counts[rule] = rep.violation_counts.get(rule, 0) + n
                for rule_examples in check.examples.values():
                    room = 10 - len(rep.examples)
                    rep.examples.extend(rule_examples[: max(room, 0)])
                if self._policy is ValidationPolicy.REJECT:
                    stored_until = None if last_time is None else last_time + tf.duration
                    chunk_start: datetime = chunk["open_time"].min()  # type: ignore[assignment]
                    raise BatchRejectedError(symbol, chunk_start, check, stored_until)
                rep.quarantined_rows += self._quarantine(
                    symbol, tf, chunk, check, request.request_id
                )
                chunk = chunk.filter(~pl.Series(check.bad_mask))
                if chunk.is_empty():
                    continue
            result = self._repo.upsert_bars(symbol, tf, chunk)
            rep.stored_rows += result.stored
            rep.inserted_rows += result.inserted
            rep.updated_rows += result.updated
            rep.unchanged_rows += result.unchanged
            times = chunk["open_time"]
            before = times < rng.start
            rep.warmup_rows += int(before.sum())
            stored_times.append(times.filter(~before))  # gaps: of the requested range only
            chunk_last: datetime = times.max()  # type: ignore[assignment]
            last_time = chunk_last if last_time is None else max(last_time, chunk_last)
            if rep.first_open_time is None:
                rep.first_open_time = times.min()  # type: ignore[assignment]
            rep.last_open_time = last_time
            if on_progress is not None:
                on_progress(symbol, chunk_last, chunk.height)
        all_times = pl.concat(stored_times) if stored_times else pl.Series("open_time", [])
        if stored_times:
            rep.gaps = find_gaps(
                symbol,
                all_times,
                tf,
                expected_from=rng.start,
                expected_to=rng.end,
                calendar=calendar,
            )
        else:
            rep.gaps = _nothing_stored_gap(symbol, tf, rng, calendar)
        if rep.nothing_stored:
            log.warning(
                "every fetched row quarantined; nothing stored",
                symbol=str(symbol),
                rows=rep.quarantined_rows,
                violations=rep.violations(),
            )
        if rep.gaps:
            log.warning(
                "gaps in ingested data",
                symbol=str(symbol),
                gaps=len(rep.gaps),
                missing_bars=rep.missing_bars,
                first_gap=f"{rep.gaps[0].start.isoformat()}..{rep.gaps[0].end.isoformat()}",
            )
        return rep

    def _quarantine(
        self,
        symbol: Symbol,
        timeframe: Timeframe,
        chunk: pl.DataFrame,
        check: ValidationReport,
        batch_id: str,
    ) -> int:
        idx = sorted(check.row_rules)
        details = [
            f"{','.join(r.value for r in check.row_rules[i])} ({where(int(check.row_numbers[i]))})"
            for i in idx
        ]
        rows = chunk[idx].with_columns(
            pl.Series("rule", [check.row_rules[i][0].value for i in idx], dtype=pl.String),
            pl.Series("detail", details, dtype=pl.String),
        )
        n = self._repo.quarantine(symbol, timeframe, rows, batch_id)
        log.warning("rows quarantined", symbol=str(symbol), rows=n, summary=check.summary())
        return n


def _nothing_stored_gap(
    symbol: Symbol, timeframe: Timeframe, rng: TimeRange, calendar: MarketCalendar | None
) -> list[Gap]:
    """The gap of a symbol with nothing stored: the whole range, counted in the bars expected
    (grid steps on 24/7, the market's bars otherwise; none expected: no gap)."""
    if calendar is None or calendar.always_open:
        return [Gap(symbol, rng.start, rng.end, int((rng.end - rng.start) // timeframe.duration))]
    expected = bar_slots(calendar, timeframe, rng.start, rng.end).size
    return [Gap(symbol, rng.start, rng.end, int(expected))] if expected else []


def _spacing_checked(
    chunks: Iterator[pl.DataFrame], symbol: Symbol, source: str, timeframe: Timeframe
) -> Iterator[pl.DataFrame]:
    """``chunks`` as they come, after the spacing of the first `MIN_ROWS` rows or more (whole
    chunks, held back until then) is checked: `SpacingMismatchError` comes before the first chunk
    is handed on, so nothing of the symbol is stored."""
    chunks = iter(chunks)
    held: list[pl.DataFrame] = []
    rows = 0
    for chunk in chunks:
        held.append(chunk)
        rows += chunk.height
        if rows >= MIN_ROWS:
            break
    if held:
        times = pl.concat([c.select("open_time") for c in held])["open_time"]
        check_spacing(symbol, source, timeframe, times.dt.epoch("us").to_numpy().astype(np.int64))
    yield from held
    yield from chunks
