"""The positions a model is compared against: buy-and-hold, flat and a random agent.

Each is a position array fed to the same `simulate` and the same costs as the model, so the
comparison differs in the decisions only.
"""

from __future__ import annotations

import numpy as np


def buy_and_hold_positions(n: int) -> np.ndarray:
    return np.ones(n, dtype=np.float64)


def flat_positions(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.float64)


def random_positions(
    n: int, seed: int, discrete: bool = True, mean_hold: float = 20.0
) -> np.ndarray:
    """A random agent that trades like a plausible policy rather than flipping every bar, so the
    model is compared against random *timing* at a realistic cost, not against a fee bonfire.

    It holds each choice for a geometric number of bars with mean ``mean_hold`` (at least one).
    Discrete: the first position is uniform over {-1, 0, 1} and each new choice is uniform over
    the two *other* values, so every switch is a real trade, runs of equal positions have mean
    length ``mean_hold`` and the long-run share of each value stays one third. Continuous:
    each segment draws uniformly from [-1, 1]. Same ``seed``, same positions.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    if mean_hold < 1:
        raise ValueError(f"mean_hold must be at least 1 bar, got {mean_hold}")
    rng = np.random.default_rng(seed)
    p = 1.0 / mean_hold
    lengths = rng.geometric(p, size=int(n * p) + 16)
    while lengths.sum() < n:
        lengths = np.concatenate((lengths, rng.geometric(p, size=len(lengths))))
    k = int(np.searchsorted(np.cumsum(lengths), n)) + 1  # segments needed to cover n bars
    lengths = lengths[:k]
    if discrete:
        steps = np.concatenate(([rng.integers(0, 3)], rng.integers(1, 3, size=k - 1)))
        values = (np.cumsum(steps) % 3).astype(np.float64) - 1.0
    else:
        values = rng.uniform(-1.0, 1.0, size=k)
    return np.repeat(values, lengths)[:n].astype(np.float64)
