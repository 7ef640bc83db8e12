"""Accounting of an account that loses (almost) everything: no jump in equity without a price
move however small the account, a floor at 0 once it is bankrupt, and the same in the training
environment as in `simulate`."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drl_trading.common.costs import CostModel, settle_units
from drl_trading.common.market_series import MarketSeries
from drl_trading.evaluation.metrics import compute_metrics
from drl_trading.evaluation.trace import SimulationTrace, simulate
from drl_trading.strategy.api import RewardContext
from drl_trading.training.core.env import EnvConfig, TradingEnv

T0 = np.datetime64("2024-01-01T00:00", "us")
HOUR = np.timedelta64(3600, "s")
CHURN = CostModel(fee_bps=1000.0, slippage_bps=0.0)  # 10% a fill: equity shrinks ~20% a reversal


def _churn(n: int, price: float, initial_equity: float = 1.0) -> SimulationTrace:
    """Reverse +1/-1 every bar on a constant price: only costs move equity."""
    prices = np.full(n + 1, price)
    positions = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    times = T0 + np.arange(n + 1) * HOUR
    return simulate("X", times, prices, prices, positions, CHURN, initial_equity=initial_equity)


def test_settle_units_is_relative_to_the_order() -> None:
    assert settle_units(0.0, 1e-20) == 1e-20  # a tiny account opens a tiny position
    assert settle_units(3e-15, -3e-15) == 0.0  # closing is exact
    assert settle_units(0.1 + 0.2, -0.3) == 0.0  # 5.6e-17 of cancellation residue
    assert settle_units(1e-13, 2e-13) == pytest.approx(3e-13, rel=1e-15)


def test_equity_never_jumps_without_a_price_move_however_small_the_account() -> None:
    # at a price of 1e6 the units of a 1.0 account fall below 1e-12 after ~30 reversals; a
    # fixed size threshold then zeroed the units while their cash was paid
    n = 400
    tr = _churn(n, price=1e6)
    equity = tr.equity
    assert (equity > 0).all()
    assert equity[-1] < 1e-35
    # nothing but costs: each step loses exactly its fill's cost, relative to its equity
    np.testing.assert_allclose(np.diff(equity) / equity[:-1], -tr.cost / equity[:-1], atol=1e-12)
    assert (tr.units != 0).all()
    # returns do not depend on the account's scale
    small = _churn(n, price=1e6, initial_equity=1e-30)
    np.testing.assert_allclose(small.step_returns, tr.step_returns, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(small.equity / 1e-30, equity, rtol=1e-9)


def test_a_wiped_out_run_stays_at_its_floor_with_defined_returns() -> None:
    # a short held on a random walk that quadruples at bar 60
    rng = np.random.default_rng(3)
    n = 100
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n + 1)))
    close[60:] *= 4.0
    open_ = np.concatenate(([close[0]], close[:-1]))
    positions = np.full(n, -1.0)
    positions[70:] = 1.0  # decided after the bankruptcy: never traded
    tr = simulate("X", T0 + np.arange(n + 1) * HOUR, open_, close, positions, CostModel())
    assert (tr.equity[1:60] > 0).all()
    np.testing.assert_array_equal(tr.equity[60:], 0.0)
    np.testing.assert_array_equal(tr.units[60:], 0.0)
    np.testing.assert_array_equal(tr.position[60:], 0.0)
    assert tr.cost[60:].sum() == 0.0
    r = tr.step_returns
    assert np.isfinite(r[:60]).all()
    assert r[59] == -1.0
    assert np.isnan(r[60:]).all()

    m = compute_metrics(tr, periods_per_year=8760)
    assert (m.total_return, m.cagr, m.max_drawdown) == (-1.0, -1.0, 1.0)
    # measured on the 60 steps that lost the capital: far below any merely losing run
    finite = r[:60]
    expected = finite.mean() / finite.std(ddof=1) * math.sqrt(8760)
    assert m.sharpe == pytest.approx(expected, rel=1e-12)
    assert m.sharpe < -10.0
    assert m.sortino < m.sharpe < 0.0
    assert math.isfinite(m.annual_volatility)
    assert m.to_dict()["sharpe"] == m.sharpe


def _bars(price: float, n: int) -> MarketSeries:
    times = T0 + np.arange(n) * HOUR
    feats = np.zeros((n, 1), dtype=np.float32)
    prices = np.full(n, price)
    return MarketSeries("X", times, feats, prices, prices)


def test_environment_holds_what_it_paid_for_at_any_price() -> None:
    # one unit of equity buys 1e-14 units at 1e14: a fixed 1e-12 threshold zeroed them, after
    # which equity was minus the fee instead of 1 minus the fee
    cfg = EnvConfig(episode_bars=None, fee_bps=10.0, slippage_bps=0.0, bankrupt_equity=0.0)

    def step_return(ctx: RewardContext) -> float:
        return ctx.step_return

    env = TradingEnv([_bars(1e14, 4)], step_return, cfg)
    env.reset()
    _, reward, terminated, _, info = env.step(2)  # long
    assert info["equity"] == pytest.approx(1.0 - 1e-3, rel=1e-12)
    assert reward == pytest.approx(-1e-3, rel=1e-9)
    assert not terminated
    series = _bars(1e14, 4)
    held = np.array([1.0, 1.0, 1.0])
    tr = simulate("X", series.times, series.open, series.close, held, cfg.costs)
    assert tr.equity[1] == pytest.approx(info["equity"], rel=1e-12)
