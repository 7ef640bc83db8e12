"""Ports of the inference service: where models come from (positions and prices: the kernel's
`PositionProvider` and `PriceSource`, which execution implements).

The model registry is outside inference; the core only sees `ModelSource`, so tests drive it
with a fake and the registry technology (MLflow, the in-memory fake) is an adapter choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from drl_trading.policy.predictor import Predictor


@dataclass(frozen=True, slots=True)
class LoadedModel:
    name: str
    version: str
    predictor: Predictor


class ModelSource(Protocol):
    def resolve(self, ref: str) -> str:
        """The concrete version ``ref`` (``NAME@alias``, ``NAME/3``...) points at now; cheap
        enough to poll, which is how aliases moving to a new version are noticed."""
        ...

    def load(self, ref: str) -> LoadedModel:
        """Resolves ``ref`` and loads that version; ``LoadedModel.version`` is the one loaded
        (the alias may have moved since an earlier `resolve`)."""
        ...
