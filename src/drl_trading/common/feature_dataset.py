"""The feature matrix as training sees it: point-in-time reads at every base bar's close.

Entity timestamps come from the stored base-timeframe bars, not from the feature rows, so a bar
whose features are missing is visible (counted in ``missing_rows``) instead of silently absent.
Training and ``features export`` share this function so that what a user inspects is exactly
what a model is trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from drl_trading.common.bars import TIME_DTYPE
from drl_trading.common.domain import Symbol, TimeRange
from drl_trading.common.ports import FeatureStore, FeatureViewSpec, MarketDataRepository


class DatasetError(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class FeatureDataset:
    """``frame``: symbol, event_time, the view's columns, then the base bar's OHLCV (prefixed
    ``bar_``), sorted by symbol then time. ``missing_rows``: base bars without features."""

    frame: pl.DataFrame
    missing_rows: dict[Symbol, int]


def load_feature_matrix(
    market_data: MarketDataRepository,
    features: FeatureStore,
    view: FeatureViewSpec,
    symbols: list[Symbol],
    rng: TimeRange,
) -> FeatureDataset:
    base = view.base_timeframe
    parts: list[pl.DataFrame] = []
    missing: dict[Symbol, int] = {}
    for symbol in symbols:
        bars = market_data.read_bars(symbol, base, rng.start, rng.end)
        bars = bars.filter(pl.col("open_time") + base.duration <= rng.end)
        if bars.is_empty():
            raise DatasetError(
                f"{symbol}: no {base.value} bars stored in [{rng.start.isoformat()}, "
                f"{rng.end.isoformat()}); run `drl-trading ingest ... --preprocess` first"
            )
        entities = pl.DataFrame(
            {"symbol": [str(symbol)] * bars.height, "event_time": bars["open_time"] + base.duration}
        ).with_columns(pl.col("event_time").cast(TIME_DTYPE))
        got = features.historical_features(view, entities)
        got = pl.concat(
            [got, bars.select(pl.all().exclude("open_time").name.prefix("bar_"))],
            how="horizontal",
        ).with_columns(bars["open_time"].alias("bar_open_time"))
        complete = got.drop_nulls(list(view.columns))
        missing[symbol] = got.height - complete.height
        parts.append(complete)
    frame = pl.concat(parts)
    if frame.is_empty():
        raise DatasetError(
            f"no feature rows for {', '.join(symbols)} in the range; preprocess it first "
            f"(feature view {view.name})"
        )
    return FeatureDataset(frame, missing)
