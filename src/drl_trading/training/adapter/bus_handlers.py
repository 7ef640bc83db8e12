"""Bus entry point of training: a submitted training request waits for its features.

The design's offline workflow starts at training: it submits a training data request to ingest
and trains once ``completed.preprocess-data.offline`` arrives for that request. The correlation
id ties the two together, so offline preprocessing started for another reason (a user running
``ingest --preprocess``) does not start a training run.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from drl_trading.common.events import Event, PreprocessDataCompleted, ProcessingMode
from drl_trading.training.core.service import TrainingRequest, TrainingResult, TrainingService

GROUP = "training"
log = structlog.get_logger(__name__)


class TrainingFailedError(RuntimeError):
    """Training is deterministic given its data and config: retrying a failure would only burn
    minutes, so the bus dead-letters it at once and reports it on ``error.training``."""

    retryable = False


@dataclass(frozen=True)
class PendingTraining:
    request: TrainingRequest


class TrainingHandlers:
    def __init__(self, service: TrainingService) -> None:
        self.service = service
        self.pending: dict[str, PendingTraining] = {}
        self.results: dict[str, TrainingResult] = {}

    def expect(self, request: TrainingRequest) -> None:
        """Train ``request`` when preprocessing completes for its correlation id."""
        self.pending[request.correlation_id] = PendingTraining(request)

    def on_preprocess_completed(self, event: Event) -> None:
        if not isinstance(event, PreprocessDataCompleted):
            raise TypeError(f"expected PreprocessDataCompleted, got {type(event).__name__}")
        if event.mode is not ProcessingMode.OFFLINE:
            return
        pending = self.pending.get(event.correlation_id)
        if pending is None:
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
