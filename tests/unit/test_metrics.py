"""Simulation, trades and performance metrics against hand arithmetic and a plain-Python loop."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from drl_trading.common.costs import TARGET_TOLERANCE, CostModel
from drl_trading.evaluation.baselines import (
    buy_and_hold_positions,
    flat_positions,
    random_positions,
)
from drl_trading.evaluation.metrics import compute_metrics, extract_trades, periods_per_year
from drl_trading.evaluation.trace import SimulationTrace, simulate

T0 = np.datetime64("2024-01-01T00:00", "us")
HOUR = np.timedelta64(3600, "s")


def hourly(n_points: int) -> np.ndarray:
    return T0 + np.arange(n_points) * HOUR


def gapless(
    close: list[float], positions: list[float], fee_bps: float = 0.0, slippage_bps: float = 0.0
) -> SimulationTrace:
    """Bars whose open equals the previous close, so nothing is earned between close and fill."""
    c = np.asarray(close, dtype=np.float64)
    open_ = np.concatenate(([c[0]], c[:-1]))
    costs = CostModel(fee_bps, slippage_bps)
    return simulate("TEST", hourly(len(c)), open_, c, np.asarray(positions, float), costs)


FREE = CostModel(0.0, 0.0)


# --------------------------------------------------------------------------- hand-computed


def test_long_then_flat_with_costs() -> None:
    # closes 100, 110, 99, 99, 108.9; targets 1, 1, 0, 0; fee 1% of the notional, no slippage
    tr = gapless([100.0, 110.0, 99.0, 99.0, 108.9], [1, 1, 0, 0], fee_bps=100.0)
    # step0: 1/100 = 0.01 units at 100, fee 0.01 -> cash -0.01; equity -0.01 + 0.01*110 = 1.09
    # step1: held                              -> equity -0.01 + 0.01*99 = 0.98
    # step2: sell 0.01 at 99, fee 0.0099       -> cash -0.01 + 0.99 - 0.0099 = 0.9701
    np.testing.assert_allclose(tr.equity, [1.0, 1.09, 0.98, 0.9701, 0.9701], rtol=1e-12)
    np.testing.assert_allclose(tr.units, [0.01, 0.01, 0.0, 0.0])
    np.testing.assert_allclose(tr.cost, [0.01, 0.0, 0.0099, 0.0])
    np.testing.assert_allclose(tr.fees, tr.cost)
    np.testing.assert_array_equal(tr.position_before, [0, 1, 1, 0])

    (trade,) = extract_trades(tr)
    # PnL: bar legs 0.01*(110-100) + 0.01*(99-110), gaps 0, costs 0.01 + 0.0099 over equity 1
    assert trade.net_return == pytest.approx(0.1 - 0.11 - 0.0199, rel=1e-12)
    assert trade.fees == pytest.approx(0.0199)
    assert (trade.side, trade.entry_step, trade.exit_step, trade.bars_held) == (1, 0, 2, 2)
    assert trade.size == 1.0
    assert not trade.is_open
    assert trade.entry_time == datetime(2024, 1, 1, 0, tzinfo=UTC)
    assert trade.exit_time == datetime(2024, 1, 1, 2, tzinfo=UTC)

    m = compute_metrics(tr, periods_per_year=8760)
    assert m.total_return == pytest.approx(-0.0299)
    # peak 1.09 at point 1; trough 0.9701 = 1.09 * 0.89 -> drawdown 0.11, never recovered:
    # duration from the peak (point 1) to the last point (4) = 3 bars = 3 hours
    assert m.max_drawdown == pytest.approx(0.11)
    assert m.max_drawdown_duration_bars == 3
    assert m.max_drawdown_duration_days == pytest.approx(3 / 24)
    assert m.exposure == 0.5  # 2 of 4 steps hold units
    assert m.turnover == 2.0  # |1-0| + |0-1|
    assert m.turnover_per_day == pytest.approx(2.0 / (4 / 24))
    assert m.fees_paid == pytest.approx(0.0199)
    assert (m.n_trades, m.win_rate, m.profit_factor, m.avg_holding_bars) == (1, 0.0, 0.0, 2.0)
    assert m.start == datetime(2024, 1, 1, 0, tzinfo=UTC)
    assert m.end == datetime(2024, 1, 1, 4, tzinfo=UTC)


def test_reversal_with_gaps_and_slippage_splits_cost_and_gap() -> None:
    close = np.array([100.0, 110.0, 121.0, 98.01])
    open_ = np.array([100.0, 100.0, 121.0, 108.9])
    costs = CostModel(fee_bps=10.0, slippage_bps=20.0)
    tr = simulate("X", hourly(4), open_, close, np.array([1.0, -1.0, -1.0]), costs)
    # step0: buy 0.01 at 100 * 1.002 = 100.2, fee 0.1% of 1.002
    fill0, fee0 = 100.2, 0.01 * 100.2 * 0.001
    cash = 1.0 - 0.01 * fill0 - fee0
    e1 = cash + 0.01 * 110.0
    # step1: target -1 of equity e1 at close 110: sell 0.01 + e1/110 at 121 * 0.998
    dq = -e1 / 110.0 - 0.01
    fill1 = 121.0 * 0.998
    fee1 = -dq * fill1 * 0.001
    cash = cash - dq * fill1 - fee1
    e2 = cash + (0.01 + dq) * 121.0
    e3 = cash + (0.01 + dq) * 98.01
    np.testing.assert_allclose(tr.equity, [1.0, e1, e2, e3], rtol=1e-12)
    np.testing.assert_allclose(tr.cost, [fee0 + 0.01 * 0.2, fee1 - dq * 121.0 * 0.002, 0.0])
    gaps = [0.0, 0.01 * (121.0 - 110.0), (0.01 + dq) * (108.9 - 121.0)]
    np.testing.assert_allclose(tr.gap_pnl, gaps, rtol=1e-12, atol=1e-15)

    long, short = extract_trades(tr)
    # the reversal's cost is split by units: 0.01 closes the long, the rest opens the short
    close_share = 0.01 / -dq
    long_pnl = 0.01 * (110.0 - 100.0) - tr.cost[0] + 0.01 * 11.0 - close_share * tr.cost[1]
    assert long.net_return == pytest.approx(long_pnl, rel=1e-12)
    assert (long.side, long.bars_held, long.is_open) == (1, 1, False)
    short_units = 0.01 + dq
    short_pnl = -(1 - close_share) * tr.cost[1] + short_units * (98.01 - 121.0)
    assert short.net_return == pytest.approx(short_pnl / e1, rel=1e-12)
    assert (short.side, short.entry_step, short.exit_step) == (-1, 1, 3)
    assert (short.bars_held, short.is_open) == (2, True)
    assert short.entry_time == long.exit_time
    # together the two trades are the whole PnL
    assert long_pnl + short_pnl == pytest.approx(e3 - 1.0, rel=1e-12)

    m = compute_metrics(tr, periods_per_year=8760)
    assert m.total_return == pytest.approx(e3 - 1.0)
    assert m.turnover == 3.0  # 1 + 2 + 0
    assert m.exposure == 1.0
    assert m.fees_paid == pytest.approx(tr.cost.sum())
    assert (m.n_trades, m.win_rate, m.avg_holding_bars) == (2, 1.0, 1.5)
    assert m.profit_factor == math.inf  # profits, no losses
    assert m.to_dict()["profit_factor"] is None


def test_unchanged_target_is_held_in_units_and_dust_is_skipped() -> None:
    # the long 0.5 is not rebalanced as the price doubles: its share of equity drifts up
    tr = gapless([100.0, 200.0, 200.0], [0.5, 0.5], fee_bps=0.0)
    np.testing.assert_allclose(tr.units, [0.005, 0.005])
    np.testing.assert_allclose(tr.equity, [1.0, 1.5, 1.5])
    # with a minimum order of 0.3 (currency) a move from 0.5 to 0.6 of equity 1.5 is dust
    c = np.array([100.0, 100.0, 100.0, 100.0])
    costs = CostModel(0.0, 0.0, min_order_notional=0.3)
    dust = simulate("D", hourly(4), c, c, np.array([0.5, 0.6, 0.0]), costs)
    np.testing.assert_allclose(dust.units, [0.005, 0.005, 0.0])


def test_return_ratios_and_recovered_drawdown() -> None:
    # buy-and-hold without costs: step returns +10%, -10%, +20%, 0
    tr = gapless([100.0, 110.0, 99.0, 118.8, 118.8], [1, 1, 1, 1])
    # equity 1, 1.1, 0.99, 1.188, 1.188; mean r = 0.05
    # squared deviations 0.0025 + 0.0225 + 0.0225 + 0.0025 = 0.05 -> std(ddof=1) = sqrt(0.05/3)
    # downside deviation = sqrt(mean([0, 0.01, 0, 0])) = 0.05
    m = compute_metrics(tr, periods_per_year=4)  # sqrt(4) = 2, n/ppy = 1 year
    std = math.sqrt(0.05 / 3)
    assert m.total_return == pytest.approx(0.188)
    assert m.cagr == pytest.approx(0.188)  # exponent ppy/n = 1
    assert m.annual_volatility == pytest.approx(std * 2)
    assert m.sharpe == pytest.approx(0.05 / std * 2)  # = sqrt(0.6)
    assert m.sharpe == pytest.approx(math.sqrt(0.6))
    assert m.sortino == pytest.approx(0.05 / 0.05 * 2)
    # peak 1.1 (point 1) -> 0.99 is a 10% drawdown, recovered at point 3: 2 bars, 2 hours
    assert m.max_drawdown == pytest.approx(0.1)
    assert m.max_drawdown_duration_bars == 2
    assert m.max_drawdown_duration_days == pytest.approx(2 / 24)
    assert m.calmar == pytest.approx(0.188 / 0.1)
    # the trade is still open at the end: equity[4]/equity[0] - 1
    (trade,) = extract_trades(tr)
    assert trade.is_open
    assert trade.net_return == pytest.approx(0.188)
    assert trade.exit_step == 4

    # 4 steps are half a year at ppy=8 -> CAGR = 1.188 ** 2 - 1
    assert compute_metrics(tr, periods_per_year=8).cagr == pytest.approx(1.188**2 - 1)


def test_longest_drawdown_beats_deeper_unrecovered_one() -> None:
    # equity 1, 0.9, 0.95, 1.0 (recovers after 3 bars), 1.2, 1.1 (down 8.3% to the end, 1 bar)
    tr = gapless([100.0, 90.0, 95.0, 100.0, 120.0, 110.0], [1] * 5)
    m = compute_metrics(tr, periods_per_year=8760)
    assert m.max_drawdown == pytest.approx(0.1)
    assert m.max_drawdown_duration_bars == 3


def test_unrecovered_drawdown_counts_to_the_end() -> None:
    # equity 1, 1.05, 1.1, 0.99, 1.045, 1.0945: peak 1.1 at point 2, never regained -> 3 bars
    tr = gapless([100.0, 105.0, 110.0, 99.0, 104.5, 109.45], [1] * 5)
    m = compute_metrics(tr, periods_per_year=8760)
    assert m.max_drawdown == pytest.approx(0.1)
    assert m.max_drawdown_duration_bars == 3


def test_win_rate_and_profit_factor() -> None:
    # three long trades from flat, no costs: +10%, -5%, +20%
    close = [100.0, 110.0, 110.0, 104.5, 104.5, 125.4]
    tr = gapless(close, [1, 0, 1, 0, 1])
    trades = extract_trades(tr)
    assert [t.net_return for t in trades] == pytest.approx([0.1, -0.05, 0.2])
    m = compute_metrics(tr, periods_per_year=8760, trades=trades)
    assert m.win_rate == pytest.approx(2 / 3)
    assert m.profit_factor == pytest.approx((0.1 + 0.2) / 0.05)
    assert m.exposure == pytest.approx(3 / 5)
    assert m.turnover == 5.0  # in, out, in, out, in


def test_size_change_stays_in_one_trade() -> None:
    tr = gapless([100.0, 101.0, 102.0, 103.0, 104.0], [0.5, 1.0, 0.25, 0.0], fee_bps=100.0)
    (trade,) = extract_trades(tr)
    assert (trade.entry_step, trade.exit_step, trade.size) == (0, 3, 1.0)
    # every fill's cost belongs to the one trade
    assert trade.fees == pytest.approx(tr.cost.sum())
    assert trade.net_return == pytest.approx(tr.equity[-1] / tr.equity[0] - 1.0)


def test_flat_and_empty_traces_are_degenerate_but_defined() -> None:
    flat = gapless([100.0, 120.0, 80.0, 90.0], [0, 0, 0], fee_bps=10.0)
    np.testing.assert_array_equal(flat.equity, [1.0, 1.0, 1.0, 1.0])
    m = compute_metrics(flat, periods_per_year=8760)
    assert (m.total_return, m.cagr, m.sharpe, m.sortino, m.calmar) == (0.0, 0.0, 0.0, 0.0, 0.0)
    assert (m.max_drawdown, m.max_drawdown_duration_bars, m.n_trades) == (0.0, 0, 0)
    assert (m.win_rate, m.profit_factor, m.avg_holding_bars, m.exposure) == (0.0, 0.0, 0.0, 0.0)

    empty = simulate("E", hourly(1), np.array([1.0]), np.array([1.0]), np.array([]), FREE)
    assert empty.n_steps == 0
    assert extract_trades(empty) == []
    e = compute_metrics(empty, periods_per_year=8760)
    assert (e.n_steps, e.sharpe, e.cagr, e.turnover_per_day) == (0, 0.0, 0.0, 0.0)
    json.dumps(e.to_dict(), allow_nan=False)


def test_to_dict_is_json_safe() -> None:
    tr = gapless([100.0, 110.0, 121.0], [1, 1])
    d = compute_metrics(tr, periods_per_year=8760).to_dict()
    assert d["start"] == "2024-01-01T00:00:00+00:00"
    assert d["profit_factor"] is None  # infinite: a winning trade and no losers
    assert d["n_trades"] == 1
    json.dumps(d, allow_nan=False)


def test_bankrupt_equity_gives_cagr_minus_one() -> None:
    # a short through a bar that triples the price: cash 2, owes 0.01 * 300 = 3, so equity
    # would be -1; the account closes at 0 and stays there, flat, whatever the targets say
    tr = gapless([100.0, 300.0, 100.0, 50.0], [-1, -1, 1])
    np.testing.assert_array_equal(tr.equity, [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(tr.units, [-0.01, 0.0, 0.0])
    np.testing.assert_array_equal(tr.position, [-1.0, 0.0, 0.0])
    np.testing.assert_array_equal(tr.step_returns, [-1.0, np.nan, np.nan])
    m = compute_metrics(tr, periods_per_year=8760)
    assert (m.cagr, m.total_return, m.max_drawdown) == (-1.0, -1.0, 1.0)


def test_periods_per_year() -> None:
    assert periods_per_year(1) == 525_600
    assert periods_per_year(60) == 8760
    assert periods_per_year(1440, trading_days_per_year=252) == 252
    with pytest.raises(ValueError, match="positive"):
        periods_per_year(0)


def test_simulate_and_trace_validate_shapes() -> None:
    c = np.ones(4)
    with pytest.raises(ValueError, match="4 bars"):
        simulate("X", hourly(3), c[:3], c, np.zeros(3), FREE)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        simulate("X", hourly(4), c, c, np.array([0.0, 1.5, 0.0]), FREE)
    with pytest.raises(ValueError, match="initial_equity"):
        simulate("X", hourly(4), c, c, np.zeros(3), FREE, initial_equity=0.0)
    with pytest.raises(ValueError, match="costs must be"):
        CostModel(fee_bps=-1.0)
    tr = simulate("X", hourly(4), c, c, np.zeros(3), FREE)
    with pytest.raises(ValueError, match="equity"):
        SimulationTrace(
            "X",
            tr.times,
            tr.open,
            tr.close,
            tr.equity[:-1],
            tr.position,
            tr.units,
            tr.cost,
            tr.fees,
            FREE,
        )


# --------------------------------------------------------------------------- baselines


def test_baseline_helpers() -> None:
    np.testing.assert_array_equal(buy_and_hold_positions(3), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(flat_positions(2), [0.0, 0.0])
    assert buy_and_hold_positions(0).shape == flat_positions(0).shape == (0,)

    n = 200_000
    pos = random_positions(n, seed=7)
    assert pos.shape == (n,)
    assert pos.dtype == np.float64
    assert set(np.unique(pos).tolist()) == {-1.0, 0.0, 1.0}
    np.testing.assert_array_equal(pos, random_positions(n, seed=7))
    assert not np.array_equal(pos, random_positions(n, seed=8))
    run_lengths = np.diff(np.flatnonzero(np.diff(pos) != 0))
    assert 18.5 < run_lengths.mean() < 21.5  # every switch changes the value: runs mean ~20
    for value in (-1.0, 0.0, 1.0):
        assert abs((pos == value).mean() - 1 / 3) < 0.05

    cont = random_positions(10_000, seed=1, discrete=False)
    assert cont.shape == (10_000,)
    assert (np.abs(cont) <= 1.0).all()
    assert len(np.unique(cont)) < 2_000  # held for runs, not redrawn each bar
    assert random_positions(0, seed=1).shape == (0,)
    assert random_positions(1, seed=1).shape == (1,)


# --------------------------------------------------------------------------- properties


@st.composite
def market(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, CostModel]:
    n = draw(st.integers(min_value=0, max_value=30))
    price = st.floats(min_value=0.5, max_value=2.0)
    open_ = np.array(draw(st.lists(price, min_size=n + 1, max_size=n + 1)))
    close = np.array(draw(st.lists(price, min_size=n + 1, max_size=n + 1)))
    level = st.one_of(st.sampled_from([-1.0, 0.0, 1.0]), st.floats(min_value=-1.0, max_value=1.0))
    positions = np.array(draw(st.lists(level, min_size=n, max_size=n)), dtype=np.float64)
    bps = st.floats(min_value=0.0, max_value=50.0)
    return open_, close, positions, CostModel(draw(bps), draw(bps))


def broker_loop(
    open_: np.ndarray, close: np.ndarray, positions: np.ndarray, costs: CostModel, initial: float
) -> tuple[list[float], list[float]]:
    """The paper broker's bookkeeping written out plainly: size at the decision close, fill at
    the next open with slippage, fee on the notional, hold units while the target stays; the
    account closes, at 0, at the first close where its equity is not positive."""
    cash, units, last = initial, 0.0, 0.0
    equity, held = [initial], []
    for i, target in enumerate(positions.tolist()):
        if equity[-1] <= 0.0:
            equity.append(0.0)
            held.append(0.0)
            continue
        if abs(target - last) > TARGET_TOLERANCE:  # the execution service's "same target"
            qty = target * (cash + units * close[i]) / close[i] - units
            if qty != 0.0 and abs(qty) * close[i] >= costs.min_order_notional:
                slip = costs.slippage_bps / 1e4
                price = open_[i + 1] * (1 + slip if qty > 0 else 1 - slip)
                cash -= qty * price + abs(qty) * price * costs.fee_bps / 1e4
                before, units = units, units + qty
                units = 0.0 if abs(units) <= 1e-12 * max(abs(before), abs(qty)) else units
            last = target
        held.append(units)
        equity.append(max(cash + units * close[i + 1], 0.0))
    return equity, held


@settings(max_examples=100, deadline=None)
@given(market(), st.floats(min_value=0.5, max_value=1000.0))
def test_simulate_matches_a_broker_loop(
    data: tuple[np.ndarray, np.ndarray, np.ndarray, CostModel], initial: float
) -> None:
    open_, close, positions, costs = data
    tr = simulate("P", hourly(len(close)), open_, close, positions, costs, initial_equity=initial)
    equity, held = broker_loop(open_, close, positions, costs, initial)
    np.testing.assert_allclose(tr.equity, equity, rtol=1e-12, atol=1e-12 * initial)
    np.testing.assert_allclose(tr.units, held, rtol=1e-12, atol=1e-15)
    # the documented decomposition, on the trace's own fields, up to a bankruptcy (a short
    # through a doubling bar), where the floor at 0 absorbs the shortfall
    assert (tr.equity >= 0).all()
    alive = tr.equity[:-1] > 0
    solvent = alive & (tr.equity[1:] > 0)
    parts = tr.gap_pnl - tr.cost + tr.bar_pnl
    np.testing.assert_allclose(
        np.diff(tr.equity)[solvent], parts[solvent], rtol=1e-9, atol=1e-9 * initial
    )
    expected = np.diff(tr.equity)[alive] / tr.equity[:-1][alive]
    np.testing.assert_allclose(tr.step_returns[alive], expected, rtol=1e-9, atol=1e-12)
    assert np.isnan(tr.step_returns[~alive]).all()

    # every unit of cost and of PnL belongs to exactly one trade, every held step to one trade
    # (a trade's return is relative to the equity at its entry, undefined once that is <= 0)
    assume(bool((tr.equity > 0).all()))
    trades = extract_trades(tr)
    at_entry = [tr.equity[t.entry_step] for t in trades]
    attributed = sum(t.fees * e for t, e in zip(trades, at_entry, strict=True))
    assert attributed == pytest.approx(tr.cost.sum(), abs=1e-9 * initial)
    pnl = sum(t.net_return * e for t, e in zip(trades, at_entry, strict=True))
    assert pnl == pytest.approx(tr.equity[-1] - tr.equity[0], abs=1e-9 * initial)
    assert sum(t.bars_held for t in trades) == int((tr.units != 0).sum())
    assert all(t.is_open == (t.exit_step == tr.n_steps) for t in trades)


@settings(max_examples=60, deadline=None)
@given(market())
def test_flat_keeps_equity_and_buy_and_hold_tracks_price(
    data: tuple[np.ndarray, np.ndarray, np.ndarray, CostModel],
) -> None:
    open_, close, _, costs = data
    n, times = len(close) - 1, hourly(len(close))
    flat = simulate("F", times, open_, close, flat_positions(n), costs, initial_equity=3.0)
    np.testing.assert_array_equal(flat.equity, np.full(n + 1, 3.0))

    chained_open = np.concatenate(([close[0]], close[:-1]))  # open[i+1] == close[i]
    hold = simulate("B", times, chained_open, close, buy_and_hold_positions(n), FREE)
    assert hold.equity[-1] == pytest.approx(close[-1] / close[0], rel=1e-9)
