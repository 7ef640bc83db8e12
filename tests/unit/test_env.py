"""The trading environment on hand-computed cases: fills, fees, slippage, accounting, reward."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from drl_trading.common.agent_state import agent_state
from drl_trading.common.costs import CostModel
from drl_trading.common.market_series import MarketSeries
from drl_trading.evaluation.trace import simulate
from drl_trading.strategy.api import RewardContext
from drl_trading.training.core.env import EnvConfig, TradingEnv

SHORT, FLAT, LONG = 0, 1, 2


def _series(opens: list[float], closes: list[float], n_features: int = 2) -> MarketSeries:
    n = len(closes)
    times = (np.datetime64("2024-01-01T00:05") + np.arange(n) * np.timedelta64(5, "m")).astype(
        "datetime64[us]"
    )
    # feature 0 = the bar index, so an observation tells exactly which bar it came from
    feats = np.stack([np.arange(n, dtype=np.float32)] * n_features, axis=1)
    return MarketSeries("TEST", times, feats, np.asarray(opens), np.asarray(closes))


class Recorder:
    def __init__(self) -> None:
        self.calls: list[dict[str, float]] = []

    def __call__(self, ctx: RewardContext) -> float:
        self.calls.append(ctx.as_dict())
        return ctx.step_return


def _env(series: MarketSeries, **kw: object) -> tuple[TradingEnv, Recorder]:
    rec = Recorder()
    kw = {"slippage_bps": 0.0} | kw
    cfg = EnvConfig(episode_bars=None, fee_bps=10.0, **kw)  # type: ignore[arg-type]
    return TradingEnv([series], rec, cfg), rec


def test_long_fill_at_next_open_with_fee() -> None:
    # bars:        0      1      2
    # open       100    102    110
    # close      101    105    99
    env, rec = _env(_series([100, 102, 110], [101, 105, 99]))
    env.reset()
    _, r, term, trunc, info = env.step(LONG)
    # decision at close 101: 1/101 units, filled at open 102 with a 10 bps fee, marked at 105
    units = 1 / 101
    cash = 1 - units * 102 - units * 102 * 0.001
    expected = cash + units * 105
    assert info["equity"] == pytest.approx(expected, rel=1e-12)
    assert r == pytest.approx(expected - 1)
    c = rec.calls[-1]
    assert c["open_next"] == 102 and c["close"] == 101 and c["close_next"] == 105
    assert c["position_before"] == 0 and c["position_after"] == 1
    assert c["cost"] == pytest.approx(units * 102 * 0.001)
    assert c["gross_return"] == pytest.approx(expected - 1 + units * 102 * 0.001)
    assert c["bars_in_position"] == 1
    assert not term and not trunc  # three bars: two decisions
    assert env.step(FLAT)[3]


def test_hold_in_units_then_reverse_pays_gap_and_both_legs_cost() -> None:
    opens = [100, 100, 104, 100]
    closes = [100, 102, 101, 98]
    env, rec = _env(_series(opens, closes))
    env.reset()
    env.step(LONG)  # 0.01 units filled at 100, fee 0.001
    cash, units = 1 - 1 - 0.001, 0.01
    assert env.equity == pytest.approx(cash + units * 102)
    env.step(LONG)  # held in units, not rebalanced: no cost
    e2 = cash + units * 101
    assert env.equity == pytest.approx(e2)
    assert rec.calls[-1]["cost"] == 0.0 and rec.calls[-1]["bars_in_position"] == 2
    _, _, _, trunc, _ = env.step(SHORT)
    # target -1 of equity e2 at close 101, filled at open 100: sells the long and opens a short
    dq = -e2 / 101 - units
    cash -= dq * 100 + abs(dq) * 100 * 0.001
    e3 = cash + (units + dq) * 98
    assert env.equity == pytest.approx(e3, rel=1e-12)
    assert rec.calls[-1]["cost"] == pytest.approx(abs(dq) * 100 * 0.001 / e2)
    assert rec.calls[-1]["bars_in_position"] == 1
    assert trunc


def test_slippage_adds_to_fees_and_flat_costs_nothing() -> None:
    s = _series([100, 100, 100], [100, 100, 100])
    env = TradingEnv([s], lambda c: 0.0, EnvConfig(episode_bars=None, fee_bps=5, slippage_bps=3))
    env.reset()
    env.step(FLAT)
    assert env.equity == 1.0
    env.reset()
    env.step(LONG)
    # 0.01 units bought at 100.03 with a 5 bps fee, marked at 100
    assert env.equity == pytest.approx(1 - 0.01 * 100.03 * 1.0005 + 1.0)


def test_matches_vectorised_simulation() -> None:
    rng = np.random.default_rng(3)
    n = 300
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    opens = np.r_[100.0, closes[:-1] * np.exp(rng.normal(0, 0.002, n - 1))]
    s = _series(opens.tolist(), closes.tolist())
    env, _ = _env(s, action_mode="continuous", slippage_bps=2.0)
    env.reset()
    positions = rng.uniform(-1, 1, n - 1)
    positions[50:80] = 0.5  # a held target: no rebalancing in either
    equity = [1.0]
    for p in positions:
        env.step(np.array([p], dtype=np.float32))
        equity.append(env.equity)
    trace = simulate(
        "TEST",
        s.times,
        s.open,
        s.close,
        positions.astype(np.float32).astype(float),
        CostModel(10.0, 2.0),
    )
    np.testing.assert_allclose(equity, trace.equity, rtol=1e-12)


def test_observation_at_t_contains_nothing_from_later_bars() -> None:
    n = 50
    s = _series([100.0] * n, [100.0 + i for i in range(n)], n_features=3)
    env, _ = _env(s, window=4)
    obs, info = env.reset()
    rng = np.random.default_rng(0)
    for _ in range(n - 5):
        t = info["t"]
        feats = obs[: 4 * 3].reshape(4, 3)
        # the window holds bars t-3..t exactly: feature value = bar index
        assert feats[:, 0].tolist() == [t - 3, t - 2, t - 1, t]
        # the agent state is priced at close t at the latest
        pos, unreal, _ = obs[12:]
        if pos != 0:
            entry = env._entry_price
            assert unreal == pytest.approx(
                agent_state(float(pos), entry, s.close[t], env._bars_in_position)[1], rel=1e-5
            )
        obs, _, _, trunc, info = env.step(int(rng.integers(0, 3)))
        if trunc:
            break


def test_agent_state_and_masks() -> None:
    assert agent_state(0.0, 0.0, 100.0, 0) == (0.0, 0.0, 0.0)
    pos, unreal, held = agent_state(-1.0, 100.0, 90.0, 100)
    assert pos == -1.0 and unreal == pytest.approx(0.1) and held == 0.5
    env, _ = _env(_series([100, 101, 102], [100, 101, 102]), allow_short=False)
    assert env.action_masks().tolist() == [False, True, True]
    env.reset()
    env.step(SHORT)  # shorts are turned into flat when the strategy forbids them
    assert env._position == 0.0


def test_random_episodes_and_bankruptcy_terminate() -> None:
    n = 400
    closes = [100.0 * (0.9 if i % 2 else 1.0) for i in range(n)]
    s = _series(closes, closes)
    env = TradingEnv([s], lambda c: c.step_return, EnvConfig(episode_bars=64, fee_bps=10))
    env.reset(seed=1)
    steps, done = 0, False
    while not done:
        _, _, term, trunc, _ = env.step(LONG)
        steps += 1
        done = term or trunc
    assert steps <= 64
    assert env.equity < 1.0


def test_reward_must_be_finite() -> None:
    env = TradingEnv(
        [_series([100, 100, 100], [100, 100, 100])],
        lambda c: math.nan,
        EnvConfig(episode_bars=None),
    )
    env.reset()
    with pytest.raises(ValueError, match="reward function returned nan"):
        env.step(LONG)


@pytest.mark.parametrize("mode", ["discrete", "continuous"])
def test_gymnasium_env_checker(mode: str) -> None:
    rng = np.random.default_rng(0)
    n = 500
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    s = _series(closes.tolist(), closes.tolist())
    env = TradingEnv([s], lambda c: c.step_return, EnvConfig(action_mode=mode, window=3))  # type: ignore[arg-type]
    check_env(env, skip_render_check=True)


def test_rejects_bad_series() -> None:
    s = _series([100, 100], [100, 100])
    with pytest.raises(ValueError, match="NaN"):
        MarketSeries("X", s.times, np.full((2, 2), np.nan, np.float32), s.open, s.close)
    with pytest.raises(ValueError, match="shorter than window"):
        TradingEnv([_series([1, 1], [1, 1])], lambda c: 0.0, EnvConfig(window=5))
