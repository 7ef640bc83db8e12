"""Bus entry point of training: a submitted training request waits for its features.

The design's offline workflow starts at training: it submits a training data request to ingest
and trains once ``completed.preprocess-data.offline`` arrives for that request. The correlation
id ties the two together, so offline preprocessing started for another reason (a user running
``ingest --preprocess``) does not start a training run.

A request reaches the handlers either in process (`expect`, the embedded CLI) or as a
``requested.training`` event (the distributed worker, `drl-trading serve training`); the two
topics are consumed independently, so a completion that arrives before its request is kept (a
bounded number of them) and matched when the request comes. A finished run is announced on
``completed.training`` when a bus is given.

Pending requests live in the worker's memory, and the bus's log is their durable copy: at start
the worker reads ``requested.training`` back and takes up every request that has neither a
``completed.training`` nor an ``error.training`` (`resume`). A run cut short by a crash is redone:
its features' completion was not committed, so it is delivered again.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import structlog

from drl_trading.common.domain import TimeRange
from drl_trading.common.events import (
    Event,
    PreprocessDataCompleted,
    ProcessingMode,
    Topic,
    TrainingCompleted,
    TrainingRequested,
)
from drl_trading.common.ports import MessageBus
from drl_trading.training.core.service import TrainingRequest, TrainingResult, TrainingService

log = structlog.get_logger(__name__)


class TrainingFailedError(RuntimeError):
    """Training is deterministic given its data and config: retrying a failure would only burn
    minutes, so the bus dead-letters it at once and reports it on ``error.training``."""

    retryable = False


@dataclass(frozen=True)
class PendingTraining:
    request: TrainingRequest


class TrainingHandlers:
    def __init__(
        self, service: TrainingService, bus: MessageBus | None = None, *, keep_ready: int = 100
    ) -> None:
        self.service = service
        self.bus = bus
        self.pending: dict[str, PendingTraining] = {}
        self.results: dict[str, TrainingResult] = {}
        self._ready: OrderedDict[str, PreprocessDataCompleted] = OrderedDict()
        self._keep_ready = keep_ready

    def expect(self, request: TrainingRequest) -> None:
        """Train ``request`` when preprocessing completes for its correlation id."""
        self.pending[request.correlation_id] = PendingTraining(request)

    def resume(self, requested: list[Event], finished: list[Event]) -> int:
        """Take up the requests of ``requested`` that no event of ``finished`` (completions and
        errors of training runs) answered; returns how many are pending again."""
        done = {e.correlation_id for e in finished}
        taken = 0
        for event in requested:
            cid = event.correlation_id
            known = cid in done or cid in self.pending or cid in self.results
            if isinstance(event, TrainingRequested) and not known:
                self.on_training_requested(event)
                taken += 1
        if taken:
            log.info("training requests taken up again", pending=taken)
        return taken

    def on_training_requested(self, event: Event) -> None:
        if not isinstance(event, TrainingRequested):
            raise TypeError(f"expected TrainingRequested, got {type(event).__name__}")
        cid = event.correlation_id
        if cid in self.results:
            log.info("training request already served", correlation=cid)
            return
        request = TrainingRequest(
            tuple(event.symbols),
            TimeRange(event.start, event.end),
            cid,
            event.total_timesteps,
        )
        self.expect(request)
        log.info(
            "training requested; waiting for its offline features",
            correlation=cid,
            symbols=[str(s) for s in event.symbols],
        )
        ready = self._ready.pop(cid, None)
        if ready is not None:  # the features were faster than the request
            self.on_preprocess_completed(ready)

    def on_preprocess_completed(self, event: Event) -> None:
        if not isinstance(event, PreprocessDataCompleted):
            raise TypeError(f"expected PreprocessDataCompleted, got {type(event).__name__}")
        if event.mode is not ProcessingMode.OFFLINE:
            return
        pending = self.pending.get(event.correlation_id)
        if pending is None:
            if self.bus is not None:  # a request may still be on its way
                self._ready[event.correlation_id] = event
                while len(self._ready) > self._keep_ready:
                    self._ready.popitem(last=False)
            log.info(
                "offline features ready; no training requested", correlation=event.correlation_id
            )
            return
        del self.pending[event.correlation_id]
        try:
            result = self.service.train(pending.request)
        except Exception as exc:
            raise TrainingFailedError(f"{type(exc).__name__}: {exc}") from exc
        self.results[event.correlation_id] = result
        if self.bus is not None:
            done = completed_event(event.correlation_id, result)
            self.bus.publish(Topic.TRAINING_COMPLETED, done, key=result.model.name)


def completed_event(correlation_id: str, result: TrainingResult) -> TrainingCompleted:
    return TrainingCompleted(
        correlation_id=correlation_id,
        model_name=result.model.name,
        model_version=result.model.version,
        run_id=result.run_id,
        champion=result.champion,
        gate_reason=result.gate_reason,
        metrics={
            "validation_sharpe": result.validation.mean("model", "sharpe"),
            "validation_total_return": result.validation.mean("model", "total_return"),
            "test_sharpe": result.test.mean("model", "sharpe"),
            "test_total_return": result.test.mean("model", "total_return"),
            "test_max_drawdown": result.test.mean("model", "max_drawdown"),
            "timesteps": float(result.timesteps),
        },
    )
