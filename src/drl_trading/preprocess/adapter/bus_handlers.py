"""Bus entry point of preprocessing: decode, call the service, publish the outcome."""

from __future__ import annotations

from drl_trading.common.events import Event, PreprocessDataRequested
from drl_trading.common.ports import MessageBus
from drl_trading.preprocess.core.service import PreprocessService, ProgressCallback

GROUP = "preprocess"


class PreprocessHandlers:
    def __init__(
        self,
        service: PreprocessService,
        bus: MessageBus,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self._service = service
        self._bus = bus
        self.on_progress = on_progress

    def on_preprocess_requested(self, event: Event) -> None:
        if not isinstance(event, PreprocessDataRequested):
            raise TypeError(f"expected PreprocessDataRequested, got {type(event).__name__}")
        completed = self._service.preprocess(event, on_progress=self.on_progress)
        self._bus.publish(completed.topic, completed, key=str(event.symbols[0]))
