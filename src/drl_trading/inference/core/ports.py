"""Ports of the inference service: where models, positions and prices come from.

The model registry, the execution side's book and the market price feed are all outside
inference; the core only sees these Protocols, so tests drive it with fakes and the registry
technology (MLflow, the in-memory fake) is an adapter choice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from drl_trading.common.domain import Symbol
from drl_trading.training.core.predictor import Predictor


@dataclass(frozen=True, slots=True)
class AgentPosition:
    """The agent's own position in the terms the training environment used.

    ``target_position`` is the last target the execution side reached, not the current fraction
    of equity (which drifts with the price): the environment's state holds the target, so a model
    fed the drifted fraction would see states it was never trained on.
    """

    target_position: float
    """In [-1, 1]; 0 when flat."""
    entry_price: float = 0.0
    """Fill price of the entry; 0 when flat."""
    bars_in_position: int = 0
    """Base-timeframe bars since the entry, counted as the environment does (1 on the first)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.target_position) and -1.0 <= self.target_position <= 1.0):
            raise ValueError(f"target_position {self.target_position} outside [-1, 1]")
        if not (math.isfinite(self.entry_price) and self.entry_price >= 0.0):
            raise ValueError(f"entry_price {self.entry_price} must be >= 0")
        if self.bars_in_position < 0:
            raise ValueError(f"bars_in_position {self.bars_in_position} must be >= 0")

    @classmethod
    def flat(cls) -> AgentPosition:
        return cls(0.0, 0.0, 0)


class PositionProvider(Protocol):
    def agent_position(self, symbol: Symbol) -> AgentPosition:
        """The symbol's position as of the last fill; flat for a symbol never traded."""
        ...


PriceSource = Callable[[Symbol], float]
"""The latest close of ``symbol`` (the base bar that just closed, i.e. its last 1m close).

The unrealised-return part of the agent state is priced at the close of the bar whose features
are observed, as in training; the features themselves do not carry prices. Only called while a
position is open. Raise `LookupError` (or return a non-positive value) when no price is known:
the symbol is then skipped rather than fed a made-up state.
"""


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
