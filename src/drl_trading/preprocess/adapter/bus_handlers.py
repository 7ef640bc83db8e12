"""Bus entry point of preprocessing: decode, call the service for the request's mode, publish.

Offline requests run the batch path; catch-up and online requests run the online engine, which
publishes higher-timeframe bars for ingest to store and a completion per new feature vector.
`on_symbols_moved` is what the composition calls when the bus hands symbols to another instance.
"""

from __future__ import annotations

from collections.abc import Iterable

from drl_trading.common.events import Event, PreprocessDataRequested, ProcessingMode, Topic
from drl_trading.common.ports import MessageBus
from drl_trading.preprocess.core.online_service import OnlinePreprocessService
from drl_trading.preprocess.core.service import PreprocessService, ProgressCallback


class PreprocessHandlers:
    def __init__(
        self,
        service: PreprocessService,
        bus: MessageBus,
        on_progress: ProgressCallback | None = None,
        online: OnlinePreprocessService | None = None,
    ) -> None:
        self._service = service
        self._bus = bus
        self.on_progress = on_progress
        self.online = online

    def on_symbols_moved(self, held: Iterable[str]) -> None:
        """The bus moved symbols between the instances of preprocess; ``held``: the symbols
        whose bars this instance handled and still receives. Every other symbol's online state
        is dropped: it may miss bars another instance handled (a catch-up request builds state
        for all its symbols, wherever their partitions are), and is rebuilt from the stored bars
        at its next bar here."""
        if self.online is not None:
            keep = set(held)
            self.online.forget([str(s) for s in self.online.engines if str(s) not in keep])

    def on_preprocess_requested(self, event: Event) -> None:
        if not isinstance(event, PreprocessDataRequested):
            raise TypeError(f"expected PreprocessDataRequested, got {type(event).__name__}")
        key = str(event.symbols[0])
        if event.mode is ProcessingMode.OFFLINE or self.online is None:
            completed = self._service.preprocess(event, on_progress=self.on_progress)
            self._bus.publish(completed.topic, completed, key=key)
            return
        if event.mode is ProcessingMode.CATCHUP:
            completed = self.online.catch_up(event)
            self._bus.publish(completed.topic, completed, key=key)
            return
        stores, done = self.online.on_bar(event)
        for store in stores:
            self._bus.publish(Topic.STORE_RESAMPLED_REQUESTED, store, key=str(store.symbol))
        if done is not None:
            self._bus.publish(done.topic, done, key=key)
