"""Online ingest: fill the history gap, wait for the feature warm-up, then stream live bars.

A session streams the bars of one timeframe (its data timeframe, 1m by default) on each symbol's
market calendar (a `CalendarBook`; none: every symbol 24/7): the cursor stands on the bars the
market makes (`drl_trading.common.bar_windows.BarWindows`), a skip is counted in those bars (an FX
weekend skips none), and a published bar closes at its calendar close (an XLON 1h bar keyed 15:00
closes 15:30).

The order matters for training/serving parity. Live features are computed incrementally from the
state the catch-up run leaves behind, so no live bar may be processed before that run completes;
bars that arrive meanwhile stay in the source, which buffers them (an exchange stream, a lazily
read replay), and are taken once the catch-up completion arrives.

Policies, chosen because online state only moves forward (a preprocess engine cannot un-see a bar,
see `preprocess.core.online`):

* The live cursor of a symbol starts at the bar before ``live_from``; a bar after the cursor is
  stored, then published as one ``requested.preprocess-data`` (mode online), and moves the cursor.
  A bar that skips bars the market made is published too: the engine handles outages, and holding
  bars back waiting for missing ones would stall trading indefinitely. The skip is counted as a
  gap; a closure (a weekend, a night, a holiday) is none.
* A bar at or before the cursor is compared with the stored bar: identical values are a duplicate
  (a resend after a reconnect) and are ignored; different values are a late correction and a bar
  for a time never stored is a late fill. Both are upserted, so the store (and with it the next
  training run) holds the exchange's final word, but neither is republished: the live features
  built on the earlier values stay as they were.
* An invalid bar (non-finite, non-positive price, high/low inconsistent with open/close, negative
  volume, off the timeframe's grid, outside the market's sessions, not a bar of the session's
  timeframe) is quarantined and counted. A live stream cannot be "rejected" as a history batch
  can, and stopping trading for one bad tick would be worse than skipping it.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum

import polars as pl
import structlog

from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.bar_windows import BarWindows, history_start
from drl_trading.common.bars import BAR_SCHEMA, bars_to_frame, conform
from drl_trading.common.calendar import CalendarBook, MarketCalendar
from drl_trading.common.domain import Bar, Symbol, Timeframe, TimeRange, from_micros, to_micros, utc
from drl_trading.common.events import (
    PreprocessDataCompleted,
    PreprocessDataRequested,
    ProcessingMode,
    ResampledBar,
    StoreResampledDataRequested,
    Topic,
    new_id,
)
from drl_trading.common.latency import stamp
from drl_trading.common.ports import Clock, MarketDataRepository, MessageBus, UpsertResult
from drl_trading.ingest.core.live import LiveBarSource, slot_at
from drl_trading.ingest.core.ports import HistoricalDataProvider
from drl_trading.ingest.core.service import IngestReport, IngestService, TrainingDataRequest
from drl_trading.ingest.core.validation import Rule, ValidationPolicy, bar_rules, validate_bars

log = structlog.get_logger(__name__)

_BAR_ID_NAMESPACE = uuid.UUID("6f0a3c52-5d1e-4c2b-9a51-0e7b1f3d8c44")


class OnlineState(StrEnum):
    IDLE = "idle"
    GAP_FILLING = "gap_filling"
    WAITING_CATCHUP = "waiting_catchup"
    STREAMING = "streaming"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class OnlineSession:
    """What ``start`` did: the catch-up request it published and the history it fetched."""

    correlation_id: str
    symbols: tuple[Symbol, ...]
    warmup_from: datetime
    live_from: datetime
    catchup_event_id: str
    gap_fill: tuple[IngestReport, ...]

    @property
    def gap_fill_rows(self) -> int:
        return sum(r.stored_rows for r in self.gap_fill)


@dataclass(frozen=True, slots=True)
class OnlineIngestStats:
    state: OnlineState
    bars_streamed: int
    """Live bars stored and published (one online preprocess request each)."""
    duplicates: int
    late_corrections: int
    late_fills: int
    gaps: int
    missing_bars: int
    invalid: int
    unknown_symbol: int
    resampled_bars_stored: int
    gap_fill_rows: int


@dataclass
class _Counters:
    bars_streamed: int = 0
    duplicates: int = 0
    late_corrections: int = 0
    late_fills: int = 0
    gaps: int = 0
    missing_bars: int = 0
    invalid: int = 0
    unknown_symbol: int = 0
    resampled_bars_stored: int = 0
    gap_fill_rows: int = 0


class ResampledBarsRejectedError(ValueError):
    """A store-resampled request that can never be stored; retrying it cannot help."""

    retryable = False


def bar_correlation_id(symbol: Symbol, open_time: datetime) -> str:
    """Correlation id of the online request for one bar.

    Derived from the bar rather than random, so a bar republished after a restart carries the id
    it had before and downstream consumers can recognise the repeat.
    """
    return uuid.uuid5(_BAR_ID_NAMESPACE, f"{symbol}|{utc(open_time).isoformat()}").hex


class OnlineIngestService:
    """Drive with ``start``, then ``pump`` and the bus's ``poll`` from one loop.

    ``on_preprocess_completed`` and ``on_store_resampled`` are called by the bus handlers; nothing
    here is locked because the bus delivers inside ``poll``, on the caller's thread.
    """

    def __init__(
        self,
        provider: HistoricalDataProvider | None,
        source: LiveBarSource,
        market_data: MarketDataRepository,
        bus: MessageBus,
        clock: Clock,
        *,
        policy: ValidationPolicy = ValidationPolicy.QUARANTINE,
        timeframe: Timeframe = Timeframe.M1,
        calendars: CalendarBook | None = None,
    ) -> None:
        """``policy`` governs the gap fill only. It defaults to quarantine, unlike a history
        ingest, because refusing to start live trading over one bad historical bar helps nobody
        when the bar can be kept aside and reported. ``timeframe``: the bars the session fills,
        stores and streams (its data timeframe). ``calendars``: each symbol's market calendar
        (None: every symbol trades 24/7)."""
        self._provider = provider
        self._source = source
        self._repo = market_data
        self._bus = bus
        self._clock = clock
        self._timeframe = timeframe
        self._calendars = calendars or CalendarBook(AlwaysOpenCalendar())
        self._windows: dict[Symbol, BarWindows] = {}
        self._history = (
            IngestService(provider, market_data, bus, policy=policy, calendars=self._calendars)
            if provider
            else None
        )
        self._state = OnlineState.IDLE
        self._session: OnlineSession | None = None
        self._cursor: dict[Symbol, datetime] = {}
        self._bars_iter: Iterator[Bar] | None = None
        self._counts = _Counters()
        self._quarantine_batch = f"live-{new_id()}"

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def state(self) -> OnlineState:
        return self._state

    @property
    def session(self) -> OnlineSession | None:
        return self._session

    @property
    def timeframe(self) -> Timeframe:
        """The timeframe of the bars this session streams (its data timeframe)."""
        return self._timeframe

    def calendar_of(self, symbol: Symbol) -> MarketCalendar:
        return self._calendars.for_symbol(symbol)

    def _windows_of(self, symbol: Symbol) -> BarWindows:
        windows = self._windows.get(symbol)
        if windows is None:
            windows = BarWindows(self.calendar_of(symbol), self._timeframe)
            self._windows[symbol] = windows
        return windows

    def start(
        self,
        symbols: list[Symbol] | tuple[Symbol, ...],
        warmup_from: datetime,
        *,
        live_from: datetime | None = None,
    ) -> OnlineSession:
        """Fill each symbol's history up to ``live_from`` and request the catch-up run.

        ``live_from`` is the first bar the live source is expected to deliver; it defaults to
        the current (still open) bar of the clock, so every closed bar comes from the provider
        and any overlap with the source's first bars is caught as duplicates. A replay of old data
        must pass its own start. Both times are placed on the session's bars (`slot_at`: the
        first bar not yet closed then, across a closure; on 24/7, the timeframe's floor).
        """
        if self._state is not OnlineState.IDLE:
            raise RuntimeError(f"online ingest already started (state {self._state.value})")
        syms = tuple(dict.fromkeys(Symbol(s) for s in symbols))
        if not syms:
            raise ValueError("no symbol given")
        windows = self._windows_of(syms[0])  # one request, one calendar (preprocess checks it)
        live = slot_at(windows, utc(live_from) if live_from is not None else self._clock.now())
        warmup = slot_at(windows, utc(warmup_from))
        if warmup >= live:
            raise ValueError(
                f"warm-up start {warmup.isoformat()} must be before the first live "
                f"{self._timeframe} bar {live.isoformat()}"
            )
        correlation = new_id()
        self._state = OnlineState.GAP_FILLING
        try:
            reports = self._fill_gaps(syms, warmup, live, correlation)
        except Exception:
            self._state = OnlineState.IDLE
            raise
        self._counts.gap_fill_rows = sum(r.stored_rows for r in reports)
        # preprocess reads these bars when the catch-up request arrives: a repository that
        # stages writes (write-behind) must have written them before the request goes out
        flush = getattr(self._repo, "flush", None)
        if flush is not None:
            flush()
        self._cursor = {s: self._bar_before(s, live) for s in syms}
        event = PreprocessDataRequested(
            correlation_id=correlation,
            mode=ProcessingMode.CATCHUP,
            symbols=list(syms),
            timeframe=self._timeframe,
            start=warmup,
            end=live,
        )
        self._session = OnlineSession(
            correlation, syms, warmup, live, event.event_id, tuple(reports)
        )
        self._state = OnlineState.WAITING_CATCHUP
        self._bus.publish(Topic.PREPROCESS_REQUESTED, event, key=str(syms[0]))
        log.info(
            "catch-up preprocessing requested",
            symbols=[str(s) for s in syms],
            start=warmup.isoformat(),
            end=live.isoformat(),
            gap_fill_rows=self._counts.gap_fill_rows,
        )
        return self._session

    def on_preprocess_completed(self, event: PreprocessDataCompleted) -> bool:
        """Start streaming on the completion of our own catch-up; True if that happened.

        Completions of other sessions (another ingest instance, an earlier run of this one) and
        redeliveries after streaming began are ignored, so the handler is idempotent.
        """
        session = self._session
        if (
            event.mode is not ProcessingMode.CATCHUP
            or session is None
            or event.correlation_id != session.correlation_id
        ):
            log.info("catch-up completion not ours; ignored", correlation=event.correlation_id)
            return False
        if self._state is not OnlineState.WAITING_CATCHUP:
            return False
        self._state = OnlineState.STREAMING
        log.info("catch-up complete; streaming live bars", correlation=session.correlation_id)
        return True

    def stop(self) -> None:
        self._state = OnlineState.STOPPED
        self._source.close()

    # -- streaming ------------------------------------------------------------------------------
    def pump(self, max_bars: int | None = None) -> int:
        """Take up to ``max_bars`` bars from the source (all, if None); returns how many were
        taken. Does nothing before the catch-up completed; an exhausted source stops the service.
        """
        if self._state is not OnlineState.STREAMING:
            return 0
        if self._bars_iter is None:
            self._bars_iter = self._source.bars()
        it = self._bars_iter
        taken = 0
        while (max_bars is None or taken < max_bars) and self._state is OnlineState.STREAMING:
            try:
                bar = next(it)
            except StopIteration:
                self._state = OnlineState.STOPPED
                log.info("live source exhausted", **self._log_stats())
                break
            taken += 1
            self.accept(bar)
        return taken

    def accept(self, bar: Bar) -> None:
        """Judge, store and publish one live bar (``pump`` calls this for each bar it takes)."""
        received = time.time()
        symbol = bar.symbol
        cursor = self._cursor.get(symbol)
        if cursor is None:
            self._counts.unknown_symbol += 1
            log.warning("live bar of a symbol not streamed; ignored", symbol=str(symbol))
            return
        if not self._valid(bar):
            return
        open_time = utc(bar.open_time)
        if open_time <= cursor:
            self._late(symbol, open_time, bars_to_frame([bar]))
            return
        # in the market's bars: a weekend or a night between the two is no skip
        windows = self._windows_of(symbol)
        skipped = windows.slots_between(to_micros(cursor), to_micros(open_time)) - 1
        if skipped > 0:
            self._counts.gaps += 1
            self._counts.missing_bars += skipped
            log.warning(
                "live bars missing",
                symbol=str(symbol),
                missing_bars=skipped,
                after=cursor.isoformat(),
            )
        self._repo.upsert_bar(bar)  # its timeframe is the stream's (`_valid`)
        self._cursor[symbol] = open_time
        self._publish_online(symbol, bar, open_time, received)
        self._counts.bars_streamed += 1

    def on_store_resampled(self, event: StoreResampledDataRequested) -> UpsertResult:
        """Store higher-timeframe bars closed by live resampling (an idempotent upsert).

        Invalid rows are quarantined rather than failing the message: the valid bars of the
        batch are still worth keeping, and a redelivery would be just as invalid.
        """
        if event.timeframe.minutes <= self._timeframe.minutes:
            raise ResampledBarsRejectedError(
                f"{event.symbol}: store-resampled request for {event.timeframe} bars would "
                f"overwrite raw live data (this session streams {self._timeframe} bars); "
                f"resampled bars must be of a timeframe coarser than {self._timeframe}"
            )
        if not event.bars:
            return UpsertResult(0, 0)
        frame = _resampled_frame(event.bars)
        check = validate_bars(frame, event.timeframe, calendar=self.calendar_of(event.symbol))
        if not check.ok:
            rows = _rule_rows(frame, check.row_rules)
            self._repo.quarantine(event.symbol, event.timeframe, rows, event.event_id)
            log.warning(
                "resampled bars quarantined", symbol=str(event.symbol), summary=check.summary()
            )
            frame = frame.filter(~pl.Series(check.bad_mask))
        result = self._repo.upsert_bars(event.symbol, event.timeframe, frame)
        self._counts.resampled_bars_stored += result.stored
        return result

    def stats(self) -> OnlineIngestStats:
        c = self._counts
        return OnlineIngestStats(
            state=self._state,
            bars_streamed=c.bars_streamed,
            duplicates=c.duplicates,
            late_corrections=c.late_corrections,
            late_fills=c.late_fills,
            gaps=c.gaps,
            missing_bars=c.missing_bars,
            invalid=c.invalid,
            unknown_symbol=c.unknown_symbol,
            resampled_bars_stored=c.resampled_bars_stored,
            gap_fill_rows=c.gap_fill_rows,
        )

    # -- internals ------------------------------------------------------------------------------
    def _fill_gaps(
        self, symbols: tuple[Symbol, ...], warmup: datetime, live: datetime, correlation: str
    ) -> list[IngestReport]:
        """Fetch what the store lacks at either edge of ``[warmup, live)``.

        Holes inside the stored span are left alone: they were reported when that history was
        ingested, and re-fetching the whole span on every start would cost more than it fixes.
        """
        if self._history is None:
            return []
        reports: list[IngestReport] = []
        for symbol in symbols:
            for rng in self._missing_ranges(symbol, warmup, live):
                request = TrainingDataRequest(
                    (symbol,), rng, request_id=correlation, timeframe=self._timeframe
                )
                report = self._history.ingest_history(request, request_preprocessing=False)
                reports.append(report)
                log.info(
                    "live gap filled",
                    symbol=str(symbol),
                    start=rng.start.isoformat(),
                    end=rng.end.isoformat(),
                    rows=report.stored_rows,
                )
        return reports

    def _bar_before(self, symbol: Symbol, live: datetime) -> datetime:
        """The key of the last bar the market makes before ``live``: the cursor a session starts
        with (on 24/7, ``live`` minus one bar)."""
        return history_start(self.calendar_of(symbol), self._timeframe, live, 1)

    def _missing_ranges(self, symbol: Symbol, warmup: datetime, live: datetime) -> list[TimeRange]:
        tf = self._timeframe
        cov = self._repo.coverage(symbol, tf)
        if cov is None:
            return [TimeRange(warmup, live)]
        first, last = utc(cov.first_open_time), utc(cov.last_open_time)
        out: list[TimeRange] = []
        if first > warmup:
            out.append(TimeRange(warmup, min(first, live)))
        tail = max(last + tf.duration, warmup)
        if tail < live:
            out.append(TimeRange(tail, live))
        return out

    def _valid(self, bar: Bar) -> bool:
        tf = self._timeframe
        if bar.timeframe is not tf:
            rules = ["timeframe"]
            detail = f"a {bar.timeframe.value} bar on the {tf.value} live stream"
        else:
            # the scalar rules first: the report (and its polars and numpy set-up) only when one
            # breaks, for the quarantine's rule names and the log's detail
            broken = bar_rules(
                to_micros(utc(bar.open_time)),
                bar.open,
                bar.high,
                bar.low,
                bar.close,
                bar.volume,
                tf,
            )
            check = validate_bars(bars_to_frame([bar]), tf) if broken else None
            if check is None or check.ok:
                closed = self._closed_at(bar)
                if closed is None:
                    return True
                rules, detail = [Rule.MARKET_CLOSED.value], closed
            else:
                rules = [r.value for r in check.row_rules.get(0, [])]
                first = check.first_violation()
                detail = first.detail if first else check.summary()
        self._counts.invalid += 1
        rows = bars_to_frame([bar]).with_columns(
            pl.lit(rules[0] if rules else "invalid").alias("rule"),
            pl.lit(",".join(rules)).alias("detail"),
        )
        self._repo.quarantine(bar.symbol, tf, rows, self._quarantine_batch)
        log.warning(
            "invalid live bar quarantined",
            symbol=str(bar.symbol),
            open_time=utc(bar.open_time).isoformat(),
            rules=rules,
            detail=detail,
        )
        return False

    def _closed_at(self, bar: Bar) -> str | None:
        """Why an on-grid bar is no bar of its market (`Rule.MARKET_CLOSED`), or None. Checked
        with the symbol's `BarWindows` (a bisect), not the calendar: this runs on every bar."""
        windows = self._windows_of(bar.symbol)
        if windows.calendar.always_open:
            return None
        try:
            windows.close(to_micros(utc(bar.open_time)))
        except ValueError as exc:
            return str(exc)
        return None

    def _late(self, symbol: Symbol, open_time: datetime, frame: pl.DataFrame) -> None:
        tf = self._timeframe
        stored = self._repo.read_bars(symbol, tf, open_time, open_time + tf.duration)
        if not stored.is_empty() and _same_values(stored.row(0), frame.row(0)):
            self._counts.duplicates += 1
            return
        self._repo.upsert_bars(symbol, tf, frame)
        if stored.is_empty():
            self._counts.late_fills += 1
            what = "late bar stored (not republished)"
        else:
            self._counts.late_corrections += 1
            what = "late correction stored (not republished)"
        log.warning(what, symbol=str(symbol), open_time=open_time.isoformat())

    def _publish_online(
        self, symbol: Symbol, bar: Bar, open_time: datetime, received: float
    ) -> None:
        # the calendar close: an XLON 1h bar keyed 15:00 closes 15:30 (24/7: open + timeframe)
        close_time = from_micros(self._windows_of(symbol).close(to_micros(open_time)))
        event = PreprocessDataRequested(
            correlation_id=bar_correlation_id(symbol, open_time),
            mode=ProcessingMode.ONLINE,
            symbols=[symbol],
            timeframe=self._timeframe,
            start=open_time,
            end=close_time,
            bar_close_time=close_time,
            bars=[
                ResampledBar(
                    open_time=open_time,
                    open=bar.open,
                    high=bar.high,
                    low=bar.low,
                    close=bar.close,
                    volume=bar.volume,
                )
            ],
            stages=stamp({"received": received}, "ingest"),
            catchup_start=None if self._session is None else self._session.warmup_from,
        )
        self._bus.publish(Topic.PREPROCESS_REQUESTED, event, key=str(symbol))

    def _log_stats(self) -> dict[str, object]:
        counts: dict[str, object] = asdict(self._counts)
        return counts


def _same_values(stored: tuple[object, ...], incoming: tuple[object, ...]) -> bool:
    """Row equality of two bars; values compare within float rounding, since a resend may have
    passed through JSON or another store on the way."""
    for a, b in zip(stored[1:], incoming[1:], strict=True):
        if not (isinstance(a, float) and isinstance(b, float)):
            return False
        if not math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0):
            return False
    return True


def _resampled_frame(bars: list[ResampledBar]) -> pl.DataFrame:
    rows = [(utc(b.open_time), b.open, b.high, b.low, b.close, b.volume) for b in bars]
    return conform(pl.DataFrame(rows, schema=BAR_SCHEMA, orient="row"))


def _rule_rows(frame: pl.DataFrame, row_rules: dict[int, list[Rule]]) -> pl.DataFrame:
    idx = sorted(row_rules)
    return frame[idx].with_columns(
        pl.Series("rule", [row_rules[i][0].value for i in idx], dtype=pl.String),
        pl.Series(
            "detail", [",".join(r.value for r in row_rules[i]) for i in idx], dtype=pl.String
        ),
    )
