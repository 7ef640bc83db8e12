"""Properties of `resample` over random valid 1m bar series, checked against a plain reference;
then resampling on market calendars (XNYS, XLON, FX): daily bars are sessions, bars close with
the market."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.adapter.exchange_calendars_calendar import ExchangeCalendarsCalendar
from drl_trading.common.adapter.fx_calendar import FxCalendar
from drl_trading.common.bars import BAR_SCHEMA
from drl_trading.common.calendar import CalendarBook, MarketCalendar
from drl_trading.common.domain import Symbol, Timeframe, to_micros
from drl_trading.ingest.adapter.synthetic_provider import SyntheticProvider
from drl_trading.preprocess.core.features import build_feature_matrix, close_times
from drl_trading.preprocess.core.resample import resample
from drl_trading.strategy.feature_set import FeatureSetSpec, LogReturns, TimeframeFeatures

HIGHER = [tf for tf in Timeframe if tf is not Timeframe.M1]
BASE = datetime(2024, 3, 1, tzinfo=UTC)
MINUTE_US = 60_000_000


@dataclass(frozen=True)
class Series1m:
    """A 1m series as plain numpy arrays (minutes since epoch) and as a canonical bar frame."""

    minutes: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def frame(self) -> pl.DataFrame:
        times = (
            pl.Series("open_time", self.minutes * MINUTE_US, dtype=pl.Int64)
            .cast(pl.Datetime("us"))
            .dt.replace_time_zone("UTC")
        )
        return pl.DataFrame(
            {
                "open_time": times,
                "open": self.open,
                "high": self.high,
                "low": self.low,
                "close": self.close,
                "volume": self.volume,
            },
            schema=BAR_SCHEMA,
        )


def make_series(minutes: np.ndarray, seed: int) -> Series1m:
    """Valid OHLCV on the given minutes: positive prices, high >= max(o, c), low <= min(o, c)."""
    rng = np.random.default_rng(seed)
    n = minutes.size
    level = 10.0 ** rng.uniform(-2, 5)
    close = level * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    open_ = np.empty(n)
    open_[0] = level
    open_[1:] = close[:-1]
    # Some bars are flat (o == c == h == l) to exercise ties in max/min.
    flat = rng.random(n) < 0.05
    close[flat] = open_[flat]
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.001, n)) * ~flat)
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.001, n)) * ~flat)
    volume = rng.lognormal(3.0, 1.0, n)
    volume[rng.random(n) < 0.1] = 0.0
    return Series1m(minutes, open_, high, low, close, volume)


@st.composite
def contiguous_series(draw: st.DrawFn) -> Series1m:
    # Half the time, start and length sit within a few minutes of a window boundary of some
    # timeframe, where off-by-one errors in edge handling would show.
    near_edge = st.builds(
        lambda d, k, delta: k * d + delta,
        st.sampled_from([tf.minutes for tf in HIGHER]),
        st.integers(min_value=0, max_value=3),
        st.integers(min_value=-2, max_value=2),
    )
    n = draw(st.one_of(st.integers(min_value=1, max_value=3000), near_edge))
    n = min(max(n, 1), 3000)
    offset = draw(st.one_of(st.integers(min_value=0, max_value=3 * 1440), near_edge))
    offset = max(offset, 0)
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    first = to_micros(BASE) // MINUTE_US + offset
    return make_series(np.arange(first, first + n, dtype=np.int64), seed)


def reference(
    series: Series1m, tf: Timeframe
) -> list[tuple[int, float, float, float, float, float]]:
    """(open minute, o, h, l, c, v) of every window fully inside [first open, last open + 1m)."""
    d = tf.minutes
    lo, hi = int(series.minutes[0]), int(series.minutes[-1]) + 1
    first_window = -(-lo // d)  # ceil: the first window starting at or after lo
    rows = []
    for k in range(first_window, hi // d):
        start = k * d
        if start + d > hi:
            break
        sel = (series.minutes >= start) & (series.minutes < start + d)
        if not sel.any():
            continue
        rows.append(
            (
                start,
                float(series.open[sel][0]),
                float(series.high[sel].max()),
                float(series.low[sel].min()),
                float(series.close[sel][-1]),
                float(series.volume[sel].sum()),
            )
        )
    return rows


def assert_matches_reference(series: Series1m, tf: Timeframe, out: pl.DataFrame) -> None:
    expected = reference(series, tf)
    assert out.schema == pl.Schema(BAR_SCHEMA)
    assert out.height == len(expected)
    if not expected:
        return
    exp = np.array(expected)
    got_minutes = out["open_time"].dt.epoch("us").to_numpy() // MINUTE_US
    np.testing.assert_array_equal(got_minutes, exp[:, 0].astype(np.int64))
    for i, col in enumerate(("open", "high", "low", "close"), start=1):
        np.testing.assert_array_equal(out[col].to_numpy(), exp[:, i], err_msg=col)
    np.testing.assert_allclose(out["volume"].to_numpy(), exp[:, 5], rtol=1e-12, atol=1e-9)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series=contiguous_series())
def test_aggregates_match_reference_for_every_timeframe(series: Series1m) -> None:
    bars = series.frame()
    for tf in HIGHER:
        assert_matches_reference(series, tf, resample(bars, tf))


@settings(max_examples=50, deadline=None)
@given(series=contiguous_series())
def test_bar_count_grid_and_no_partial_edges(series: Series1m) -> None:
    bars = series.frame()
    span_lo = int(series.minutes[0])
    span_hi = int(series.minutes[-1]) + 1
    for tf in HIGHER:
        d = tf.minutes
        out = resample(bars, tf)
        fully_covered = max(0, span_hi // d - (-(-span_lo // d)))
        assert out.height == fully_covered, tf
        starts = out["open_time"].dt.epoch("us").to_numpy() // MINUTE_US
        assert np.all(starts % d == 0), tf
        assert all(tf.is_on_grid(t) for t in out["open_time"]), tf
        # No partial window at either edge: every bar lies inside the data span...
        assert np.all(starts >= span_lo), tf
        assert np.all(starts + d <= span_hi), tf
        # ...and is made of exactly `d` minutes (the series is contiguous).
        assert np.all(np.diff(starts) == d), tf


@settings(max_examples=50, deadline=None)
@given(series=contiguous_series())
def test_resample_to_1m_is_identity(series: Series1m) -> None:
    bars = series.frame()
    assert_frame_equal(resample(bars, Timeframe.M1), bars)


@settings(max_examples=30, deadline=None)
@given(series=contiguous_series(), data=st.data())
def test_interior_gaps_aggregate_existing_minutes(series: Series1m, data: st.DataObject) -> None:
    """Random minutes dropped inside the span still aggregate what remains."""
    n = series.minutes.size
    keep = np.ones(n, dtype=bool)
    if n > 2:
        drop = data.draw(
            st.lists(st.integers(min_value=1, max_value=n - 2), max_size=min(n - 2, 200))
        )
        keep[drop] = False
    thinned = Series1m(
        series.minutes[keep],
        series.open[keep],
        series.high[keep],
        series.low[keep],
        series.close[keep],
        series.volume[keep],
    )
    bars = thinned.frame()
    for tf in HIGHER:
        assert_matches_reference(thinned, tf, resample(bars, tf))


def test_gap_inside_window_still_produces_the_bar() -> None:
    start = datetime(2024, 1, 2, 10, 0, tzinfo=UTC)
    first = to_micros(start) // MINUTE_US
    minutes = np.arange(first, first + 120, dtype=np.int64)  # 10:00 .. 11:59
    series = make_series(minutes, seed=3)
    missing = (minutes >= first + 20) & (minutes < first + 35)  # 10:20 .. 10:34 missing
    keep = ~missing
    bars = Series1m(
        minutes[keep],
        series.open[keep],
        series.high[keep],
        series.low[keep],
        series.close[keep],
        series.volume[keep],
    ).frame()

    hourly = resample(bars, Timeframe.H1)
    assert hourly["open_time"].to_list() == [start, start + timedelta(hours=1)]
    first_hour = slice(0, 60)
    k = keep[first_hour]
    row = hourly.row(0, named=True)
    assert row["open"] == series.open[0]
    assert row["close"] == series.close[59]
    assert row["high"] == series.high[first_hour][k].max()
    assert row["low"] == series.low[first_hour][k].min()
    assert row["volume"] == pytest.approx(series.volume[first_hour][k].sum(), rel=1e-12)

    # The 15m window 10:30 keeps its 10:35-10:44 minutes; 10:15 keeps 10:15-10:19.
    quarter = resample(bars, Timeframe.M15)
    assert quarter.height == 8
    q = quarter.filter(pl.col("open_time") == start + timedelta(minutes=30)).row(0, named=True)
    assert q["open"] == series.open[35]
    assert q["close"] == series.close[44]
    # A 5m window with every minute missing yields no bar (nothing to aggregate).
    five = resample(bars, Timeframe.M5)
    five_starts = set(five["open_time"].to_list())
    assert start + timedelta(minutes=20) not in five_starts
    assert start + timedelta(minutes=25) not in five_starts
    assert start + timedelta(minutes=30) not in five_starts
    assert start + timedelta(minutes=15) in five_starts
    assert start + timedelta(minutes=35) in five_starts
    assert five.height == 24 - 3


@pytest.mark.parametrize(
    ("first", "count", "expected"),
    [
        ("10:00", 60, ["10:00"]),
        ("10:00", 59, []),
        ("10:01", 60, []),
        ("10:01", 119, ["11:00"]),
        ("09:59", 62, ["10:00"]),
        ("10:00", 180, ["10:00", "11:00", "12:00"]),
    ],
)
def test_hourly_edges(first: str, count: int, expected: list[str]) -> None:
    hour, minute = map(int, first.split(":"))
    start = datetime(2024, 1, 2, hour, minute, tzinfo=UTC)
    m0 = to_micros(start) // MINUTE_US
    bars = make_series(np.arange(m0, m0 + count, dtype=np.int64), seed=1).frame()
    got = [t.strftime("%H:%M") for t in resample(bars, Timeframe.H1)["open_time"]]
    assert got == expected


def test_empty_input_gives_empty_frame() -> None:
    empty = pl.DataFrame(schema=BAR_SCHEMA)
    for tf in Timeframe:
        out = resample(empty, tf)
        assert out.is_empty()
        assert out.schema == pl.Schema(BAR_SCHEMA)


# -- market calendars ---------------------------------------------------------------------------

XNYS = ExchangeCalendarsCalendar("XNYS")
XLON = ExchangeCalendarsCalendar("XLON")
FX = FxCalendar()
SYM = Symbol("AAA")


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _calendar_bars(calendar: MarketCalendar, tf: Timeframe, start: str, end: str) -> pl.DataFrame:
    """Synthetic bars of ``tf`` on ``calendar``'s sessions (the provider keys them by
    `bar_keys`, drops closed minutes)."""
    provider = SyntheticProvider(seed=3, calendars=CalendarBook(default=calendar))
    return pl.concat(list(provider.fetch(SYM, tf, _utc(start), _utc(end))))


def _aggregate(rows: pl.DataFrame) -> tuple[float, float, float, float, float]:
    return (
        rows["open"][0],
        float(rows["high"].max()),  # type: ignore[arg-type]
        float(rows["low"].min()),  # type: ignore[arg-type]
        rows["close"][-1],
        float(rows["volume"].sum()),
    )


def _assert_bar(row: dict[str, object], want: tuple[float, ...]) -> None:
    got = tuple(row[c] for c in ("open", "high", "low", "close", "volume"))
    assert got[:4] == want[:4]
    assert got[4] == pytest.approx(want[4], rel=1e-12)


def test_xnys_daily_bars_are_sessions_and_hourly_bars_close_with_the_market() -> None:
    """The week of 4 July 2024: Wednesday closes early (17:00 UTC), Thursday is a holiday."""
    minutes = _calendar_bars(XNYS, Timeframe.M1, "2024-07-01", "2024-07-06")
    daily = resample(minutes, Timeframe.D1, calendar=XNYS)
    labels = ["2024-07-01", "2024-07-02", "2024-07-03", "2024-07-05"]
    assert daily["open_time"].to_list() == [_utc(d) for d in labels]
    closes = close_times(daily, Timeframe.D1, XNYS).to_list()
    hours = ["T20:00", "T20:00", "T17:00", "T20:00"]
    assert closes == [_utc(d + c) for d, c in zip(labels, hours, strict=True)]
    for label, close, row in zip(labels, closes, daily.iter_rows(named=True), strict=True):
        session = minutes.filter(
            (pl.col("open_time") >= _utc(label + "T13:30")) & (pl.col("open_time") < close)
        )
        assert session.height == (210 if label == "2024-07-03" else 390)
        _assert_bar(row, _aggregate(session))

    hourly = resample(minutes, Timeframe.H1, calendar=XNYS)
    assert hourly.height == 3 * 7 + 4  # 13:00 (opens 13:30) .. 19:00; 13:00 .. 16:00 on the 3rd
    first = hourly.row(0, named=True)
    assert first["open_time"] == _utc("2024-07-01T13:00")
    _assert_bar(first, _aggregate(minutes.head(30)))  # the half hour the market traded
    early = hourly.filter(pl.col("open_time").dt.date() == _utc("2024-07-03").date())
    assert close_times(early, Timeframe.H1, XNYS).to_list()[-1] == _utc("2024-07-03T17:00")


def test_xlon_hourly_bar_keyed_15_closes_at_15_30_with_the_session() -> None:
    """Summer XLON trades 07:00-15:30 UTC: the 15:00 hourly bar is half an hour, and the daily
    bar of its session is available from 15:30 on, at that base row."""
    hourly = _calendar_bars(XLON, Timeframe.H1, "2024-06-24", "2024-06-29")
    last = hourly.filter(pl.col("open_time") == _utc("2024-06-24T15:00"))
    assert close_times(last, Timeframe.H1, XLON).to_list() == [_utc("2024-06-24T15:30")]
    daily = resample(hourly, Timeframe.D1, source=Timeframe.H1, calendar=XLON)
    assert daily.height == 5
    assert close_times(daily, Timeframe.D1, XLON)[0] == _utc("2024-06-24T15:30")
    monday = hourly.filter(pl.col("open_time") < _utc("2024-06-25"))
    assert monday["open_time"].dt.hour().to_list() == list(range(7, 16))
    _assert_bar(daily.row(0, named=True), _aggregate(monday))
    # the same bars as the provider's own daily aggregation of the minutes
    direct = _calendar_bars(XLON, Timeframe.D1, "2024-06-24", "2024-06-29")
    assert daily.select("open_time", "open", "high", "low", "close").equals(
        direct.select("open_time", "open", "high", "low", "close")
    )
    # features: the 15:00 row (at 15:30) sees its own session's daily bar, the 14:00 row the
    # day before's
    spec = FeatureSetSpec(
        base_timeframe=Timeframe.H1,
        timeframes=(
            TimeframeFeatures(timeframe=Timeframe.H1, indicators=(LogReturns(horizons=(1,)),)),
            TimeframeFeatures(timeframe=Timeframe.D1, indicators=(LogReturns(horizons=(1,)),)),
        ),
        time_encodings=False,
    )
    frame = build_feature_matrix({Timeframe.H1: hourly, Timeframe.D1: daily}, spec, XLON).frame
    day = frame.filter(pl.col("event_time").dt.date() == _utc("2024-06-26").date())
    assert day["event_time"].to_list()[-2:] == [_utc("2024-06-26T15:00"), _utc("2024-06-26T15:30")]
    closes = daily["close"].to_list()
    assert day["logret_1__1d"].to_list()[-2:] == [
        pytest.approx(math.log(closes[1] / closes[0]), rel=1e-12),
        pytest.approx(math.log(closes[2] / closes[1]), rel=1e-12),
    ]


def test_fx_hourly_to_4h_and_sessions() -> None:
    """FX sessions run Sunday 17:00 to Friday 17:00 New York (21:00 UTC in June): a daily bar
    labelled D opens at 21:00 on D-1 and closes at 21:00 on D; weekends make no bar."""
    hourly = _calendar_bars(FX, Timeframe.H1, "2024-06-16", "2024-06-29")
    assert hourly["open_time"][0] == _utc("2024-06-16T21:00")  # Sunday's open
    daily = resample(hourly, Timeframe.D1, source=Timeframe.H1, calendar=FX)
    assert daily["open_time"].dt.weekday().to_list() == [1, 2, 3, 4, 5] * 2  # Monday..Friday
    closes = close_times(daily, Timeframe.D1, FX)
    assert (closes.dt.hour() == 21).all()
    monday = hourly.filter(
        (pl.col("open_time") >= _utc("2024-06-16T21:00"))
        & (pl.col("open_time") < _utc("2024-06-17T21:00"))
    )
    assert monday.height == 24
    _assert_bar(daily.row(0, named=True), _aggregate(monday))

    four = resample(hourly, Timeframe.H4, source=Timeframe.H1, calendar=FX)
    assert four["open_time"][0] == _utc("2024-06-16T20:00")  # first trades at 21:00
    friday_last = four.filter(pl.col("open_time") == _utc("2024-06-21T20:00"))
    assert close_times(friday_last, Timeframe.H4, FX).to_list() == [_utc("2024-06-21T21:00")]
    assert (
        friday_last["close"][0]
        == hourly.filter(pl.col("open_time") == _utc("2024-06-21T20:00"))["close"][0]
    )
    weekend = four.filter(
        (pl.col("open_time") > _utc("2024-06-21T20:00"))
        & (pl.col("open_time") < _utc("2024-06-23T20:00"))
    )
    assert weekend.is_empty()
    # a window the data starts inside (the 20:00 bar of a session first traded at 21:00, but
    # the data from 22:00) is partial and left out
    late = resample(hourly.filter(pl.col("open_time") >= _utc("2024-06-16T22:00")), Timeframe.H4,
                    source=Timeframe.H1, calendar=FX)  # fmt: skip
    assert late["open_time"][0] == _utc("2024-06-17T00:00")


def test_fx_daily_bars_from_4h_bars_are_refused() -> None:
    """4h bars 20:00-24:00 hold the end of one FX session and the start of the next."""
    four = _calendar_bars(FX, Timeframe.H4, "2024-06-17", "2024-06-22")
    with pytest.raises(ValueError, match="straddle the session boundaries"):
        resample(four, Timeframe.D1, source=Timeframe.H4, calendar=FX)


def test_bars_outside_the_sessions_are_refused() -> None:
    always = _calendar_bars(AlwaysOpenCalendar(), Timeframe.H1, "2024-06-21", "2024-06-24")
    with pytest.raises(ValueError, match=r"48 1h bar\(s\) are outside the sessions of calendar fx"):
        resample(always, Timeframe.H4, source=Timeframe.H1, calendar=FX)


@settings(max_examples=20, deadline=None)
@given(series=contiguous_series())
def test_the_24_7_calendar_resamples_as_without_one(series: Series1m) -> None:
    bars = series.frame()
    for tf in HIGHER:
        assert_frame_equal(resample(bars, tf, calendar=AlwaysOpenCalendar()), resample(bars, tf))
