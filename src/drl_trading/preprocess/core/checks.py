"""Checks that refuse a preprocessing request before any work: its feature set must fit the data.

A feature set computes rows on its base timeframe from bars of that timeframe or coarser ones
resampled from the stored data; bars finer than the stored data cannot be made from it, so a base
timeframe finer than the data's is refused here, before anything is fetched, read or written
(an hourly file and a 5m base would otherwise give 5m rows that each repeat an hour).
"""

from __future__ import annotations

from drl_trading.common.domain import Timeframe
from drl_trading.common.errors import UsageError
from drl_trading.strategy.feature_set import FeatureSetSpec


class BaseTimeframeError(UsageError):
    """The feature set's base timeframe is finer than the stored data's timeframe."""

    retryable = False


def require_base_at_least(feature_set: FeatureSetSpec, data_timeframe: Timeframe) -> None:
    """Raise `BaseTimeframeError` unless every timeframe of ``feature_set`` is a whole multiple of
    ``data_timeframe`` (minutes) and at least as long: those are the bars resampling can build."""
    base = feature_set.base_timeframe
    if base.minutes < data_timeframe.minutes:
        raise BaseTimeframeError(
            f"feature set {feature_set.name} has base timeframe {base.value}, finer than the "
            f"data's {data_timeframe.value}; use a feature set with base_timeframe "
            f"{data_timeframe.value} or coarser (preprocess.feature_set, or the strategy's "
            f"feature set), or ingest {base.value} bars or finer"
        )
    for tf in feature_set.all_timeframes:
        if tf.minutes % data_timeframe.minutes:
            raise BaseTimeframeError(
                f"feature set {feature_set.name} uses {tf.value} bars, which "
                f"{data_timeframe.value} bars cannot be resampled into (not a whole multiple); "
                f"ingest finer bars or drop {tf.value} from the feature set"
            )
