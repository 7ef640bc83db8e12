"""Property: ingest is idempotent whatever the chunking, order of ranges and repetitions."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from drl_trading.common.adapter.memory_bus import InMemoryBus
from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.domain import Symbol, Timeframe, TimeRange, parse_time
from drl_trading.ingest.adapter.memory_provider import InMemoryProvider
from drl_trading.ingest.adapter.synthetic_provider import SyntheticProvider
from drl_trading.ingest.core.service import IngestService, TrainingDataRequest

S = Symbol("PROP")
T0 = parse_time("2024-03-01")
SOURCE = SyntheticProvider(seed=3, chunk_days=1)
BARS = pl.concat(list(SOURCE.fetch(S, Timeframe.M1, T0, T0 + timedelta(minutes=900))))
"""The synthetic bars every range below lies in, served re-cut into chunks of a given size."""


ranges = st.lists(
    st.tuples(st.integers(0, 600), st.integers(1, 300), st.integers(1, 500)),
    min_size=1,
    max_size=5,
)


@settings(max_examples=25, deadline=None)
@given(ranges)
def test_any_sequence_of_overlapping_ingests_stores_one_copy(
    spec: list[tuple[int, int, int]],
) -> None:
    repo = InMemoryMarketData()
    covered: set[int] = set()
    for offset, length, chunk in spec:
        start = T0 + timedelta(minutes=offset)
        rng = TimeRange(start, start + timedelta(minutes=length))
        service = IngestService(InMemoryProvider({S: BARS}, chunk), repo, InMemoryBus())
        service.ingest_history(TrainingDataRequest((S,), rng), request_preprocessing=False)
        covered.update(range(offset, offset + length))
    stored = repo.read_bars(S, Timeframe.M1, T0, T0 + timedelta(days=1))
    assert stored.height == len(covered)
    assert stored["open_time"].is_unique().all()
    expected = pl.concat(
        list(SOURCE.fetch(S, Timeframe.M1, T0, T0 + timedelta(minutes=900)))
    ).filter(pl.col("open_time").is_in(stored["open_time"].implode()))
    assert stored.equals(expected)
