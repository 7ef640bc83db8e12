"""The bars a policy acts on: one symbol's consecutive base bars as arrays.

Training steps its environment over them, backtests run the policy over them, and the
evaluation simulates fills on them; each reads the same arrays so none can drift from another.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class MarketSeries:
    """Consecutive base bars of one symbol (no gaps): features known at each bar's close."""

    symbol: str
    times: np.ndarray  # (n,) datetime64[us], close time of each bar
    features: np.ndarray  # (n, F) float32
    open: np.ndarray  # (n,) float64
    close: np.ndarray  # (n,) float64

    def __post_init__(self) -> None:
        n = len(self.times)
        if self.features.ndim != 2 or self.features.shape[0] != n:
            raise ValueError(f"{self.symbol}: features must be (n, F) with n={n}")
        if len(self.open) != n or len(self.close) != n:
            raise ValueError(f"{self.symbol}: open/close must have {n} rows")
        if not np.isfinite(self.features).all():
            raise ValueError(f"{self.symbol}: features contain NaN or infinite values")
        if (self.open <= 0).any() or (self.close <= 0).any():
            raise ValueError(f"{self.symbol}: prices must be positive")

    def __len__(self) -> int:
        return len(self.times)

    def slice(self, start: int, stop: int) -> MarketSeries:
        return MarketSeries(
            self.symbol,
            self.times[start:stop],
            self.features[start:stop],
            self.open[start:stop],
            self.close[start:stop],
        )
