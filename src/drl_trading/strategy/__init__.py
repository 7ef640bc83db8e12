"""The strategy SDK: everything a strategy package imports from the framework.

A strategy provides a feature set (`FeatureSetSpec`), a reward over `RewardContext` (and
optionally a batched one over `BatchRewardContext`), risk parameters (`RiskParameters`) and a
signal check (`SignalCheck`); `BaseStrategy` gives defaults for all four. The framework finds
a strategy with `load_strategy` (entry point or dotted path). See docs/strategy.md.
"""

from drl_trading.strategy.api import (
    BaseStrategy,
    BatchRewardContext,
    RewardContext,
    RiskParameters,
    SignalCheck,
    Strategy,
)
from drl_trading.strategy.feature_set import (
    ATR,
    MACD,
    RSI,
    Bollinger,
    EMADistance,
    FeatureSetSpec,
    IndicatorSpec,
    LogReturns,
    RealizedVolatility,
    TimeframeFeatures,
    VolumeZScore,
    default_feature_set,
)
from drl_trading.strategy.loader import StrategyLoadError, available_strategies, load_strategy
from drl_trading.strategy.tunable import Choice, FloatRange, IntRange, Range

__all__ = [
    "ATR",
    "MACD",
    "RSI",
    "BaseStrategy",
    "BatchRewardContext",
    "Bollinger",
    "Choice",
    "EMADistance",
    "FeatureSetSpec",
    "FloatRange",
    "IndicatorSpec",
    "IntRange",
    "LogReturns",
    "Range",
    "RealizedVolatility",
    "RewardContext",
    "RiskParameters",
    "SignalCheck",
    "Strategy",
    "StrategyLoadError",
    "TimeframeFeatures",
    "VolumeZScore",
    "available_strategies",
    "default_feature_set",
    "load_strategy",
]
