"""Contract of the market-data repository, over the in-memory fake, the embedded DuckDB store, a
write-behind in front of it and PostgreSQL (integration; ``CI=true`` fails when it is away)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest

from drl_trading.common.adapter.duckdb_market_data import DuckDBMarketData
from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.adapter.write_behind_market_data import WriteBehindMarketData
from drl_trading.common.domain import Symbol, Timeframe, parse_time
from drl_trading.common.ports import MarketDataRepository, UpsertResult
from tests.conftest import make_bars, require_server

S = Symbol("BTCUSDT")


PG_DSN = os.environ.get("DRL_TEST_PG", "postgresql://drl:drl@127.0.0.1:5432/drl")


@pytest.fixture(
    params=[
        "memory",
        "duckdb",
        "write-behind",
        pytest.param("postgres", marks=pytest.mark.integration),
    ]
)
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MarketDataRepository]:
    store: MarketDataRepository
    if request.param == "postgres":
        import psycopg

        from drl_trading.common.adapter.postgres_market_data import PostgresMarketData

        require_server("PostgreSQL", "127.0.0.1", 5432)
        schema = f"test_{uuid.uuid4().hex[:10]}"  # each test in its own schema
        store = PostgresMarketData(PG_DSN, schema=schema)
        yield store
        store.close()
        with psycopg.connect(PG_DSN, autocommit=True) as con:
            con.execute(f"DROP SCHEMA {schema} CASCADE")
        return
    if request.param == "memory":
        store = InMemoryMarketData()
    elif request.param == "duckdb":
        store = DuckDBMarketData(tmp_path / "m.duckdb")
    else:  # frames of 50+ rows pass straight through (exact counts), smaller ones are staged
        store = WriteBehindMarketData(DuckDBMarketData(tmp_path / "m.duckdb"), max_rows=50)
    yield store
    store.close()


def counts(result: UpsertResult) -> tuple[int, int, int]:
    return result.inserted, result.updated, result.unchanged


def read_day(repo: MarketDataRepository) -> pl.DataFrame:
    return repo.read_bars(S, Timeframe.M1, parse_time("2024-01-01"), parse_time("2024-01-02"))


# 5 rows: DuckDB's statement-per-row path and a write-behind's staged write; 100 rows: the
# batch path and a write-behind's write straight through
SIZES = pytest.mark.parametrize("n", [5, 100])


def test_upsert_twice_keeps_one_copy(repo: MarketDataRepository) -> None:
    bars = make_bars("2024-01-01", 100)
    first = repo.upsert_bars(S, Timeframe.M1, bars)
    second = repo.upsert_bars(S, Timeframe.M1, bars)
    assert counts(first) == (100, 0, 0)
    assert counts(second) == (0, 0, 100)
    assert (second.written, second.stored) == (0, 100)
    assert read_day(repo).equals(bars)


@SIZES
def test_first_upsert_is_all_new_and_identical_ones_change_nothing(
    repo: MarketDataRepository, n: int
) -> None:
    bars = make_bars("2024-01-01", n)
    assert counts(repo.upsert_bars(S, Timeframe.M1, bars)) == (n, 0, 0)
    # before any read (a write-behind compares with what it staged) and after one (the store)
    assert counts(repo.upsert_bars(S, Timeframe.M1, bars)) == (0, 0, n)
    assert read_day(repo).equals(bars)
    assert counts(repo.upsert_bars(S, Timeframe.M1, bars)) == (0, 0, n)
    assert read_day(repo).equals(bars)


@SIZES
def test_a_changed_value_updates_exactly_those_rows(repo: MarketDataRepository, n: int) -> None:
    bars = make_bars("2024-01-01", n)
    repo.upsert_bars(S, Timeframe.M1, bars)
    read_day(repo)
    changed_rows = [1, n - 2]
    close = bars["close"].to_list()
    for i in changed_rows:
        close[i] += 0.5
    edited = bars.with_columns(pl.Series("close", close))
    more = make_bars("2024-01-01", n + 3)[n:]  # three new keys in the same frame
    result = repo.upsert_bars(S, Timeframe.M1, pl.concat([edited, more]))
    assert counts(result) == (3, 2, n - 2)
    got = read_day(repo)
    assert got.equals(pl.concat([edited, more]))
    # the same edit again: nothing left to change
    assert counts(repo.upsert_bars(S, Timeframe.M1, edited)) == (0, 0, n)


def test_upsert_replaces_values_of_existing_keys(repo: MarketDataRepository) -> None:
    bars = make_bars("2024-01-01", 10)
    repo.upsert_bars(S, Timeframe.M1, bars)
    changed = bars[5:].with_columns(pl.col("volume") * 2)
    result = repo.upsert_bars(S, Timeframe.M1, changed)
    assert counts(result) == (0, 5, 0)
    got = read_day(repo)
    assert got["volume"].to_list() == bars["volume"][:5].to_list() + changed["volume"].to_list()


@SIZES
def test_a_repeated_open_time_counts_once_and_the_last_row_wins(
    repo: MarketDataRepository, n: int
) -> None:
    bars = make_bars("2024-01-01", n)
    later = bars[:2].with_columns(pl.col("volume") + 1.0)
    result = repo.upsert_bars(S, Timeframe.M1, pl.concat([bars, later]))
    assert counts(result) == (n, 0, 0)
    assert read_day(repo)["volume"].to_list()[:2] == later["volume"].to_list()


def test_range_reads_are_half_open_and_sorted(repo: MarketDataRepository) -> None:
    bars = make_bars("2024-01-01", 60)
    repo.upsert_bars(S, Timeframe.M1, bars.reverse())
    got = repo.read_bars(
        S, Timeframe.M1, parse_time("2024-01-01T00:10"), parse_time("2024-01-01T00:20")
    )
    assert got.height == 10
    assert got["open_time"].is_sorted()
    assert got["open_time"][0] == parse_time("2024-01-01T00:10")
    assert got["open_time"][-1] == parse_time("2024-01-01T00:19")


def test_series_are_separate_by_symbol_and_timeframe(repo: MarketDataRepository) -> None:
    repo.upsert_bars(S, Timeframe.M1, make_bars("2024-01-01", 5))
    repo.upsert_bars(Symbol("ETHUSDT"), Timeframe.M1, make_bars("2024-01-01", 7))
    repo.upsert_bars(S, Timeframe.M5, make_bars("2024-01-01", 3, step_minutes=5))
    cov: Callable[[Symbol, Timeframe], int] = lambda s, t: repo.coverage(s, t).bars  # type: ignore[union-attr]  # noqa: E731
    assert cov(S, Timeframe.M1) == 5
    assert cov(Symbol("ETHUSDT"), Timeframe.M1) == 7
    assert cov(S, Timeframe.M5) == 3
    assert repo.coverage(S, Timeframe.H1) is None


def test_coverage_reports_first_last_count(repo: MarketDataRepository) -> None:
    repo.upsert_bars(S, Timeframe.M1, make_bars("2024-01-01T05:00", 30))
    c = repo.coverage(S, Timeframe.M1)
    assert c is not None
    assert c.first_open_time == parse_time("2024-01-01T05:00")
    assert c.last_open_time == parse_time("2024-01-01T05:29")
    assert c.bars == 30


def test_coverages_list_every_symbol_of_a_timeframe_within_a_range(
    repo: MarketDataRepository,
) -> None:
    eth = Symbol("ETHUSDT")
    repo.upsert_bars(S, Timeframe.M1, make_bars("2024-01-01T05:00", 30))  # 05:00..05:29
    repo.upsert_bars(eth, Timeframe.M1, make_bars("2024-01-01T05:20", 20))  # 05:20..05:39
    repo.upsert_bars(Symbol("XRPUSDT"), Timeframe.M5, make_bars("2024-01-01", 3, step_minutes=5))
    every = repo.coverages(Timeframe.M1)
    assert list(every) == [S, eth]
    assert every[eth].first_open_time == parse_time("2024-01-01T05:20")
    assert every[eth].last_open_time == parse_time("2024-01-01T05:39")
    assert (every[S].bars, every[eth].bars) == (30, 20)
    # half-open like read_bars; a symbol with no bar in the range is absent
    within = repo.coverages(
        Timeframe.M1, parse_time("2024-01-01T05:25"), parse_time("2024-01-01T05:30")
    )
    assert {s: c.bars for s, c in within.items()} == {S: 5, eth: 5}
    assert within[S].first_open_time == parse_time("2024-01-01T05:25")
    assert within[S].last_open_time == parse_time("2024-01-01T05:29")
    after = repo.coverages(Timeframe.M1, start=parse_time("2024-01-01T05:30"))
    assert {s: c.bars for s, c in after.items()} == {eth: 10}
    before = repo.coverages(Timeframe.M1, end=parse_time("2024-01-01T05:20"))
    assert {s: c.bars for s, c in before.items()} == {S: 20}
    assert repo.coverages(Timeframe.H1) == {}


def test_quarantine_keeps_rows_with_their_rule(repo: MarketDataRepository) -> None:
    rows = make_bars("2024-01-01", 2).with_columns(
        pl.Series("rule", ["negative_volume", "off_grid"]),
        pl.Series("detail", ["negative_volume", "off_grid"]),
    )
    assert repo.quarantine(S, Timeframe.M1, rows, "batch-1") == 2
    q = repo.read_quarantine(S)
    assert q.height == 2
    assert set(q["rule"]) == {"negative_volume", "off_grid"}
    assert q["batch_id"].to_list() == ["batch-1", "batch-1"]
    assert repo.read_quarantine(Symbol("OTHER")).height == 0
    assert repo.coverage(S, Timeframe.M1) is None  # quarantined rows never reach the bar table


def test_empty_upsert_is_a_no_op(repo: MarketDataRepository) -> None:
    assert repo.upsert_bars(S, Timeframe.M1, make_bars("2024-01-01", 0)).written == 0


def test_one_bar_at_a_time_counts_and_stores_as_its_one_row_frame(
    repo: MarketDataRepository,
) -> None:
    """`upsert_bar` (online ingest's live bar) against `upsert_bars` of the same bar's frame on
    a twin series: new, repeated (unchanged), corrected (updated), a bar before the last one
    (a replay, a late bar), then frames and bars mixed on one series; reads see all of them."""
    from dataclasses import replace

    from drl_trading.common.bars import bars_to_frame, frame_to_bars

    twin = Symbol("ETHUSDT")
    bars = frame_to_bars(make_bars("2024-01-01", 6), S, Timeframe.M1)
    steps = [
        bars[2],
        bars[3],
        bars[3],  # the same again
        replace(bars[3], close=bars[3].close + 1.0, high=bars[3].high + 1.0),  # corrected
        bars[0],  # before the last one
        bars[0],
        bars[5],
    ]
    for bar in steps:
        one = repo.upsert_bar(bar)
        frame = repo.upsert_bars(twin, Timeframe.M1, bars_to_frame([bar]))
        assert counts(one) == counts(frame), bar
    day = read_day(repo)
    assert day.equals(
        repo.read_bars(twin, Timeframe.M1, parse_time("2024-01-01"), parse_time("2024-01-02"))
    )
    assert day["open_time"].to_list() == [b.open_time for b in (bars[0], *bars[2:4], bars[5])]
    assert day.row(2)[4] == bars[3].close + 1.0
    # a frame after staged bars, then a bar over it: the last write of an open time wins
    assert counts(repo.upsert_bars(S, Timeframe.M1, bars_to_frame(bars[1:3]))) == (1, 0, 1)
    assert counts(repo.upsert_bar(replace(bars[1], volume=bars[1].volume + 5.0))) == (0, 1, 0)
    after = read_day(repo)
    assert after.height == 5
    assert after.row(1)[5] == bars[1].volume + 5.0
    coverage = repo.coverage(S, Timeframe.M1)
    assert coverage is not None and coverage.bars == 5
