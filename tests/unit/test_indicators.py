"""Every indicator against an independent TA-Lib reference on the same data."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
import talib

from drl_trading.common.domain import Symbol, Timeframe
from drl_trading.ingest.adapter.synthetic_provider import SyntheticProvider
from drl_trading.preprocess.core import indicators as ind

RTOL = 1e-9
Ohlcv = dict[str, np.ndarray]


def synthetic_ohlcv() -> dict[str, np.ndarray]:
    provider = SyntheticProvider(seed=11)
    frames = provider.fetch(
        Symbol("BTCUSDT"),
        Timeframe.M1,
        datetime(2024, 2, 1, tzinfo=UTC),
        datetime(2024, 2, 3, tzinfo=UTC),
    )
    bars = pl.concat(list(frames))
    assert bars.height == 2 * 1440
    return {c: bars[c].to_numpy() for c in ("open", "high", "low", "close", "volume")}


def random_walk_ohlcv(seed: int, n: int = 2500) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * (1.0 + np.abs(rng.normal(0.0, 0.004, n)))
    low = np.minimum(open_, close) * (1.0 - np.abs(rng.normal(0.0, 0.004, n)))
    volume = rng.lognormal(6.0, 0.8, n)
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


DATASETS = {
    "synthetic": synthetic_ohlcv,
    "walk0": lambda: random_walk_ohlcv(0),
    "walk1": lambda: random_walk_ohlcv(1),
    "walk_short": lambda: random_walk_ohlcv(2, n=40),
}


@pytest.fixture(params=sorted(DATASETS), scope="module")
def data(request: pytest.FixtureRequest) -> dict[str, np.ndarray]:
    return DATASETS[request.param]()


def assert_same(ours: np.ndarray, ref: np.ndarray, *, atol: float = 0.0) -> None:
    """Equal NaN warm-up positions and values within RTOL everywhere else."""
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape
    assert int(np.isnan(ours).sum()) == int(np.isnan(ref).sum())
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(ours[ok], ref[ok], rtol=RTOL, atol=atol)


@pytest.mark.parametrize("horizon", [1, 4, 16, 60])
def test_log_return(data: dict[str, np.ndarray], horizon: int) -> None:
    c = data["close"]
    ref = np.log(talib.ROCR(c, timeperiod=horizon))
    assert_same(ind.log_return(c, horizon), ref)
    assert np.isnan(ind.log_return(c, horizon)).sum() == min(horizon, c.size)


def test_log_return_horizon_beyond_length_is_all_nan() -> None:
    c = np.array([1.0, 2.0, 3.0])
    assert np.isnan(ind.log_return(c, 3)).all()
    assert np.isnan(ind.log_return(c, 10)).all()


@pytest.mark.parametrize("period", [2, 14, 30])
def test_rsi(data: dict[str, np.ndarray], period: int) -> None:
    c = data["close"]
    ours = ind.rsi(c, period)
    assert_same(ours, talib.RSI(c, timeperiod=period) / 50.0 - 1.0)
    finite = ours[~np.isnan(ours)]
    assert np.all((finite >= -1.0) & (finite <= 1.0))


@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (5, 13, 4)])
def test_macd(data: dict[str, np.ndarray], fast: int, slow: int, signal: int) -> None:
    c = data["close"]
    line, sig, hist = ind.macd(c, fast, slow, signal)
    ref_line, ref_sig, ref_hist = talib.MACD(
        c, fastperiod=fast, slowperiod=slow, signalperiod=signal
    )
    assert_same(line, ref_line / c)
    assert_same(sig, ref_sig / c)
    assert_same(hist, ref_hist / c)


@pytest.mark.parametrize(("period", "num_std"), [(20, 2.0), (10, 1.5)])
def test_bollinger(data: dict[str, np.ndarray], period: int, num_std: float) -> None:
    c = data["close"]
    pct_b, width = ind.bollinger(c, period, num_std)
    upper, middle, lower = talib.BBANDS(
        c, timeperiod=period, nbdevup=num_std, nbdevdn=num_std, matype=0
    )
    assert_same(pct_b, (c - lower) / (upper - lower))
    assert_same(width, (upper - lower) / middle)


@pytest.mark.parametrize("period", [2, 14])
def test_atr_normalised(data: dict[str, np.ndarray], period: int) -> None:
    h, lo, c = data["high"], data["low"], data["close"]
    ref = talib.NATR(h, lo, c, timeperiod=period) / 100.0
    assert_same(ind.atr_normalised(h, lo, c, period), ref)


@pytest.mark.parametrize("period", [2, 20, 50])
def test_ema_distance(data: dict[str, np.ndarray], period: int) -> None:
    c = data["close"]
    assert_same(ind.ema_distance(c, period), c / talib.EMA(c, timeperiod=period) - 1.0)


@pytest.mark.parametrize("window", [2, 5, 20])
def test_realized_volatility(data: dict[str, np.ndarray], window: int) -> None:
    c = data["close"]
    r = np.log(c[1:] / c[:-1])
    r = np.concatenate([[np.nan], r])
    ref = np.sqrt(talib.SUM(r * r, timeperiod=window))
    ours = ind.realized_volatility(c, window)
    assert_same(ours, ref)
    # Warm-up: one bar for the first return, then window - 1 more.
    assert int(np.isnan(ours).sum()) == min(window, c.size)


@pytest.mark.parametrize("window", [2, 5, 20])
def test_volume_zscore(data: dict[str, np.ndarray], window: int) -> None:
    v = data["volume"]
    ref = (v - talib.SMA(v, timeperiod=window)) / talib.STDDEV(v, timeperiod=window, nbdev=1)
    # TA-Lib's STDDEV is the one-pass sqrt(E[v²] - E[v]²), which loses a few digits when the
    # window's spread is small against its level (window 2, nearly equal volumes): a 1e-9 absolute
    # allowance on top of RTOL covers that rounding in the reference, not a different formula.
    assert_same(ind.volume_zscore(v, window), ref, atol=1e-9)


def test_constant_window_bollinger_pct_b_is_half() -> None:
    c = np.concatenate([np.linspace(90.0, 110.0, 30), np.full(40, 123.25)])
    pct_b, width = ind.bollinger(c, 20, 2.0)
    assert np.isnan(pct_b[:19]).all()
    constant = slice(30 + 19, None)  # windows made only of the constant tail
    np.testing.assert_array_equal(pct_b[constant], 0.5)
    np.testing.assert_allclose(width[constant], 0.0, atol=1e-12)
    assert np.isfinite(pct_b[19:]).all()


def test_constant_window_volume_zscore_is_zero() -> None:
    v = np.concatenate([np.arange(1.0, 31.0), np.full(40, 250.0)])
    z = ind.volume_zscore(v, 20)
    assert np.isnan(z[:19]).all()
    np.testing.assert_array_equal(z[30 + 19 :], 0.0)
    assert np.isfinite(z[19:]).all()
    z_all_constant = ind.volume_zscore(np.full(50, 7.0), 10)
    np.testing.assert_array_equal(z_all_constant[9:], 0.0)


def test_zero_volume_window_zscore_is_zero() -> None:
    z = ind.volume_zscore(np.zeros(30), 5)
    assert np.isnan(z[:4]).all()
    np.testing.assert_array_equal(z[4:], 0.0)


@pytest.mark.parametrize(
    "compute",
    [
        lambda d: ind.log_return(d["close"], 4),
        lambda d: ind.rsi(d["close"], 14),
        lambda d: np.stack(ind.macd(d["close"], 12, 26, 9)),
        lambda d: np.stack(ind.bollinger(d["close"], 20, 2.0)),
        lambda d: ind.atr_normalised(d["high"], d["low"], d["close"], 14),
        lambda d: ind.ema_distance(d["close"], 50),
        lambda d: ind.realized_volatility(d["close"], 20),
        lambda d: ind.volume_zscore(d["volume"], 20),
    ],
    ids=["logret", "rsi", "macd", "bollinger", "atr", "ema_dist", "rv", "vol_z"],
)
def test_causal_prefix_gives_same_values(compute: Callable[[Ohlcv], np.ndarray]) -> None:
    """The value at t depends only on inputs up to t: a prefix reproduces the same values."""
    full = random_walk_ohlcv(5, n=600)
    cut = 400
    prefix = {k: v[:cut] for k, v in full.items()}
    a = np.asarray(compute(full))
    b = np.asarray(compute(prefix))
    np.testing.assert_array_equal(a[..., :cut], b)
