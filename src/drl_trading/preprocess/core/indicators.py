"""Batch indicators over numpy float64 arrays.

The recursive indicators (EMA, Wilder's RSI and ATR, MACD) come from TA-Lib, whose C code is the
reference traders compare against; rolling statistics use polars' windowed kernels. Every function
is causal: the value at index ``t`` depends only on inputs at ``t`` and before, and is NaN where it
is not yet defined (warm-up). Outputs are scale-free so one policy can serve many symbols.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import talib

Array = np.ndarray


def _f64(x: Array) -> Array:
    return np.ascontiguousarray(x, dtype=np.float64)


def log_return(close: Array, horizon: int) -> Array:
    """``ln(close_t / close_{t-horizon})``."""
    c = _f64(close)
    out = np.full(c.shape, np.nan)
    if horizon < c.size:
        out[horizon:] = np.log(c[horizon:] / c[:-horizon])
    return out


def rsi(close: Array, period: int) -> Array:
    """Wilder's RSI mapped from [0, 100] to [-1, 1]."""
    return np.asarray(talib.RSI(_f64(close), timeperiod=period)) / 50.0 - 1.0


def macd(close: Array, fast: int, slow: int, signal: int) -> tuple[Array, Array, Array]:
    """MACD line, signal line and histogram as fractions of the close."""
    c = _f64(close)
    line, sig, hist = talib.MACD(c, fastperiod=fast, slowperiod=slow, signalperiod=signal)
    return np.asarray(line) / c, np.asarray(sig) / c, np.asarray(hist) / c


def bollinger(close: Array, period: int, num_std: float) -> tuple[Array, Array]:
    """%B and bandwidth. With zero width (a constant window) %B is 0.5: the close is the mean."""
    c = _f64(close)
    bands = talib.BBANDS(
        c,
        timeperiod=period,
        nbdevup=num_std,
        nbdevdn=num_std,
        matype=talib.MA_Type.SMA,  # type: ignore[attr-defined]
    )
    upper, middle, lower = (np.asarray(a) for a in bands)
    width = upper - lower
    with np.errstate(divide="ignore", invalid="ignore"):
        pct_b = np.where(width > 0, (c - lower) / width, 0.5)
    pct_b = np.where(np.isnan(width), np.nan, pct_b)
    return pct_b, width / middle


def atr_normalised(high: Array, low: Array, close: Array, period: int) -> Array:
    """Wilder's ATR divided by the close."""
    c = _f64(close)
    return np.asarray(talib.ATR(_f64(high), _f64(low), c, timeperiod=period)) / c


def ema_distance(close: Array, period: int) -> Array:
    """``close / EMA - 1`` with TA-Lib's EMA (seeded by the SMA of the first ``period`` closes)."""
    c = _f64(close)
    return c / np.asarray(talib.EMA(c, timeperiod=period)) - 1.0


def realized_volatility(close: Array, window: int) -> Array:
    """``sqrt(sum of squared 1-bar log returns over the last `window` bars)``."""
    r = log_return(close, 1)
    sq = pl.Series(r * r).rolling_sum(window_size=window, min_samples=window)
    # a running sum over a flat stretch can end a hair below zero: that is zero volatility, not
    # an undefined value (NaN stays NaN: warm-up)
    return np.sqrt(np.maximum(sq.to_numpy().astype(np.float64), 0.0))


def volume_zscore(volume: Array, window: int) -> Array:
    """``(v - mean) / std`` over the window with the population std; 0 for a constant window."""
    s = pl.Series(_f64(volume))
    mean = s.rolling_mean(window_size=window, min_samples=window).to_numpy()
    std = s.rolling_std(window_size=window, min_samples=window, ddof=0).to_numpy()
    v = _f64(volume)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(std > 1e-12 * np.maximum(np.abs(mean), 1.0), (v - mean) / std, 0.0)
    return np.where(np.isnan(std), np.nan, z)
