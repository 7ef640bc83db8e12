"""Walk-forward folds with rolling training windows (issue 13): the validations stay where the
expanding folds put them, every fold trains on equally many bars (of the market, where it
closes) ending an embargo before its validation, and a length that does not fit is refused
naming the numbers and the setting to change."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from drl_trading.common.bar_windows import bar_slots
from drl_trading.common.calendar import MarketCalendar
from drl_trading.common.domain import Timeframe, TimeRange, from_micros, to_micros
from drl_trading.training.core.config import SplitSettings, TrainingSettings
from drl_trading.training.core.dataset import SplitError, Splits, embargo_bars, make_splits
from tests.unit.test_dataset_calendar import FX, XNYS

RANGE = TimeRange.parse("2024-01-01", "2024-03-01")
EMBARGO = timedelta(hours=12)
DAY = timedelta(days=1)


def _grid_bars(part: TimeRange, base: Timeframe) -> int:
    """Base bars whose open lies in ``part`` on the epoch grid (what the series filter keeps)."""
    first = base.floor(part.start)
    if first < part.start:
        first += base.duration
    return 0 if first >= part.end else -(-(part.end - first) // base.duration)


def _market_bars(part: TimeRange, calendar: MarketCalendar, base: Timeframe) -> int:
    return int(bar_slots(calendar, base, part.start, part.end).size)


def _assert_walk_forward(splits: Splits) -> None:
    """Validations consecutive and touching exactly (no bar in two of them, whatever the
    fractions), the last an embargo before the test."""
    vals = [f.validation for f in splits.folds]
    for a, b in itertools.pairwise(vals):
        assert a.start < b.start == a.end
    assert vals[-1].end + splits.embargo <= splits.test.start
    for f in splits.folds:
        assert f.train.start < f.train.end <= f.validation.start


# -- 24/7 -------------------------------------------------------------------------------------


def test_expanding_is_the_default_and_unchanged() -> None:
    args = (RANGE, Timeframe.M5, 0.15, 0.15, EMBARGO, 3)
    default = make_splits(*args)
    assert make_splits(*args, window="expanding") == default
    assert all(f.train.start == RANGE.start for f in default.folds)
    assert default.window == "expanding" and default.train_length is None
    described = default.describe()
    assert described["window"] == "expanding" and "train_length" not in described
    assert default.window_text == "expanding training windows"


def test_rolling_by_default_trains_every_fold_as_long_as_fold_0() -> None:
    args = (RANGE, Timeframe.M5, 0.15, 0.15, EMBARGO, 3)
    expanding = make_splits(*args)
    rolling = make_splits(*args, window="rolling")
    assert rolling.folds[0] == expanding.folds[0]
    assert rolling.test == expanding.test
    span = expanding.folds[0].train.end - RANGE.start
    assert span == timedelta(days=23)
    for r, e in zip(rolling.folds, expanding.folds, strict=True):
        assert r.validation == e.validation
        assert r.train.end == e.train.end == r.validation.start - EMBARGO
        assert r.train.end - r.train.start == span
        assert _grid_bars(r.train, Timeframe.M5) == 23 * 288
    assert rolling.folds[2].train.start == datetime(2024, 1, 19, tzinfo=UTC)
    _assert_walk_forward(rolling)
    assert rolling.describe()["window"] == "rolling"
    assert rolling.describe()["train_length"] == "23 days"
    assert rolling.window_text == "rolling training windows of 23 days"


def test_a_rolling_length_is_whole_base_bars_ending_an_embargo_before_validation() -> None:
    # 10 days and 7 minutes is 2,881 5m bars: the part of a bar left over is not trained on
    length = timedelta(days=10, minutes=7)
    splits = make_splits(
        RANGE, Timeframe.M5, 0.15, 0.15, EMBARGO, 3, window="rolling", train_length=length
    )
    for f in splits.folds:
        assert f.train.end - f.train.start == timedelta(days=10, minutes=5)
        assert f.validation.start - f.train.end == EMBARGO
        assert Timeframe.M5.is_on_grid(f.train.start)
    assert splits.describe()["train_length"] == "10 days 5 min"


def test_an_off_grid_start_gives_every_rolling_fold_the_same_bars() -> None:
    rng = TimeRange(datetime(2024, 1, 3, 7, 2, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC))
    splits = make_splits(rng, Timeframe.H1, 0.1, 0.15, EMBARGO, 4, window="rolling")
    bars = {_grid_bars(f.train, Timeframe.H1) for f in splits.folds}
    assert len(bars) == 1, bars
    assert splits.folds[0].train.start == rng.start


def test_a_rolling_length_too_short_or_too_long_is_refused_with_its_numbers() -> None:
    args = (RANGE, Timeframe.M5, 0.15, 0.15, EMBARGO, 3)
    with pytest.raises(SplitError) as short:
        make_splits(*args, min_bars=9, window="rolling", train_length=timedelta(minutes=40))
    assert str(short.value) == (
        "training.split.train_length 40 min is 8 5m bars, fewer than the 9 every part of the "
        "splits needs: lengthen it, or set it to null (as long as fold 0's expanding window)"
    )
    with pytest.raises(SplitError) as long:
        make_splits(*args, window="rolling", train_length=timedelta(days=30))
    assert str(long.value) == (
        "training.split.train_length 30 days is longer than fits before fold 0's validation: "
        "its expanding window, 2024-01-01 00:00..2024-01-24 00:00 UTC, is 23 days. Shorten it, "
        "or set it to null (that length), lower training.split.walk_forward_folds or "
        "validation_fraction, or ingest a longer range"
    )
    # exactly fold 0's expanding window fits
    assert (
        make_splits(*args, window="rolling", train_length=timedelta(days=23)).folds[0]
        == (make_splits(*args).folds[0])
    )


def test_a_length_for_expanding_windows_is_refused() -> None:
    with pytest.raises(SplitError, match="train_length applies to rolling windows only"):
        make_splits(RANGE, Timeframe.M5, 0.15, 0.15, EMBARGO, 2, train_length=DAY)


def test_too_little_data_is_still_the_expanding_message() -> None:
    short = TimeRange(RANGE.start, RANGE.start + DAY)
    with pytest.raises(SplitError, match="too little data for the splits"):
        make_splits(short, Timeframe.M5, 0.15, 0.15, EMBARGO, 2, window="rolling")


@settings(max_examples=60, deadline=None)
@given(
    base=st.sampled_from([Timeframe.M5, Timeframe.H1]),
    validation=st.floats(0.03, 0.2),
    test=st.floats(0.05, 0.3),
    folds=st.integers(1, 5),
    embargo_hours=st.integers(0, 48),
    length_days=st.one_of(st.none(), st.floats(0.01, 40)),
    offset_minutes=st.integers(0, 600),
)
@example(  # 0.2 x 3 + 0.3 leaves training 10% + 3e-17 in floats: refused, not an overflow
    base=Timeframe.M5,
    validation=0.19999999999999998,
    test=0.3,
    folds=3,
    embargo_hours=0,
    length_days=None,
    offset_minutes=1,
)
def test_rolling_folds_keep_their_invariants_or_are_refused(
    base: Timeframe,
    validation: float,
    test: float,
    folds: int,
    embargo_hours: int,
    length_days: float | None,
    offset_minutes: int,
) -> None:
    rng = TimeRange(RANGE.start + timedelta(minutes=offset_minutes), RANGE.end)
    embargo = timedelta(hours=embargo_hours)
    length = None if length_days is None else timedelta(days=length_days)
    args = (rng, base, validation, test, embargo, folds)
    try:
        expanding = make_splits(*args)
    except SplitError:
        with pytest.raises(SplitError):
            make_splits(*args, window="rolling", train_length=length)
        return
    _assert_walk_forward(expanding)
    room = expanding.folds[0].train.end - expanding.folds[0].train.start
    if length is not None and (
        length // base.duration < 2 or (length // base.duration) * base.duration > room
    ):
        with pytest.raises(SplitError, match=r"^training\.split\.train_length "):
            make_splits(*args, window="rolling", train_length=length)
        return
    rolling = make_splits(*args, window="rolling", train_length=length)
    assert [f.validation for f in rolling.folds] == [f.validation for f in expanding.folds]
    assert rolling.test == expanding.test
    spans = {f.train.end - f.train.start for f in rolling.folds}
    assert len(spans) == 1
    for r, e in zip(rolling.folds, expanding.folds, strict=True):
        assert r.train.end == e.train.end and r.train.start >= rng.start
    _assert_walk_forward(rolling)


# -- calendars that close -----------------------------------------------------------------------


def test_rolling_fx_folds_train_on_equally_many_market_bars() -> None:
    rng = TimeRange(datetime(2023, 1, 2, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC))
    base = Timeframe.H1
    args = (rng, base, 0.1, 0.1, EMBARGO, 3)
    expanding = make_splits(*args, calendar=FX)
    rolling = make_splits(*args, calendar=FX, window="rolling", train_length=timedelta(days=30))
    keys = set(bar_slots(FX, base, rng.start, rng.end).tolist())
    for r, e in zip(rolling.folds, expanding.folds, strict=True):
        assert r.validation == e.validation and r.train.end == e.train.end
        # 30 days of 1h bars is 720 bars of the market, about six FX weeks, none on a weekend
        assert _market_bars(r.train, FX, base) == 720
        assert to_micros(r.train.start) in keys
        assert _market_bars(TimeRange(r.train.end, r.validation.start), FX, base) == (
            embargo_bars(EMBARGO, base)
        )
    assert rolling.describe()["train_length"] == "720 1h bars of market calendar fx"
    _assert_walk_forward(rolling)


def test_rolling_xnys_sessions_by_default_as_many_as_fold_0() -> None:
    rng = TimeRange(datetime(2022, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC))
    args = (rng, Timeframe.D1, 0.1, 0.15, timedelta(days=3), 3)
    expanding = make_splits(*args, calendar=XNYS)
    rolling = make_splits(*args, calendar=XNYS, window="rolling")
    assert rolling.folds[0] == expanding.folds[0]
    sessions = {_market_bars(f.train, XNYS, Timeframe.D1) for f in rolling.folds}
    assert sessions == {_market_bars(expanding.folds[0].train, XNYS, Timeframe.D1)}
    for f in rolling.folds[1:]:
        assert from_micros(int(bar_slots(XNYS, Timeframe.D1, f.train.start, rng.end)[0])) == (
            f.train.start
        )
        assert _market_bars(TimeRange(f.train.end, f.validation.start), XNYS, Timeframe.D1) == 3


def test_a_rolling_length_in_market_bars_that_does_not_fit_is_refused() -> None:
    rng = TimeRange(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC))
    args = (rng, Timeframe.H1, 0.15, 0.15, EMBARGO, 2)
    with pytest.raises(SplitError) as long:
        make_splits(*args, calendar=FX, window="rolling", train_length=timedelta(days=30))
    assert str(long.value).startswith(
        "training.split.train_length 30 days is 720 1h bars of market calendar fx, more than "
        "fit before fold 0's validation: its expanding window, 2024-01-01 00:00.."
    )
    assert "Shorten it, or set it to null (that length)" in str(long.value)
    with pytest.raises(SplitError, match=r"is 1 1h bar of market calendar fx, fewer than the 3"):
        make_splits(
            *args, min_bars=3, calendar=FX, window="rolling", train_length=timedelta(hours=1)
        )


# -- settings ---------------------------------------------------------------------------------


def test_the_settings_default_to_expanding_and_refuse_a_length_for_it() -> None:
    split = SplitSettings()
    assert split.window == "expanding" and split.train_length is None
    rolling = SplitSettings.model_validate({"window": "rolling", "train_length": "P30D"})
    assert rolling.train_length == timedelta(days=30)
    with pytest.raises(ValueError, match=r"set training\.split\.window to rolling"):
        SplitSettings.model_validate({"train_length": "P30D"})
    with pytest.raises(ValueError, match="greater than 0"):
        SplitSettings.model_validate({"window": "rolling", "train_length": 0})
    with pytest.raises(ValueError, match="'expanding' or 'rolling'"):
        TrainingSettings.model_validate({"split": {"window": "sliding"}})
