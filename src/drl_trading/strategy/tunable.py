"""Ranges a strategy declares for its tunable parameters, searched by `drl-trading tune`.

A strategy's parameters are the keywords of its constructor (``strategy.params`` in the
configuration). `BaseStrategy.tunable_parameters` names the ones worth searching and the range
of each: reward weights (a drawdown penalty), risk parameters (a confidence threshold), feature
parameters. A trial builds the strategy with the values it drew, exactly as ``strategy.params``
would, so a tuned value is reproduced by writing it into the configuration.

The ranges are plain values (no tuning library is imported here): the training service turns
them into the sampler's calls (`drl_trading.training.core.search_space`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Choice", "FloatRange", "IntRange", "ParamValue", "Range"]

ParamValue = float | int | str | bool
"""A value a range can yield (what a strategy parameter or a hyperparameter takes)."""


@dataclass(frozen=True, slots=True)
class FloatRange:
    """A real value in ``[low, high]``; ``log``: sampled uniformly in log space (``low > 0``),
    for scales such as a learning rate or a penalty spanning decades."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low >= self.high:
            raise ValueError(f"FloatRange needs finite low < high, got {self.low}..{self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"FloatRange with log=True needs low > 0, got {self.low}")

    def describe(self) -> str:
        return f"{self.low:g}..{self.high:g}{' (log)' if self.log else ''}"


@dataclass(frozen=True, slots=True)
class IntRange:
    """A whole number in ``[low, high]`` (both included); ``log`` as `FloatRange` (``low >=
    1``)."""

    low: int
    high: int
    log: bool = False

    def __post_init__(self) -> None:
        if self.low >= self.high:
            raise ValueError(f"IntRange needs low < high, got {self.low}..{self.high}")
        if self.log and self.low < 1:
            raise ValueError(f"IntRange with log=True needs low >= 1, got {self.low}")

    def describe(self) -> str:
        return f"{self.low}..{self.high}{' (log)' if self.log else ''}"


@dataclass(frozen=True, slots=True)
class Choice:
    """One of ``options`` (numbers, strings or booleans), none preferred."""

    options: tuple[ParamValue, ...]

    def __post_init__(self) -> None:
        if not self.options:
            raise ValueError("Choice needs at least one option")
        if len(set(self.options)) != len(self.options):
            raise ValueError(f"Choice options repeat: {self.options}")

    def describe(self) -> str:
        return "{" + ", ".join(str(o) for o in self.options) + "}"


Range = FloatRange | IntRange | Choice
