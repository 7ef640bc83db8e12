"""Bar arithmetic on market calendars (`drl_trading.common.bar_windows`).

Properties over random calendars (segments of random lengths and gaps, touching or not, several
a day) against a brute-force reading of the definition: a slot is a grid window that meets an
open segment, its close the end of the market's time inside it. The 24/7 calendar must give what
the code that assumed an always-open market gives (the ingest's gap finder, the evaluation's
annualisation); the real calendars the figures they are known for.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.adapter.exchange_calendars_calendar import ExchangeCalendarsCalendar
from drl_trading.common.adapter.fx_calendar import FxCalendar
from drl_trading.common.adapter.memory_calendar import MemoryCalendar
from drl_trading.common.bar_windows import (
    CLOSED,
    BarWindows,
    MissingRun,
    bar_closes,
    bar_first_opens,
    bar_keys,
    bar_slots,
    bars_per_year,
    find_missing,
    history_start,
    open_seconds,
    slot_ordinals,
)
from drl_trading.common.bars import TIME_DTYPE
from drl_trading.common.calendar import DAY_US, MarketCalendar
from drl_trading.common.domain import Symbol, Timeframe, from_micros, to_micros
from drl_trading.evaluation.metrics import periods_per_year
from drl_trading.ingest.core.validation import find_gaps

T0 = datetime(2024, 3, 1, tzinfo=UTC)
MIN_US = 60_000_000
TIMEFRAMES = list(Timeframe)


def _d(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@st.composite
def calendars(draw: st.DrawFn) -> MemoryCalendar:
    """Up to 10 segments on the minute grid, from a few minutes to a day and a half long, with
    gaps from none (touching segments) to two days."""
    parts = draw(
        st.lists(st.tuples(st.integers(0, 2880), st.integers(1, 2160)), min_size=1, max_size=10)
    )
    segments: list[tuple[datetime, datetime] | tuple[datetime, datetime, datetime]] = []
    t = T0 + timedelta(minutes=draw(st.integers(0, 1439)))
    for gap, length in parts:
        open_ = t + timedelta(minutes=gap)
        t = open_ + timedelta(minutes=length)
        segments.append((open_, t))
    return MemoryCalendar(segments)


def _span(cal: MemoryCalendar) -> tuple[int, int]:
    s = cal.sessions(T0 - timedelta(days=1), T0 + timedelta(days=60))
    return int(s.open[0]), int(s.close[-1])


def _reference(cal: MemoryCalendar, tf: Timeframe, lo: int, hi: int) -> dict[int, tuple[int, int]]:
    """Brute force from the definition: slot key -> (first open, close)."""
    s = cal.sessions(T0 - timedelta(days=10), T0 + timedelta(days=60))
    out: dict[int, tuple[int, int]] = {}
    if tf is Timeframe.D1:
        for label in sorted(set(s.label.tolist())):
            if lo <= label < hi:
                rows = s.label == label
                out[label] = (int(s.open[rows].min()), int(s.close[rows].max()))
        return out
    step = tf.micros
    ks = np.arange(-(-lo // step) * step, hi, step, dtype=np.int64)
    meets = (s.open[None, :] < ks[:, None] + step) & (s.close[None, :] > ks[:, None])
    for i in np.flatnonzero(meets.any(axis=1)):
        k = int(ks[i])
        m = meets[i]
        first = int(np.maximum(s.open[m], k).min())
        close = int(np.minimum(s.close[m], k + step).max())
        out[k] = (first, close)
    return out


@settings(max_examples=60, deadline=None)
@given(calendars(), st.sampled_from(TIMEFRAMES), st.integers(-1500, 4000), st.integers(0, 9000))
def test_slots_closes_and_first_opens_follow_the_definition(
    cal: MemoryCalendar, tf: Timeframe, lo_min: int, length_min: int
) -> None:
    first, _ = _span(cal)
    lo = first + lo_min * MIN_US
    hi = lo + length_min * MIN_US + 1
    expected = _reference(cal, tf, lo, hi)
    slots = bar_slots(cal, tf, from_micros(lo), from_micros(hi))
    assert slots.tolist() == sorted(expected)
    if slots.size == 0:
        return
    closes = bar_closes(cal, tf, slots)
    opens = bar_first_opens(cal, tf, slots)
    assert closes.tolist() == [expected[k][1] for k in slots.tolist()]
    assert opens.tolist() == [expected[k][0] for k in slots.tolist()]
    assert np.all(opens < closes)
    if tf is not Timeframe.D1:
        assert np.all(slots % tf.micros == 0)
        assert np.all((closes > slots) & (closes <= slots + tf.micros))  # close in (key, key+tf]
        assert np.all((opens >= slots) & (opens < slots + tf.micros))
    assert slot_ordinals(cal, tf, slots).tolist() == list(range(slots.size))


@settings(max_examples=60, deadline=None)
@given(calendars(), st.sampled_from(TIMEFRAMES), st.lists(st.integers(-600, 12_000), max_size=40))
def test_every_time_maps_to_the_bar_holding_it_or_to_closed(
    cal: MemoryCalendar, tf: Timeframe, offsets: list[int]
) -> None:
    first, _ = _span(cal)
    times = np.array([first + o * MIN_US + 7 for o in offsets], dtype=np.int64)
    keys = bar_keys(cal, tf, times)
    s = cal.sessions(T0 - timedelta(days=10), T0 + timedelta(days=60))
    windows = BarWindows(cal, tf)
    for t, k in zip(times.tolist(), keys.tolist(), strict=True):
        inside = np.flatnonzero((s.open <= t) & (t < s.close))
        if inside.size == 0:
            assert k == CLOSED and windows.key(t) is None
            continue
        want = int(s.label[inside[0]]) if tf is Timeframe.D1 else t - t % tf.micros
        assert k == want == windows.key(t)
        assert bar_closes(cal, tf, [k])[0] > t >= bar_first_opens(cal, tf, [k])[0]


@settings(max_examples=60, deadline=None)
@given(calendars(), st.sampled_from(TIMEFRAMES), st.data())
def test_scalar_windows_answer_like_the_arrays(
    cal: MemoryCalendar, tf: Timeframe, data: st.DataObject
) -> None:
    first, last = _span(cal)
    lo, hi = first - 3 * DAY_US, last + 3 * DAY_US
    slots = bar_slots(cal, tf, from_micros(lo), from_micros(hi))
    if slots.size == 0:
        return
    closes = bar_closes(cal, tf, slots).tolist()
    opens = bar_first_opens(cal, tf, slots).tolist()
    windows = BarWindows(cal, tf)
    keys = slots.tolist()
    for i, k in enumerate(keys):
        assert windows.close(k) == closes[i]
        assert windows.first_open(k) == opens[i]
        assert windows.slots_between(keys[0], k) == i
        if i + 1 < len(keys):
            assert windows.next_slot(k) == keys[i + 1]
            t = data.draw(st.integers(k, keys[i + 1] - 1))
            assert windows.next_slot(t) == keys[i + 1]
    t = data.draw(st.integers(lo, keys[0] - 1))
    assert windows.next_slot(t) == keys[0]
    copy = pickle.loads(pickle.dumps(windows))
    assert copy.close(keys[-1]) == closes[-1]


def test_a_key_that_is_no_bar_is_refused_with_its_time() -> None:
    cal = MemoryCalendar([(_d("2024-03-04T14:30"), _d("2024-03-04T21:00"))])
    windows = BarWindows(cal, Timeframe.H1)
    with pytest.raises(ValueError, match="2024-03-04 10:00 UTC is not a 1h bar of calendar"):
        windows.close(to_micros(_d("2024-03-04T10:00")))
    with pytest.raises(ValueError, match="not a 1h bar"):
        windows.ordinal(to_micros(_d("2024-03-04T15:30")))  # off the grid
    with pytest.raises(ValueError, match="the first 2024-03-04 22:00 UTC"):
        bar_closes(cal, Timeframe.H1, [to_micros(_d("2024-03-04T22:00"))])


# 24/7: exactly what the code that assumed an always-open market computes ------------------


def _whole_days() -> MemoryCalendar:
    """24/7 spelt out as segments, so that the generic path runs on it."""
    days = [T0 + timedelta(days=i) for i in range(-3, 40)]
    return MemoryCalendar([(d, d + timedelta(days=1)) for d in days], name="days")


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(TIMEFRAMES), st.integers(0, 20 * 1440), st.integers(1, 10 * 1440))
def test_the_24_7_closed_form_equals_the_generic_path(tf: Timeframe, lo_min: int, n: int) -> None:
    always, days = AlwaysOpenCalendar(), _whole_days()
    lo = T0 + timedelta(minutes=lo_min)
    hi = lo + timedelta(minutes=n)
    slots = bar_slots(always, tf, lo, hi)
    assert slots.tolist() == bar_slots(days, tf, lo, hi).tolist()
    assert bar_closes(always, tf, slots).tolist() == bar_closes(days, tf, slots).tolist()
    assert bar_closes(always, tf, slots).tolist() == (slots + tf.micros).tolist()
    assert slot_ordinals(always, tf, slots).tolist() == slot_ordinals(days, tf, slots).tolist()
    times = np.arange(to_micros(lo), to_micros(hi), 7 * MIN_US + 3, dtype=np.int64)
    assert bar_keys(always, tf, times).tolist() == bar_keys(days, tf, times).tolist()
    assert open_seconds(always, lo, hi) == open_seconds(days, lo, hi) == n * 60


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from(TIMEFRAMES),
    st.integers(0, 500),
    st.lists(st.booleans(), min_size=1, max_size=400),
)
def test_24_7_missing_bars_are_the_ingest_gaps(
    tf: Timeframe, first: int, present: list[bool]
) -> None:
    step = tf.duration
    lo = T0 + first * step
    hi = lo + len(present) * step
    times = [lo + i * step for i, p in enumerate(present) if p]
    stored = pl.Series("open_time", times, dtype=TIME_DTYPE)
    gaps = find_gaps(Symbol("X"), stored, tf, expected_from=lo, expected_to=hi)
    if not times:  # the ingest's own no-bars case
        gaps = [g for g in gaps if g.missing_bars]
    runs = find_missing(AlwaysOpenCalendar(), tf, [to_micros(t) for t in times], lo, hi)
    assert [(g.start, g.end, g.missing_bars) for g in gaps] == [
        (r.start, r.end, r.missing_bars) for r in runs
    ]


def test_24_7_bars_per_year_is_the_evaluation_convention() -> None:
    for tf in Timeframe:
        got = bars_per_year(AlwaysOpenCalendar(), tf, _d("2023-05-01"), _d("2024-05-01"))
        assert got == periods_per_year(tf.minutes) == 365 * 1440 / tf.minutes


# Real calendars ---------------------------------------------------------------------------


def test_bars_per_year_follows_the_calendar() -> None:
    xnys, fx = ExchangeCalendarsCalendar("XNYS"), FxCalendar()
    y2024 = (_d("2024-01-01"), _d("2025-01-01"))
    assert bars_per_year(xnys, Timeframe.D1, *y2024) == 252  # 2024's NYSE sessions
    assert bars_per_year(fx, Timeframe.H1, *y2024) == 262 * 24  # 262 weekdays
    decade = (_d("2015-03-01"), _d("2024-10-01"))  # touches the whole years 2015..2024
    assert 251 <= bars_per_year(xnys, Timeframe.D1, *decade) <= 252
    assert 6_250 <= bars_per_year(fx, Timeframe.H1, *decade) <= 6_265


def test_a_closure_is_not_missing_and_a_lost_session_is_one_run() -> None:
    fx = FxCalendar()
    lo, hi = _d("2024-03-04"), _d("2024-03-16")  # Monday to Saturday of the next week
    slots = bar_slots(fx, Timeframe.H1, lo, hi)
    assert find_missing(fx, Timeframe.H1, slots, lo, hi) == []
    # Friday 8 March and Monday 11 March lost: one run over the weekend, 48 bars
    lost = (slots >= to_micros(_d("2024-03-07T22:00"))) & (
        slots < to_micros(_d("2024-03-10T21:00"))
    )
    lost |= (slots >= to_micros(_d("2024-03-10T21:00"))) & (
        slots < to_micros(_d("2024-03-11T21:00"))
    )
    assert find_missing(fx, Timeframe.H1, slots[~lost], lo, hi) == [
        MissingRun(_d("2024-03-07T22:00"), _d("2024-03-11T21:00"), 48)
    ]
    xnys = ExchangeCalendarsCalendar("XNYS")
    days = bar_slots(xnys, Timeframe.D1, _d("2024-07-01"), _d("2024-07-08"))
    assert [from_micros(k).day for k in days.tolist()] == [1, 2, 3, 5]  # 4 July closed
    assert find_missing(xnys, Timeframe.D1, days[days != to_micros(_d("2024-07-03"))],
                        _d("2024-07-01"), _d("2024-07-08")) == [
        MissingRun(_d("2024-07-03"), _d("2024-07-03T17:00"), 1)  # the early close
    ]  # fmt: skip


def test_xlon_bars_close_with_the_session_and_fx_daily_bars_with_new_york() -> None:
    xlon = ExchangeCalendarsCalendar("XLON")
    windows = BarWindows(xlon, Timeframe.H1)
    assert windows.close(to_micros(_d("2024-07-01T15:00"))) == to_micros(_d("2024-07-01T15:30"))
    assert windows.next_slot(to_micros(_d("2024-07-01T15:00"))) == to_micros(_d("2024-07-02T07:00"))
    fx_days = BarWindows(FxCalendar(), Timeframe.D1)
    friday = to_micros(_d("2024-03-08"))
    assert fx_days.first_open(friday) == to_micros(_d("2024-03-07T22:00"))
    assert fx_days.close(friday) == to_micros(_d("2024-03-08T22:00"))
    assert fx_days.next_slot(friday) == to_micros(_d("2024-03-11"))
    assert fx_days.slots_between(friday, to_micros(_d("2024-03-11"))) == 1
    assert fx_days.key(to_micros(_d("2024-03-10T21:30"))) == to_micros(_d("2024-03-11"))
    assert fx_days.key(to_micros(_d("2024-03-09T12:00"))) is None


def test_history_start_counts_bars_not_calendar_days() -> None:
    xnys = ExchangeCalendarsCalendar("XNYS")
    # 3 sessions before Monday 8 July 2024: the 5th, the 3rd and the 2nd (the 4th is a holiday)
    assert history_start(xnys, Timeframe.D1, _d("2024-07-08"), 3) == _d("2024-07-02")
    start = history_start(xnys, Timeframe.D1, _d("2024-07-08"), 200)
    assert bar_slots(xnys, Timeframe.D1, start, _d("2024-07-08")).size == 200
    assert 280 <= (_d("2024-07-08") - start).days <= 300
    always = AlwaysOpenCalendar()
    assert history_start(always, Timeframe.H1, _d("2024-07-08"), 24) == _d("2024-07-07")
    fx = FxCalendar()
    # before Monday 00:00 UTC: Sunday 21:00, 22:00, 23:00 (New York on summer time since that
    # morning), then Friday 21:00 (still winter time: the week closed at 22:00 UTC)
    assert history_start(fx, Timeframe.H1, _d("2024-03-11"), 3) == _d("2024-03-10T21:00")
    assert history_start(fx, Timeframe.H1, _d("2024-03-11"), 4) == _d("2024-03-08T21:00")


def test_open_seconds_skip_the_weekend() -> None:
    fx = FxCalendar()
    # Friday 12:00 -> 22:00 UTC (10 h) and Sunday 21:00 -> Monday 12:00 UTC (15 h)
    assert open_seconds(fx, _d("2024-03-08T12:00"), _d("2024-03-11T12:00")) == 25 * 3600


def _always() -> MarketCalendar:
    return AlwaysOpenCalendar()


def test_24_7_scalar_windows_are_the_grid() -> None:
    windows = BarWindows(_always(), Timeframe.M15)
    t = to_micros(_d("2024-03-01T10:07"))
    k = windows.key(t)
    assert k == to_micros(_d("2024-03-01T10:00"))
    assert windows.close(k) == k + Timeframe.M15.micros == windows.next_slot(t)
    assert windows.slots_between(k, k + 4 * Timeframe.M15.micros) == 4


def test_symbol_windows_share_one_per_calendar_and_none_where_always_open() -> None:
    from drl_trading.common.bar_windows import SymbolWindows
    from drl_trading.common.calendar import CalendarBook

    fx = FxCalendar()
    book = CalendarBook(AlwaysOpenCalendar(), {"EURUSD": fx, "GBPUSD": fx})
    windows = SymbolWindows(book, Timeframe.H1)
    eur, gbp = windows.for_symbol("EURUSD"), windows.for_symbol("gbpusd")
    assert eur is not None and eur is gbp and eur.timeframe is Timeframe.H1
    assert eur.calendar is fx
    assert windows.for_symbol("BTCUSDT") is None
    assert SymbolWindows(None, Timeframe.H1).for_symbol("EURUSD") is None
