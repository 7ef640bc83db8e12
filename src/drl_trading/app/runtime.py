"""The embedded runtime: every service in one process around an in-memory bus and embedded stores.

It wires the same handlers the distributed processes run; `run_until_idle` pumps the bus until
no message is pending, which is how a CLI command turns "publish a request" into "workflow done".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

import structlog

from drl_trading.app.infrastructure import build_bus, build_feature_store, build_market_data
from drl_trading.app.preprocess import bootstrap_preprocess
from drl_trading.app.settings import AppSettings
from drl_trading.common.adapter.memory_bus import InMemoryBus
from drl_trading.common.domain import Symbol, Timeframe
from drl_trading.common.latency import StageLatency
from drl_trading.common.ports import Clock, FeatureStore, MarketDataRepository
from drl_trading.preprocess.adapter.bus_handlers import PreprocessHandlers

if TYPE_CHECKING:
    from drl_trading.app.execution import ExecutionComponents
    from drl_trading.app.inference import InferenceComponents
    from drl_trading.common.model_registry import ModelRegistry
    from drl_trading.execution.adapter.ccxt_broker import CcxtBroker
    from drl_trading.ingest.core.live import LiveBarSource
    from drl_trading.ingest.core.online_service import OnlineIngestService
    from drl_trading.ingest.core.ports import HistoricalDataProvider
    from drl_trading.training.adapter.bus_handlers import TrainingHandlers


MARK_COMMIT_BARS = 64
"""Bars whose marks execution may keep in memory before a commit in the embedded runtime, where
inference reads them from the service itself: `flush` commits them after each acknowledged bar
(a fast replay flushes every 64 bars), so the per-bar commit is off the path to the order."""


@dataclass
class OnlineComponents:
    """The online workflow's services, all subscribed to the runtime's bus."""

    ingest: OnlineIngestService
    inference: InferenceComponents
    execution: ExecutionComponents
    stages: StageLatency
    """Per-stage latency of the online chain (ingest → preprocess → inference → execution)."""


@dataclass
class EmbeddedRuntime:
    settings: AppSettings
    bus: InMemoryBus
    market_data: MarketDataRepository
    feature_store: FeatureStore
    preprocess: PreprocessHandlers
    training: TrainingHandlers | None = None
    online: OnlineComponents | None = None

    @classmethod
    def open(cls, settings: AppSettings) -> EmbeddedRuntime:
        settings.home.mkdir(parents=True, exist_ok=True)
        if settings.bus.kind != "memory":
            # one process with every service is the embedded mode: its bus is in memory; the
            # distributed services run one per process (`drl-trading serve`)
            settings = settings.model_copy(
                update={"bus": settings.bus.model_copy(update={"kind": "memory"})}
            )
        bus = build_bus(settings)
        assert isinstance(bus, InMemoryBus)
        market_data = build_market_data(settings)
        feature_store = build_feature_store(settings)
        preprocess = bootstrap_preprocess(settings, bus, market_data, feature_store)
        return cls(settings, bus, market_data, feature_store, preprocess)

    def enable_training(self, registry: ModelRegistry | None = None) -> TrainingHandlers:
        """Subscribe the training service (imports torch and MLflow, hence not by default)."""
        if self.training is None:
            from drl_trading.app.training import bootstrap_training

            self.training = bootstrap_training(
                self.settings, self.bus, self.market_data, self.feature_store, registry
            )
        return self.training

    def enable_online(
        self,
        source: LiveBarSource,
        *,
        model_ref: str | None = None,
        registry: ModelRegistry | None = None,
        clock: Clock | None = None,
        history: HistoricalDataProvider | None = None,
        symbols: Sequence[Symbol] = (),
        timeframe: Timeframe = Timeframe.M1,
        broker: CcxtBroker | None = None,
    ) -> OnlineComponents:
        """Subscribe ingest (online), inference and execution next to preprocess: the online
        workflow of the design, in this process. ``model_ref`` overrides
        ``inference.model_ref`` (``NAME@alias``, ``NAME/version`` or an alias); ``symbols`` is
        the traded universe (execution splits its capital over them by default, inference
        checks the model's market calendar against theirs); ``timeframe``: the bars ``source``
        streams (the data timeframe). Bars are counted on each symbol's market calendar
        (``markets``). ``broker``: a live session's exchange broker (default: paper)."""
        from drl_trading.app.execution import compose_execution
        from drl_trading.app.inference import compose_inference
        from drl_trading.app.infrastructure import build_calendars, feature_set_for
        from drl_trading.app.ingest import compose_online_ingest
        from drl_trading.common.adapter.system_clock import SystemClock
        from drl_trading.execution.adapter.inference_inputs import ExecutionPositions

        if self.online is not None:
            return self.online
        settings = self.settings
        clock = clock or SystemClock()
        execution = compose_execution(
            settings,
            self.bus,
            clock,
            symbols,
            StageLatency(),
            broker=broker,
            mark_commit_bars=MARK_COMMIT_BARS,
        )
        assert execution.handlers is not None
        base = feature_set_for(settings).base_timeframe
        calendars = build_calendars(settings)
        positions = ExecutionPositions(execution.service, base, calendars)
        inference = compose_inference(
            settings,
            self.bus,
            self.feature_store,
            positions,
            positions.price,
            clock,
            model_ref=model_ref,
            registry=registry,
            symbols=symbols,
            reload_between_events=True,  # by `flush`, after a bar's acknowledgement
        )
        ingest = compose_online_ingest(
            self.bus,
            self.market_data,
            source,
            history,
            clock,
            timeframe=timeframe,
            calendars=calendars,
        )
        self.online = OnlineComponents(ingest, inference, execution, execution.handlers.latency)
        return self.online

    def run_until_idle(self, max_messages: int = 1_000_000) -> int:
        handled = 0
        while handled < max_messages:
            n = self.bus.poll(max_messages - handled)
            if n == 0:
                break
            handled += n
        return handled

    def flush(self) -> None:
        """Write what the stores staged (live bars behind `WriteBehindMarketData`): call it when
        a bar is done, after its order was acknowledged, so persistence stays off the path
        from bar close to order. Reads and `close` flush by themselves. Execution's marks that
        wait in memory (`MARK_COMMIT_BARS`) are committed too, and inference asks the
        registry whether its reference moved, when ``inference.reload_interval`` has passed
        (`InferenceService.maybe_reload`: off the decisions' path)."""
        flush = getattr(self.market_data, "flush", None)
        if flush is not None:
            flush()
        if self.online is not None:
            self.online.execution.service.flush()
            self.online.inference.service.maybe_reload()

    def close(self) -> None:
        if self.online is not None:
            self.online.ingest.stop()
            try:
                self.online.execution.service.flush()
            except Exception as exc:  # re-derivable state: never mask why the session ended
                structlog.get_logger(__name__).warning(
                    "execution marks not committed at close (the next bars mark the book again)",
                    error=str(exc),
                )
            finally:
                self.online.execution.close()
        self.bus.close()
        self.market_data.close()

    def __enter__(self) -> EmbeddedRuntime:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
