"""Settings of the preprocess service."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from drl_trading.common.domain import Timeframe
from drl_trading.strategy.feature_set import FeatureSetSpec


class PreprocessSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    feature_set: FeatureSetSpec | None = Field(
        None, description="Overrides the strategy's feature set (for experiments)."
    )
    store_timeframes: tuple[Timeframe, ...] = Field(
        (Timeframe.M5, Timeframe.M15, Timeframe.M30, Timeframe.H1, Timeframe.H4, Timeframe.D1),
        description=(
            "Higher timeframes resampled and stored, besides those the features use; those not "
            "coarser than the data's timeframe are skipped (the data's own bars are stored)."
        ),
    )
