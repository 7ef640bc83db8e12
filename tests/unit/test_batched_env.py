"""`BatchedTradingEnv` against N `TradingEnv` copies in SB3's DummyVecEnv, each in Monitor and
seeded as the trainer seeds them: for the same seeds and actions, every copy's observations,
rewards, dones, truncations, infos and equity are equal (exactly, not approximately)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from drl_trading_example_strategy import ExampleStrategy
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from drl_trading.common.market_series import MarketSeries
from drl_trading.strategy.api import BatchRewardContext, RewardContext
from drl_trading.training.adapter.sb3_batched_vec_env import seeded_vec_env
from drl_trading.training.core.batched_env import BatchedTradingEnv, BatchRewardFn
from drl_trading.training.core.env import EnvConfig, RewardFn, TradingEnv

N_FEATURES = 3


def walk(symbol: str, n: int, seed: int, sigma: float = 0.01) -> MarketSeries:
    """A random walk of ``n`` 1-minute bars (log-return volatility ``sigma`` per bar) with
    standard-normal features."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, sigma, n)))
    opens = close * np.exp(rng.normal(0.0, sigma / 4, n))
    times = (np.datetime64("2024-01-01T00:01") + np.arange(n) * np.timedelta64(1, "m")).astype(
        "datetime64[us]"
    )
    feats = rng.standard_normal((n, N_FEATURES)).astype(np.float32)
    return MarketSeries(symbol, times, feats, opens, close)


def two_symbols(sigma: float = 0.01) -> list[MarketSeries]:
    """Two symbols of different lengths, so copies step different series together."""
    return [walk("AAA", 90, 1, sigma), walk("BBB", 57, 2, sigma)]


def linear_reward(ctx: RewardContext) -> float:
    return ctx.step_return - 0.1 * abs(ctx.position_after - ctx.position_before) - ctx.drawdown


def linear_reward_batch(ctx: BatchRewardContext) -> np.ndarray:
    return ctx.step_return - 0.1 * np.abs(ctx.position_after - ctx.position_before) - ctx.drawdown


class Recorder:
    """A reward that keeps every `RewardContext` it was given (as float64 numbers), so that two
    environments can be compared on what the reward sees, beyond the float32 rewards SB3 keeps."""

    def __init__(self, reward: RewardFn, reward_batch: BatchRewardFn | None = None) -> None:
        self.reward_fn = reward
        self.reward_batch_fn = reward_batch
        self.calls: list[dict[str, float]] = []

    def reward(self, ctx: RewardContext) -> float:
        self.calls.append(ctx.as_dict())
        return self.reward_fn(ctx)

    def batch(self, ctx: BatchRewardContext) -> np.ndarray:
        assert self.reward_batch_fn is not None
        one = RewardContext()
        self.calls.extend(ctx.at(i, one).as_dict() for i in range(len(ctx)))
        return self.reward_batch_fn(ctx)


def dummy(
    series: list[MarketSeries], reward: RewardFn, cfg: EnvConfig, n: int, seed: int
) -> DummyVecEnv:
    """The reference: what `SB3Trainer` builds with ``training.env.vectorized: dummy``."""

    def make(i: int) -> Callable[[], Any]:
        def _init() -> Any:
            env = TradingEnv(series, reward, cfg)
            env.reset(seed=seed + i)
            return Monitor(env, info_keywords=("equity",))

        return _init

    venv = DummyVecEnv([make(i) for i in range(n)])
    venv.seed(seed)
    return venv


