"""The quickstart's oracle on base bars holds what `oracle_returns` holds on the edge bars."""

from __future__ import annotations

import numpy as np

from drl_trading.app.planted_edge import oracle_positions
from drl_trading.common.costs import CostModel
from drl_trading.common.domain import Timeframe
from drl_trading.evaluation.trace import simulate
from drl_trading.ingest.adapter.synthetic_edge import oracle_returns


def _five_minute_bars(hours: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Close times (on the 5m grid, from 00:05) and closes of ``hours`` hours of 5m bars."""
    rng = np.random.default_rng(seed)
    n = hours * 12
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.003, n)))
    start = np.datetime64("2024-01-01T00:05", "us")
    times = start + np.arange(n) * np.timedelta64(5, "m")
    return times, close


def test_positions_follow_the_last_completed_hour() -> None:
    times, close = _five_minute_bars(30)
    positions = oracle_positions(times, close, Timeframe.H1)
    hourly = close[11::12]  # the closes at 01:00, 02:00, ...
    # step i holds over base bar i+1; the first hour's bars have no completed predictor yet
    for i, t in enumerate(times[:-1]):
        hour = int((t - np.datetime64("2024-01-01T00:00", "us")) // np.timedelta64(1, "h"))
        if hour < 2:
            assert positions[i] == 0.0, i
            continue
        expected = np.sign(np.log(hourly[hour - 1] / hourly[hour - 2]))
        assert positions[i] == expected, i


def test_held_through_each_hour_it_earns_the_oracle_returns() -> None:
    """Without costs, one unit held from hour 2 on makes, hour by hour, `oracle_returns`' sign:
    the same rule on the same bars (held units drift with the price inside the hour)."""
    times, close = _five_minute_bars(40, seed=11)
    positions = oracle_positions(times, close, Timeframe.H1)
    opens = np.concatenate([close[:1], close[:-1]])  # each bar opens at the last close
    trace = simulate("X", times, opens, close, positions, CostModel(0.0, 0.0))
    hourly = close[11::12]
    hourly_equity = trace.equity[11::12]
    made = np.diff(hourly_equity)[1:]  # hour 2 onwards: equity over each hour
    expected = oracle_returns(hourly)
    assert len(made) == len(expected)
    assert np.array_equal(np.sign(made), np.sign(expected))


def test_long_only_and_position_limit() -> None:
    times, close = _five_minute_bars(10)
    both = oracle_positions(times, close, Timeframe.H1)
    capped = oracle_positions(times, close, Timeframe.H1, allow_short=False, max_position=0.5)
    assert np.array_equal(capped, np.maximum(both, 0.0) * 0.5)
    assert (both < 0).any() and (capped >= 0).all()


def test_a_gap_leaves_the_oracle_flat() -> None:
    times, close = _five_minute_bars(10)
    keep = np.ones(len(times), dtype=bool)
    keep[30:40] = False  # 02:35..03:20 missing, the close at 03:00 with them
    t, c = times[keep], close[keep]
    assert not np.isin(np.datetime64("2024-01-01T03:00", "us"), t)
    positions = oracle_positions(t, c, Timeframe.H1)
    hour = (t[:-1] - np.datetime64("2024-01-01T00:00", "us")) // np.timedelta64(1, "h")
    assert (positions[(hour == 3) | (hour == 4)] == 0.0).all()  # both read the 03:00 close
    assert (positions[hour == 5] != 0.0).all()
