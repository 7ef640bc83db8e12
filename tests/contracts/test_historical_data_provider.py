"""Contract of the historical-data provider port, over the in-memory fake, the file provider,
the synthetic market and ccxt (against the local fake Binance of the integration tests).

Each case knows the bars its source holds in a reference window (for the finite sources all of
their data, which ends before the window does); every range asked for lies in that window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from drl_trading.common.bars import BAR_SCHEMA
from drl_trading.common.domain import Symbol, Timeframe
from drl_trading.ingest.adapter.file_provider import FileProvider
from drl_trading.ingest.adapter.memory_provider import InMemoryProvider
from drl_trading.ingest.adapter.synthetic_provider import ANCHOR, SyntheticProvider
from drl_trading.ingest.core.ports import HistoricalDataProvider
from tests.conftest import make_bars
from tests.integration.test_ccxt_provider import (
    BTC,
    DATA_START,
    N_BARS,
    FakeBinance,
    expected,
    make_provider,
    server,  # noqa: F401  (the fixture)
)

W0 = DATA_START
M = timedelta(minutes=1)
UNKNOWN = Symbol("DOGEUSDT")


@dataclass(frozen=True)
class Case:
    provider: HistoricalDataProvider
    window: timedelta
    """Length of the reference window from `W0`; longer than one of the provider's chunks."""
    bars: pl.DataFrame
    """Every bar of `BTC` the source holds in the window, in time order."""
    unknown: type[Exception] | None
    """What fetching `UNKNOWN` raises, as the adapter documents; None: every symbol has bars."""


def _synthetic_days(provider: SyntheticProvider, days: int) -> pl.DataFrame:
    first = (W0 - ANCHOR) // timedelta(days=1)
    return pl.concat([provider.day(BTC, d) for d in range(first, first + days)])


@pytest.fixture(
    params=[
        "memory",
        "file",
        "synthetic",
        "synthetic-edge",
        pytest.param("ccxt", marks=pytest.mark.integration),
    ]
)
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Case:
    finite = timedelta(hours=4)  # the finite sources hold N_BARS minutes from W0
    if request.param == "memory":
        bars = make_bars(W0, N_BARS)
        return Case(InMemoryProvider({BTC: bars}, chunk_rows=40), finite, bars, LookupError)
    if request.param == "file":
        bars = make_bars(W0, N_BARS)
        bars.write_csv(tmp_path / f"{BTC.file_stem}-1m.csv")
        provider = FileProvider(tmp_path / "{symbol}-1m.csv", chunk_rows=40)
        return Case(provider, finite, bars, FileNotFoundError)
    if request.param == "synthetic":
        synthetic = SyntheticProvider(seed=5, chunk_days=1)
        return Case(synthetic, timedelta(days=2), _synthetic_days(synthetic, 2), None)
    if request.param == "synthetic-edge":  # a planted edge on the 5m bars: the same contract
        planted = SyntheticProvider(seed=5, chunk_days=1, edge=0.3, edge_timeframe=Timeframe.M5)
        return Case(planted, timedelta(days=2), _synthetic_days(planted, 2), None)
    fake: FakeBinance = request.getfixturevalue("server")  # pages of 50 bars at most
    return Case(make_provider(fake), finite, expected(0, N_BARS), LookupError)


def fetch(case: Case, start: datetime, end: datetime, symbol: Symbol = BTC) -> list[pl.DataFrame]:
    frames = list(case.provider.fetch(symbol, Timeframe.M1, start, end))
    for frame in frames:
        assert frame.schema == pl.Schema(BAR_SCHEMA)
    return frames


def held(case: Case, start: datetime, end: datetime) -> pl.DataFrame:
    time = pl.col("open_time")
    return case.bars.filter((time >= start) & (time < end))


def joined(frames: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat(frames) if frames else pl.DataFrame(schema=BAR_SCHEMA)


def test_the_provider_has_a_name(case: Case) -> None:
    assert isinstance(case.provider.name, str) and case.provider.name


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (W0, W0 + 10 * M),
        (W0 + 10 * M + timedelta(seconds=30), W0 + 20 * M + timedelta(milliseconds=1)),
        (W0 + 100 * M, W0 + 240 * M),  # past the end of the finite sources' data
        (W0 + 37 * M, W0 + 38 * M),
    ],
    ids=["aligned", "unaligned", "to-the-window-end", "one-bar"],
)
def test_frames_hold_the_half_open_range_in_time_order(
    case: Case, start: datetime, end: datetime
) -> None:
    got = joined(fetch(case, start, end))
    assert got.equals(held(case, start, end))
    assert got.height > 0
    assert got["open_time"].is_sorted() and got["open_time"].is_unique().all()


def test_a_range_longer_than_a_chunk_comes_in_several(case: Case) -> None:
    frames = fetch(case, W0, W0 + case.window)
    assert len(frames) >= 2
    assert joined(frames).equals(case.bars)


@pytest.mark.parametrize("length", [timedelta(0), -timedelta(minutes=5)], ids=["empty", "inverted"])
def test_an_empty_range_yields_no_bars(case: Case, length: timedelta) -> None:
    start = W0 + 30 * M
    assert joined(fetch(case, start, start + length)).height == 0


def test_an_unknown_symbol_is_as_documented(case: Case) -> None:
    if case.unknown is None:
        assert joined(fetch(case, W0, W0 + 10 * M, UNKNOWN)).height == 10
        return
    with pytest.raises(case.unknown, match=str(UNKNOWN)):
        fetch(case, W0, W0 + 10 * M, UNKNOWN)


def test_a_coarser_timeframe_gives_its_bars_or_the_bars_held(case: Case) -> None:
    """Sources that make bars (synthetic, an exchange) yield bars of the timeframe asked, on its
    grid; sources holding bars (memory, a file) yield them as held, for ingest's spacing check."""
    start, end = W0, W0 + case.window
    frames = list(case.provider.fetch(BTC, Timeframe.H1, start, end))
    got = joined(frames)
    assert all(frame.schema == pl.Schema(BAR_SCHEMA) for frame in frames)
    if isinstance(case.provider, InMemoryProvider | FileProvider):
        assert got.equals(held(case, start, end))
        return
    times = got["open_time"]
    assert times.is_sorted() and got.height > 1
    assert set(times.diff().drop_nulls().to_list()) == {timedelta(hours=1)}
    assert times.min() >= start and times.max() < end
