"""Online preprocessing through its service: catch-up, then bar-by-bar requests; the served
vectors equal the offline path's rows for the same range (both start from the same look-back)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import polars as pl
import pytest

from drl_trading.common.adapter.fx_calendar import FxCalendar
from drl_trading.common.adapter.memory_feature_store import InMemoryFeatureStore
from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.bars import TIME_DTYPE
from drl_trading.common.calendar import CalendarBook
from drl_trading.common.domain import Symbol, Timeframe, TimeRange
from drl_trading.common.events import (
    PreprocessDataRequested,
    ProcessingMode,
    ResampledBar,
)
from drl_trading.ingest.adapter.synthetic_provider import SyntheticProvider
from drl_trading.preprocess.core.online import OnlineRow
from drl_trading.preprocess.core.online_service import OnlinePreprocessService
from drl_trading.preprocess.core.service import PreprocessService
from drl_trading.strategy.feature_set import (
    Bollinger,
    FeatureSetSpec,
    LogReturns,
    RealizedVolatility,
    TimeframeFeatures,
    VolumeZScore,
    default_feature_set,
)

SYM = Symbol("BTCUSDT")
RNG = TimeRange.parse("2024-01-01", "2024-01-18")
LIVE = TimeRange.parse("2024-01-15", "2024-01-17")


@pytest.fixture(scope="module")
def market() -> InMemoryMarketData:
    md = InMemoryMarketData()
    for chunk in SyntheticProvider(seed=3).fetch(SYM, Timeframe.M1, RNG.start, RNG.end):
        md.upsert_bars(SYM, Timeframe.M1, chunk)
    return md


def test_online_rows_equal_offline_rows(market: InMemoryMarketData) -> None:
    spec = default_feature_set()
    store = InMemoryFeatureStore()
    served: list[OnlineRow] = []
    online = OnlinePreprocessService(market, store, spec, on_row=lambda s, r: served.append(r))
    done = online.catch_up(
        PreprocessDataRequested(
            mode=ProcessingMode.CATCHUP, symbols=[SYM], start=LIVE.start, end=LIVE.start
        )
    )
    assert done.mode is ProcessingMode.CATCHUP
    assert done.topic == "completed.preprocess-data.catchup"
    assert store.online_features(online.view, [SYM])[SYM].event_time == LIVE.start

    bars = market.read_bars(SYM, Timeframe.M1, LIVE.start, LIVE.end)
    stored_tf: dict[Timeframe, int] = {}
    completions = 0
    for i, row in enumerate(bars.iter_rows(named=True)):
        bar = ResampledBar(**row)
        req = PreprocessDataRequested(
            mode=ProcessingMode.ONLINE,
            symbols=[SYM],
            start=bar.open_time,
            end=bar.open_time + timedelta(minutes=1),
            bar_close_time=bar.open_time + timedelta(minutes=1),
            bars=[bar] if i % 2 == 0 else None,  # half carried, half read back from the store
        )
        stores, completed = online.on_bar(req)
        for s in stores:
            stored_tf[s.timeframe] = stored_tf.get(s.timeframe, 0) + len(s.bars)
        if completed is not None:
            completions += 1
            assert completed.topic == "completed.preprocess-data.online"
            assert completed.bar_close_time == req.bar_close_time
        # redelivery of the same request changes nothing
        assert online.on_bar(req) == ([], None)
    days = 2
    assert stored_tf[Timeframe.M5] == days * 288
    assert stored_tf[Timeframe.H4] == days * 6
    assert stored_tf[Timeframe.D1] == days
    assert completions == days * 288 == len(served)

    offline_store = InMemoryFeatureStore()
    batch = PreprocessService(market, offline_store, spec)
    batch.preprocess(
        PreprocessDataRequested(
            mode=ProcessingMode.OFFLINE, symbols=[SYM], start=LIVE.start, end=LIVE.end
        )
    )
    entities = pl.DataFrame(
        {"symbol": [str(SYM)] * len(served), "event_time": [r.event_time for r in served]}
    ).with_columns(pl.col("event_time").cast(TIME_DTYPE))
    offline = offline_store.historical_features(batch.view, entities)
    worst = 0.0
    for r, want in zip(served, offline.select(spec.columns).iter_rows(), strict=True):
        for got_v, want_v in zip(r.values, want, strict=True):
            assert want_v is not None
            diff = abs(got_v - want_v)
            rel = diff / abs(want_v) if abs(want_v) > 1e-12 else 0.0
            assert diff <= 1e-12 or rel <= 1e-9
            worst = max(worst, rel)
    assert math.isfinite(worst)
    latest = store.online_features(online.view, [SYM])[SYM]
    assert latest.event_time == served[-1].event_time
    assert latest.values == served[-1].values


def test_offline_and_online_completions_answer_their_request_alike(
    market: InMemoryMarketData,
) -> None:
    """Both services build their completion the same way: it echoes the request and names the
    feature view; only the online one stamps the latency chain and gives a bar close."""
    spec = default_feature_set()
    view = ("feature_set_name", "feature_set_version", "feature_view")
    offline_req = PreprocessDataRequested(
        mode=ProcessingMode.OFFLINE,
        symbols=[SYM],
        start=LIVE.start,
        end=LIVE.start + timedelta(hours=2),
    )
    catchup_req = PreprocessDataRequested(
        mode=ProcessingMode.CATCHUP,
        symbols=[SYM],
        start=LIVE.start,
        end=LIVE.start,
        stages={"received": 1.0},
    )
    offline = PreprocessService(market, InMemoryFeatureStore(), spec).preprocess(offline_req)
    online = OnlinePreprocessService(market, InMemoryFeatureStore(), spec)
    catchup = online.catch_up(catchup_req)
    for done, req in ((offline, offline_req), (catchup, catchup_req)):
        assert done.correlation_id == req.correlation_id
        assert done.request_event_id == req.event_id
        assert (done.symbols, done.start, done.end) == (req.symbols, req.start, req.end)
        assert tuple(getattr(done, f) for f in view) == (spec.name, spec.version, spec.view_name)
        assert done.mode is req.mode
        assert done.bar_close_time is None
    assert offline.stages == {}
    assert set(catchup.stages) == {"received", "preprocess"}
    bar = ResampledBar(
        **market.read_bars(SYM, Timeframe.M1, LIVE.start, LIVE.end).row(4, named=True)
    )
    _, live = online.on_bar(_online_request(bar))  # the bar closing the first 5m bar
    assert live is not None
    assert live.mode is ProcessingMode.ONLINE
    assert live.bar_close_time == bar.open_time + timedelta(minutes=1)
    assert tuple(getattr(live, f) for f in view) == tuple(getattr(catchup, f) for f in view)


def _online_request(bar: ResampledBar) -> PreprocessDataRequested:
    return PreprocessDataRequested(
        catchup_start=LIVE.start,
        mode=ProcessingMode.ONLINE,
        symbols=[SYM],
        start=bar.open_time,
        end=bar.open_time + timedelta(minutes=1),
        bar_close_time=bar.open_time + timedelta(minutes=1),
        bars=[bar],
    )


def test_a_restarted_service_rebuilds_its_state_at_the_first_live_bar(
    market: InMemoryMarketData,
) -> None:
    """Killed mid-stream, preprocess comes back with no state and no catch-up request (ingest
    sent that to its previous life): from the first bar its consumer group redelivers, it serves
    the vectors the uninterrupted service serves."""
    spec = default_feature_set()
    bars = [
        ResampledBar(**r)
        for r in market.read_bars(SYM, Timeframe.M1, LIVE.start, LIVE.end).iter_rows(named=True)
    ]
    kill_at = 1_000 + 3  # not on a base-bar boundary: the restart begins mid 5m bar
    steady_rows: list[OnlineRow] = []
    steady = OnlinePreprocessService(
        market, InMemoryFeatureStore(), spec, on_row=lambda s, r: steady_rows.append(r)
    )
    steady.catch_up(
        PreprocessDataRequested(
            mode=ProcessingMode.CATCHUP, symbols=[SYM], start=LIVE.start, end=LIVE.start
        )
    )
    restarted_rows: list[OnlineRow] = []
    store = InMemoryFeatureStore()
    restarted = OnlinePreprocessService(
        market, store, spec, on_row=lambda s, r: restarted_rows.append(r)
    )
    done = []
    for i, bar in enumerate(bars):
        steady.on_bar(_online_request(bar))
        if i >= kill_at:
            done.append(restarted.on_bar(_online_request(bar))[1])
    assert restarted.stats.rewarmed == 1
    want = [r for r in steady_rows if r.event_time > bars[kill_at].open_time]
    assert [r.event_time for r in restarted_rows] == [r.event_time for r in want]
    assert len(want) == sum((i + 1) % 5 == 0 for i in range(kill_at, len(bars)))
    # rebuilt from the session's catch-up origin: the very same arithmetic on the same bars
    assert [r.values for r in restarted_rows] == [r.values for r in want]
    assert sum(d is not None for d in done) == len(want)
    assert store.online_features(restarted.view, [SYM])[SYM].event_time == want[-1].event_time


# -- FX hourly data: online state across a weekend ---------------------------------------------

FX_SYM = Symbol("EURUSD")
FX_BOOK = CalendarBook(default=FxCalendar())
FX_RNG = TimeRange.parse("2024-05-06", "2024-06-29")
FX_LIVE = TimeRange.parse("2024-06-19", "2024-06-27")  # Wednesday to Thursday, a weekend inside


def _quick_fx_spec() -> FeatureSetSpec:
    return FeatureSetSpec(
        name="quick_fx",
        base_timeframe=Timeframe.H1,
        timeframes=(
            TimeframeFeatures(
                timeframe=Timeframe.H1,
                indicators=(
                    LogReturns(horizons=(1, 2)),
                    RealizedVolatility(window=5),
                    VolumeZScore(window=5),
                    Bollinger(period=10),
                ),
            ),
            TimeframeFeatures(
                timeframe=Timeframe.H4,
                indicators=(LogReturns(horizons=(1,)), RealizedVolatility(window=5)),
            ),
            TimeframeFeatures(timeframe=Timeframe.D1, indicators=(LogReturns(horizons=(1,)),)),
        ),
    )


@pytest.fixture(scope="module")
def fx_market() -> InMemoryMarketData:
    md = InMemoryMarketData()
    provider = SyntheticProvider(seed=3, calendars=FX_BOOK)
    for chunk in provider.fetch(FX_SYM, Timeframe.H1, FX_RNG.start, FX_RNG.end):
        md.upsert_bars(FX_SYM, Timeframe.H1, chunk)
    return md


def _fx_request(bar: ResampledBar, *, carried: bool = True) -> PreprocessDataRequested:
    close = bar.open_time + timedelta(hours=1)  # every FX hourly bar is whole
    return PreprocessDataRequested(
        catchup_start=FX_LIVE.start,
        mode=ProcessingMode.ONLINE,
        symbols=[FX_SYM],
        timeframe=Timeframe.H1,
        start=bar.open_time,
        end=close,
        bar_close_time=close,
        bars=[bar] if carried else None,
    )


def test_fx_online_rows_equal_offline_and_a_restart_after_the_weekend_rebuilds_them(
    fx_market: InMemoryMarketData,
) -> None:
    """Hourly FX data stored under 1h: the online service, caught up on Wednesday, serves the
    offline rows (1e-9) at the calendar closes; one restarted with no state at Sunday's open
    (its previous life ended on Friday's close) rebuilds the same values from the stored bars."""
    spec = _quick_fx_spec()
    bars = [
        ResampledBar(**r)
        for r in fx_market.read_bars(FX_SYM, Timeframe.H1, FX_LIVE.start, FX_LIVE.end).iter_rows(
            named=True
        )
    ]
    steady_rows: list[OnlineRow] = []
    steady = OnlinePreprocessService(
        fx_market, InMemoryFeatureStore(), spec, on_row=lambda s, r: steady_rows.append(r),
        calendars=FX_BOOK,
    )  # fmt: skip
    steady.catch_up(
        PreprocessDataRequested(
            mode=ProcessingMode.CATCHUP,
            symbols=[FX_SYM],
            timeframe=Timeframe.H1,
            start=FX_LIVE.start,
            end=FX_LIVE.start,
        )
    )
    sunday = next(i for i, b in enumerate(bars) if b.open_time.weekday() == 6)
    assert bars[sunday].open_time == FX_LIVE.start.replace(day=23, hour=21)  # 17:00 New York
    assert bars[sunday - 1].open_time == FX_LIVE.start.replace(day=21, hour=20)  # Friday's last
    restarted_rows: list[OnlineRow] = []
    restarted = OnlinePreprocessService(
        fx_market, InMemoryFeatureStore(), spec, on_row=lambda s, r: restarted_rows.append(r),
        calendars=FX_BOOK,
    )  # fmt: skip
    stored: dict[Timeframe, list[datetime]] = {}
    for i, bar in enumerate(bars):
        stores, _ = steady.on_bar(_fx_request(bar, carried=i % 2 == 0))
        for s in stores:
            stored.setdefault(s.timeframe, []).extend(b.open_time for b in s.bars)
        if i >= sunday:
            restarted.on_bar(_fx_request(bar, carried=i % 3 == 0))
    assert restarted.stats.rewarmed == 1
    assert set(stored) == {Timeframe.H4, Timeframe.D1}  # the data's own 1h bars are stored
    assert all(t.weekday() < 5 for t in stored[Timeframe.D1])  # labelled Monday..Friday
    # rows at the calendar closes, none over the weekend
    assert [r.event_time for r in steady_rows] == [b.open_time + timedelta(hours=1) for b in bars]
    want = steady_rows[sunday:]
    assert [r.event_time for r in restarted_rows] == [r.event_time for r in want]
    assert [r.values for r in restarted_rows] == [r.values for r in want]

    offline_store = InMemoryFeatureStore()
    batch = PreprocessService(fx_market, offline_store, spec, calendars=FX_BOOK)
    batch.preprocess(
        PreprocessDataRequested(
            mode=ProcessingMode.OFFLINE,
            symbols=[FX_SYM],
            timeframe=Timeframe.H1,
            start=FX_LIVE.start,
            end=FX_LIVE.end,
        )
    )
    entities = pl.DataFrame(
        {"symbol": [str(FX_SYM)] * len(steady_rows),
         "event_time": [r.event_time for r in steady_rows]}
    ).with_columns(pl.col("event_time").cast(TIME_DTYPE))  # fmt: skip
    offline = offline_store.historical_features(batch.view, entities)
    for r, row in zip(steady_rows, offline.select(spec.columns).iter_rows(), strict=True):
        assert r.complete
        for got_v, want_v in zip(r.values, row, strict=True):
            assert want_v is not None
            assert abs(got_v - want_v) <= 1e-12 or abs(got_v - want_v) / abs(want_v) <= 1e-9
