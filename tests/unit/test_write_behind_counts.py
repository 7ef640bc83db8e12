"""Write-behind counts its staged writes as the store would, without I/O on the live path."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.adapter.write_behind_market_data import WriteBehindMarketData
from drl_trading.common.domain import Symbol, Timeframe
from drl_trading.common.ports import Coverage, UpsertResult
from tests.conftest import make_bars

S = Symbol("BTCUSDT")
M1 = Timeframe.M1


class CountingMarketData(InMemoryMarketData):
    """The in-memory store, counting the reads a write-behind makes of it."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.coverages = 0

    def read_bars(
        self, symbol: Symbol, timeframe: Timeframe, start: datetime, end: datetime
    ) -> pl.DataFrame:
        self.reads += 1
        return super().read_bars(symbol, timeframe, start, end)

    def coverage(self, symbol: Symbol, timeframe: Timeframe) -> Coverage | None:
        self.coverages += 1
        return super().coverage(symbol, timeframe)


def _staging(inner: CountingMarketData) -> WriteBehindMarketData:
    return WriteBehindMarketData(inner, max_rows=100, max_delay=1e9, monotonic=lambda: 0.0)


def test_live_bars_are_new_without_reading_the_store() -> None:
    inner = CountingMarketData()
    repo = _staging(inner)
    bars = make_bars("2024-01-01", 10)
    for i in range(10):
        assert repo.upsert_bars(S, M1, bars[i : i + 1]) == UpsertResult(1, 0, 0)
    assert (inner.coverages, inner.reads) == (1, 0)  # the series' last bar, asked once
    assert repo.staged_rows == 10


def test_a_repeat_of_a_staged_bar_is_unchanged_and_a_correction_updated() -> None:
    inner = CountingMarketData()
    repo = _staging(inner)
    bars = make_bars("2024-01-01", 3)
    repo.upsert_bars(S, M1, bars)
    assert repo.upsert_bars(S, M1, bars[1:2]) == UpsertResult(0, 0, 1)
    assert repo.staged_rows == 3  # nothing to write: not staged again
    corrected = bars[1:2].with_columns(pl.col("close") + 0.01)
    assert repo.upsert_bars(S, M1, corrected) == UpsertResult(0, 1, 0)
    # one read of the series' window (the staged rows laid over it) answers both
    assert inner.reads == 1
    repo.flush()
    expected = pl.concat([bars[:1], corrected, bars[2:]])
    assert inner.read_bars(S, M1, bars["open_time"][0], bars["open_time"][2] + M1.duration).equals(
        expected
    )


def test_a_store_written_by_an_earlier_process_is_compared_with() -> None:
    inner = CountingMarketData()
    bars = make_bars("2024-01-01", 20)
    inner.upsert_bars(S, M1, bars)
    repo = _staging(inner)  # a new process over the same store
    assert repo.upsert_bars(S, M1, bars[5:8]) == UpsertResult(0, 0, 3)
    assert repo.staged_rows == 0
    assert (inner.coverages, inner.reads) == (1, 1)
    more = make_bars("2024-01-01", 22)[18:]  # two stored, two new
    assert repo.upsert_bars(S, M1, more) == UpsertResult(2, 0, 2)
    assert repo.staged_rows == 2


def test_a_replay_reads_the_stored_days_ahead_in_flush_not_on_the_bar() -> None:
    inner = CountingMarketData()
    bars = make_bars("2024-01-01", 3 * 1440)  # three stored days, re-sent one bar at a time
    inner.upsert_bars(S, M1, bars)
    repo = _staging(inner)
    on_the_bar = 0
    for i in range(bars.height):
        before = inner.reads
        bar = bars[i : i + 1]
        if i % 700 == 350:  # an exchange's correction, compared with the read-ahead rows
            bar = bar.with_columns(pl.col("volume") + 1.0)
            assert repo.upsert_bars(S, M1, bar) == UpsertResult(0, 1, 0)
        else:
            assert repo.upsert_bars(S, M1, bar) == UpsertResult(0, 0, 1)
        on_the_bar += inner.reads - before
        repo.flush()  # after the bar's acknowledgement
    assert on_the_bar == 1  # the series' first bar only; the later days were read by flush
    assert 1 < inner.reads <= 1 + 6  # a day ahead each time the replay passes half a day
    corrected = inner.read_bars(S, M1, bars["open_time"][350], bars["open_time"][351])
    assert corrected["volume"][0] == bars["volume"][350] + 1.0
