"""The online decision loop: one feature vector per closed bar → one policy decision per symbol.

The observation must be the one the model was trained on, or its decisions mean nothing:

* the same feature set (version and column order; checked against the manifest at every load);
* a window of ``W`` consecutive base-bar vectors ending at the bar just closed, consecutive on
  the symbol's market calendar (the bars before a Monday's first are the previous Friday's, not
  the weekend's: `BarWindows`). The online store only holds the latest vector, so the service
  keeps the last ``W`` per symbol and fills what it lacks (start-up, a gap after a skipped bar)
  from the offline store's point-in-time reads;
* the same market calendar (the manifest's ``training["calendar"]``, 24/7 when absent: windows,
  position ages and annualisation all count that calendar's bars);
* the agent state priced at that bar's close, with the *target* position execution reached (the
  environment's notion), through the one `agent_state` encoder training uses.

Delivery is at least once, so the output for a bar is fixed the first time it is computed: a
redelivered event gets the very same `PredictionCompleted` (same ``event_id``) back even if the
online store or the model moved on since, and execution can drop it as a duplicate.

Models are swapped only between events (everything runs under one lock), so an event is handled
entirely by one model and none is dropped while a new version loads.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
import polars as pl
import structlog

from drl_trading.common.agent_state import agent_state
from drl_trading.common.bar_windows import BarWindows
from drl_trading.common.bars import TIME_DTYPE
from drl_trading.common.calendar import CalendarBook, MarketCalendar
from drl_trading.common.domain import Action, Symbol, from_micros, to_micros, utc
from drl_trading.common.events import PredictionCompleted, PreprocessDataCompleted, ProcessingMode
from drl_trading.common.latency import LatencyHistogram, LatencySnapshot, stamp
from drl_trading.common.ports import (
    Clock,
    FeatureStore,
    FeatureViewSpec,
    OnlineFeatures,
    PositionProvider,
    PriceSource,
)
from drl_trading.inference.core.ports import LoadedModel, ModelSource

log = structlog.get_logger(__name__)

DEFAULT_MAX_FEATURE_AGE = timedelta(minutes=10)
DEFAULT_RELOAD_INTERVAL = timedelta(seconds=30)
DEDUP_DEPTH = 64
"""Decisions remembered per symbol for redeliveries; far more bars than a consumer lags."""
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "drl-trading/inference/prediction")
LATENCY_STAGES = ("read_features", "predict", "total")
ALWAYS_OPEN = "24/7"
"""The calendar of a model package whose manifest names none (trained before calendars)."""


class ModelMismatchError(ValueError):
    """The model was trained on other features than the view serves; retrying cannot help, so
    the bus dead-letters at once."""

    retryable = False


class SkipReason(StrEnum):
    """Why a symbol got no decision for a bar (counted in `InferenceStatus.skips`)."""

    MISSING_FEATURES = "missing_features"
    FEATURES_BEHIND_BAR = "features_behind_bar"
    """The online vector is older than the bar the event announced."""
    FEATURES_EXPIRED = "features_expired"
    """The vector is older than ``max_feature_age`` by the clock: trading on it would act on a
    market that has moved on (a consumer catching up after an outage)."""
    SUPERSEDED = "superseded"
    """The online store already holds a later bar: this event arrived late and never got a
    decision; the later bar's own event will."""
    INSUFFICIENT_HISTORY = "insufficient_history"
    INVALID_FEATURES = "invalid_features"
    NO_PRICE = "no_price"
    FEATURE_SET_MISMATCH = "feature_set_mismatch"
    NO_BAR_CLOSE_TIME = "no_bar_close_time"
    CALENDAR_MISMATCH = "calendar_mismatch"
    """The symbol trades on another market calendar than the model was trained on."""
    OFF_CALENDAR = "off_calendar"
    """The vector's time is no base-bar close of the symbol's calendar: the features were made
    under another ``markets.symbols.<SYMBOL>.calendar`` (preprocess them again)."""


def trained_calendar(model: LoadedModel) -> str:
    """The market calendar the model was trained on (its manifest's ``training["calendar"]``;
    24/7 for a package written before calendars)."""
    return str(model.predictor.manifest.training.get("calendar") or ALWAYS_OPEN)


