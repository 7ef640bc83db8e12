"""Bus entry point of inference: ``completed.preprocess-data.online`` in, ``completed.predict`` out.

Predictions are keyed by symbol so that execution sees one symbol's decisions in bar order. A
redelivered completion republishes the decisions already made for its bar (same event ids), which
keeps the handler idempotent while making sure a crash between two publishes loses nothing.
Another instance recomputing a bar after a crash gives its decision the same id (`prediction_id`),
which execution drops as already processed.
"""

from __future__ import annotations

from collections.abc import Iterable

from drl_trading.common.events import Event, PreprocessDataCompleted, ProcessingMode, Topic
from drl_trading.common.ports import MessageBus
from drl_trading.inference.core.service import InferenceService


class InferenceHandlers:
    def __init__(self, service: InferenceService, bus: MessageBus) -> None:
        self.service = service
        self._bus = bus

    def on_symbols_moved(self, held: Iterable[str]) -> None:
        """The bus moved symbols between the instances of inference; ``held``: those this
        instance decided for and still receives. The others' per-symbol state is dropped."""
        self.service.retain(held)

    def on_preprocess_completed(self, event: Event) -> None:
        if not isinstance(event, PreprocessDataCompleted):
            raise TypeError(f"expected PreprocessDataCompleted, got {type(event).__name__}")
        if event.mode is not ProcessingMode.ONLINE:
            return
        for prediction in self.service.on_features(event):
            self._bus.publish(Topic.PREDICT_COMPLETED, prediction, key=str(prediction.symbol))
