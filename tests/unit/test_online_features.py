"""Training/serving parity: the online engine, fed one bar at a time, produces the same feature
rows and higher-timeframe bars as the offline batch path over the same history: 1m bars on a
24/7 market, and bars of the data's timeframe on FX, XNYS and XLON calendars."""

from __future__ import annotations

import math
import pickle
from datetime import datetime

import numpy as np
import polars as pl
import pytest

from drl_trading.common.adapter.exchange_calendars_calendar import ExchangeCalendarsCalendar
from drl_trading.common.adapter.fx_calendar import FxCalendar
from drl_trading.common.calendar import CalendarBook, MarketCalendar
from drl_trading.common.domain import Symbol, Timeframe
from drl_trading.ingest.adapter.synthetic_provider import SyntheticProvider
from drl_trading.preprocess.core.features import build_feature_matrix, close_times
from drl_trading.preprocess.core.market_sessions import OutOfSessionError
from drl_trading.preprocess.core.online import LateBarError, OnlineFeatureEngine
from drl_trading.preprocess.core.resample import resample
from drl_trading.strategy.feature_set import (
    Bollinger,
    FeatureSetSpec,
    IndicatorSpec,
    LogReturns,
    RealizedVolatility,
    TimeframeFeatures,
    VolumeZScore,
    default_feature_set,
)

SYM = Symbol("BTCUSDT")
REL = 1e-9
ABS = 1e-12


def _bars(start: str, end: str, seed: int = 11) -> pl.DataFrame:
    provider = SyntheticProvider(seed=seed)
    frames = list(provider.fetch(SYM, Timeframe.M1, datetime.fromisoformat(start + "T00:00+00:00"),
                                 datetime.fromisoformat(end + "T00:00+00:00")))  # fmt: skip
    return pl.concat(frames).sort("open_time")


def _online(bars: pl.DataFrame) -> tuple[OnlineFeatureEngine, dict, dict]:
    spec = default_feature_set()
    engine = OnlineFeatureEngine(spec, SYM)
    rows: dict[datetime, tuple[float, ...]] = {}
    closed: dict[Timeframe, list[tuple]] = {}
    for t, o, h, lo, c, v in bars.select(
        "open_time", "open", "high", "low", "close", "volume"
    ).iter_rows():
        htf, out = engine.update(t, o, h, lo, c, v)
        for b in htf:
            assert b.symbol == SYM
            closed.setdefault(b.timeframe, []).append(
                (b.open_time, b.open, b.high, b.low, b.close, b.volume)
            )
        for row in out:
            rows[row.event_time] = row.values
    return engine, rows, closed


def _compare(bars: pl.DataFrame) -> float:
    spec = default_feature_set()
    by_tf = {tf: resample(bars, tf) for tf in spec.all_timeframes}
    batch = build_feature_matrix(by_tf, spec).frame
    _, rows, closed = _online(bars)
    # every higher-timeframe bar is the batch resampler's
    for tf in spec.all_timeframes:
        if tf is Timeframe.M1:
            continue
        expected = by_tf[tf].select("open_time", "open", "high", "low", "close", "volume").rows()
        got = closed[tf]
        assert [r[:5] for r in got] == [r[:5] for r in expected], tf
        # volume: the same minutes summed in another order (last-digit differences)
        assert np.allclose([r[5] for r in got], [r[5] for r in expected], rtol=1e-13, atol=0)
    worst = 0.0
    times = batch["event_time"].to_list()
    values = batch.select(spec.columns).to_numpy()
    assert len(times) > 0
    for i, t in enumerate(times):
        got = rows[t]
        assert all(math.isfinite(x) for x in got), t
        for j, col in enumerate(spec.columns):
            want = float(values[i, j])
            diff = abs(got[j] - want)
            rel = diff / abs(want) if abs(want) > ABS else 0.0
            assert diff <= ABS or rel <= REL, f"{col} at {t}: online {got[j]!r} batch {want!r}"
            worst = max(worst, rel)
    # rows the batch dropped as warm-up are incomplete online too
    incomplete = [t for t, v in rows.items() if not all(math.isfinite(x) for x in v)]
    assert set(incomplete).isdisjoint(times)
    return worst