def calendar_problem(model: LoadedModel, symbol: Symbol, calendar: str) -> str | None:
    """Why ``model`` cannot decide for ``symbol`` trading on ``calendar``; None when it can."""
    trained = trained_calendar(model)
    if trained == calendar:
        return None
    return (
        f"trained on the {trained} calendar, {symbol} trades on {calendar} (set "
        f"markets.symbols.{symbol}.calendar: {trained} if that is its market)"
    )


def check_compatible(
    model: LoadedModel, view: FeatureViewSpec, calendars: Mapping[Symbol, str] | None = None
) -> None:
    """Raises `ModelMismatchError` naming every difference between the model and the view, and
    each symbol of ``calendars`` (symbol -> the calendar it trades on) whose market calendar is
    not the one the model was trained on."""
    m = model.predictor.manifest
    problems: list[str] = []
    if m.feature_set_version != view.feature_set_version:
        problems.append(
            f"trained on feature set version {m.feature_set_version!r}, the view serves "
            f"{view.feature_set_version!r}"
        )
    columns = list(view.columns)
    if list(m.feature_columns) != columns:
        missing = [c for c in m.feature_columns if c not in columns]
        extra = [c for c in columns if c not in m.feature_columns]
        if missing or extra:
            problems.append(f"feature columns differ (view lacks {missing}, has extra {extra})")
        else:
            problems.append("feature columns are in a different order")
    if m.base_timeframe != view.base_timeframe.value:
        problems.append(
            f"trained on {m.base_timeframe} bars, the view is on {view.base_timeframe.value}"
        )
    for symbol, calendar in (calendars or {}).items():
        problem = calendar_problem(model, symbol, calendar)
        if problem is not None:
            problems.append(problem)
    if problems:
        raise ModelMismatchError(
            f"model {model.name}/{model.version} cannot serve feature view {view.name!r}: "
            + "; ".join(problems)
            + ". Retrain on this feature set or point model_ref at a compatible version."
        )


def action_for(action_index: int, target_position: float) -> Action:
    """Discrete policies name their action; continuous ones (index -1) are read by the sign of
    the target, which is what execution will trade towards."""
    if action_index >= 0:
        return (Action.SHORT, Action.FLAT, Action.LONG)[action_index]
    if target_position > 0.0:
        return Action.LONG
    if target_position < 0.0:
        return Action.SHORT
    return Action.FLAT


def prediction_id(symbol: Symbol, bar_close_time: datetime, name: str, version: str) -> str:
    """Deterministic, so that a decision recomputed after a restart carries the same id."""
    key = f"{symbol}|{utc(bar_close_time).isoformat()}|{name}|{version}"
    return uuid.uuid5(_ID_NAMESPACE, key).hex


@dataclass(frozen=True, slots=True)
class InferenceStatus:
    model_ref: str
    model_name: str
    model_version: str
    model_loaded_at: datetime
    predictions: int
    duplicates: int
    """Redelivered events answered from memory."""
    skips: dict[str, int]
    reloads: int
    reload_failures: int
    last_predictions: dict[Symbol, PredictionCompleted]
    latency: dict[str, LatencySnapshot]
    """Seconds per stage: ``read_features`` (online read + backfill, per event), ``predict``
    (per symbol), ``total`` (per event, model reloads excluded)."""


