"""Composition root of the training service: registry, trainer, code revision, report files,
strategy, service, bus subscription."""

from __future__ import annotations

from datetime import datetime

from drl_trading.app.data_timeframe import data_timeframe
from drl_trading.app.infrastructure import (
    build_calendars,
    build_registry,
    build_strategy,
    feature_set_for,
    model_name_for,
)
from drl_trading.app.settings import AppSettings
from drl_trading.app.topology import subscribe
from drl_trading.common.domain import Symbol, Timeframe
from drl_trading.common.model_registry import ModelRegistry
from drl_trading.common.ports import FeatureStore, MarketDataRepository, MessageBus
from drl_trading.training.adapter.bus_handlers import TrainingHandlers
from drl_trading.training.adapter.git_revision import GitRevision
from drl_trading.training.adapter.installed_versions import InstalledVersions
from drl_trading.training.adapter.registry_packages import RegistryPackages
from drl_trading.training.adapter.report_files import ReportFiles
from drl_trading.training.adapter.sb3_trainer import SB3Trainer
from drl_trading.training.core.service import TrainingService


def build_training_service(
    settings: AppSettings,
    market_data: MarketDataRepository,
    feature_store: FeatureStore,
    registry: ModelRegistry | None = None,
) -> TrainingService:
    registry = registry or build_registry(settings)

    def stored_data_timeframe(
        symbols: tuple[Symbol, ...], start: datetime, end: datetime
    ) -> Timeframe:
        """The finest timeframe stored for ``symbols``: the one they were ingested under."""
        return data_timeframe(market_data, symbols, start, end)

    return TrainingService(
        market_data,
        feature_store,
        registry,
        build_strategy(settings),
        feature_set_for(settings),
        settings.training,
        model_name=model_name_for(settings),
        trainer=SB3Trainer(
            device=settings.training.device, torch_threads=settings.training.torch_threads
        ),
        revision=GitRevision(),
        reports=ReportFiles(settings.reports_dir),
        packages=RegistryPackages(registry),
        libraries=InstalledVersions(),
        resolved_config=settings.masked_dump(),
        strategy_ref=settings.strategy.ref,
        calendars=build_calendars(settings),
        data_timeframe=stored_data_timeframe,
    )


def bootstrap_training(
    settings: AppSettings,
    bus: MessageBus,
    market_data: MarketDataRepository,
    feature_store: FeatureStore,
    registry: ModelRegistry | None = None,
    *,
    worker: bool = False,
) -> TrainingHandlers:
    """``worker``: also take ``requested.training`` events and announce ``completed.training``
    (the distributed worker); otherwise requests come in process through `expect`."""
    service = build_training_service(settings, market_data, feature_store, registry)
    handlers = TrainingHandlers(service, bus if worker else None)
    subscribe(bus, "training", handlers, worker=worker)
    return handlers
