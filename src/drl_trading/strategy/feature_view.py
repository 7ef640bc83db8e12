"""The feature store's view of a feature set: what preprocessing writes and training, inference
and the CLI read, derived from the spec in one place so that no two of them can name it apart."""

from __future__ import annotations

from drl_trading.common.ports import FeatureViewSpec
from drl_trading.strategy.feature_set import FeatureSetSpec


def view_for(spec: FeatureSetSpec) -> FeatureViewSpec:
    return FeatureViewSpec(
        name=spec.view_name,
        feature_set_name=spec.name,
        feature_set_version=spec.version,
        base_timeframe=spec.base_timeframe,
        columns=spec.columns,
        ttl=spec.base_timeframe.duration * 2,
    )
