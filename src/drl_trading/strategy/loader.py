"""Finds a strategy by entry-point name or by dotted path, so it can live in any package.

``example`` looks up the entry point ``example`` in the group ``drl_trading.strategies`` (what a
strategy package declares in its pyproject.toml); ``my_pkg.module:MyStrategy`` imports the
attribute directly. A class is instantiated with the strategy's parameters from the config.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from drl_trading.strategy.api import Strategy

ENTRY_POINT_GROUP = "drl_trading.strategies"


class StrategyLoadError(LookupError):
    pass


def available_strategies() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_strategy(ref: str, params: dict[str, Any] | None = None) -> Strategy:
    params = params or {}
    if ":" in ref:
        module_name, _, attr = ref.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise StrategyLoadError(
                f"strategy {ref!r}: cannot import {module_name}: {exc}"
            ) from exc
        try:
            target: Any = getattr(module, attr)
        except AttributeError:
            raise StrategyLoadError(f"strategy {ref!r}: {module_name} has no {attr}") from None
    else:
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == ref]
        if not found:
            known = ", ".join(sorted(available_strategies())) or "none installed"
            raise StrategyLoadError(
                f"no strategy named {ref!r} (entry points in {ENTRY_POINT_GROUP}: {known}); "
                "install its package or give a dotted path 'package.module:Class'"
            )
        target = found[0].load()
    strategy = target(**params) if isinstance(target, type) else target
    if params and not isinstance(target, type):
        raise StrategyLoadError(f"strategy {ref!r} is an instance; it takes no params")
    missing = [
        m
        for m in ("name", "version", "feature_set", "reward", "risk_parameters", "validate_signal")
        if not hasattr(strategy, m)
    ]
    if missing:
        raise StrategyLoadError(f"strategy {ref!r} lacks {', '.join(missing)}")
    return strategy  # type: ignore[no-any-return]
