"""Each indicator's warm-up follows from its own recursion and `SEED_WEIGHT_TOLERANCE` (issue 12,
part 1): after it, a value no longer depends on where its history started; the reads (offline
preprocessing, online catch-up, a restarted online preprocess) take the whole of it."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from drl_trading.common.adapter.memory_bus import InMemoryBus
from drl_trading.common.adapter.memory_feature_store import InMemoryFeatureStore
from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.domain import Symbol, Timeframe, TimeRange, parse_time
from drl_trading.common.events import PreprocessDataRequested, ProcessingMode, ResampledBar
from drl_trading.ingest.adapter.memory_provider import InMemoryProvider
from drl_trading.ingest.core.service import IngestService, TrainingDataRequest
from drl_trading.preprocess.core.features import indicator_columns
from drl_trading.preprocess.core.online import OnlineRow
from drl_trading.preprocess.core.online_service import OnlinePreprocessService
from drl_trading.preprocess.core.service import warmup_note
from drl_trading.strategy.feature_set import (
    ATR,
    MACD,
    RSI,
    SEED_WEIGHT_TOLERANCE,
    Bollinger,
    EMADistance,
    IndicatorSpec,
    LogReturns,
    RealizedVolatility,
    VolumeZScore,
    default_feature_set,
    settle_bars,
)
from drl_trading.testing.feature_parity import (
    PARITY,
    compare_rows,
    market_with,
    offline_rows,
    online_bar_request,
    parity_difference,
    random_walk_bars,
)

SYM = Symbol("TESTUSDT")


@pytest.mark.parametrize("alpha", [1 / 14, 2 / 51, 2 / 27, 0.5, 0.9])
def test_settle_bars_is_the_first_bar_the_seed_weighs_below_the_tolerance(alpha: float) -> None:
    n = settle_bars(alpha)
    assert (1 - alpha) ** n <= SEED_WEIGHT_TOLERANCE < (1 - alpha) ** (n - 1)


def test_the_default_set_warm_up_per_timeframe() -> None:
    """The figures docs/data-path.md gives: Wilder 14 (RSI, ATR) 388 bars, EMA-50 741, MACD
    12/26/9 518; per timeframe the largest, read with two bars to spare."""
    assert (RSI(period=14).warmup_bars(), ATR(period=14).warmup_bars()) == (388, 388)
    assert EMADistance(period=50).warmup_bars() == 741
    assert MACD().warmup_bars() == 26 + 360 + 9 - 1 + 124
    spec = default_feature_set()
    got = {t.timeframe.value: (t.warmup_bars(), t.lookback()) for t in spec.timeframes}
    assert got == {
        "5m": (741, timedelta(minutes=5 * 743)),
        "15m": (741, timedelta(minutes=15 * 743)),
        "1h": (741, timedelta(hours=743)),
        "4h": (388, timedelta(hours=4 * 390)),
        "1d": (6, timedelta(days=8)),
    }
    assert spec.settle_time() == spec.lookback() == timedelta(days=65)


INDICATORS: list[IndicatorSpec] = [
    LogReturns(horizons=(1, 4)),
    RSI(period=14),
    RSI(period=3),
    MACD(),
    MACD(fast=3, slow=5, signal=4),
    Bollinger(period=20),
    ATR(period=14),
    EMADistance(period=50),
    EMADistance(period=5),
    RealizedVolatility(window=20),
    VolumeZScore(window=20),
]


@pytest.mark.parametrize("spec", INDICATORS, ids=lambda s: "-".join(s.columns()))
def test_after_its_warm_up_an_indicator_forgets_where_its_history_started(
    spec: IndicatorSpec,
) -> None:
    """The same bars, one series starting ``offset`` bars later: from the later series'
    `warmup_bars`-th bar on the two agree far inside the parity; a recursive indicator given
    a fraction of its warm-up does not (its seed still shows, relative to the indicator's scale)."""
    bars = random_walk_bars(parse_time("2024-05-01"), 3000, seed=7)
    offset = 97
    full = indicator_columns(spec, bars)
    late = indicator_columns(spec, bars[offset:])
    n = spec.warmup_bars()
    for col in spec.columns():
        a, b = full[col][offset:], late[col]
        assert math.isfinite(b[n - 1]), "defined by the end of its warm-up"
        settled = max(parity_difference(x, y) for x, y in zip(a[n - 1 :], b[n - 1 :], strict=True))
        assert settled <= PARITY * 1e-2, col
        if isinstance(spec, RSI | ATR | EMADistance | MACD):
            # half: the seed still weighs about the square root of the tolerance; MACD's chained
            # sum is conservative (the signal EMA forgets while the line settles), so a quarter
            part = n // 4 if isinstance(spec, MACD) else n // 2
            scale = float(np.median(np.abs(a[n:])))
            early = float(np.max(np.abs(a[part:n] - b[part:n]))) / scale
            assert early > PARITY, col


def test_the_note_says_what_a_short_history_costs() -> None:
    spec = default_feature_set()
    start = parse_time("2024-05-01")
    times = pl.Series([start + timedelta(minutes=5 * (i + 1)) for i in range(10)])
    note = warmup_note(spec, SYM, start, start, times, dropped=7)
    assert note is not None
    assert "starts 2024-05-01 00:00 UTC, inside the feature set's warm-up of 65 days" in note
    assert "7 requested rows dropped" in note
    assert "10 rows before 2024-07-05 00:00 UTC kept, computed from that first bar" in note
    assert "Ingest history from 2024-02-26" in note
    assert warmup_note(spec, SYM, start, start - timedelta(days=65), times, dropped=0) is None


# -- the online preprocess restarted mid-stream (distributed deployment) -----------------------

DEFAULT = default_feature_set()
HISTORY = parse_time("2024-03-01")
LIVE = HISTORY + timedelta(days=66)
"""A session start with the whole look-back (65 days) stored before it."""
END = LIVE + timedelta(hours=8)


@pytest.fixture(scope="module")
def market() -> InMemoryMarketData:
    minutes = int((END - HISTORY) / timedelta(minutes=1))
    return market_with(SYM, random_walk_bars(HISTORY, minutes, 3))


@pytest.mark.parametrize("carries_origin", [True, False], ids=["with-origin", "older-producer"])
def test_a_preprocess_restarted_mid_stream_serves_the_trained_values(
    market: InMemoryMarketData, carries_origin: bool
) -> None:
    """The distributed ingest starts the session one look-back before its first bar (as
    `app.services` does); preprocess is killed mid-stream and a new one takes the stream from the
    next bar: it rebuilds its state from the stored bars and serves what the uninterrupted one
    serves and what training stored, to 1e-9, whether or not the events carry the catch-up
    origin (with it: the very same bars, so the same values bit for bit)."""
    origin = LIVE - DEFAULT.lookback()
    bars = [
        ResampledBar(**r)
        for r in market.read_bars(SYM, Timeframe.M1, LIVE, END).iter_rows(named=True)
    ]
    steady_rows: list[OnlineRow] = []
    steady = OnlinePreprocessService(
        market, InMemoryFeatureStore(), DEFAULT, on_row=lambda s, r: steady_rows.append(r)
    )
    steady.catch_up(
        PreprocessDataRequested(mode=ProcessingMode.CATCHUP, symbols=[SYM], start=origin, end=LIVE)
    )
    kill_at = 200 + 2  # mid 5m bar
    restarted_rows: list[OnlineRow] = []
    restarted = OnlinePreprocessService(
        market, InMemoryFeatureStore(), DEFAULT, on_row=lambda s, r: restarted_rows.append(r)
    )
    sent = origin if carries_origin else None
    for i, bar in enumerate(bars):
        steady.on_bar(online_bar_request(SYM, bar, origin))
        if i > kill_at:
            restarted.on_bar(online_bar_request(SYM, bar, sent))
    assert restarted.stats.rewarmed == 1
    want = {r.event_time: r.values for r in steady_rows if r.event_time > bars[kill_at].open_time}
    got = {r.event_time: r.values for r in restarted_rows}
    assert set(got) == set(want) and len(got) > 50
    if carries_origin:
        assert got == want
    n, worst, where = compare_rows(DEFAULT, want, got)
    assert n == len(want) and worst <= PARITY, where
    trained = offline_rows(market, DEFAULT, SYM, LIVE - timedelta(days=1), END)
    n, worst, where = compare_rows(DEFAULT, trained, got)
    assert n == len(got) and worst <= PARITY, where
    assert np.isfinite([v for row in got.values() for v in row]).all()


# -- ingest fetches the warm-up before a requested start ---------------------------------------


@pytest.mark.parametrize("held_days", [3, 1])
def test_ingest_fetches_the_warm_up_before_the_range_and_counts_it_apart(held_days: int) -> None:
    """A provider holding the warm-up gives it (stored, counted as warm-up, outside the gap
    report); one holding less (a file) gives what it has, and no gap is reported for the rest."""
    start = parse_time("2024-05-04")
    held_from = start - timedelta(days=held_days)
    bars = random_walk_bars(held_from, (held_days + 1) * 1440, seed=1)
    repo = InMemoryMarketData()
    service = IngestService(InMemoryProvider({str(SYM): bars}, chunk_rows=700), repo, InMemoryBus())
    rng = TimeRange(start, start + timedelta(days=1))
    request = TrainingDataRequest((SYM,), rng, warmup=timedelta(days=2))
    assert request.fetch_from == start - timedelta(days=2)
    (rep,) = service.ingest_history(request, request_preprocessing=False).symbols
    fetched_warmup = min(held_days, 2) * 1440
    assert (rep.warmup_rows, rep.stored_rows) == (fetched_warmup, fetched_warmup + 1440)
    assert rep.gaps == []
    assert rep.first_open_time == max(held_from, request.fetch_from)
    cov = repo.coverage(SYM, Timeframe.M1)
    assert cov is not None and cov.first_open_time == rep.first_open_time
