"""The data timeframe of stored bars: the finest one stored, the same for every symbol."""

from __future__ import annotations

import pytest

from drl_trading.app.data_timeframe import MixedTimeframesError, data_timeframe, stored_timeframes
from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.domain import Symbol, Timeframe, parse_time
from tests.conftest import make_bars

A, B = Symbol("EURUSD"), Symbol("GBPUSD")
LO, HI = parse_time("2024-01-01"), parse_time("2024-01-03")


def test_the_finest_stored_timeframe_is_the_data_timeframe() -> None:
    repo = InMemoryMarketData()
    repo.upsert_bars(A, Timeframe.H1, make_bars("2024-01-01", 48, step_minutes=60))
    repo.upsert_bars(A, Timeframe.H4, make_bars("2024-01-01", 12, step_minutes=240))
    repo.upsert_bars(B, Timeframe.H1, make_bars("2024-01-01", 48, step_minutes=60))
    assert data_timeframe(repo, [A, B], LO, HI) == Timeframe.H1


def test_bars_outside_the_range_do_not_count() -> None:
    repo = InMemoryMarketData()
    repo.upsert_bars(A, Timeframe.M1, make_bars("2023-06-01", 60))
    repo.upsert_bars(A, Timeframe.D1, make_bars("2024-01-01", 2, step_minutes=1440))
    assert data_timeframe(repo, [A], LO, HI) == Timeframe.D1
    assert stored_timeframes(repo, [A, B], LO, HI) == {A: Timeframe.D1}


def test_nothing_stored_gives_the_default() -> None:
    assert data_timeframe(InMemoryMarketData(), [A], LO, HI) == Timeframe.M1
    assert data_timeframe(InMemoryMarketData(), [A], LO, HI, Timeframe.H1) == Timeframe.H1


def test_symbols_at_different_timeframes_are_refused_naming_each() -> None:
    repo = InMemoryMarketData()
    repo.upsert_bars(A, Timeframe.H1, make_bars("2024-01-01", 48, step_minutes=60))
    repo.upsert_bars(B, Timeframe.M1, make_bars("2024-01-01", 600))
    with pytest.raises(MixedTimeframesError, match="EURUSD 1h, GBPUSD 1m"):
        data_timeframe(repo, [A, B], LO, HI)
