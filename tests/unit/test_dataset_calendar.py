"""Training's data on a market calendar that closes: feature rows read at the calendar's bar
closes, a series broken only by a missing bar (not by an FX weekend or an exchange night),
splits cut on the market's bars (daily bars: sessions), and 24/7 exactly as before."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.adapter.exchange_calendars_calendar import ExchangeCalendarsCalendar
from drl_trading.common.adapter.fx_calendar import FxCalendar
from drl_trading.common.adapter.memory_feature_store import InMemoryFeatureStore
from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.bar_windows import bar_closes, bar_slots
from drl_trading.common.bars import TIME_DTYPE
from drl_trading.common.calendar import CalendarBook, MarketCalendar
from drl_trading.common.domain import Symbol, Timeframe, TimeRange, from_micros, to_micros
from drl_trading.common.feature_dataset import DatasetError, load_feature_matrix
from drl_trading.ingest.adapter.synthetic_provider import SyntheticProvider
from drl_trading.strategy.feature_set import FeatureSetSpec
from drl_trading.strategy.feature_view import view_for
from drl_trading.training.core.dataset import (
    SplitError,
    embargo_bars,
    make_splits,
    series_from_frame,
    split_bars_needed,
    stored_range,
)

EURUSD = Symbol("EURUSD")
FX = FxCalendar()
XNYS = ExchangeCalendarsCalendar("XNYS")
XLON = ExchangeCalendarsCalendar("XLON")
WEEK = TimeRange(datetime(2024, 1, 7, tzinfo=UTC), datetime(2024, 1, 13, tzinfo=UTC))
"""The FX week of 8-12 January 2024: Sunday 22:00 UTC to Friday 22:00 UTC, 120 hourly bars."""
SUMMER = TimeRange(datetime(2024, 7, 8, tzinfo=UTC), datetime(2024, 7, 13, tzinfo=UTC))
"""A London summer week, Monday 8 to Friday 12 July 2024."""


def base_spec(base: Timeframe) -> FeatureSetSpec:
    return FeatureSetSpec.model_validate(
        {
            "name": "calendar_test",
            "base_timeframe": base.value,
            "time_encodings": False,
            "timeframes": [
                {"timeframe": base.value, "indicators": [{"kind": "log_return", "horizons": [1]}]}
            ],
        }
    )


def synthetic_bars(calendar: MarketCalendar, tf: Timeframe, rng: TimeRange) -> pl.DataFrame:
    provider = SyntheticProvider(calendars=CalendarBook(calendar))
    return pl.concat(list(provider.fetch(EURUSD, tf, rng.start, rng.end)))


def stored_features(
    calendar: MarketCalendar, tf: Timeframe, rng: TimeRange, *, drop: int | None = None
) -> tuple[InMemoryMarketData, InMemoryFeatureStore, FeatureSetSpec]:
    """``tf`` bars of ``calendar`` over ``rng`` stored, with a feature row at each bar's
    calendar close (bar ``drop`` left out of both)."""
    bars = synthetic_bars(calendar, tf, rng)
    if drop is not None:
        bars = bars.filter(pl.int_range(pl.len()) != drop)
    market = InMemoryMarketData()
    market.upsert_bars(EURUSD, tf, bars)
    spec = base_spec(tf)
    view = view_for(spec)
    store = InMemoryFeatureStore()
    store.register(view)
    store.write_offline(view, EURUSD, feature_rows_at_closes(calendar, tf, bars, view.columns))
    return market, store, spec


def feature_rows_at_closes(
    calendar: MarketCalendar, tf: Timeframe, bars: pl.DataFrame, columns: tuple[str, ...]
) -> pl.DataFrame:
    """A feature row at each bar's calendar close, the bar's index in every column."""
    closes = bar_closes(calendar, tf, bars["open_time"].dt.epoch("us").to_numpy())
    return pl.DataFrame(
        {"event_time": pl.Series(closes).cast(TIME_DTYPE)}
        | {c: np.arange(bars.height, dtype=np.float64) for c in columns}
    )


def _matrix(
    calendar: MarketCalendar, tf: Timeframe, rng: TimeRange, *, drop: int | None = None
) -> tuple[pl.DataFrame, FeatureSetSpec]:
    market, store, spec = stored_features(calendar, tf, rng, drop=drop)
    data = load_feature_matrix(market, store, view_for(spec), [EURUSD], rng, calendar)
    assert data.missing_rows == {EURUSD: 0}
    return data.frame, spec


# -- feature rows at calendar closes -----------------------------------------------------------


def test_an_fx_week_of_hourly_bars_is_one_series_not_five() -> None:
    rng = TimeRange(WEEK.start, WEEK.end + timedelta(days=7))  # two weeks, a weekend between
    frame, spec = _matrix(FX, Timeframe.H1, rng)
    assert frame.height == 240
    (series,) = series_from_frame(frame, spec.columns, Timeframe.H1, calendar=FX)
    assert len(series) == 240
    # the last bar before the weekend and the first after it are neighbours
    friday = np.datetime64("2024-01-12T22:00", "us")
    i = int(np.flatnonzero(series.times == friday)[0])
    assert series.times[i + 1] == np.datetime64("2024-01-14T23:00", "us")
    # read as a 24/7 market, the same rows break at the weekend
    assert len(series_from_frame(frame, spec.columns, Timeframe.H1)) == 2


def test_a_week_of_xnys_hourly_bars_is_one_series_not_five() -> None:
    rng = TimeRange(datetime(2024, 1, 8, tzinfo=UTC), datetime(2024, 1, 13, tzinfo=UTC))
    frame, spec = _matrix(XNYS, Timeframe.H1, rng)
    (series,) = series_from_frame(frame, spec.columns, Timeframe.H1, calendar=XNYS)
    assert len(series) == frame.height == 5 * 7  # 14:00 (opens 14:30) to 20:00 UTC
    assert len(series_from_frame(frame, spec.columns, Timeframe.H1)) == 5


def test_a_missing_bar_still_splits_a_series_on_a_calendar() -> None:
    frame, spec = _matrix(FX, Timeframe.H1, WEEK, drop=50)
    parts = series_from_frame(frame, spec.columns, Timeframe.H1, calendar=FX)
    assert [len(p) for p in parts] == [50, 69]


def test_feature_rows_are_read_at_the_calendar_close_of_each_base_bar() -> None:
    """In London's summer XLON trades 07:00-15:30 UTC: the hourly bar keyed 15:00 closes at
    15:30 with the session, and its features are read there (at a nominal 16:00 close the
    as-of read would find no row of that bar)."""
    frame, spec = _matrix(XLON, Timeframe.H1, SUMMER)
    day = frame.filter(pl.col("bar_open_time").dt.day() == 8)
    assert day["bar_open_time"].dt.hour().to_list() == list(range(7, 16))
    assert day["event_time"][-1] == datetime(2024, 7, 8, 15, 30, tzinfo=UTC)
    assert day["event_time"][0] == datetime(2024, 7, 8, 8, tzinfo=UTC)
    (series,) = series_from_frame(frame, spec.columns, Timeframe.H1, calendar=XLON)
    assert len(series) == frame.height == 5 * 9


def test_a_daily_bar_is_read_at_its_session_close_and_the_range_ends_there() -> None:
    rng = TimeRange(datetime(2024, 7, 1, tzinfo=UTC), datetime(2024, 7, 9, tzinfo=UTC))
    frame, spec = _matrix(XNYS, Timeframe.D1, rng)
    opens = frame["bar_open_time"].to_list()
    closes = frame["event_time"].to_list()
    days = [d.day for d in opens]
    assert days == [1, 2, 3, 5, 8]  # 4 July closed, weekend
    assert closes[2] == datetime(2024, 7, 3, 17, tzinfo=UTC)  # the early close
    assert closes[0] == datetime(2024, 7, 1, 20, tzinfo=UTC)
    (series,) = series_from_frame(frame, spec.columns, Timeframe.D1, calendar=XNYS)
    assert len(series) == 5
    assert stored_range(frame, Timeframe.D1, rng, XNYS) == TimeRange(
        rng.start, datetime(2024, 7, 8, 20, tzinfo=UTC)
    )


def test_a_range_ending_before_a_bar_closes_leaves_that_bar_out() -> None:
    market, store, spec = stored_features(XLON, Timeframe.H1, SUMMER)
    end = datetime(2024, 7, 8, 15, 15, tzinfo=UTC)  # inside the 15:00 bar, which closes 15:30
    rng = TimeRange(SUMMER.start, end)
    data = load_feature_matrix(market, store, view_for(spec), [EURUSD], rng, XLON)
    assert data.frame["bar_open_time"].max() == datetime(2024, 7, 8, 14, tzinfo=UTC)
    rng = TimeRange(SUMMER.start, end + timedelta(minutes=15))
    data = load_feature_matrix(market, store, view_for(spec), [EURUSD], rng, XLON)
    assert data.frame["bar_open_time"].max() == datetime(2024, 7, 8, 15, tzinfo=UTC)


def test_bars_outside_the_calendar_are_a_dataset_error_naming_the_setting() -> None:
    market, store, spec = stored_features(AlwaysOpenCalendar(), Timeframe.H1, WEEK)
    with pytest.raises(DatasetError, match=r"markets\.symbols\.EURUSD\.calendar") as err:
        load_feature_matrix(market, store, view_for(spec), [EURUSD], WEEK, FX)
    assert "2024-01-07 00:00" in str(err.value)  # the first stored bar the market never made


def test_on_24_7_the_calendar_changes_nothing() -> None:
    rng = TimeRange(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 3, tzinfo=UTC))
    market, store, spec = stored_features(AlwaysOpenCalendar(), Timeframe.H1, rng, drop=7)
    view = view_for(spec)
    plain = load_feature_matrix(market, store, view, [EURUSD], rng)
    with_calendar = load_feature_matrix(market, store, view, [EURUSD], rng, AlwaysOpenCalendar())
    assert plain.frame.equals(with_calendar.frame)
    a = series_from_frame(plain.frame, spec.columns, Timeframe.H1)
    b = series_from_frame(plain.frame, spec.columns, Timeframe.H1, calendar=AlwaysOpenCalendar())
    assert [len(s) for s in a] == [len(s) for s in b] == [7, 40]
    assert all(np.array_equal(x.times, y.times) for x, y in zip(a, b, strict=True))


# -- splits on the market's bars -------------------------------------------------------------


def _labels(rng: TimeRange) -> set[datetime]:
    return {from_micros(int(k)) for k in bar_slots(XNYS, Timeframe.D1, rng.start, rng.end)}


def test_daily_splits_on_xnys_land_on_sessions_and_count_bars() -> None:
    rng = TimeRange(datetime(2022, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC))
    splits = make_splits(rng, Timeframe.D1, 0.15, 0.15, timedelta(days=3), 2, calendar=XNYS)
    sessions = _labels(rng)
    assert len(sessions) == 501  # 2022: 251, 2023: 250
    fold = splits.final
    bounds = [fold.train.end, fold.validation.start, fold.validation.end, splits.test.start]
    bounds += [f.validation.start for f in splits.folds]
    assert all(b in sessions for b in bounds), bounds
    assert splits.folds[0].train.start == rng.start and splits.test.end == rng.end

    def bars(part: TimeRange) -> int:
        return len(_labels(part))

    assert bars(splits.test) == 501 - int(501 * 0.85)  # 15% of the sessions, not of the days
    assert bars(fold.validation) in (75, 76)
    assert bars(TimeRange(fold.validation.end, splits.test.start)) == 3  # the embargo, in bars
    assert bars(TimeRange(fold.train.end, fold.validation.start)) == 3


def test_hourly_fx_splits_never_start_a_part_on_the_weekend() -> None:
    rng = TimeRange(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC))
    splits = make_splits(rng, Timeframe.H1, 0.15, 0.15, timedelta(hours=12), calendar=FX)
    keys = set(bar_slots(FX, Timeframe.H1, rng.start, rng.end).tolist())
    fold = splits.final
    for t in (fold.train.end, fold.validation.start, fold.validation.end, splits.test.start):
        assert to_micros(t) in keys, t


@pytest.mark.parametrize(
    ("calendar", "base", "val", "test", "embargo", "folds", "bars"),
    list(
        itertools.product(
            [FX, XNYS],
            [Timeframe.H1, Timeframe.D1],
            [0.05, 0.25],
            [0.1, 0.3],
            [timedelta(0), timedelta(days=2)],
            [1, 2],
            [2, 33],
        )
    ),
)
def test_the_bars_the_splits_need_are_enough_and_a_quarter_less_are_not(
    calendar: MarketCalendar,
    base: Timeframe,
    val: float,
    test: float,
    embargo: timedelta,
    folds: int,
    bars: int,
) -> None:
    need = split_bars_needed(val, test, embargo_bars(embargo, base), folds, bars)
    start = datetime(2023, 1, 2, tzinfo=UTC)
    slots = bar_slots(calendar, base, start, start + timedelta(days=3 * need + 30))
    end = from_micros(int(slots[need]))  # exactly ``need`` bars keyed in [start, end)
    splits = make_splits(
        TimeRange(start, end), base, val, test, embargo, folds, min_bars=bars, calendar=calendar
    )
    parts = [p for f in splits.folds for p in (f.train, f.validation)] + [splits.test]
    for p in parts:
        assert bar_slots(calendar, base, p.start, p.end).size >= bars
    if need < 100:
        return
    short = TimeRange(start, from_micros(int(slots[int(need * 0.75)])))
    with pytest.raises(SplitError, match="too little data for the splits"):
        make_splits(short, base, val, test, embargo, folds, min_bars=bars, calendar=calendar)


def test_too_few_market_bars_say_how_many_there_are_and_how_many_the_splits_need() -> None:
    rng = TimeRange(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 20, tzinfo=UTC))
    with pytest.raises(SplitError) as err:
        make_splits(rng, Timeframe.D1, 0.15, 0.15, timedelta(days=5), calendar=XNYS)
    assert str(err.value) == (
        "too little data for the splits: the range 2024-01-01 00:00..2024-01-20 00:00 UTC, 13 1d "
        "bars of market calendar XNYS; the splits (training.split) need at least 22 bars: "
        "validation 15% and test 15% of them, an embargo of 5 bars (5 days) between the parts, "
        "and training at least 10% of them; every part at least 2 bars. Ingest a longer range, "
        "or lower training.split.validation_fraction, test_fraction or embargo"
    )


@pytest.mark.parametrize("base", [Timeframe.M5, Timeframe.H1, Timeframe.D1])
def test_24_7_splits_are_the_epoch_grid_ones_with_or_without_the_calendar(
    base: Timeframe,
) -> None:
    rng = TimeRange(datetime(2024, 1, 3, 7, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC))
    args = (rng, base, 0.15, 0.15, timedelta(hours=12), 2)
    assert make_splits(*args) == make_splits(*args, calendar=AlwaysOpenCalendar())
