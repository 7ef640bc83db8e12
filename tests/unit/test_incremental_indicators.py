"""Online indicators against the batch ones: same NaN warm-up, same values (training/serving
parity), on long messy series, on random short ones, as a feature set, and across a pickle."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drl_trading.common.bars import TIME_DTYPE
from drl_trading.common.domain import Timeframe
from drl_trading.preprocess.core.features import indicator_columns, timeframe_features
from drl_trading.preprocess.core.incremental import (
    IncrementalFeatureSet,
    IncrementalIndicator,
    _fma_exact,
    incremental_for,
)
from drl_trading.strategy.feature_set import (
    ATR,
    MACD,
    RSI,
    Bollinger,
    EMADistance,
    IndicatorSpec,
    LogReturns,
    RealizedVolatility,
    TimeframeFeatures,
    VolumeZScore,
    default_feature_set,
)

# In flat stretches polars' compensated rolling sum of squared returns can end a hair below zero,
# and the batch's sqrt turns it into NaN (with this warning); the online twin reproduces the NaN.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in sqrt:RuntimeWarning")

RTOL = 1e-9
ATOL = 1e-12
BARS = 20_000
START = datetime(2024, 1, 1, tzinfo=UTC)


def messy_bars(n: int, seed: int, level: float = 100.0) -> pl.DataFrame:
    """A geometric random walk with GARCH-like volatility clustering, plus the degenerate stretches
    live data has: flat prices (no trades), zero volume, constant and near-constant volume, and
    spikes that leave the rolling windows again."""
    rng = np.random.default_rng(seed)
    shocks = rng.standard_normal(n)
    rets = np.empty(n)
    var = 1e-4
    for i in range(n):
        rets[i] = np.sqrt(var) * shocks[i]
        var = 2e-6 + 0.1 * rets[i] ** 2 + 0.88 * var
    close = level * np.exp(np.cumsum(rets))
    open_ = np.concatenate([[level], close[:-1]]) * (1.0 + rng.normal(0.0, 1e-4, n))
    high = np.maximum(open_, close) * (1.0 + np.abs(rng.normal(0.0, 2e-3, n)))
    low = np.minimum(open_, close) * (1.0 - np.abs(rng.normal(0.0, 2e-3, n)))
    volume = rng.lognormal(6.0, 1.0, n)
    for start in rng.integers(0, max(n - 200, 1), size=max(n // 2000, 1)):
        stop = start + int(rng.integers(30, 150))
        flat = close[start - 1] if start > 0 else close[0]
        open_[start:stop] = high[start:stop] = low[start:stop] = close[start:stop] = flat
        volume[start:stop] = 0.0
    for start in rng.integers(0, max(n - 200, 1), size=max(n // 4000, 1)):
        volume[start : start + 60] = 0.0  # zero volume while prices still move
        volume[start + 60 : start + 120] = 1234.5  # constant volume
        volume[start + 120 : start + 180] = 5000.0 + rng.normal(0.0, 1e-6, 60)  # near-constant
        volume[start + 180] = 1e9  # a spike that has to leave the window cleanly
    return pl.DataFrame(
        {
            "open_time": pl.datetime_range(
                START, START + (n - 1) * Timeframe.M5.duration, "5m", eager=True
            ).cast(TIME_DTYPE),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )


def run_online(ind: IncrementalIndicator, bars: pl.DataFrame) -> np.ndarray:
    cols = [bars[c].to_list() for c in ("open", "high", "low", "close", "volume")]
    return np.array([ind.update(o, h, lo, c, v) for o, h, lo, c, v in zip(*cols, strict=True)])


def compare(name: str, online: np.ndarray, batch: np.ndarray) -> float:
    """Assert parity and return the largest relative difference over finite values."""
    online, batch = np.asarray(online, np.float64), np.asarray(batch, np.float64)
    assert online.shape == batch.shape, name
    nan_on, nan_ba = np.isnan(online), np.isnan(batch)
    where = np.flatnonzero(nan_on != nan_ba)
    assert where.size == 0, f"{name}: NaN masks differ at bars {where[:10].tolist()}"
    on, ba = online[~nan_ba], batch[~nan_ba]
    diff = np.where(on == ba, 0.0, np.abs(on - ba))
    scale = np.abs(ba)
    rel = np.divide(diff, scale, out=np.zeros_like(diff), where=scale > 0)
    worst = float(rel.max(initial=0.0))
    bad = np.flatnonzero((diff > RTOL * scale) & (diff > ATOL))
    assert bad.size == 0, (
        f"{name}: {bad.size} values out of tolerance, first at {bad[:5].tolist()}, "
        f"largest relative difference {worst:.3e}"
    )
    return worst


def assert_parity(spec: IndicatorSpec, bars: pl.DataFrame) -> dict[str, float]:
    ind = incremental_for(spec)
    batch = indicator_columns(spec, bars)
    assert ind.columns == tuple(batch)
    online = run_online(ind, bars)
    assert online.shape == (bars.height, len(ind.columns))
    return {
        name: compare(name, online[:, j], values) for j, (name, values) in enumerate(batch.items())
    }


@pytest.fixture(scope="module")
def long_bars() -> pl.DataFrame:
    return messy_bars(BARS, seed=7)


@pytest.fixture(scope="module")
def tiny_price_bars() -> pl.DataFrame:
    """Sub-cent prices: the scale at which fixed epsilon bands used to zero RSI and BBANDS."""
    return messy_bars(6_000, seed=8, level=2e-4)


DEFAULTS: list[IndicatorSpec] = [
    LogReturns(),
    RSI(),
    MACD(),
    Bollinger(),
    ATR(),
    EMADistance(),
    RealizedVolatility(),
    VolumeZScore(),
]

NON_DEFAULTS: list[IndicatorSpec] = [
    LogReturns(horizons=(2, 7, 100)),
    LogReturns(horizons=(1,)),
    RSI(period=2),
    RSI(period=37),
    MACD(fast=3, slow=6, signal=3),
    MACD(fast=5, slow=35, signal=12),
    Bollinger(period=5, num_std=1.5),
    Bollinger(period=60, num_std=3.0),
    ATR(period=2),
    ATR(period=50),
    EMADistance(period=2),
    EMADistance(period=200),
    RealizedVolatility(window=2),
    RealizedVolatility(window=96),
    VolumeZScore(window=2),
    VolumeZScore(window=100),
]


@pytest.mark.parametrize("spec", DEFAULTS, ids=lambda s: s.kind)
def test_default_parameters_on_a_long_series(spec: IndicatorSpec, long_bars: pl.DataFrame) -> None:
    assert_parity(spec, long_bars)


@pytest.mark.parametrize("spec", NON_DEFAULTS, ids=lambda s: "-".join(s.columns()))
def test_other_parameters(spec: IndicatorSpec, long_bars: pl.DataFrame) -> None:
    assert_parity(spec, long_bars.head(8_000))


@pytest.mark.parametrize("spec", DEFAULTS, ids=lambda s: s.kind)
def test_sub_cent_prices(spec: IndicatorSpec, tiny_price_bars: pl.DataFrame) -> None:
    assert_parity(spec, tiny_price_bars)


@pytest.mark.parametrize("spec", DEFAULTS, ids=lambda s: s.kind)
def test_flat_start_and_series_shorter_than_warm_up(spec: IndicatorSpec) -> None:
    """A history that begins flat (RSI's no-change case answers the neutral value) and series
    too short for a single value."""
    bars = messy_bars(300, seed=9)
    head = np.arange(bars.height)
    flat = bars.with_columns(
        *(
            pl.Series(c, np.where(head < 80, bars["close"][0], bars[c].to_numpy()))
            for c in ("open", "high", "low", "close")
        ),
        pl.Series("volume", np.where(head < 40, 0.0, bars["volume"].to_numpy())),
    )
    assert_parity(spec, flat)
    for n in (1, 2, 5):
        assert_parity(spec, bars.head(n))


@st.composite
def short_bars(draw: st.DrawFn) -> pl.DataFrame:
    n = draw(st.integers(5, 300))
    seed = draw(st.integers(0, 2**32 - 1))
    level = draw(st.sampled_from([1e-5, 0.37, 100.0, 65_000.0]))
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, draw(st.sampled_from([1e-4, 0.01, 0.1])), n)
    steps[rng.random(n) < draw(st.floats(0.0, 0.5))] = 0.0  # repeated closes
    close = level * np.exp(np.cumsum(steps))
    spread = np.abs(rng.normal(0.0, 1e-3, n))
    open_ = np.concatenate([[close[0]], close[:-1]])
    volume = rng.lognormal(5.0, 2.0, n)
    volume[rng.random(n) < draw(st.floats(0.0, 0.6))] = 0.0
    return pl.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * (1.0 + spread),
            "low": np.minimum(open_, close) * (1.0 - spread),
            "close": close,
            "volume": volume,
        }
    )


@st.composite
def any_spec(draw: st.DrawFn) -> IndicatorSpec:
    p = st.integers(2, 60)
    kind = draw(st.sampled_from(range(8)))
    if kind == 0:
        return LogReturns(horizons=tuple(draw(st.lists(st.integers(1, 80), min_size=1))))
    if kind == 1:
        return RSI(period=draw(p))
    if kind == 2:
        fast = draw(st.integers(2, 30))
        slow = draw(st.integers(fast + 1, 70))
        return MACD(fast=fast, slow=slow, signal=draw(st.integers(2, 20)))
    if kind == 3:
        return Bollinger(period=draw(p), num_std=draw(st.floats(0.25, 4.0)))
    if kind == 4:
        return ATR(period=draw(p))
    if kind == 5:
        return EMADistance(period=draw(st.integers(2, 150)))
    if kind == 6:
        return RealizedVolatility(window=draw(p))
    return VolumeZScore(window=draw(p))


@settings(max_examples=300, deadline=None)
@given(spec=any_spec(), bars=short_bars())
def test_property_random_short_series(spec: IndicatorSpec, bars: pl.DataFrame) -> None:
    assert_parity(spec, bars)


def tf_bars(tf: Timeframe, n: int, seed: int) -> pl.DataFrame:
    bars = messy_bars(n, seed)
    return bars.with_columns(
        pl.datetime_range(START, START + (n - 1) * tf.duration, tf.duration, eager=True)
        .cast(TIME_DTYPE)
        .alias("open_time")
    )


@pytest.mark.parametrize("tf_spec", default_feature_set().timeframes, ids=lambda t: t.timeframe)
def test_feature_set_matches_timeframe_features(tf_spec: TimeframeFeatures) -> None:
    bars = tf_bars(tf_spec.timeframe, 2_500, seed=list(Timeframe).index(tf_spec.timeframe))
    expected = timeframe_features(bars, tf_spec).drop("available_at")
    fs = IncrementalFeatureSet(tf_spec)
    assert fs.columns == tuple(expected.columns) == tuple(tf_spec.columns())
    online = run_online(fs, bars)
    for j, name in enumerate(fs.columns):
        compare(name, online[:, j], expected[name].to_numpy())


def same_values(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return np.array_equal(np.array(a), np.array(b), equal_nan=True)


def test_pickle_round_trip_mid_stream_continues_identically() -> None:
    tf_spec = TimeframeFeatures(
        timeframe=Timeframe.M5, indicators=(*DEFAULTS, MACD(fast=3, slow=6, signal=3))
    )
    bars = messy_bars(3_000, seed=11)
    rows: list[tuple[Any, ...]] = list(
        bars.select("open", "high", "low", "close", "volume").iter_rows()
    )
    live = IncrementalFeatureSet(tf_spec)
    first = [live.update(*r) for r in rows[:1_700]]
    restored = pickle.loads(pickle.dumps(live))
    assert restored.columns == live.columns
    rest_live = [live.update(*r) for r in rows[1_700:]]
    rest_restored = [restored.update(*r) for r in rows[1_700:]]
    assert all(same_values(a, b) for a, b in zip(rest_live, rest_restored, strict=True))
    online = np.array(first + rest_restored)
    expected = timeframe_features(bars, tf_spec).drop("available_at")
    for j, name in enumerate(live.columns):
        compare(name, online[:, j], expected[name].to_numpy())


def test_each_indicator_state_pickles() -> None:
    bars = messy_bars(400, seed=12)
    rows = list(bars.select("open", "high", "low", "close", "volume").iter_rows())
    for spec in DEFAULTS:
        ind = incremental_for(spec)
        for r in rows[:250]:
            ind.update(*r)
        copy = pickle.loads(pickle.dumps(ind))
        for r in rows[250:]:
            assert same_values(ind.update(*r), copy.update(*r)), spec


def test_exact_fma_rounds_once() -> None:
    """TA-Lib's EMA/ATR steps are fused multiply-adds; the fallback must round like C's fma,
    including where the unfused ``a * b + c`` rounds differently."""
    rng = np.random.default_rng(13)
    triples = rng.normal(0.0, 1.0, (2_000, 3)) * 10.0 ** rng.integers(-8, 8, (2_000, 3))
    differs = 0
    for a, b, c in triples.tolist():
        exact = float(Fraction(a) * Fraction(b) + Fraction(c))
        assert _fma_exact(a, b, c) == exact
        differs += exact != a * b + c
    assert differs > 0
    assert _fma_exact(0.1, 10.0, -1.0) == 5.551115123125783e-17
    assert np.isnan(_fma_exact(np.inf, 0.0, 1.0))