def test_parity_over_20000_base_bars() -> None:
    bars = _bars("2024-01-01", "2024-03-12")  # 71 days: 20,448 5m bars after warm-up
    worst = _compare(bars)
    spec = default_feature_set()
    assert len(spec.columns) == 49
    print(f"largest relative difference online vs batch: {worst:.3e}")


def test_parity_with_outages_and_a_mid_window_start() -> None:
    bars = _bars("2024-01-01", "2024-01-20", seed=5)
    rng = np.random.default_rng(0)
    keep = np.ones(bars.height, dtype=bool)
    # start inside a 4h window, and drop minutes: singles, a window's last minutes, a whole hour
    keep[:137] = False
    keep[rng.choice(bars.height, 300, replace=False)] = False
    keep[5000 + 55 : 5000 + 60] = False
    keep[9000:9060] = False
    _compare(bars.filter(pl.Series(keep)))


def test_late_and_duplicate_bars_are_refused() -> None:
    bars = _bars("2024-01-01", "2024-01-02").head(10)
    engine = OnlineFeatureEngine(default_feature_set(), SYM)
    rows = bars.rows()
    for r in rows[:5]:
        engine.update(r[0], *r[1:6])
    with pytest.raises(LateBarError):
        engine.update(rows[4][0], *rows[4][1:6])
    with pytest.raises(LateBarError):
        engine.update(rows[2][0], *rows[2][1:6])
    engine.update(rows[5][0], *rows[5][1:6])


# -- market calendars: the engine keys and closes bars as the batch does ------------------------


def _short_memory(base: Timeframe, context: tuple[Timeframe, ...]) -> FeatureSetSpec:
    """Indicators that settle within a few bars, so a few weeks of a closing market suffice."""
    quick: tuple[IndicatorSpec, ...] = (
        LogReturns(horizons=(1, 2)),
        RealizedVolatility(window=5),
        VolumeZScore(window=5),
        Bollinger(period=10),
    )
    ctx: tuple[IndicatorSpec, ...] = (LogReturns(horizons=(1,)), RealizedVolatility(window=5))
    return FeatureSetSpec(
        name="quick",
        base_timeframe=base,
        timeframes=(
            TimeframeFeatures(timeframe=base, indicators=quick),
            *(TimeframeFeatures(timeframe=tf, indicators=ctx) for tf in context),
        ),
    )


def _calendar_bars(
    calendar: MarketCalendar, tf: Timeframe, start: str, end: str, seed: int = 11
) -> pl.DataFrame:
    provider = SyntheticProvider(seed=seed, calendars=CalendarBook(default=calendar))
    frames = provider.fetch(SYM, tf, datetime.fromisoformat(start + "T00:00+00:00"),
                            datetime.fromisoformat(end + "T00:00+00:00"))  # fmt: skip
    return pl.concat(list(frames)).sort("open_time")


