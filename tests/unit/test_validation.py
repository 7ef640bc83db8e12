"""Every validation rule: a clear report naming the rule and row, and the row kept track of."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drl_trading.common.bars import VALUE_COLUMNS
from drl_trading.common.domain import Symbol, Timeframe, parse_time
from drl_trading.ingest.core.validation import Rule, find_gaps, validate_bars
from tests.conftest import make_bars


def _set(frame: pl.DataFrame, row: int, **values: float) -> pl.DataFrame:
    out = frame.clone()
    for col, value in values.items():
        series = out[col].to_list()
        series[row] = value
        out = out.with_columns(pl.Series(col, series, dtype=out.schema[col]))
    return out


CASES = [
    (Rule.NON_FINITE, {"close": math.nan}, "non-finite close"),
    (Rule.NON_FINITE, {"volume": math.inf}, "non-finite volume"),
    (Rule.NON_POSITIVE_PRICE, {"open": 0.0, "low": 0.0}, "non-positive price open=0.0"),
    (Rule.HIGH_BELOW_OPEN_CLOSE, {"high": 99.0}, "high=99.0 < max(open, close)"),
    (Rule.LOW_ABOVE_OPEN_CLOSE, {"low": 1000.0}, "low=1000.0 > min(open, close)"),
    (Rule.NEGATIVE_VOLUME, {"volume": -1.0}, "volume=-1.0 < 0"),
]


@pytest.mark.parametrize(
    ("rule", "change", "text"), CASES, ids=[c[0].value + str(i) for i, c in enumerate(CASES)]
)
def test_value_rules(rule: Rule, change: dict[str, float], text: str) -> None:
    bars = _set(make_bars("2024-01-01", 10), 4, **change)
    report = validate_bars(bars, Timeframe.M1)
    assert report.counts[rule] == 1
    assert report.bad_rows == 1
    assert report.bad_mask.tolist() == [i == 4 for i in range(10)]
    v = report.first_violation()
    assert v is not None
    assert v.rule is rule
    assert v.row == 5  # the fifth data row, 1-based
    assert v.open_time == parse_time("2024-01-01T00:04")
    assert text in v.describe()
    assert f"rule {rule.value}: data row 5 " in v.describe()


def test_off_grid_timestamp() -> None:
    bars = make_bars("2024-01-01", 5)
    times = bars["open_time"].to_list()
    times[2] = times[2] + timedelta(seconds=30)
    bars = bars.with_columns(pl.Series("open_time", times, dtype=bars.schema["open_time"]))
    report = validate_bars(bars, Timeframe.M1)
    assert report.counts[Rule.OFF_GRID] == 1
    assert report.examples[Rule.OFF_GRID][0].row == 3


def test_duplicates_and_out_of_order_rows() -> None:
    bars = make_bars("2024-01-01", 6)
    shuffled = pl.concat([bars[:3], bars[1:2], bars[4:], bars[3:4]])  # rows: 0 1 2 1 4 5 3
    report = validate_bars(shuffled, Timeframe.M1)
    assert report.counts[Rule.DUPLICATE] == 1
    assert report.examples[Rule.DUPLICATE][0].row == 4
    assert report.counts[Rule.OUT_OF_ORDER] == 1
    assert report.examples[Rule.OUT_OF_ORDER][0].row == 7
    assert report.bad_rows == 2


def test_duplicate_of_previous_batch_is_caught() -> None:
    bars = make_bars("2024-01-01", 5)
    report = validate_bars(bars[2:], Timeframe.M1, previous_open_time=bars["open_time"][2])
    assert report.counts[Rule.DUPLICATE] == 1
    report = validate_bars(bars[2:], Timeframe.M1, previous_open_time=bars["open_time"][4])
    assert report.counts[Rule.OUT_OF_ORDER] == 2
    assert report.counts[Rule.DUPLICATE] == 1


@pytest.mark.parametrize("n", [1, 6], ids=["one-row", "batch"])
def test_rows_are_named_by_the_data_rows_given(n: int) -> None:
    """A caller that knows where the rows came from (a file's data rows, or positions across
    chunks) passes their numbers; the report and its row positions keep them apart."""
    bars = _set(make_bars("2024-01-01", n), n - 1, volume=-1.0)
    numbers = [101 + 2 * i for i in range(n)]  # e.g. a range read out of a longer file
    report = validate_bars(bars, Timeframe.M1, row_numbers=numbers)
    v = report.first_violation()
    assert v is not None and v.row == numbers[-1]
    assert f"data row {numbers[-1]} " in v.describe()
    assert list(report.row_rules) == [n - 1]  # positions, for selecting the rows
    assert report.row_numbers.tolist() == numbers
    with pytest.raises(ValueError, match="row_numbers has 2 numbers for a batch of"):
        validate_bars(bars, Timeframe.M1, row_numbers=[1, 2])


def test_valid_batch_is_ok_and_summary_says_so() -> None:
    report = validate_bars(make_bars("2024-01-01", 50), Timeframe.M1)
    assert report.ok
    assert report.summary() == "50 rows valid"


def test_a_row_breaking_two_rules_is_listed_under_both() -> None:
    bars = _set(make_bars("2024-01-01", 3), 1, volume=-5.0, high=1.0)
    report = validate_bars(bars, Timeframe.M1)
    assert report.row_rules[1] == [Rule.HIGH_BELOW_OPEN_CLOSE, Rule.NEGATIVE_VOLUME]
    assert report.bad_rows == 1
    assert "high_below_open_close=1" in report.summary()


def test_gaps_inside_and_at_edges() -> None:
    bars = make_bars("2024-01-01T00:02", 20)
    times = pl.concat([bars["open_time"][:5], bars["open_time"][8:]])
    gaps = find_gaps(
        Symbol("X"),
        times,
        Timeframe.M1,
        expected_from=parse_time("2024-01-01T00:00"),
        expected_to=parse_time("2024-01-01T00:25"),
    )
    assert [(g.start.minute, g.end.minute, g.missing_bars) for g in gaps] == [
        (0, 2, 2),
        (7, 10, 3),
        (22, 25, 3),
    ]


def test_no_gaps_in_contiguous_data() -> None:
    bars = make_bars("2024-01-01", 30)
    assert (
        find_gaps(
            Symbol("X"),
            bars["open_time"],
            Timeframe.M1,
            expected_from=parse_time("2024-01-01"),
            expected_to=parse_time("2024-01-01T00:30"),
        )
        == []
    )


_VALUES = st.one_of(
    st.floats(min_value=-5.0, max_value=5.0),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 1.0]),
)


@settings(max_examples=300, deadline=None)
@given(
    st.tuples(_VALUES, _VALUES, _VALUES, _VALUES, _VALUES),
    st.sampled_from([0, 1, 30]),  # seconds past the minute: on or off the grid
    st.sampled_from([None, -1, 0, 1]),  # previous open time, in minutes from this one
)
def test_single_row_fast_path_agrees_with_the_batch_rules(
    values: tuple[float, float, float, float, float], seconds: int, previous: int | None
) -> None:
    """A live bar is validated alone in plain Python; it must say what the batch code says."""
    from drl_trading.ingest.core.validation import _validate_many, _validate_one

    frame = make_bars("2024-01-01", 1).with_columns(
        pl.col("open_time") + timedelta(seconds=seconds),
        *(pl.lit(v).alias(c) for v, c in zip(values, VALUE_COLUMNS, strict=True)),
    )
    prev = None if previous is None else parse_time("2024-01-01") + timedelta(minutes=previous)
    numbers = np.array([7])
    one = _validate_one(frame, Timeframe.M1, prev, numbers)
    many = _validate_many(frame, Timeframe.M1, prev, numbers)
    assert one.row_rules == many.row_rules
    assert one.counts == many.counts
    assert one.bad_mask.tolist() == many.bad_mask.tolist()
    assert [[x.describe() for x in e] for e in one.examples.values()] == [
        [x.describe() for x in e] for e in many.examples.values()
    ]


def test_bars_outside_the_sessions_break_market_closed_and_closures_are_no_gaps() -> None:
    from drl_trading.common.adapter.fx_calendar import FxCalendar

    fx = FxCalendar()
    s = Symbol("EURUSD")
    # Friday 8 March 2024 (EST: FX closes 22:00 UTC) to Monday: hours 20:00, 21:00 open, then
    # Saturday 12:00 (closed), then Sunday 21:00 and 22:00 (open again: EDT from 10 March)
    hours = ["2024-03-08T20:00", "2024-03-08T21:00", "2024-03-09T12:00", "2024-03-10T21:00",
             "2024-03-10T22:00"]  # fmt: skip
    frame = make_bars("2024-03-08T20:00", 5, step_minutes=60).with_columns(
        pl.Series("open_time", [parse_time(h) for h in hours]).cast(pl.Datetime("us", "UTC"))
    )
    report = validate_bars(frame, Timeframe.H1, calendar=fx)
    assert report.counts[Rule.MARKET_CLOSED] == 1
    assert report.row_rules == {2: [Rule.MARKET_CLOSED]}
    assert validate_bars(frame, Timeframe.H1).ok  # no calendar: every hour is a bar
    open_hours = frame.filter(~pl.Series(report.bad_mask))["open_time"]
    assert find_gaps(s, open_hours, Timeframe.H1, calendar=fx) == []
    assert len(find_gaps(s, open_hours, Timeframe.H1)) == 1  # 24/7: the weekend is a gap


@settings(max_examples=300, deadline=None)
@given(
    st.tuples(_VALUES, _VALUES, _VALUES, _VALUES, _VALUES),
    st.sampled_from([0, 1, 30]),  # seconds past the minute: on or off the grid
)
def test_a_live_bars_scalar_rules_are_the_reports_rules(
    values: tuple[float, float, float, float, float], seconds: int
) -> None:
    """Online ingest asks `bar_rules` of the `Bar` first and builds the report only when a rule
    breaks: both must name the same rules for the bar's one-row frame."""
    from drl_trading.common.bars import bars_to_frame
    from drl_trading.common.domain import Bar, to_micros
    from drl_trading.ingest.core.validation import bar_rules

    bar = Bar(
        Symbol("BTCUSDT"),
        Timeframe.M1,
        parse_time("2024-01-01") + timedelta(seconds=seconds),
        *values,
    )
    report = validate_bars(bars_to_frame([bar]), Timeframe.M1)
    assert bar_rules(to_micros(bar.open_time), *values, Timeframe.M1) == report.row_rules.get(0, [])