def actions_for(cfg: EnvConfig, n: int, steps: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if cfg.action_mode == "discrete":
        return rng.integers(0, 3, (steps, n))
    acts = rng.uniform(-1.5, 1.5, (steps, n, 1)).astype(np.float32)
    acts[rng.random((steps, n)) < 0.2] = 0.0  # flat, and targets repeated while holding
    acts[rng.random((steps, n)) < 0.2] = 0.5
    return acts


def strip_times(infos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Infos without Monitor's wall-clock episode time and with terminal observations as
    lists (compared separately with np.array_equal)."""
    out = []
    for info in infos:
        info = dict(info)
        if "episode" in info:
            info["episode"] = {k: v for k, v in info["episode"].items() if k != "t"}
        if "terminal_observation" in info:
            info["terminal_observation"] = info["terminal_observation"].tolist()
        out.append(info)
    return out


def assert_same_run(
    ref: Any,
    batched: Any,
    actions: np.ndarray,
    *,
    exact_rewards: bool = True,
    full_infos: bool = False,
) -> dict[str, int]:
    """Steps both through ``actions``; returns how many episodes ended by each cause. Without
    ``full_infos`` only a finished copy's info is compared whole; the others must be empty,
    which SB3 reads as DummyVecEnv's (no time-limit truncation)."""
    np.testing.assert_array_equal(batched.reset(), ref.reset())
    assert batched.reset_infos == ref.reset_infos
    ends = {"terminated": 0, "truncated": 0}
    for step, action in enumerate(actions):
        obs_r, rew_r, done_r, info_r = ref.step(action)
        obs_b, rew_b, done_b, info_b = batched.step(action)
        assert obs_b.dtype == obs_r.dtype and rew_b.dtype == rew_r.dtype, step
        np.testing.assert_array_equal(obs_b, obs_r, err_msg=f"step {step}")
        np.testing.assert_array_equal(done_b, done_r, err_msg=f"step {step}")
        if exact_rewards:
            np.testing.assert_array_equal(rew_b, rew_r, err_msg=f"step {step}")
        else:
            np.testing.assert_allclose(rew_b, rew_r, rtol=1e-6, err_msg=f"step {step}")
            for ir, ib in zip(info_r, info_b, strict=True):
                if "episode" in ir:
                    assert ib["episode"]["r"] == pytest.approx(ir["episode"]["r"], abs=1e-5)
                    ib["episode"]["r"] = ir["episode"]["r"]
        if not full_infos:
            for i, (ir, ib) in enumerate(zip(info_r, info_b, strict=True)):
                if not done_r[i]:
                    assert ib == {} and ir["TimeLimit.truncated"] is False
                    info_b[i] = ir
        assert strip_times(info_b) == strip_times(info_r), f"step {step}"
        for ir, ib in zip(info_r, info_b, strict=True):
            if "terminal_observation" in ir:
                np.testing.assert_array_equal(
                    ib["terminal_observation"], ir["terminal_observation"]
                )
                ends["truncated" if ir["TimeLimit.truncated"] else "terminated"] += 1
    return ends


@pytest.mark.parametrize("mode", ["discrete", "continuous"])
@pytest.mark.parametrize("window", [1, 4])
@pytest.mark.parametrize("episode_bars", [16, None])
@pytest.mark.parametrize(("batched_reward", "full_infos"), [(False, True), (True, False)])
def test_random_actions_give_what_dummy_vec_env_gives(
    mode: str, window: int, episode_bars: int | None, batched_reward: bool, full_infos: bool
) -> None:
    cfg = EnvConfig(
        window=window,
        action_mode=mode,  # type: ignore[arg-type]
        episode_bars=episode_bars,
        feature_names=("a", "b", "c"),
    )
    series, n, seed = two_symbols(), 5, 7
    ref_rec, rec = Recorder(linear_reward), Recorder(linear_reward, linear_reward_batch)
    reward_batch: BatchRewardFn | None = rec.batch if batched_reward else None
    core = BatchedTradingEnv(
        series, rec.reward, cfg, n, batch_reward=reward_batch, full_infos=full_infos
    )
    ref = dummy(series, ref_rec.reward, cfg, n, seed)
    ends = assert_same_run(
        ref, seeded_vec_env(core, seed), actions_for(cfg, n, 300, seed), full_infos=full_infos
    )
    np.testing.assert_array_equal(core.equity, ref.get_attr("equity"))
    assert ends["truncated"] >= n  # every copy finished an episode and was reset
    assert len(rec.calls) == 300 * n
    assert rec.calls == ref_rec.calls  # every float64 the reward saw, copy by copy


def crash(n: int = 60) -> MarketSeries:
    """A symbol losing 30% within each bar (it opens at the previous close): a long position
    is bankrupt within ten bars."""
    close = 100.0 * 0.7 ** np.arange(n, dtype=np.float64)
    times = (np.datetime64("2024-01-01T00:01") + np.arange(n) * np.timedelta64(1, "m")).astype(
        "datetime64[us]"
    )
    feats = np.random.default_rng(9).standard_normal((n, N_FEATURES)).astype(np.float32)
    return MarketSeries("CRASH", times, feats, close / 0.7, close)


@pytest.mark.parametrize("mode", ["discrete", "continuous"])
def test_bankrupting_actions_terminate_the_same_copies_at_the_same_steps(mode: str) -> None:
    """Half the copies always long: on the crashing symbol they go bankrupt (terminated) while
    copies on the other symbol reach their episode's end (truncated), in the same pass."""
    cfg = EnvConfig(action_mode=mode, episode_bars=24, fee_bps=50.0, slippage_bps=30.0)  # type: ignore[arg-type]
    series, n, seed = [walk("AAA", 90, 1, sigma=0.05), crash()], 6, 3
    steps = 200
    actions = actions_for(cfg, n, steps, seed)
    actions[:, : n // 2] = 2 if mode == "discrete" else 1.0
    ref_rec, rec = Recorder(ExampleStrategy().reward), Recorder(ExampleStrategy().reward)
    env = seeded_vec_env(BatchedTradingEnv(series, rec.reward, cfg, n), seed)  # scalar reward
    ends = assert_same_run(dummy(series, ref_rec.reward, cfg, n, seed), env, actions)
    assert ends["terminated"] >= 1 and ends["truncated"] >= 1
    assert rec.calls == ref_rec.calls


def test_long_only_and_a_smaller_position_limit_match() -> None:
    cfg = EnvConfig(
        window=2, action_mode="continuous", max_position=0.5, allow_short=False, episode_bars=20
    )
    series, n, seed = two_symbols(), 4, 11
    ref_rec, rec = Recorder(linear_reward), Recorder(linear_reward, linear_reward_batch)
    core = BatchedTradingEnv(series, rec.reward, cfg, n, batch_reward=rec.batch)
    env = seeded_vec_env(core, seed)
    ref = dummy(series, ref_rec.reward, cfg, n, seed)
    assert_same_run(ref, env, actions_for(cfg, n, 200, 1))
    assert rec.calls == ref_rec.calls
    assert min(c["position_after"] for c in rec.calls) == 0.0  # shorts became flat
    assert max(c["position_after"] for c in rec.calls) == 0.5
    np.testing.assert_array_equal(core.action_masks(), [False, True, True])


def test_the_example_strategys_batched_reward_keeps_everything_but_the_last_bits_of_rewards() -> (
    None
):
    """np.log1p and math.log1p may differ in the last bit, so rewards agree to float precision
    while observations, dones and equity stay exactly equal."""
    cfg = EnvConfig(window=3, episode_bars=16)
    strategy = ExampleStrategy(turnover_penalty=0.01)
    series, n, seed = two_symbols(), 4, 5
    core = BatchedTradingEnv(series, strategy.reward, cfg, n, batch_reward=strategy.reward_batch)
    env = seeded_vec_env(core, seed)
    ref = dummy(series, strategy.reward, cfg, n, seed)
    assert_same_run(ref, env, actions_for(cfg, n, 150, 2), exact_rewards=False)


def test_the_sb3_vec_env_under_vec_normalize_matches_dummy_vec_env() -> None:
    """Through SB3's VecEnv interface (step_async/step_wait, seed, get_attr, env_method) and
    VecNormalize, as the trainer uses it."""
    cfg = EnvConfig(window=2, episode_bars=16)
    series, n, seed = two_symbols(), 3, 21
    ref = VecNormalize(dummy(series, linear_reward, cfg, n, seed), gamma=0.9)
    core = BatchedTradingEnv(series, linear_reward, cfg, n, batch_reward=linear_reward_batch)
    venv = seeded_vec_env(core, seed)
    batched = VecNormalize(venv, gamma=0.9)
    assert batched.get_attr("render_mode") == [None] * n
    masks = np.stack(batched.env_method("action_masks"))
    np.testing.assert_array_equal(masks, np.stack(ref.env_method("action_masks")))
    assert venv.env_is_wrapped(Monitor) == ref.env_is_wrapped(Monitor)
    assert_same_run(ref, batched, actions_for(cfg, n, 120, 4))
    np.testing.assert_array_equal(batched.obs_rms.mean, ref.obs_rms.mean)
    np.testing.assert_array_equal(batched.ret_rms.var, ref.ret_rms.var)


def test_reset_options_choose_the_series_and_start() -> None:
    cfg = EnvConfig(window=2, episode_bars=16)
    series, n = two_symbols(), 2
    env = BatchedTradingEnv(series, linear_reward, cfg, n)
    env.set_options([{"series": 1, "start": 5}, {"series": 0, "start": 30}])
    env.reset()
    assert [(i["series"], i["t"]) for i in env.reset_infos] == [(1, 5), (0, 30)]
    env.set_options({"series": 1, "start": 56})
    with pytest.raises(ValueError, match="start 56 outside"):
        env.reset()


def test_a_running_copys_shared_empty_info_refuses_writes_a_finished_copy_gets_its_own() -> None:
    cfg = EnvConfig(episode_bars=4)
    env = BatchedTradingEnv(two_symbols(), linear_reward, cfg, 3)
    env.reset()
    _, _, dones, infos = env.step(np.ones(3, dtype=np.int64))
    assert not dones.any() and all(info == {} for info in infos)
    with pytest.raises(TypeError, match="read-only while its episode goes on"):
        infos[0]["mine"] = 1
    with pytest.raises(TypeError, match="full_infos=True"):
        infos[1].update(mine=1)
    assert infos[2] == {}
    for _ in range(3):
        _, _, dones, infos = env.step(np.ones(3, dtype=np.int64))
    assert dones.all()
    infos[0]["mine"] = 1  # a finished copy's info is its own dict
    assert "mine" not in infos[1] and infos[1]["TimeLimit.truncated"] is True


def test_a_batched_reward_of_the_wrong_shape_or_a_non_finite_reward_is_named() -> None:
    cfg = EnvConfig(episode_bars=16)
    env = BatchedTradingEnv(
        two_symbols(), linear_reward, cfg, 3, batch_reward=lambda ctx: np.zeros(2)
    )
    env.reset()
    with pytest.raises(ValueError, match=r"one reward per copy, shape \(3,\)"):
        env.step(np.ones(3, dtype=np.int64))
    env = BatchedTradingEnv(two_symbols(), lambda ctx: math.nan, cfg, 3)
    env.reset()
    with pytest.raises(ValueError, match="returned nan at step"):
        env.step(np.ones(3, dtype=np.int64))


finite = st.floats(-1.0, 1.0, allow_nan=False, width=64)


@settings(max_examples=50, deadline=None)
@given(
    step_return=arrays(np.float64, 16, elements=st.floats(-1.5, 2.0, allow_nan=False)),
    before=arrays(np.float64, 16, elements=finite),
    after=arrays(np.float64, 16, elements=finite),
    drawdown=arrays(np.float64, 16, elements=st.floats(0.0, 1.0, allow_nan=False)),
    turnover_penalty=st.floats(0.0, 0.1),
)
def test_the_example_strategys_batched_reward_agrees_with_its_reward(
    step_return: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
    drawdown: np.ndarray,
    turnover_penalty: float,
) -> None:
    strategy = ExampleStrategy(turnover_penalty=turnover_penalty)
    zeros = np.zeros(16)
    ctx = BatchRewardContext(
        step=np.arange(16),
        close=zeros + 100.0,
        open_next=zeros + 100.0,
        close_next=zeros + 100.0,
        position_before=before,
        position_after=after,
        gross_return=step_return,
        cost=zeros,
        step_return=step_return,
        equity=1.0 + step_return,
        peak_equity=zeros + 2.0,
        drawdown=drawdown,
        bars_in_position=np.zeros(16, dtype=np.int64),
    )
    batched = strategy.reward_batch(ctx)
    scalar = [strategy.reward(ctx.at(i, RewardContext())) for i in range(len(ctx))]
    assert batched.shape == (16,)
    np.testing.assert_allclose(batched, scalar, rtol=1e-13, atol=1e-13)


def test_a_tiny_training_on_the_batched_env_fits_the_model_dummy_vec_env_fits() -> None:
    """Through `SB3Trainer`: the same seed and the same episodes give the same model, bit for
    bit, whichever way the copies are stepped."""
    from drl_trading.training.adapter.sb3_trainer import SB3Trainer
    from drl_trading.training.core.config import AlgorithmSettings
    from drl_trading.training.core.ports import FitJob, FitProgress

    cfg = EnvConfig(window=2, episode_bars=16)
    series = two_symbols()
    ppo = AlgorithmSettings(
        name="PPO", hyperparameters={"n_steps": 32, "batch_size": 32, "n_epochs": 1}, net_arch=[8]
    )

    def job(batched: bool) -> FitJob:
        return FitJob(
            make_env=lambda: TradingEnv(series, linear_reward, cfg),
            n_envs=3,
            algorithm=ppo,
            total_timesteps=192,
            seed=5,
            normalize_observations=True,
            normalize_reward=True,
            make_batched_env=(
                (lambda n: BatchedTradingEnv(series, linear_reward, cfg, n)) if batched else None
            ),
        )

    trainer = SB3Trainer(device="cpu", torch_threads=1)
    progress: list[FitProgress] = []
    batched = trainer.fit(job(True), progress.append)
    reference = trainer.fit(job(False), lambda p: None)
    assert progress[-1].episodes >= 3 and progress[-1].mean_episode_equity is not None
    np.testing.assert_array_equal(batched.normalization.mean, reference.normalization.mean)
    np.testing.assert_array_equal(batched.normalization.var, reference.normalization.var)
    obs = np.random.default_rng(0).standard_normal((16, cfg.window * N_FEATURES + 3))
    probs_b = batched.model.policy.get_distribution(
        batched.model.policy.obs_to_tensor(obs.astype(np.float32))[0]
    ).distribution.probs
    probs_r = reference.model.policy.get_distribution(
        reference.model.policy.obs_to_tensor(obs.astype(np.float32))[0]
    ).distribution.probs
    np.testing.assert_array_equal(probs_b.detach().numpy(), probs_r.detach().numpy())
