"""Example strategy: trade the framework's default multi-timeframe features for net log return.

Reward at each step (see `drl_trading.strategy.RewardContext`)::

    reward = scale * ln(1 + r_net)
             - turnover_penalty * |pos_after - pos_before|
             - drawdown_penalty * dd

``r_net`` is the step's equity return after fees and slippage, so the agent already pays for
trading; the turnover penalty adds a further cost per unit of position changed (it discourages
flip-flopping on noise), and the drawdown penalty charges every step spent below the equity peak
in proportion to how deep it is (the agent learns to cut losing positions). ``scale`` brings
5-minute log returns (around 1e-3) to the order of 0.1, which suits PPO's default settings.
`reward_batch` is the same reward on arrays, one entry per copy of the batched training
environment (docs/strategy.md).

`tunable_parameters` declares what `drl-trading tune` searches besides PPO's hyperparameters:
the two penalty weights of the reward and the confidence below which execution ignores a
signal (docs/tuning.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from drl_trading.strategy import (
    BaseStrategy,
    BatchRewardContext,
    FeatureSetSpec,
    FloatRange,
    Range,
    RewardContext,
    RiskParameters,
    default_feature_set,
)


class ExampleStrategy(BaseStrategy):
    name = "example"
    version = "1.0.0"

    def __init__(
        self,
        scale: float = 100.0,
        turnover_penalty: float = 0.0,
        drawdown_penalty: float = 0.01,
        allow_short: bool = True,
        min_confidence: float = 0.4,
    ) -> None:
        self.scale = scale
        self.turnover_penalty = turnover_penalty
        self.drawdown_penalty = drawdown_penalty
        self._risk = RiskParameters(allow_short=allow_short, min_confidence=min_confidence)

    def feature_set(self) -> FeatureSetSpec:
        return default_feature_set()

    def reward(self, ctx: RewardContext) -> float:
        log_return = math.log1p(ctx.step_return) if ctx.step_return > -1.0 else -10.0
        turnover = abs(ctx.position_after - ctx.position_before)
        return (
            self.scale * log_return
            - self.turnover_penalty * turnover
            - self.drawdown_penalty * ctx.drawdown
        )

    def reward_batch(self, ctx: BatchRewardContext) -> np.ndarray:
        """`reward` for every copy of a batched environment at once (the same formula in the
        same order of operations, on arrays)."""
        r = ctx.step_return
        alive = r > -1.0
        log_return = np.where(alive, np.log1p(np.where(alive, r, 0.0)), -10.0)
        turnover = np.abs(ctx.position_after - ctx.position_before)
        return (
            self.scale * log_return
            - self.turnover_penalty * turnover
            - self.drawdown_penalty * ctx.drawdown
        )

    def risk_parameters(self) -> RiskParameters:
        return self._risk

    def tunable_parameters(self) -> Mapping[str, Range]:
        """Reward weights (per unit of position changed; per unit of drawdown, a fraction of
        the peak) and the minimum signal confidence (a probability)."""
        return {
            "turnover_penalty": FloatRange(0.0, 0.1),
            "drawdown_penalty": FloatRange(1e-4, 0.1, log=True),
            "min_confidence": FloatRange(0.0, 0.6),
        }
