"""Feature store fake for unit tests: same point-in-time semantics as Feast, held in frames."""

from __future__ import annotations

import polars as pl

from drl_trading.common.bars import TIME_DTYPE
from drl_trading.common.domain import Symbol
from drl_trading.common.ports import FeatureViewSpec


class InMemoryFeatureStore:
    def __init__(self) -> None:
        self.views: dict[str, FeatureViewSpec] = {}
        self._rows: dict[tuple[str, str], pl.DataFrame] = {}

    def register(self, view: FeatureViewSpec) -> None:
        self.views[view.name] = view

    def write_offline(self, view: FeatureViewSpec, symbol: Symbol, frame: pl.DataFrame) -> int:
        if view.name not in self.views:
            raise LookupError(f"view {view.name} is not registered")
        if frame.is_empty():
            return 0
        new = frame.select(pl.col("event_time").cast(TIME_DTYPE), *view.columns)
        key = (view.name, str(symbol))
        old = self._rows.get(key)
        if old is not None:
            new = pl.concat([old.join(new.select("event_time"), on="event_time", how="anti"), new])
        self._rows[key] = new.sort("event_time")
        return frame.height

    def historical_features(self, view: FeatureViewSpec, entities: pl.DataFrame) -> pl.DataFrame:
        parts = []
        indexed = entities.with_row_index("__row").with_columns(
            pl.col("event_time").cast(TIME_DTYPE), pl.col("symbol").cast(pl.String)
        )
        for (sym,), group in indexed.group_by(["symbol"]):
            rows = self._rows.get((view.name, str(sym)))
            g = group.sort("event_time")
            if rows is None:
                joined = g.with_columns(
                    [pl.lit(None, dtype=pl.Float64).alias(c) for c in view.columns]
                )
            else:
                stamped = rows.with_columns(pl.col("event_time").alias("__known"))
                joined = g.join_asof(stamped, on="event_time", strategy="backward")
                stale = pl.col("__known").is_null() | (
                    pl.col("event_time") - pl.col("__known") > view.ttl
                )
                joined = joined.with_columns(
                    [pl.when(stale).then(None).otherwise(pl.col(c)).alias(c) for c in view.columns]
                ).drop("__known")
            parts.append(joined)
        out = pl.concat(parts).sort("__row")
        return out.select("symbol", "event_time", *view.columns)
