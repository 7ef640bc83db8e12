"""Feature computation from a declarative feature set, and alignment onto the base timeframe.

Each timeframe's features are stamped with ``available_at``, the close time of the bar they were
computed from. A base row at ``event_time`` (its own close time) takes, for every timeframe, the
row with the latest ``available_at <= event_time``: a higher-timeframe bar contributes only once
it has closed, so no feature ever sees the future. Calendar encodings use the base bar's open time.

Close times are the market calendar's (`drl_trading.common.bar_windows.bar_closes`): an XLON 1h
bar keyed 15:00 closes at 15:30, an FX daily bar labelled D at 21:00 or 22:00 UTC on D, which is
when the online engine emits them too. On the 24/7 calendar (or without one) a bar closes at its
open plus its duration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from drl_trading.common.bar_windows import bar_closes
from drl_trading.common.bars import TIME_DTYPE
from drl_trading.common.calendar import MarketCalendar
from drl_trading.common.domain import Timeframe
from drl_trading.preprocess.core import indicators as ind
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
)

EVENT_TIME = "event_time"


def indicator_columns(spec: IndicatorSpec, bars: pl.DataFrame) -> dict[str, np.ndarray]:
    """Raw column name -> values for one indicator over one timeframe's bars."""
    close = bars["close"].to_numpy()
    match spec:
        case LogReturns(horizons=horizons):
            return {f"logret_{h}": ind.log_return(close, h) for h in horizons}
        case RSI(period=p):
            return {f"rsi_{p}": ind.rsi(close, p)}
        case MACD(fast=f, slow=s, signal=g):
            line, sig, hist = ind.macd(close, f, s, g)
            names = spec.columns()
            return dict(zip(names, (line, sig, hist), strict=True))
        case Bollinger(period=p, num_std=k):
            pct_b, width = ind.bollinger(close, p, k)
            names = spec.columns()
            return dict(zip(names, (pct_b, width), strict=True))
        case ATR(period=p):
            high, low = bars["high"].to_numpy(), bars["low"].to_numpy()
            return {f"atr_norm_{p}": ind.atr_normalised(high, low, close, p)}
        case EMADistance(period=p):
            return {f"ema_dist_{p}": ind.ema_distance(close, p)}
        case RealizedVolatility(window=w):
            return {f"rv_{w}": ind.realized_volatility(close, w)}
        case VolumeZScore(window=w):
            return {f"vol_z_{w}": ind.volume_zscore(bars["volume"].to_numpy(), w)}
    raise TypeError(f"unknown indicator spec {spec!r}")  # pragma: no cover - exhaustive above


def close_times(
    bars: pl.DataFrame, timeframe: Timeframe, calendar: MarketCalendar | None = None
) -> pl.Series:
    """When each of ``bars`` (of ``timeframe``) closes on ``calendar`` (None: 24/7), as UTC
    datetimes."""
    if calendar is None or calendar.always_open:
        return bars["open_time"] + timeframe.duration
    keys = bars["open_time"].dt.epoch("us").to_numpy()
    closes = bar_closes(calendar, timeframe, keys)
    return (
        pl.Series("open_time", closes, dtype=pl.Int64)
        .cast(pl.Datetime("us"))
        .dt.replace_time_zone("UTC")
        .cast(TIME_DTYPE)
    )


def timeframe_features(
    bars: pl.DataFrame, tf_spec: TimeframeFeatures, calendar: MarketCalendar | None = None
) -> pl.DataFrame:
    """``available_at`` (the bars' calendar close) plus this timeframe's feature columns
    (suffixed ``__<tf>``)."""
    tf = tf_spec.timeframe
    data: dict[str, object] = {
        "available_at": close_times(bars, tf, calendar),
    }
    for spec in tf_spec.indicators:
        for name, values in indicator_columns(spec, bars).items():
            data[f"{name}__{tf.value}"] = values
    return pl.DataFrame(data).with_columns(pl.col("available_at").cast(TIME_DTYPE))


def time_encodings(open_time: pl.Series) -> dict[str, pl.Series]:
    """Cyclical time of day and day of week (Monday = 0) of each bar's open time, in UTC."""
    seconds = (
        open_time.dt.hour().cast(pl.Float64) * 3600
        + open_time.dt.minute().cast(pl.Float64) * 60
        + open_time.dt.second().cast(pl.Float64)
    )
    day = (open_time.dt.weekday().cast(pl.Float64) - 1.0 + seconds / 86_400.0) / 7.0
    tod = seconds / 86_400.0
    two_pi = 2.0 * math.pi
    return {
        "tod_sin": (tod * two_pi).sin(),
        "tod_cos": (tod * two_pi).cos(),
        "dow_sin": (day * two_pi).sin(),
        "dow_cos": (day * two_pi).cos(),
    }


@dataclass(frozen=True, slots=True)
class FeatureMatrix:
    """Aligned features on the base timeframe.

    ``frame`` holds ``event_time`` (base bar close) and the feature-set columns, only for rows where
    every feature is defined. ``warmup_rows`` counts the leading rows dropped because an indicator
    or a higher timeframe had no value yet; ``undefined_rows`` counts any later incomplete rows
    (none on valid data, reported rather than hidden).
    """

    frame: pl.DataFrame
    warmup_rows: int
    undefined_rows: int


def build_feature_matrix(
    bars_by_tf: dict[Timeframe, pl.DataFrame],
    spec: FeatureSetSpec,
    calendar: MarketCalendar | None = None,
) -> FeatureMatrix:
    """Compute every timeframe's features and align them onto ``spec.base_timeframe``, at the
    bars' closes on ``calendar`` (None: 24/7)."""
    base_tf = spec.base_timeframe
    base = bars_by_tf[base_tf]
    matrix = pl.DataFrame({EVENT_TIME: close_times(base, base_tf, calendar)}).with_columns(
        pl.col(EVENT_TIME).cast(TIME_DTYPE)
    )
    for tf_spec in spec.timeframes:
        feats = timeframe_features(bars_by_tf[tf_spec.timeframe], tf_spec, calendar)
        matrix = matrix.join_asof(
            feats, left_on=EVENT_TIME, right_on="available_at", strategy="backward"
        ).drop("available_at")
    if spec.time_encodings:
        matrix = matrix.with_columns(**time_encodings(base["open_time"]))
    matrix = matrix.select(EVENT_TIME, *spec.columns)
    complete = (
        matrix.select(
            pl.all_horizontal(pl.col(c).is_not_null() & pl.col(c).is_finite() for c in spec.columns)
        )
        .to_series()
        .to_numpy()
    )
    if complete.size == 0 or not complete.any():
        return FeatureMatrix(matrix.clear(), warmup_rows=matrix.height, undefined_rows=0)
    first = int(np.argmax(complete))
    undefined = int((~complete[first:]).sum())
    return FeatureMatrix(
        matrix.filter(pl.Series(complete)), warmup_rows=first, undefined_rows=undefined
    )
