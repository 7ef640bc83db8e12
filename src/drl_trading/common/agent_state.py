"""The agent's own state as the policy observes it: the same three numbers in training and live.

Training computes them inside the environment, the live inference service from the positions
execution reports; both call `agent_state` so that a model never sees a state encoded differently
from the one it was trained on.
"""

from __future__ import annotations

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