def _compare_on(
    calendar: MarketCalendar, source: Timeframe, bars: pl.DataFrame, spec: FeatureSetSpec
) -> int:
    """Batch vs the engine fed ``bars`` one at a time (snapshotted and restored half way):
    the same coarser bars, rows at the same calendar closes, values within 1e-9."""
    by_tf = {source: bars}
    for tf in spec.all_timeframes:
        if tf is not source:
            by_tf[tf] = resample(bars, tf, source=source, calendar=calendar)
    batch = build_feature_matrix(by_tf, spec, calendar).frame
    engine = OnlineFeatureEngine(spec, SYM, source, calendar)
    rows: dict[datetime, tuple[float, ...]] = {}
    closed: dict[Timeframe, list[tuple]] = {}
    records = bars.select("open_time", "open", "high", "low", "close", "volume").rows()
    for i, (t, o, h, lo, c, v) in enumerate(records):
        if i == len(records) // 2:
            engine = pickle.loads(pickle.dumps(engine))  # a snapshot resumes where it was
        htf, out = engine.update(t, o, h, lo, c, v)
        for b in htf:
            closed.setdefault(b.timeframe, []).append(
                (b.open_time, b.open, b.high, b.low, b.close, b.volume)
            )
        for row in out:
            rows[row.event_time] = row.values
    for tf in spec.all_timeframes:
        if tf is source:
            continue
        expected = by_tf[tf].select("open_time", "open", "high", "low", "close", "volume").rows()
        assert [r[:5] for r in closed[tf]] == [r[:5] for r in expected], tf
        assert np.allclose([r[5] for r in closed[tf]], [r[5] for r in expected], rtol=1e-13)
    base = spec.base_timeframe
    # every base bar's row is stamped with its calendar close, online as in the batch
    assert sorted(rows) == close_times(by_tf[base], base, calendar).to_list()
    times = batch["event_time"].to_list()
    values = batch.select(spec.columns).to_numpy()
    assert len(times) > 0
    for i, t in enumerate(times):
        got = rows[t]
        for j, col in enumerate(spec.columns):
            want = float(values[i, j])
            diff = abs(got[j] - want)
            rel = diff / abs(want) if abs(want) > ABS else 0.0
            assert diff <= ABS or rel <= REL, f"{col} at {t}: online {got[j]!r} batch {want!r}"
    return len(times)


def test_parity_on_fx_hourly_data_with_4h_and_daily_context() -> None:
    """Eight weeks of FX hourly bars (a daylight-saving switch in March moves the session
    boundary from 22:00 to 21:00 UTC), with an outage that takes a 4h window's last hours."""
    bars = _calendar_bars(FxCalendar(), Timeframe.H1, "2024-02-12", "2024-04-08")
    keep = np.ones(bars.height, dtype=bool)
    keep[:5] = False  # start inside a session and a 4h window
    keep[400:403] = False
    keep[700:730] = False
    bars = bars.filter(pl.Series(keep))
    spec = _short_memory(Timeframe.H1, (Timeframe.H4, Timeframe.D1))
    assert _compare_on(FxCalendar(), Timeframe.H1, bars, spec) > 700


def test_parity_on_xnys_minutes_with_hourly_base_and_daily_context() -> None:
    """Four weeks of XNYS minutes around 4 July 2024 (an early close, a holiday): hourly bars
    that open at 13:30 and close at 17:00 on the half day, daily bars at the session close."""
    xnys = ExchangeCalendarsCalendar("XNYS")
    bars = _calendar_bars(xnys, Timeframe.M1, "2024-06-17", "2024-07-13")
    spec = _short_memory(Timeframe.H1, (Timeframe.D1,))
    assert _compare_on(xnys, Timeframe.M1, bars, spec) > 60


def test_parity_on_xlon_hourly_data_with_daily_base() -> None:
    xlon = ExchangeCalendarsCalendar("XLON")
    bars = _calendar_bars(xlon, Timeframe.H1, "2024-05-01", "2024-08-01")
    spec = _short_memory(Timeframe.D1, ())
    assert _compare_on(xlon, Timeframe.H1, bars, spec) > 40


def test_an_engine_refuses_bars_outside_the_sessions_and_finer_timeframes() -> None:
    spec = _short_memory(Timeframe.H1, (Timeframe.D1,))
    engine = OnlineFeatureEngine(spec, SYM, Timeframe.H1, FxCalendar())
    saturday = datetime.fromisoformat("2024-06-22T10:00+00:00")
    with pytest.raises(OutOfSessionError, match=r"markets\.symbols\.BTCUSDT\.calendar"):
        engine.update(saturday, 1.0, 1.0, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="finer than the data's 4h"):
        OnlineFeatureEngine(spec, SYM, Timeframe.H4, FxCalendar())
