"""Training/serving parity checks: a seeded random-walk history, the offline rows training stores
for a range, the vectors an online session serves, and the difference between the two.

The issue this answers: exponentially smoothed indicators remember their seed, so two paths that
read history from different starts disagree unless each read the feature set's whole warm-up.
Tests draw the training range's start and the session's start independently and compare.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from drl_trading.common.adapter.memory_feature_store import InMemoryFeatureStore
from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.bars import BAR_SCHEMA, conform
from drl_trading.common.domain import Symbol, Timeframe
from drl_trading.common.events import PreprocessDataRequested, ProcessingMode, ResampledBar
from drl_trading.common.ports import FeatureViewSpec
from drl_trading.preprocess.core.online import OnlineRow
from drl_trading.preprocess.core.online_service import OnlinePreprocessService
from drl_trading.preprocess.core.service import PreprocessService
from drl_trading.strategy.feature_set import FeatureSetSpec

PARITY = 1e-9
"""Largest accepted difference: relative, or absolute where the value is below 1 in size."""


def random_walk_bars(
    start: datetime, minutes: int, seed: int, price: float = 100.0
) -> pl.DataFrame:
    """``minutes`` 1m bars from ``start``: a log-normal random walk (0.1% per minute) with
    highs and lows around it and log-normal volumes; a pure function of its arguments."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 1e-3, minutes)
    close = price * np.exp(np.cumsum(steps))
    open_ = np.concatenate(([price], close[:-1]))
    wick = np.abs(rng.normal(0.0, 5e-4, (2, minutes)))
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = rng.lognormal(3.0, 0.8, minutes)
    times = [start + timedelta(minutes=i) for i in range(minutes)]
    frame = pl.DataFrame(
        {"open_time": times, "open": open_, "high": high, "low": low, "close": close,
         "volume": volume},
        schema=BAR_SCHEMA,
    )  # fmt: skip
    return conform(frame)


class _OfflineRecorder(InMemoryFeatureStore):
    """The in-memory feature store, keeping each symbol's last offline write as it came."""

    def __init__(self) -> None:
        super().__init__()
        self.written: dict[str, pl.DataFrame] = {}

    def write_offline(self, view: FeatureViewSpec, symbol: Symbol, frame: pl.DataFrame) -> int:
        self.written[str(symbol)] = frame
        return super().write_offline(view, symbol, frame)


def market_with(symbol: Symbol, bars: pl.DataFrame) -> InMemoryMarketData:
    market = InMemoryMarketData()
    market.upsert_bars(symbol, Timeframe.M1, bars)
    return market


def offline_rows(
    market: InMemoryMarketData,
    spec: FeatureSetSpec,
    symbol: Symbol,
    start: datetime,
    end: datetime,
) -> dict[datetime, tuple[float, ...]]:
    """What training stores for ``[start, end)``: the offline preprocess path's rows."""
    store = _OfflineRecorder()
    service = PreprocessService(market, store, spec)
    service.preprocess(
        PreprocessDataRequested(mode=ProcessingMode.OFFLINE, symbols=[symbol], start=start, end=end)
    )
    frame = store.written[str(symbol)]
    times = frame["event_time"].to_list()
    values = frame.select(spec.columns).rows()
    return dict(zip(times, values, strict=True))


def served_rows(
    market: InMemoryMarketData,
    spec: FeatureSetSpec,
    symbol: Symbol,
    live_from: datetime,
    end: datetime,
    *,
    catchup_from: datetime | None = None,
) -> dict[datetime, tuple[float, ...]]:
    """What a session starting at ``live_from`` serves until ``end``: the online preprocess
    service's catch-up (from ``catchup_from``, default one day before, as `paper` does for a
    replay), then the stored bars one at a time."""
    origin = catchup_from if catchup_from is not None else live_from - timedelta(days=1)
    served: list[OnlineRow] = []
    service = OnlinePreprocessService(
        market, InMemoryFeatureStore(), spec, on_row=lambda s, r: served.append(r)
    )
    service.catch_up(
        PreprocessDataRequested(
            mode=ProcessingMode.CATCHUP, symbols=[symbol], start=origin, end=live_from
        )
    )
    for row in market.read_bars(symbol, Timeframe.M1, live_from, end).iter_rows(named=True):
        service.on_bar(online_bar_request(symbol, ResampledBar(**row), origin))
    return {r.event_time: r.values for r in served}


def online_bar_request(
    symbol: Symbol, bar: ResampledBar, catchup_start: datetime | None
) -> PreprocessDataRequested:
    """The event a live 1m ``bar`` reaches the online preprocess with, as online ingest sends
    it (``catchup_start``: the session's catch-up origin; None as from an older producer)."""
    close = bar.open_time + Timeframe.M1.duration
    return PreprocessDataRequested(
        mode=ProcessingMode.ONLINE,
        symbols=[symbol],
        start=bar.open_time,
        end=close,
        bar_close_time=close,
        bars=[bar],
        catchup_start=catchup_start,
    )


def parity_difference(want: float, got: float) -> float:
    """``|got - want|`` relative to ``want``, or absolute where ``|want| < 1``; inf when only one
    of them is finite."""
    if not (math.isfinite(want) and math.isfinite(got)):
        return 0.0 if want == got or (math.isnan(want) and math.isnan(got)) else math.inf
    return abs(got - want) / max(abs(want), 1.0)


def compare_rows(
    spec: FeatureSetSpec,
    offline: dict[datetime, tuple[float, ...]],
    served: dict[datetime, tuple[float, ...]],
) -> tuple[int, float, str]:
    """Rows compared (the event times both hold), the largest `parity_difference` and where it
    was (``column at time``)."""
    worst, where = 0.0, ""
    common = sorted(set(offline) & set(served))
    for t in common:
        for col, want, got in zip(spec.columns, offline[t], served[t], strict=True):
            d = parity_difference(want, got)
            if d > worst:
                worst, where = d, f"{col} at {t.isoformat()}: offline {want!r}, served {got!r}"
    return len(common), worst, where
