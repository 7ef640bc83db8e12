"""The embedded runtime: every service in one process around an in-memory bus and embedded stores.

It wires the same handlers the distributed processes run; `run_until_idle` pumps the bus until
no message is pending, which is how a CLI command turns "publish a request" into "workflow done".
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from drl_trading.common.adapter.memory_bus import InMemoryBus
from drl_trading.common.infrastructure import build_bus, build_feature_store, build_market_data
from drl_trading.common.ports import FeatureStore, MarketDataRepository
from drl_trading.common.settings import AppSettings
from drl_trading.preprocess.adapter.bus_handlers import PreprocessHandlers
from drl_trading.preprocess.application.bootstrap import bootstrap_preprocess

if TYPE_CHECKING:
    from drl_trading.training.adapter.bus_handlers import TrainingHandlers
    from drl_trading.training.core.ports import ModelRegistry


@dataclass
class EmbeddedRuntime:
    settings: AppSettings
    bus: InMemoryBus
    market_data: MarketDataRepository
    feature_store: FeatureStore
    preprocess: PreprocessHandlers
    training: TrainingHandlers | None = None

    @classmethod
    def open(cls, settings: AppSettings) -> EmbeddedRuntime:
        settings.home.mkdir(parents=True, exist_ok=True)
        bus = build_bus(settings)
        market_data = build_market_data(settings)
        feature_store = build_feature_store(settings)
        preprocess = bootstrap_preprocess(settings, bus, market_data, feature_store)
        return cls(settings, bus, market_data, feature_store, preprocess)

    def enable_training(self, registry: ModelRegistry | None = None) -> TrainingHandlers:
        """Subscribe the training service (imports torch and MLflow, hence not by default)."""
        if self.training is None:
            from drl_trading.training.application.bootstrap import bootstrap_training

            self.training = bootstrap_training(
                self.settings, self.bus, self.market_data, self.feature_store, registry
            )
        return self.training

    def run_until_idle(self, max_messages: int = 1_000_000) -> int:
        handled = 0
        while handled < max_messages:
            n = self.bus.poll(max_messages - handled)
            if n == 0:
                break
            handled += n
        return handled

    def close(self) -> None:
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
