"""Composition of the inference service: the model from the registry, features from the online
store, positions and prices from execution (in process, or its store across processes)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from drl_trading.app.infrastructure import (
    build_calendars,
    build_registry,
    feature_set_for,
    model_name_for,
)
from drl_trading.app.settings import AppSettings
from drl_trading.app.topology import subscribe
from drl_trading.common.calendar import CalendarBook
from drl_trading.common.domain import Symbol
from drl_trading.common.model_registry import ModelRegistry
from drl_trading.common.ports import (
    Clock,
    FeatureStore,
    FeatureViewSpec,
    MessageBus,
    PositionProvider,
    PriceSource,
)
from drl_trading.inference.adapter.bus_handlers import InferenceHandlers
from drl_trading.inference.adapter.registry_model_source import RegistryModelSource
from drl_trading.inference.core.config import InferenceSettings
from drl_trading.inference.core.ports import ModelSource
from drl_trading.inference.core.service import InferenceService
from drl_trading.strategy.feature_view import view_for


@dataclass(frozen=True, slots=True)
class InferenceComponents:
    service: InferenceService
    handlers: InferenceHandlers


def bootstrap_inference(
    settings: InferenceSettings,
    feature_store: FeatureStore,
    view: FeatureViewSpec,
    models: ModelSource,
    positions: PositionProvider,
    prices: PriceSource,
    clock: Clock,
    bus: MessageBus,
    *,
    model_name: str | None = None,
    reload_timer: Callable[[], float] | None = None,
    calendars: CalendarBook | None = None,
    symbols: Sequence[Symbol] = (),
    reload_between_events: bool = False,
) -> InferenceComponents:
    """Loads the model (failing fast on an incompatible one, also one trained on another
    market calendar than ``symbols`` trade on) and subscribes to online completions.
    ``model_name``: what an alias-only ``model_ref`` refers to, normally the training service's
    model name; ``calendars``: each symbol's market calendar (None: 24/7);
    ``reload_between_events``: the caller's loop polls the registry between events
    (`InferenceService.maybe_reload`), not the decisions."""
    service = InferenceService(
        feature_store,
        view,
        models,
        positions,
        prices,
        clock,
        model_ref=settings.reference(model_name),
        max_feature_age=settings.max_feature_age,
        reload_interval=settings.reload_interval,
        reload_timer=reload_timer,
        calendars=calendars,
        symbols=symbols,
        reload_between_events=reload_between_events,
    )
    handlers = InferenceHandlers(service, bus)
    subscribe(bus, "inference", handlers)
    return InferenceComponents(service, handlers)


def compose_inference(
    settings: AppSettings,
    bus: MessageBus,
    feature_store: FeatureStore,
    positions: PositionProvider,
    prices: PriceSource,
    clock: Clock,
    *,
    model_ref: str | None = None,
    registry: ModelRegistry | None = None,
    symbols: Sequence[Symbol] = (),
    reload_between_events: bool = False,
) -> InferenceComponents:
    """Inference of ``settings`` on ``bus``. ``model_ref`` overrides ``inference.model_ref``
    (``NAME@alias``, ``NAME/version`` or an alias); ``registry`` defaults to the configured one.
    The registry is polled for alias moves by wall time, also in fast replays: by the first
    decision due after each ``inference.reload_interval`` or, with ``reload_between_events``,
    by the caller's loop between events (`InferenceService.maybe_reload`), off the decisions'
    path. ``symbols`` (the traded ones) are checked against the model's market calendar before
    it serves."""
    cfg = settings.inference
    if model_ref is not None:
        cfg = cfg.model_copy(update={"model_ref": model_ref})
    return bootstrap_inference(
        cfg,
        feature_store,
        view_for(feature_set_for(settings)),
        RegistryModelSource(registry or build_registry(settings)),
        positions,
        prices,
        clock,
        bus,
        model_name=model_name_for(settings),
        reload_timer=time.monotonic,
        calendars=build_calendars(settings),
        symbols=symbols,
        reload_between_events=reload_between_events,
    )
