"""The agent's positions and its own state as the policy observes it, the same in training and live.

Training computes the state inside the environment, the live inference service from the positions
execution reports (`AgentPosition`); both call `agent_state` so that a model never sees a state
encoded differently from the one it was trained on. `DISCRETE_POSITIONS` is what a discrete
action means, for the environment, the policy and the backtest alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DISCRETE_POSITIONS = (-1.0, 0.0, 1.0)
"""Discrete action i means target position DISCRETE_POSITIONS[i] * max_position."""

STATE_SIZE = 3
STATE_NAMES = ("position", "unrealised_return", "time_in_position")
HOLDING_HALF_LIFE_BARS = 100.0
"""``time_in_position`` is bars / (bars + this): 0 when flat, 0.5 after this many bars, < 1."""


def agent_state(
    position: float, entry_price: float, price: float, bars_in_position: int
) -> tuple[float, float, float]:
    """``position`` in [-1, 1]; unrealised return of the open position at ``price`` (signed, so a
    short that gained is positive); time in position squashed into [0, 1)."""
    if position == 0.0 or entry_price <= 0.0:
        return 0.0, 0.0, 0.0
    unrealised = (price / entry_price - 1.0) * (1.0 if position > 0 else -1.0)
    return position, unrealised, bars_in_position / (bars_in_position + HOLDING_HALF_LIFE_BARS)


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
