"""Composition root of the preprocess service."""

from __future__ import annotations

from drl_trading.app.infrastructure import feature_set_for
from drl_trading.app.settings import AppSettings
from drl_trading.common.events import Topic
from drl_trading.common.ports import FeatureStore, MarketDataRepository, MessageBus
from drl_trading.preprocess.adapter.bus_handlers import GROUP, PreprocessHandlers
from drl_trading.preprocess.core.online_service import OnlinePreprocessService
from drl_trading.preprocess.core.service import PreprocessService


def bootstrap_preprocess(
    settings: AppSettings,
    bus: MessageBus,
    market_data: MarketDataRepository,
    feature_store: FeatureStore,
) -> PreprocessHandlers:
    cfg = settings.preprocess
    service = PreprocessService(
        market_data, feature_store, feature_set_for(settings), store_timeframes=cfg.store_timeframes
    )
    online = OnlinePreprocessService(market_data, feature_store, feature_set_for(settings))
    handlers = PreprocessHandlers(service, bus, online=online)
    bus.subscribe(Topic.PREPROCESS_REQUESTED, group=GROUP, handler=handlers.on_preprocess_requested)
    return handlers
