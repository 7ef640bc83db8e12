"""Composition of the preprocess service (offline batches, the online catch-up and live bars),
on each symbol's market calendar (``markets`` settings)."""

from __future__ import annotations

from drl_trading.app.infrastructure import build_calendars, feature_set_for
from drl_trading.app.settings import AppSettings
from drl_trading.app.topology import subscribe
from drl_trading.common.ports import FeatureStore, MarketDataRepository, MessageBus
from drl_trading.preprocess.adapter.bus_handlers import PreprocessHandlers
from drl_trading.preprocess.core.online_service import OnlinePreprocessService
from drl_trading.preprocess.core.service import PreprocessService


def bootstrap_preprocess(
    settings: AppSettings,
    bus: MessageBus,
    market_data: MarketDataRepository,
    feature_store: FeatureStore,
) -> PreprocessHandlers:
    cfg = settings.preprocess
    calendars = build_calendars(settings)
    service = PreprocessService(
        market_data,
        feature_store,
        feature_set_for(settings),
        store_timeframes=cfg.store_timeframes,
        calendars=calendars,
    )
    online = OnlinePreprocessService(
        market_data, feature_store, feature_set_for(settings), calendars=calendars
    )
    handlers = PreprocessHandlers(service, bus, online=online)
    subscribe(bus, "preprocess", handlers)
    return handlers