class InferenceService:
    def __init__(
        self,
        feature_store: FeatureStore,
        view: FeatureViewSpec,
        models: ModelSource,
        positions: PositionProvider,
        prices: PriceSource,
        clock: Clock,
        *,
        model_ref: str,
        max_feature_age: timedelta = DEFAULT_MAX_FEATURE_AGE,
        reload_interval: timedelta = DEFAULT_RELOAD_INTERVAL,
        timer: Callable[[], float] = time.perf_counter,
        reload_timer: Callable[[], float] | None = None,
        calendars: CalendarBook | None = None,
        symbols: Sequence[Symbol] = (),
        reload_between_events: bool = False,
    ) -> None:
        """Loads the model now, so that a wrong reference or an incompatible model stops the
        service at start instead of at the first bar. ``reload_timer`` (seconds, e.g.
        `time.monotonic`) schedules registry polls by wall time; without it the clock does,
        which in a fast replay would poll the registry at nearly every bar. ``calendars``: each
        symbol's market calendar (None: every symbol trades 24/7); ``symbols``, the symbols
        served, are checked against the model's calendar at every load (a symbol first seen
        in an event is checked then, and skipped on a mismatch).

        ``reload_between_events``: the owner's loop calls `maybe_reload` between events (after
        a decision is published), and `on_features` never asks the registry. A poll is two
        registry round trips (~10-40 ms on a busy 2-core machine against the MLflow server),
        and a download when the reference moved: asked from `on_features`, the decision that
        happens to fall due waits for it, once every ``reload_interval``."""
        if max_feature_age <= timedelta(0) or reload_interval < timedelta(0):
            raise ValueError("max_feature_age must be > 0 and reload_interval >= 0")
        self._store = feature_store
        self._view = view
        self._models = models
        self._positions = positions
        self._prices = prices
        self._clock = clock
        self._model_ref = model_ref
        self._max_age = max_feature_age
        self._reload_interval = reload_interval
        self._reload_between_events = reload_between_events
        self._lock = threading.RLock()
        self._latency = {stage: LatencyHistogram(timer=timer) for stage in LATENCY_STAGES}
        self._buffers: dict[Symbol, dict[datetime, tuple[float, ...]]] = {}
        self._emitted: dict[Symbol, OrderedDict[datetime, PredictionCompleted]] = {}
        self._last: dict[Symbol, PredictionCompleted] = {}
        self._recurrent_state: dict[Symbol, Any] = {}
        self._skips: Counter[str] = Counter()
        self._predictions = 0
        self._duplicates = 0
        self._reloads = 0
        self._reload_failures = 0
        self._rejected_version: str | None = None
        self._calendars = calendars
        self._bar_windows: dict[str, BarWindows] = {}
        self._served: dict[Symbol, str] = {
            Symbol(s): self._calendar_name(Symbol(s)) for s in symbols
        }
        self._calendar_checked: set[Symbol] = set(self._served)
        model = models.load(model_ref)
        check_compatible(model, view, self._served)
        self._model = model
        self._loaded_at = clock.now()
        self._last_check = self._loaded_at
        self._reload_timer = reload_timer
        self._last_check_s = reload_timer() if reload_timer is not None else 0.0
        log.info("model loaded", model=model.name, version=model.version, ref=model_ref)

    @property
    def model(self) -> LoadedModel:
        return self._model

    # -- model reload ---------------------------------------------------------------------------

    def maybe_reload(self) -> bool:
        """Polls the registry at most every ``reload_interval``; True when a new version was
        swapped in. A version that fails to load keeps the current model (retried at the next
        poll); an incompatible one is remembered and not downloaded again."""
        with self._lock:
            now = self._clock.now()
            if self._reload_timer is not None:
                wall = self._reload_timer()
                if wall - self._last_check_s < self._reload_interval.total_seconds():
                    return False
                self._last_check_s = wall
            elif now - self._last_check < self._reload_interval:
                return False
            self._last_check = now
            current = self._model
            try:
                version = self._models.resolve(self._model_ref)
            except Exception as exc:
                self._reload_failures += 1
                log.warning(
                    "model resolve failed; keeping current", ref=self._model_ref, error=repr(exc)
                )
                return False
            if version in (current.version, self._rejected_version):
                return False
            try:
                loaded = self._models.load(self._model_ref)
            except Exception as exc:
                self._reload_failures += 1
                log.error(
                    "model load failed; keeping current",
                    ref=self._model_ref,
                    version=version,
                    current=current.version,
                    error=repr(exc),
                )
                return False
            try:
                check_compatible(loaded, self._view, self._served)
            except ModelMismatchError as exc:
                self._reload_failures += 1
                self._rejected_version = loaded.version
                log.error(
                    "incompatible model not swapped in", current=current.version, error=str(exc)
                )
                return False
            if loaded.version == current.version:
                return False
            self._model = loaded
            self._loaded_at = now
            self._recurrent_state.clear()
            self._calendar_checked = set(self._served)
            self._reloads += 1
            log.info(
                "model swapped",
                model=loaded.name,
                version=loaded.version,
                previous=f"{current.name}/{current.version}",
            )
            return True

    def _polls_on_events(self) -> bool:
        """Whether `on_features` asks the registry (see ``reload_between_events``)."""
        return not self._reload_between_events

    def retain(self, symbols: Iterable[str]) -> None:
        """Keep per-symbol state for ``symbols`` only: another instance decides for the others
        now (the bus moved their partitions), so their window buffers and recurrent memory move
        on without this process. The decisions made here stay remembered, so a completion
        redelivered here still gets the very same answer."""
        keep = {Symbol(s) for s in symbols}
        with self._lock:
            for held in (self._buffers, self._recurrent_state):
                for symbol in [s for s in held if s not in keep]:
                    del held[symbol]

    # -- decisions ------------------------------------------------------------------------------

    def on_features(self, event: PreprocessDataCompleted) -> list[PredictionCompleted]:
        """Decisions for the event's symbols that passed every check, in the event's order."""
        if event.mode is not ProcessingMode.ONLINE:
            return []
        with self._lock:
            if self._polls_on_events():
                self.maybe_reload()
            with self._latency["total"].time():
                return self._decide(event)

    def _decide(self, event: PreprocessDataCompleted) -> list[PredictionCompleted]:
        symbols = list(dict.fromkeys(event.symbols))
        view = self._view
        if event.feature_view != view.name or event.feature_set_version != view.feature_set_version:
            for symbol in symbols:
                self._skip(
                    symbol,
                    SkipReason.FEATURE_SET_MISMATCH,
                    event_view=f"{event.feature_view}@{event.feature_set_version}",
                    served_view=f"{view.name}@{view.feature_set_version}",
                )
            return []
        if event.bar_close_time is None:
            for symbol in symbols:
                self._skip(symbol, SkipReason.NO_BAR_CLOSE_TIME)
            return []
        bar = utc(event.bar_close_time)
        out: dict[Symbol, PredictionCompleted] = {}
        pending: list[Symbol] = []
        for symbol in symbols:
            emitted = self._emitted.get(symbol)
            done = emitted.get(bar) if emitted is not None else None
            if done is not None:
                self._duplicates += 1
                out[symbol] = done
            elif self._calendar_fits(symbol):
                pending.append(symbol)
        if pending:
            for symbol, prediction in self._predict_all(event, bar, pending):
                out[symbol] = prediction
        return [out[s] for s in symbols if s in out]

    def _predict_all(
        self, event: PreprocessDataCompleted, bar: datetime, symbols: Sequence[Symbol]
    ) -> list[tuple[Symbol, PredictionCompleted]]:
        model = self._model
        n_features = model.predictor.manifest.n_features
        with self._latency["read_features"].time():
            vectors = self._store.online_features(self._view, symbols)
            windows: dict[Symbol, tuple[datetime, np.ndarray]] = {}
            for symbol in symbols:
                ready = self._checked_window(symbol, vectors.get(symbol), bar, n_features)
                if ready is not None:
                    windows[symbol] = ready
        results: list[tuple[Symbol, PredictionCompleted]] = []
        for symbol, (feature_time, features) in windows.items():
            state = self._agent_state(symbol)
            if state is None:
                continue
            with self._latency["predict"].time():
                output = self._run_policy(model, symbol, features, state)
            target, index, confidence = output
            prediction = PredictionCompleted(
                event_id=prediction_id(symbol, bar, model.name, model.version),
                correlation_id=event.correlation_id,
                created_at=self._clock.now(),
                symbol=symbol,
                action=action_for(index, target),
                target_position=target,
                confidence=confidence,
                model_name=model.name,
                model_version=model.version,
                feature_time=feature_time,
                bar_close_time=bar,
                stages=stamp(event.stages, "inference") if event.stages else {},
            )
            self._remember(symbol, bar, prediction)
            results.append((symbol, prediction))
        return results

    # -- market calendars -----------------------------------------------------------------------

    def _calendar(self, symbol: Symbol) -> MarketCalendar | None:
        """The symbol's market calendar; None for 24/7 without a book (closed-form windows)."""
        return None if self._calendars is None else self._calendars.for_symbol(symbol)

    def _calendar_name(self, symbol: Symbol) -> str:
        calendar = self._calendar(symbol)
        return ALWAYS_OPEN if calendar is None else calendar.name

    def _windows(self, calendar: MarketCalendar) -> BarWindows:
        windows = self._bar_windows.get(calendar.name)
        if windows is None:
            windows = BarWindows(calendar, self._view.base_timeframe)
            self._bar_windows[calendar.name] = windows
        return windows

    def _calendar_fits(self, symbol: Symbol) -> bool:
        """A symbol not among those checked at load is checked against the model's calendar
        once (per model version); one on another calendar gets no decision."""
        if symbol in self._calendar_checked:
            return True
        problem = calendar_problem(self._model, symbol, self._calendar_name(symbol))
        if problem is not None:
            self._skips[SkipReason.CALENDAR_MISMATCH.value] += 1
            log.error(
                "prediction skipped",
                symbol=symbol,
                reason=SkipReason.CALENDAR_MISMATCH.value,
                model=f"{self._model.name}/{self._model.version}",
                problem=problem,
            )
            return False
        self._calendar_checked.add(symbol)
        return True

    def _needed_times(
        self, symbol: Symbol, feature_time: datetime, w: int
    ) -> list[datetime] | None:
        """The closes of the ``w`` base bars ending at the one closing at ``feature_time``,
        oldest first, consecutive on the symbol's calendar; None when ``feature_time`` is no
        base-bar close of it."""
        calendar = self._calendar(symbol)
        if calendar is None or calendar.always_open:
            step = self._view.base_timeframe.duration
            return [feature_time - step * k for k in range(w - 1, -1, -1)]
        windows = self._windows(calendar)
        t = to_micros(feature_time)
        try:
            key = windows.last_closed(t)
            if windows.close(key) != t:
                raise ValueError("not a close")
            keys = [key]
            for _ in range(w - 1):
                keys.append(windows.last_closed(windows.first_open(keys[-1])))
        except ValueError:
            self._skip(
                symbol,
                SkipReason.OFF_CALENDAR,
                feature_time=feature_time,
                calendar=calendar.name,
                timeframe=self._view.base_timeframe.value,
            )
            return None
        return [from_micros(windows.close(k)) for k in reversed(keys)]

    def _checked_window(
        self, symbol: Symbol, latest: OnlineFeatures | None, bar: datetime, n_features: int
    ) -> tuple[datetime, np.ndarray] | None:
        if latest is None:
            self._skip(symbol, SkipReason.MISSING_FEATURES, bar_close_time=bar)
            return None
        feature_time = utc(latest.event_time)
        if feature_time < bar:
            self._skip(
                symbol,
                SkipReason.FEATURES_BEHIND_BAR,
                feature_time=feature_time,
                bar_close_time=bar,
            )
            return None
        if feature_time > bar:
            self._skip(symbol, SkipReason.SUPERSEDED, feature_time=feature_time, bar_close_time=bar)
            return None
        age = self._clock.now() - feature_time
        if age > self._max_age:
            self._skip(
                symbol,
                SkipReason.FEATURES_EXPIRED,
                feature_time=feature_time,
                age_s=age.total_seconds(),
                max_age_s=self._max_age.total_seconds(),
            )
            return None
        if len(latest.values) != n_features or not all(math.isfinite(v) for v in latest.values):
            self._skip(symbol, SkipReason.INVALID_FEATURES, feature_time=feature_time)
            return None
        window = self._window(symbol, feature_time, latest.values)
        if window is None:
            return None
        return feature_time, window

    def _window(
        self, symbol: Symbol, feature_time: datetime, values: tuple[float, ...]
    ) -> np.ndarray | None:
        """The ``W`` consecutive vectors ending at ``feature_time``, oldest first, as the
        environment slices them (consecutive on the market's calendar: a window may span a
        weekend); the buffer is trimmed to exactly those, keyed by time, so it can neither hold
        duplicates nor mix a gap into a window."""
        w = self._model.predictor.manifest.window
        needed = self._needed_times(symbol, feature_time, w)
        if needed is None:
            return None
        known = self._buffers.get(symbol, {})
        known[feature_time] = tuple(float(v) for v in values)
        missing = [t for t in needed if t not in known]
        if missing:
            fetched = self._backfill(symbol, missing)
            if fetched is None:
                self._buffers[symbol] = {feature_time: known[feature_time]}
                self._skip(
                    symbol,
                    SkipReason.INSUFFICIENT_HISTORY,
                    feature_time=feature_time,
                    missing=len(missing),
                    window=w,
                )
                return None
            known.update(fetched)
        self._buffers[symbol] = {t: known[t] for t in needed}
        return np.asarray([known[t] for t in needed], dtype=np.float32)[None]

    def _backfill(
        self, symbol: Symbol, times: list[datetime]
    ) -> dict[datetime, tuple[float, ...]] | None:
        entities = pl.DataFrame(
            {"symbol": [str(symbol)] * len(times), "event_time": times},
            schema={"symbol": pl.String, "event_time": TIME_DTYPE},
        )
        frame = self._store.historical_features(self._view, entities)
        rows = frame.select(self._view.columns).rows()
        if len(rows) != len(times):
            return None
        out: dict[datetime, tuple[float, ...]] = {}
        for t, row in zip(times, rows, strict=True):
            if any(v is None or not math.isfinite(v) for v in row):
                return None
            out[t] = tuple(float(v) for v in row)
        log.info("window backfilled from offline store", symbol=symbol, rows=len(out))
        return out

    def _agent_state(self, symbol: Symbol) -> np.ndarray | None:
        pos = self._positions.agent_position(symbol)
        price = 0.0
        if pos.target_position != 0.0 and pos.entry_price > 0.0:
            try:
                price = float(self._prices(symbol))
            except LookupError:
                price = math.nan
            if not (math.isfinite(price) and price > 0.0):
                self._skip(symbol, SkipReason.NO_PRICE, target_position=pos.target_position)
                return None
        state = agent_state(pos.target_position, pos.entry_price, price, pos.bars_in_position)
        return np.asarray([state], dtype=np.float64)

    def _run_policy(
        self, model: LoadedModel, symbol: Symbol, features: np.ndarray, state: np.ndarray
    ) -> tuple[float, int, float]:
        predictor = model.predictor
        if predictor.recurrent:
            # A recurrent policy's memory belongs to one symbol's stream; the predictor holds a
            # single state, so each symbol's is put in before and taken out after its step.
            predictor._lstm_state = self._recurrent_state.get(symbol)
            output = predictor.predict(features, state)
            self._recurrent_state[symbol] = predictor._lstm_state
        else:
            return predictor.decide(features, state)
        return (
            float(output.target_position[0]),
            int(output.action[0]),
            float(output.confidence[0]),
        )

    def _remember(self, symbol: Symbol, bar: datetime, prediction: PredictionCompleted) -> None:
        emitted = self._emitted.setdefault(symbol, OrderedDict())
        emitted[bar] = prediction
        while len(emitted) > DEDUP_DEPTH:
            emitted.popitem(last=False)
        self._last[symbol] = prediction
        self._predictions += 1

    def _skip(self, symbol: Symbol, reason: SkipReason, **detail: Any) -> None:
        self._skips[reason.value] += 1
        level = log.info if reason is SkipReason.SUPERSEDED else log.warning
        level("prediction skipped", symbol=symbol, reason=reason.value, **detail)

    # -- monitoring -----------------------------------------------------------------------------

    def status(self) -> InferenceStatus:
        with self._lock:
            return InferenceStatus(
                model_ref=self._model_ref,
                model_name=self._model.name,
                model_version=self._model.version,
                model_loaded_at=self._loaded_at,
                predictions=self._predictions,
                duplicates=self._duplicates,
                skips=dict(self._skips),
                reloads=self._reloads,
                reload_failures=self._reload_failures,
                last_predictions=dict(self._last),
                latency={stage: h.snapshot() for stage, h in self._latency.items()},
            )
