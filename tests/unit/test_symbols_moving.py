"""A symbol moving between instances of a service (the bus rebalanced its partition): the
instance that lost it drops its state, and whichever instance serves it next gives the values
and event ids that one instance serving it throughout gives."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from drl_trading.common.adapter.memory_feature_store import InMemoryFeatureStore
from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.domain import Symbol, Timeframe, TimeRange
from drl_trading.common.events import PreprocessDataRequested, ProcessingMode, ResampledBar
from drl_trading.ingest.adapter.synthetic_provider import SyntheticProvider
from drl_trading.preprocess.core.online import OnlineRow
from drl_trading.preprocess.core.online_service import OnlinePreprocessService
from drl_trading.strategy.feature_set import default_feature_set

SYM = Symbol("BTCUSDT")
RNG = TimeRange.parse("2024-01-01", "2024-01-10")
LIVE = TimeRange.parse("2024-01-09", "2024-01-09T06:00")


@pytest.fixture(scope="module")
def market() -> InMemoryMarketData:
    md = InMemoryMarketData()
    for chunk in SyntheticProvider(seed=5).fetch(SYM, Timeframe.M1, RNG.start, RNG.end):
        md.upsert_bars(SYM, Timeframe.M1, chunk)
    return md


def _request(bar: ResampledBar) -> PreprocessDataRequested:
    return PreprocessDataRequested(
        catchup_start=LIVE.start,
        mode=ProcessingMode.ONLINE,
        symbols=[SYM],
        start=bar.open_time,
        end=bar.open_time + timedelta(minutes=1),
        bar_close_time=bar.open_time + timedelta(minutes=1),
        bars=[bar],
    )


def _service(market: InMemoryMarketData, rows: list[OnlineRow]) -> OnlinePreprocessService:
    return OnlinePreprocessService(
        market, InMemoryFeatureStore(), default_feature_set(), on_row=lambda s, r: rows.append(r)
    )


def test_a_symbol_moving_away_and_back_is_rebuilt_not_resumed(market: InMemoryMarketData) -> None:
    bars = [
        ResampledBar(**r)
        for r in market.read_bars(SYM, Timeframe.M1, LIVE.start, LIVE.end).iter_rows(named=True)
    ]
    steady_rows: list[OnlineRow] = []
    steady = _service(market, steady_rows)
    steady_ids = [d.event_id for _, d in (steady.on_bar(_request(b)) for b in bars) if d]
    # instance A serves the symbol, B takes it over at bar 103 (mid 5m bar), A gets it back at
    # 207; each bar is handled by one instance, as its partition's owner
    a_rows: list[OnlineRow] = []
    b_rows: list[OnlineRow] = []
    a, b = _service(market, a_rows), _service(market, b_rows)
    ids: list[str] = []
    for i, bar in enumerate(bars):
        if i == 103:
            assert a.forget([str(SYM)]) == [SYM]
        owner = b if 103 <= i < 207 else a
        done = owner.on_bar(_request(bar))[1]
        if done is not None:
            ids.append(done.event_id)
        if i == 207:
            assert b.forget([str(SYM)]) == [SYM]
    assert (a.stats.rewarmed, b.stats.rewarmed) == (2, 1)  # A: at its first bar, and back
    assert b.forget([str(SYM)]) == []  # nothing left to drop
    served = sorted(a_rows + b_rows, key=lambda r: r.event_time)
    assert [r.event_time for r in served] == [r.event_time for r in steady_rows]
    # rebuilt from the session's catch-up origin: the very same arithmetic on the same bars
    assert [r.values for r in served] == [r.values for r in steady_rows]
    # a vector's completion has the same id whichever instance announced it
    assert ids == steady_ids
    assert len(set(ids)) == len(ids)


def test_without_forgetting_a_returning_symbol_would_resume_from_stale_state(
    market: InMemoryMarketData,
) -> None:
    """The reason for `forget`: the state A kept misses the bars B handled, so A would compute
    the returning symbol's next vectors from the wrong history (and skip none of them)."""
    bars = [
        ResampledBar(**r)
        for r in market.read_bars(SYM, Timeframe.M1, LIVE.start, LIVE.end).iter_rows(named=True)
    ]
    steady_rows: list[OnlineRow] = []
    steady = _service(market, steady_rows)
    for bar in bars:
        steady.on_bar(_request(bar))
    stale_rows: list[OnlineRow] = []
    stale = _service(market, stale_rows)
    for i, bar in enumerate(bars):
        if i < 103 or i >= 207:  # bars 103..206 went to another instance
            stale.on_bar(_request(bar))
    after = [r for r in stale_rows if r.event_time > bars[207].open_time]
    want = {r.event_time: r.values for r in steady_rows}
    assert after and any(not _close(r.values, want[r.event_time]) for r in after)


def _close(got: tuple[float, ...], want: tuple[float, ...]) -> bool:
    return all(
        math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-12) for g, w in zip(got, want, strict=True)
    )
