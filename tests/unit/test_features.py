"""Feature matrix: no look-ahead, alignment of higher timeframes, warm-up and time encodings."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from functools import cache

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drl_trading.common.domain import Symbol, Timeframe
from drl_trading.ingest.adapter.synthetic_provider import SyntheticProvider
from drl_trading.preprocess.core.features import (
    EVENT_TIME,
    FeatureMatrix,
    build_feature_matrix,
    time_encodings,
    timeframe_features,
)
from drl_trading.preprocess.core.resample import resample
from drl_trading.strategy.feature_set import (
    ATR,
    MACD,
    RSI,
    Bollinger,
    EMADistance,
    FeatureSetSpec,
    LogReturns,
    RealizedVolatility,
    TimeframeFeatures,
    VolumeZScore,
    default_feature_set,
)

START = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday
DAYS = 20
END = START + timedelta(days=DAYS)
SYMBOL = Symbol("BTCUSDT")

ALL_INDICATORS = (
    LogReturns(horizons=(1, 3)),
    RSI(period=5),
    MACD(fast=3, slow=6, signal=3),
    Bollinger(period=5, num_std=2.0),
    ATR(period=5),
    EMADistance(period=5),
    RealizedVolatility(window=4),
    VolumeZScore(window=4),
)


def small_spec() -> FeatureSetSpec:
    """Short look-backs on a 1m base so that every timeframe (30m and 1m included) is exercised."""
    return FeatureSetSpec(
        name="small",
        base_timeframe=Timeframe.M1,
        timeframes=tuple(
            TimeframeFeatures(timeframe=tf, indicators=ALL_INDICATORS) for tf in Timeframe
        ),
        time_encodings=True,
    )


SPECS = {"default": default_feature_set, "small": small_spec}


@cache
def minute_bars() -> pl.DataFrame:
    frames = SyntheticProvider(seed=42, chunk_days=7).fetch(SYMBOL, Timeframe.M1, START, END)
    bars = pl.concat(list(frames))
    assert bars.height == DAYS * 1440
    return bars


def bars_by_timeframe(bars: pl.DataFrame, spec: FeatureSetSpec) -> dict[Timeframe, pl.DataFrame]:
    return {tf: resample(bars, tf) for tf in spec.all_timeframes}


def build(bars: pl.DataFrame, spec: FeatureSetSpec) -> FeatureMatrix:
    return build_feature_matrix(bars_by_timeframe(bars, spec), spec)


@cache
def baseline(spec_name: str) -> FeatureMatrix:
    return build(minute_bars(), SPECS[spec_name]())


def perturb_from(bars: pl.DataFrame, cut: datetime, seed: int) -> pl.DataFrame:
    """Scale every bar opening at or after ``cut`` by its own factor; change volumes too."""
    rng = np.random.default_rng(seed)
    after = (bars["open_time"] >= cut).to_numpy()
    n = int(after.sum())
    price_factor = np.ones(bars.height)
    price_factor[after] = np.exp(rng.normal(0.0, 0.02, n))
    volume_factor = np.ones(bars.height)
    volume_factor[after] = rng.lognormal(0.0, 0.5, n)
    out = bars.with_columns(
        *(pl.col(c) * pl.Series(price_factor) for c in ("open", "high", "low", "close")),
        pl.col("volume") * pl.Series(volume_factor),
    )
    o, h, lo, c = (out[col].to_numpy() for col in ("open", "high", "low", "close"))
    assert np.all(h >= np.maximum(o, c))
    assert np.all(lo <= np.minimum(o, c))
    return out


def assert_no_look_ahead(spec_name: str, cut: datetime, seed: int) -> None:
    spec = SPECS[spec_name]()
    before = baseline(spec_name)
    after = build(perturb_from(minute_bars(), cut, seed), spec)

    early_a = before.frame.filter(pl.col(EVENT_TIME) <= cut)
    early_b = after.frame.filter(pl.col(EVENT_TIME) <= cut)
    assert early_a.height > 0, "cut falls inside the warm-up; choose a later one"
    assert early_a.height == early_b.height
    assert before.warmup_rows == after.warmup_rows
    assert early_a[EVENT_TIME].equals(early_b[EVENT_TIME])
    for col in spec.columns:
        a, b = early_a[col].to_numpy(), early_b[col].to_numpy()
        assert np.array_equal(a, b, equal_nan=True), f"{col} at or before {cut} saw later bars"

    # The perturbation is visible after the cut, so the comparison above can fail.
    late_a = before.frame.filter(pl.col(EVENT_TIME) > cut)
    late_b = after.frame.filter(pl.col(EVENT_TIME) > cut)
    assert late_a.height > 0
    assert late_a[EVENT_TIME].equals(late_b[EVENT_TIME])
    changed = [
        c
        for c in spec.columns
        if not np.array_equal(late_a[c].to_numpy(), late_b[c].to_numpy(), equal_nan=True)
    ]
    assert changed


CUTS = [
    START + timedelta(days=8),  # 1d, 4h, 1h, ... boundary
    START + timedelta(days=9, hours=4),  # 4h boundary, not a day
    START + timedelta(days=10, hours=13),  # 1h boundary, not 4h
    START + timedelta(days=11, hours=13, minutes=30),  # 30m boundary
    START + timedelta(days=12, hours=7, minutes=45),  # 15m boundary
    START + timedelta(days=13, hours=23, minutes=55),  # 5m boundary, just before midnight
    START + timedelta(days=14, hours=3, minutes=59),  # 1m only: one minute before a 4h close
    START + timedelta(days=15, hours=0, minutes=1),  # one minute after midnight
    START + timedelta(days=16, hours=17, minutes=3),  # off every grid but 1m
]


@pytest.mark.parametrize("spec_name", sorted(SPECS))
@pytest.mark.parametrize("cut", CUTS, ids=[c.strftime("%d_%H%M") for c in CUTS])
def test_no_look_ahead_at_fixed_cuts(spec_name: str, cut: datetime) -> None:
    assert_no_look_ahead(spec_name, cut, seed=int(cut.timestamp()))


@settings(max_examples=25, deadline=None)
@given(
    spec_name=st.sampled_from(sorted(SPECS)),
    minute=st.integers(min_value=8 * 1440, max_value=(DAYS - 1) * 1440),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_no_look_ahead_at_any_minute(spec_name: str, minute: int, seed: int) -> None:
    assert_no_look_ahead(spec_name, START + timedelta(minutes=minute), seed)


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_higher_timeframes_align_to_last_closed_bar(spec_name: str) -> None:
    spec = SPECS[spec_name]()
    by_tf = bars_by_timeframe(minute_bars(), spec)
    matrix = baseline(spec_name).frame
    event_us = matrix[EVENT_TIME].dt.epoch("us").to_numpy()
    for tf_spec in spec.timeframes:
        tf = tf_spec.timeframe
        bars = by_tf[tf]
        feats = timeframe_features(bars, tf_spec)
        close_us = (bars["open_time"].dt.epoch("us").to_numpy()) + tf.micros
        np.testing.assert_array_equal(feats["available_at"].dt.epoch("us").to_numpy(), close_us)
        idx = np.searchsorted(close_us, event_us, side="right") - 1
        assert np.all(idx >= 0)
        # The chosen bar has closed by the event; the next one has not.
        assert np.all(close_us[idx] <= event_us)
        nxt = idx + 1 < close_us.size
        assert np.all(close_us[idx[nxt] + 1] > event_us[nxt])
        for col in tf_spec.columns():
            np.testing.assert_array_equal(matrix[col].to_numpy(), feats[col].to_numpy()[idx])


def test_hourly_features_come_from_the_hour_closed_before_the_event() -> None:
    spec = default_feature_set()
    h1_spec = next(t for t in spec.timeframes if t.timeframe is Timeframe.H1)
    bars_1m = minute_bars()
    matrix = baseline("default").frame
    for event in [
        START + timedelta(days=10, hours=10, minutes=5),
        START + timedelta(days=10, hours=11),
        START + timedelta(days=12, hours=23, minutes=55),
    ]:
        row = matrix.filter(pl.col(EVENT_TIME) == event)
        assert row.height == 1
        last_close = Timeframe.H1.floor(event)
        # Recompute from only the 1m bars of hours that had closed by the event.
        hourly = resample(bars_1m.filter(pl.col("open_time") < last_close), Timeframe.H1)
        assert hourly["open_time"][-1] + timedelta(hours=1) == last_close
        feats = timeframe_features(hourly, h1_spec)
        for col in h1_spec.columns():
            assert row[col][0] == feats[col][-1], col


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_warmup_and_finiteness(spec_name: str) -> None:
    spec = SPECS[spec_name]()
    result = baseline(spec_name)
    base_rows = resample(minute_bars(), spec.base_timeframe).height
    assert result.warmup_rows > 0
    assert result.undefined_rows == 0
    assert result.frame.height + result.warmup_rows == base_rows
    assert result.frame.columns == [EVENT_TIME, *spec.columns]
    values = result.frame.select(spec.columns).to_numpy()
    assert np.isfinite(values).all()
    times = result.frame[EVENT_TIME]
    assert times.is_sorted()
    assert (times.diff().drop_nulls() == spec.base_timeframe.duration).all()
    # The daily features of the default set need six closed days (log return + 5-day volatility).
    if spec_name == "default":
        assert times[0] == START + timedelta(days=6)


def test_incomplete_rows_after_warmup_are_counted() -> None:
    spec = small_spec()
    bars = minute_bars()
    broken_at = START + timedelta(days=10, hours=5, minutes=3)
    bad = bars.with_columns(
        volume=pl.when(pl.col("open_time") == broken_at)
        .then(float("nan"))
        .otherwise(pl.col("volume"))
    )
    result = build(bad, spec)
    assert result.undefined_rows > 0
    assert result.warmup_rows == baseline("small").warmup_rows
    assert np.isfinite(result.frame.select(spec.columns).to_numpy()).all()
    assert (
        result.frame.height + result.warmup_rows + result.undefined_rows
        == resample(bars, spec.base_timeframe).height
    )


def test_time_encodings_bounded_and_periodic() -> None:
    matrix = baseline("default").frame
    enc_cols = ["tod_sin", "tod_cos", "dow_sin", "dow_cos"]
    values = matrix.select(enc_cols).to_numpy()
    assert np.all((values >= -1.0) & (values <= 1.0))
    np.testing.assert_allclose(
        matrix["tod_sin"].to_numpy() ** 2 + matrix["tod_cos"].to_numpy() ** 2, 1.0, rtol=1e-12
    )

    def shifted_equal(period: timedelta, cols: list[str]) -> None:
        later = matrix.select(
            (pl.col(EVENT_TIME) - period).alias(EVENT_TIME),
            *[pl.col(c).alias(f"{c}_later") for c in cols],
        )
        joined = matrix.join(later, on=EVENT_TIME, how="inner")
        assert joined.height > 0
        for c in cols:
            np.testing.assert_array_equal(joined[c].to_numpy(), joined[f"{c}_later"].to_numpy())

    shifted_equal(timedelta(days=1), ["tod_sin", "tod_cos"])
    shifted_equal(timedelta(days=7), enc_cols)
    # Not periodic over a shorter span: 12 hours later the time of day is opposite.
    half = matrix.join(
        matrix.select((pl.col(EVENT_TIME) - timedelta(hours=12)).alias(EVENT_TIME), "tod_sin"),
        on=EVENT_TIME,
        suffix="_later",
    )
    np.testing.assert_allclose(half["tod_sin"], -half["tod_sin_later"], atol=1e-12)


def test_time_encodings_use_open_time_values() -> None:
    times = pl.Series(
        [
            datetime(2024, 1, 1, 0, 0, tzinfo=UTC),  # Monday midnight
            datetime(2024, 1, 1, 6, 0, tzinfo=UTC),
            datetime(2024, 1, 1, 18, 0, tzinfo=UTC),
            datetime(2024, 1, 4, 12, 0, tzinfo=UTC),  # Thursday noon: half a week
        ]
    ).cast(pl.Datetime("us", "UTC"))
    enc = time_encodings(times)
    np.testing.assert_allclose(enc["tod_sin"], [0.0, 1.0, -1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(enc["tod_cos"], [1.0, 0.0, 0.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(enc["dow_sin"][[0, 3]], [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(enc["dow_cos"][[0, 3]], [1.0, -1.0], atol=1e-12)
    angle = 2 * math.pi * (0.25 / 7)
    assert enc["dow_sin"][1] == pytest.approx(math.sin(angle), abs=1e-12)

    # In the matrix, the encodings are those of the base bar's open time (event_time - 5m).
    matrix = baseline("default").frame
    opens = matrix[EVENT_TIME] - Timeframe.M5.duration
    expected = time_encodings(opens)
    for name, series in expected.items():
        np.testing.assert_array_equal(matrix[name].to_numpy(), series.to_numpy())
