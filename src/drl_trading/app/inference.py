"""Composition root of the inference service."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from drl_trading.common.events import Topic
from drl_trading.common.ports import (
    Clock,
    FeatureStore,
    FeatureViewSpec,
    MessageBus,
    PositionProvider,
    PriceSource,
)
from drl_trading.inference.adapter.bus_handlers import GROUP, InferenceHandlers
from drl_trading.inference.core.config import InferenceSettings
from drl_trading.inference.core.ports import ModelSource
from drl_trading.inference.core.service import InferenceService


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
) -> InferenceComponents:
    """Loads the model (failing fast on an incompatible one) and subscribes to online
    completions. ``model_name``: what an alias-only ``model_ref`` refers to, normally the
    training service's model name."""
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
    )
    handlers = InferenceHandlers(service, bus)
    bus.subscribe(
        Topic.PREPROCESS_COMPLETED_ONLINE, group=GROUP, handler=handlers.on_preprocess_completed
    )
    return InferenceComponents(service, handlers)
