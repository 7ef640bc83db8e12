"""A training run submitted to the distributed deployment: what `drl-trading submit-training` runs.

The submitter plays the design's first arrows: it tells the training worker what to train
(``requested.training``) and submits the training data request to ingest, here in this process
(history from the chosen source into the shared market-data store, then
``requested.preprocess-data`` on the bus). The preprocess process computes the features, the
training worker (`drl-trading serve training`, any machine) trains, registers and backtests, and
announces ``completed.training`` (or ``error.training``), which `TrainingSubmission.wait` waits
for. It listens as its own consumer group, ``submit-<correlation id>``, subscribed before
anything is requested so that the answer cannot be missed.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType

from drl_trading.app.infrastructure import build_bus, build_market_data
from drl_trading.app.ingest import Source
from drl_trading.app.offline_workflow import IngestProgress, ingest_history
from drl_trading.app.settings import AppSettings
from drl_trading.common.events import (
    ErrorOccurred,
    Event,
    Topic,
    TrainingCompleted,
    TrainingRequested,
)
from drl_trading.ingest.core.service import IngestReport, TrainingDataRequest


class TrainingSubmission:
    """One submitted run, from the request to the worker's answer, on the configured bus and
    market-data store (both closed by `close`)."""

    def __init__(
        self,
        settings: AppSettings,
        request: TrainingDataRequest,
        *,
        total_timesteps: int | None = None,
        listen: bool = True,
    ) -> None:
        """``total_timesteps``: None trains as long as the worker's config says; ``listen``:
        subscribe to the worker's answers (needed by `wait`)."""
        self.settings = settings
        self.request = request
        self.total_timesteps = total_timesteps
        self.outcome: list[Event] = []
        """The worker's answers for this correlation id, in arrival order."""
        self.bus = build_bus(settings)
        try:
            self.market_data = build_market_data(settings, write_behind=False)
        except BaseException:  # read by preprocess next: nothing may stay behind
            self.bus.close()
            raise
        if listen:
            group = f"submit-{self.correlation_id}"
            for topic in (Topic.TRAINING_COMPLETED, Topic.error("training")):
                self.bus.subscribe(topic, group=group, handler=self._on_answer)

    @property
    def correlation_id(self) -> str:
        return self.request.request_id

    def submit(
        self, source: Source, path: Path | None, *, on_progress: IngestProgress | None = None
    ) -> IngestReport:
        """Request the training, then ingest the history and request its features. Raises
        `SourceError` / `WorkflowError` as `ingest_history` does."""
        req, syms = self.request, self.request.symbols
        # the worker learns of the run first: the features it waits for come after
        self.bus.publish(
            Topic.TRAINING_REQUESTED,
            TrainingRequested(
                correlation_id=self.correlation_id,
                symbols=list(syms),
                start=req.range.start,
                end=req.range.end,
                total_timesteps=self.total_timesteps,
            ),
            key=",".join(str(s) for s in syms),
        )
        report = ingest_history(
            self.settings,
            self.bus,
            self.market_data,
            source,
            path,
            req,
            request_preprocessing=True,
            on_progress=on_progress,
        )
        flush = getattr(self.market_data, "flush", None)
        if flush is not None:
            flush()
        return report

    def wait(self, timeout: float) -> TrainingCompleted | ErrorOccurred | None:
        """The worker's answer, or None when none came within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self.outcome and time.monotonic() < deadline:
            self.bus.poll(timeout=0.5)
        if not self.outcome:
            return None
        got = self.outcome[0]
        assert isinstance(got, TrainingCompleted | ErrorOccurred)
        return got

    def _on_answer(self, event: Event) -> None:
        if event.correlation_id == self.correlation_id:
            self.outcome.append(event)

    def close(self) -> None:
        try:
            self.bus.close()
        finally:
            self.market_data.close()

    def __enter__(self) -> TrainingSubmission:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
