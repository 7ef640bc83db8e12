"""The strategy SDK: what a strategy declares and implements.

This issue's part of it is the declarative feature set (`FeatureSetSpec`); the reward, signal
rules and risk parameters join it when the training and execution services arrive.
"""

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

__all__ = [
    "ATR",
    "MACD",
    "RSI",
    "Bollinger",
    "EMADistance",
    "FeatureSetSpec",
    "IndicatorSpec",
    "LogReturns",
    "RealizedVolatility",
    "TimeframeFeatures",
    "VolumeZScore",
    "default_feature_set",
]
