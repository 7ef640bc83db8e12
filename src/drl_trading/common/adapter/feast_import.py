"""Feast, imported without two costs of its import that this project never uses.

Measured on the 2-core development machine (2026-12-03, ``from feast import FeatureStore`` in a
new process, three runs): 10.5-12.4 s as Feast imports itself, 2.1-2.4 s through `import_feast`.
Every command that reads or writes features (``quickstart``, ``backtest``, ``paper``,
``features export``, the preprocess and inference services) pays it once per process.

- **typeguard** (~6 s of it): Feast decorates its classes (entities, data sources, feature views,
  the SQLite online store...) with ``@typechecked``, which reads each class's source, rewrites
  its syntax tree and compiles it again, at import. The checks it adds guard the arguments of
  Feast's constructors; ours are built from validated settings and checked by mypy against
  Feast's annotations. While Feast imports, ``typeguard.typechecked`` returns what it is given;
  it is restored afterwards, for any other user of typeguard.
- **torch** (~3 s): ``feast.torch_wrapper`` imports torch eagerly so that Feast can hand out
  tensors (``to_tensor``), which this project never asks for. It is replaced by a module with the
  same ``get_torch`` that imports torch when first called. This keeps the inference service free
  of torch, as the house plan says (``tests/unit/test_house_plan.py``).

Feast is pinned (``constraints.txt``); ``tests/unit/test_feast_import.py`` checks that the pinned
Feast still imports and works this way, and fails if a new Feast reads another name of
its torch wrapper.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

FEAST_TORCH_WRAPPER = "feast.torch_wrapper"

CHECKED_MODULES = (
    "feast",
    "feast.repo_config",
    "feast.infra.online_stores.sqlite",
)
"""The Feast modules imported while ``@typechecked`` is switched off: the package, its settings,
and the embedded online store, which Feast would otherwise import later and which decorates its
classes too. The stores of the distributed mode (Redis, the duckdb offline store) have no
``@typechecked``."""

_LOCK = threading.Lock()


def _unchecked(target: Any = None, **_options: Any) -> Any:
    """``typeguard.typechecked`` that instruments nothing: the target as given, or (called
    with options only) a decorator that returns its target."""
    if target is None:
        return lambda inner: inner
    return target


def _lazy_torch_wrapper() -> types.ModuleType:
    """A ``feast.torch_wrapper`` whose ``get_torch`` imports torch at its first call and, as
    Feast's does, raises `ImportError` with the reason when torch cannot be imported."""
    module = types.ModuleType(FEAST_TORCH_WRAPPER)
    module.__doc__ = "Feast's torch wrapper, importing torch on first use (drl_trading)."

    def get_torch() -> Any:
        try:
            return importlib.import_module("torch")
        except Exception as exc:  # Feast catches every import error (missing CUDA libraries)
            raise ImportError(f"Torch is not available or failed to import: {exc}") from exc

    module.get_torch = get_torch  # type: ignore[attr-defined]
    return module


def import_feast() -> types.ModuleType:
    """The ``feast`` package, imported the lean way on the first call (see the module's
    docstring); an already imported Feast is returned as it is."""
    with _LOCK:
        loaded = sys.modules.get("feast")
        if loaded is not None and all(name in sys.modules for name in CHECKED_MODULES):
            return loaded
        import typeguard

        sys.modules.setdefault(FEAST_TORCH_WRAPPER, _lazy_torch_wrapper())
        original: Callable[..., Any] = typeguard.typechecked
        typeguard.typechecked = _unchecked
        try:
            for name in CHECKED_MODULES:
                importlib.import_module(name)
        finally:
            typeguard.typechecked = original  # type: ignore[assignment]
        return sys.modules["feast"]
