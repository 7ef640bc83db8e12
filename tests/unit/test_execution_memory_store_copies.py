"""`detached`: the memory execution store's copy of a checkpoint equals a deep copy and shares
no mapping with the original, for any account (property test)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from drl_trading.common.domain import Order, Side, Symbol
from drl_trading.execution.adapter.memory_store import detached
from drl_trading.execution.core.records import (
    Checkpoint,
    Mark,
    PortfolioSnapshot,
    Position,
    RiskState,
    TradingState,
)

_SYMBOLS = st.sampled_from([Symbol("BTCUSDT"), Symbol("ETHUSDT"), Symbol("SOLUSDT")])
_PRICES = st.floats(min_value=0.01, max_value=1e6, allow_nan=False)
_TIMES = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)
_MARKS = st.builds(Mark, _PRICES, _TIMES)
_POSITIONS = st.builds(Position, st.floats(-10, 10), _PRICES, st.floats(-1e3, 1e3), _PRICES)
_ORDERS = st.builds(
    Order, st.text(min_size=1, max_size=8), _SYMBOLS, st.sampled_from(Side), _PRICES
)
_CHECKPOINTS = st.builds(
    Checkpoint,
    portfolio=st.builds(
        PortfolioSnapshot,
        cash=_PRICES,
        positions=st.dictionaries(_SYMBOLS, _POSITIONS),
        open_orders=st.lists(_ORDERS, max_size=3).map(tuple),
    ),
    risk=st.builds(
        RiskState,
        state=st.sampled_from(TradingState),
        reason=st.text(max_size=8),
        since=_TIMES,
        peak_equity=_PRICES,
        day_start_equity=_PRICES,
        last_equity=_PRICES,
    ),
    marks=st.dictionaries(_SYMBOLS, _MARKS),
    targets=st.dictionaries(_SYMBOLS, st.floats(-1, 1)),
    entries=st.dictionaries(_SYMBOLS, _MARKS),
)


@settings(max_examples=40, deadline=None)
@given(_CHECKPOINTS)
def test_detached_equals_a_deep_copy_and_shares_no_mapping(checkpoint: Checkpoint) -> None:
    copied = detached(checkpoint)
    assert copied == copy.deepcopy(checkpoint)
    pairs = [
        (copied.marks, checkpoint.marks),
        (copied.targets, checkpoint.targets),
        (copied.entries, checkpoint.entries),
        (copied.portfolio.positions, checkpoint.portfolio.positions),
    ]
    for mine, theirs in pairs:
        assert mine is not theirs
