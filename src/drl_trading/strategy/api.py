"""The public contract between the framework and a strategy.

A strategy is a plugin: the framework asks it for a feature set (what preprocessing computes and
the policy observes), a reward (what training optimises), risk parameters and a signal check (what
execution enforces). Everything else (data, training loop, registry, broker) belongs to the
framework, so a strategy stays a few dozen lines and can live in a private package.

Subclass `BaseStrategy` and override what differs; the framework only relies on the `Strategy`
protocol, so any object with these members works.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from drl_trading.common.domain import Signal
from drl_trading.strategy.feature_set import FeatureSetSpec, default_feature_set
from drl_trading.strategy.tunable import Range


class RewardContext:
    """What a reward function sees at one environment step.

    Step t is the decision taken at the close of bar t; it fills at the open of bar t+1 and is
    marked at the close of bar t+1. All returns and costs are fractions of equity.

    One object is reused for every step of an episode (that keeps the environment fast): read it
    inside the call, and copy what you want to keep.
    """

    __slots__ = (
        "bars_in_position",
        "close",
        "close_next",
        "cost",
        "drawdown",
        "equity",
        "gross_return",
        "open_next",
        "peak_equity",
        "position_after",
        "position_before",
        "step",
        "step_return",
    )

    def __init__(self) -> None:
        self.step = 0
        #: close of bar t (the decision price), open of t+1 (the fill), close of t+1 (the mark)
        self.close = 0.0
        self.open_next = 0.0
        self.close_next = 0.0
        #: target position before and after the fill, in [-1, 1] (negative = short)
        self.position_before = 0.0
        self.position_after = 0.0
        #: equity return of the step before costs: step_return + cost
        self.gross_return = 0.0
        #: fees + slippage paid at the fill as a fraction of the step's starting equity, about
        #: |after - before| * (fee_bps + slippage_bps) / 1e4 (units are sized at the close)
        self.cost = 0.0
        #: net equity return of the step (held units are not rebalanced while the target stays)
        self.step_return = 0.0
        #: equity after the step (episodes start at 1.0), its running peak, 1 - equity / peak
        self.equity = 1.0
        self.peak_equity = 1.0
        self.drawdown = 0.0
        #: bars the current position has been held after this step (0 when flat)
        self.bars_in_position = 0

    def as_dict(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class BatchRewardContext:
    """What a batched reward sees at one step of all the copies of a batched environment: the
    fields of `RewardContext`, each an array with one entry per copy (float64; ``step`` and
    ``bars_in_position`` int64), in the same units.

    A strategy may define ``reward_batch(ctx: BatchRewardContext) -> np.ndarray`` (one float
    per copy) next to ``reward``; the batched training environment calls it once per step
    instead of calling ``reward`` once per copy. It must compute what ``reward`` computes: the
    two are checked against each other in the strategy's tests. The arrays are the
    environment's own: read them inside the call, copy what you keep, and never write to them.
    """

    step: np.ndarray
    close: np.ndarray
    open_next: np.ndarray
    close_next: np.ndarray
    position_before: np.ndarray
    position_after: np.ndarray
    gross_return: np.ndarray
    cost: np.ndarray
    step_return: np.ndarray
    equity: np.ndarray
    peak_equity: np.ndarray
    drawdown: np.ndarray
    bars_in_position: np.ndarray

    def __len__(self) -> int:
        return len(self.step)

    def at(self, i: int, into: RewardContext) -> RewardContext:
        """Copy ``i``'s values as Python numbers into ``into`` (a reused `RewardContext`), for
        a strategy's scalar ``reward``."""
        into.step = int(self.step[i])
        into.close = float(self.close[i])
        into.open_next = float(self.open_next[i])
        into.close_next = float(self.close_next[i])
        into.position_before = float(self.position_before[i])
        into.position_after = float(self.position_after[i])
        into.gross_return = float(self.gross_return[i])
        into.cost = float(self.cost[i])
        into.step_return = float(self.step_return[i])
        into.equity = float(self.equity[i])
        into.peak_equity = float(self.peak_equity[i])
        into.drawdown = float(self.drawdown[i])
        into.bars_in_position = int(self.bars_in_position[i])
        return into


@dataclass(frozen=True, slots=True)
class RiskParameters:
    """Limits execution enforces on every signal (and the training environment respects)."""

    max_position: float = 1.0
    """Largest absolute position as a fraction of equity (1.0 = fully invested)."""
    allow_short: bool = True
    """False masks the short action in training and rejects short signals live."""
    min_confidence: float = 0.0
    """Signals below this confidence are ignored by execution."""
    max_daily_loss: float = 0.05
    """Trading stops for the day once equity fell this fraction since the day's open."""
    max_drawdown: float = 0.25
    """Trading stops (flat) once equity fell this fraction below its peak."""
    stop_loss: float | None = None
    """Close a position that lost this fraction since entry; None disables it."""

    def __post_init__(self) -> None:
        if not 0 < self.max_position <= 1:
            raise ValueError("max_position must be in (0, 1]")
        for name in ("min_confidence", "max_daily_loss", "max_drawdown"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be in [0, 1]")


@dataclass(frozen=True, slots=True)
class SignalCheck:
    """A strategy's verdict on a signal: approved (possibly with a reduced target) or why not."""

    approved: bool
    target_position: float
    reason: str = ""


@runtime_checkable
class Strategy(Protocol):
    name: str
    version: str

    def feature_set(self) -> FeatureSetSpec: ...

    def reward(self, ctx: RewardContext) -> float: ...

    def risk_parameters(self) -> RiskParameters: ...

    def validate_signal(self, signal: Signal) -> SignalCheck: ...


class BaseStrategy:
    """Defaults for every part: the framework's feature set, net log-return reward, no limits
    beyond `RiskParameters()`, and a signal check that applies those limits."""

    name = "base"
    version = "0"

    def feature_set(self) -> FeatureSetSpec:
        return default_feature_set()

    def reward(self, ctx: RewardContext) -> float:
        return math.log1p(ctx.step_return) if ctx.step_return > -1 else -10.0

    def risk_parameters(self) -> RiskParameters:
        return RiskParameters()

    def tunable_parameters(self) -> Mapping[str, Range]:
        """The constructor keywords (``strategy.params``) `drl-trading tune` may search, each
        with its range (`FloatRange`, `IntRange`, `Choice`); none by default. Optional: the
        framework asks only strategies that define it (docs/tuning.md)."""
        return {}

    def validate_signal(self, signal: Signal) -> SignalCheck:
        risk = self.risk_parameters()
        target = signal.target_position
        if not math.isfinite(target) or not math.isfinite(signal.confidence):
            return SignalCheck(False, 0.0, "non-finite target or confidence")
        if signal.confidence < risk.min_confidence:
            return SignalCheck(
                False,
                target,
                f"confidence {signal.confidence:.3f} below minimum {risk.min_confidence:.3f}",
            )
        if target < 0 and not risk.allow_short:
            return SignalCheck(False, 0.0, "short positions are not allowed by this strategy")
        clipped = max(-risk.max_position, min(risk.max_position, target))
        reason = "" if clipped == target else f"target clipped to +/-{risk.max_position}"
        return SignalCheck(True, clipped, reason)
