"""Bus entry points of online ingest: the catch-up completion and resampled bars to store
(subscribed by `drl_trading.app.topology`).

Both handlers are idempotent (a completion already acted on is ignored, bars are upserted), as the
bus's at-least-once delivery requires.
"""

from __future__ import annotations

from drl_trading.common.events import (
    Event,
    PreprocessDataCompleted,
    StoreResampledDataRequested,
)
from drl_trading.ingest.core.online_service import OnlineIngestService


class OnlineIngestHandlers:
    def __init__(self, service: OnlineIngestService) -> None:
        self.service = service

    def on_preprocess_completed(self, event: Event) -> None:
        if not isinstance(event, PreprocessDataCompleted):
            raise TypeError(f"expected PreprocessDataCompleted, got {type(event).__name__}")
        self.service.on_preprocess_completed(event)

    def on_store_resampled(self, event: Event) -> None:
        if not isinstance(event, StoreResampledDataRequested):
            raise TypeError(f"expected StoreResampledDataRequested, got {type(event).__name__}")
        self.service.on_store_resampled(event)
