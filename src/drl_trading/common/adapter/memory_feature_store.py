"""Feature store fake for unit tests: same point-in-time semantics as Feast, held in frames."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import polars as pl

from drl_trading.common.bars import TIME_DTYPE
from drl_trading.common.domain import Symbol
from drl_trading.common.ports import FeatureViewSpec, OnlineFeatures


class InMemoryFeatureStore:
    def __init__(self) -> None:
        self.views: dict[str, FeatureViewSpec] = {}
        self._rows: dict[tuple[str, str], pl.DataFrame] = {}
        self._online: dict[tuple[str, str], OnlineFeatures] = {}

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

    def write_online(
        self, view: FeatureViewSpec, symbol: Symbol, event_time: datetime, values: Sequence[float]
    ) -> None:
        if view.name not in self.views:
            raise LookupError(f"view {view.name} is not registered")
        if len(values) != len(view.columns):
            raise ValueError(f"{len(values)} values for {len(view.columns)} columns")
        key = (view.name, str(symbol))
        old = self._online.get(key)
        if old is None or event_time >= old.event_time:
            self._online[key] = OnlineFeatures(event_time, tuple(float(v) for v in values))

    def online_features(
        self, view: FeatureViewSpec, symbols: Sequence[Symbol]
    ) -> dict[Symbol, OnlineFeatures]:
        out = {}
        for s in symbols:
            got = self._online.get((view.name, str(s)))
            if got is not None:
                out[s] = got
        return out
