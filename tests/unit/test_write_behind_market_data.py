"""Write-behind staging: small writes wait for idle, reads see them, order and last-wins kept."""

from __future__ import annotations

import polars as pl
import pytest

from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.adapter.write_behind_market_data import WriteBehindMarketData
from drl_trading.common.domain import Symbol, Timeframe, parse_time
from tests.conftest import make_bars

S = Symbol("BTCUSDT")
M1, M5 = Timeframe.M1, Timeframe.M5
DAY = (parse_time("2024-01-01"), parse_time("2024-01-02"))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_small_writes_wait_for_flush_and_reads_see_them() -> None:
    inner, clock = InMemoryMarketData(), Clock()
    repo = WriteBehindMarketData(inner, max_rows=100, max_delay=1.0, monotonic=clock)
    bars = make_bars("2024-01-01", 3)
    for i in range(3):
        assert repo.upsert_bars(S, M1, bars[i : i + 1]).inserted == 1
    assert repo.staged_rows == 3
    assert inner.coverage(S, M1) is None  # nothing written yet
    assert repo.read_bars(S, M1, *DAY).equals(bars)  # a read flushes first
    assert repo.staged_rows == 0 and repo.flushes == 1
    assert inner.read_bars(S, M1, *DAY).equals(bars)


def test_a_later_write_of_the_same_bar_wins_and_timeframes_stay_apart() -> None:
    inner = InMemoryMarketData()
    repo = WriteBehindMarketData(inner, max_rows=100, max_delay=60.0, monotonic=Clock())
    bars = make_bars("2024-01-01", 2)
    corrected = bars[1:2].with_columns(pl.col("close") * 1.01)
    repo.upsert_bars(S, M1, bars[1:2])
    repo.upsert_bars(S, M1, bars[0:1])
    repo.upsert_bars(S, M1, corrected)
    repo.upsert_bars(S, M5, bars[0:1])
    result = repo.flush()
    assert result.written == 3  # two 1m bars, one 5m bar
    got = inner.read_bars(S, M1, *DAY)
    assert got["open_time"].to_list() == bars["open_time"].to_list()
    assert got["close"][1] == corrected["close"][0]
    assert inner.coverage(S, M5) is not None


def test_age_row_limit_and_close_flush() -> None:
    inner, clock = InMemoryMarketData(), Clock()
    repo = WriteBehindMarketData(inner, max_rows=5, max_delay=1.0, monotonic=clock)
    bars = make_bars("2024-01-01", 20)
    repo.upsert_bars(S, M1, bars[0:1])
    clock.now = 1.5  # the oldest staged row is now too old: this write flushes both
    repo.upsert_bars(S, M1, bars[1:2])
    assert repo.staged_rows == 0 and inner.coverage(S, M1).bars == 2  # type: ignore[union-attr]
    for i in range(2, 7):  # the fifth staged row reaches max_rows
        repo.upsert_bars(S, M1, bars[i : i + 1])
    assert repo.staged_rows == 0
    repo.upsert_bars(S, M1, bars[7:8])
    repo.upsert_bars(S, M1, bars[8:20])  # a big frame: staged rows first, then straight through
    assert repo.staged_rows == 0
    repo.upsert_bars(S, M1, bars[19:20])
    repo.close()
    assert inner.read_bars(S, M1, *DAY).equals(bars)


class FlakyMarketData(InMemoryMarketData):
    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def upsert_bars(self, symbol, timeframe, bars):  # type: ignore[no-untyped-def]
        if self.down:
            raise ConnectionError("database restarting")
        return super().upsert_bars(symbol, timeframe, bars)


def test_a_failed_flush_keeps_everything_staged_for_the_next() -> None:
    inner, clock = FlakyMarketData(), Clock()
    repo = WriteBehindMarketData(inner, max_rows=100, max_delay=60.0, monotonic=clock)
    bars = make_bars("2024-01-01", 4)
    repo.upsert_bars(S, M1, bars[0:2])
    repo.upsert_bars(S, M5, bars[0:1])
    inner.down = True
    with pytest.raises(ConnectionError):
        repo.flush()
    assert repo.staged_rows == 3
    repo.upsert_bars(S, M1, bars[2:4])  # arrives while the database is away
    inner.down = False
    repo.flush()
    assert repo.staged_rows == 0
    assert inner.read_bars(S, M1, *DAY).equals(bars)
    assert inner.read_bars(S, M5, *DAY).equals(bars[0:1])


def test_bars_staged_one_at_a_time_wait_survive_a_failed_flush_and_keep_their_order() -> None:
    """`upsert_bar` stages tuples, written as one frame per series with the staged frames, in
    the order they came: a frame after a bar overrides it, a bar after a frame overrides that."""
    from dataclasses import replace

    from drl_trading.common.bars import frame_to_bars

    inner, clock = FlakyMarketData(), Clock()
    repo = WriteBehindMarketData(inner, max_rows=100, max_delay=60.0, monotonic=clock)
    frame = make_bars("2024-01-01", 4)
    bars = frame_to_bars(frame, S, M1)
    assert repo.upsert_bar(bars[0]).inserted == 1
    assert repo.upsert_bar(bars[1]).inserted == 1
    assert repo.staged_rows == 2 and inner.read_bars(S, M1, *DAY).is_empty()
    inner.down = True
    with pytest.raises(ConnectionError):
        repo.flush()
    assert repo.staged_rows == 2
    repo.upsert_bars(S, M1, frame[1:3])  # bar 1 again (unchanged) and bar 2, as a frame
    changed = replace(bars[2], close=bars[2].close + 0.5, high=bars[2].high + 0.5)
    assert repo.upsert_bar(changed).updated == 1  # over the staged frame's row
    assert repo.upsert_bar(bars[3]).inserted == 1
    inner.down = False
    repo.flush()
    assert repo.staged_rows == 0
    stored = inner.read_bars(S, M1, *DAY)
    expected = frame.with_columns(
        close=pl.when(pl.int_range(pl.len()) == 2)
        .then(pl.col("close") + 0.5)
        .otherwise(pl.col("close")),
        high=pl.when(pl.int_range(pl.len()) == 2)
        .then(pl.col("high") + 0.5)
        .otherwise(pl.col("high")),
    )
    assert stored.equals(expected)


def test_staged_bars_are_written_once_too_old() -> None:
    from drl_trading.common.bars import frame_to_bars

    inner, clock = InMemoryMarketData(), Clock()
    repo = WriteBehindMarketData(inner, max_rows=100, max_delay=1.0, monotonic=clock)
    bars = frame_to_bars(make_bars("2024-01-01", 2), S, M1)
    repo.upsert_bar(bars[0])
    clock.now += 1.5
    repo.upsert_bar(bars[1])
    assert repo.staged_rows == 0
    assert inner.read_bars(S, M1, *DAY).height == 2
