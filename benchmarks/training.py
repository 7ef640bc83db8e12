"""Benchmark of the training path: environment steps, PPO training and backtests.

Prints: raw `TradingEnv` steps/s with the example strategy's reward and 49 features (discrete
window 1, continuous window 1, discrete window 8; random actions drawn beforehand, the episode
restarted at its end), PPO training steps/s (`SB3Trainer` with PPO's defaults: batched copies
+ VecNormalize, `drl_trading.training.core.hyperparameters`; timed around ``model.learn`` only;
benchmarks/ppo_defaults.py compares them with the old 4 DummyVecEnvs), and backtest bars/s of
that PPO policy on N
synthetic bars (default 1,000,000): `run_policy`'s numpy fast path, its torch fallback on 20k
bars for comparison, and the whole `backtest` (policy + simulation + metrics + baselines).
Steps other than training are repeated and the median is reported; min..max shows the noise.

    .venv/bin/python benchmarks/training.py [--bars 1000000] [--ppo-steps 20480] [--quick]
                                            [--torch-threads T]

PPO rounds its timesteps up to whole rollouts (32 x 256), so 20480 trains 24576 steps. On small
machines torch's default intra-op threads can be far slower than one (try --torch-threads 1).
"""

from __future__ import annotations

import argparse
import os
import platform
import warnings
from collections.abc import Callable
from typing import Any
from unittest import mock

import numpy as np
from drl_trading_example_strategy import ExampleStrategy

from drl_trading.common.market_series import MarketSeries
from drl_trading.evaluation.backtest import backtest
from drl_trading.policy.package import ModelManifest
from drl_trading.policy.predictor import Predictor
from drl_trading.policy.run import run_policy
from drl_trading.strategy import default_feature_set
from drl_trading.training.adapter.sb3_trainer import SB3Trainer
from drl_trading.training.core.batched_env import BatchedTradingEnv
from drl_trading.training.core.config import AlgorithmSettings
from drl_trading.training.core.env import ActionMode, EnvConfig, TradingEnv
from drl_trading.training.core.hyperparameters import default_n_envs
from drl_trading.training.core.ports import FitJob
from timing import line as _line
from timing import timed

warnings.filterwarnings("ignore", category=DeprecationWarning)
BARS_PER_YEAR_5M = 365.0 * 288.0
FALLBACK_BARS = 20_000


def line(name: str, times: list[float], rows: int | None = None, unit: str = "bars") -> None:
    _line(name, times, rows, unit, width=48)


def synthetic_series(n: int, n_features: int, seed: int) -> MarketSeries:
    """A 5-minute random walk with float32 features of roughly unit scale."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    prev = np.concatenate(([100.0], close[:-1]))
    open_ = prev * np.exp(rng.normal(0.0, 0.0005, n))
    feats = rng.standard_normal((n, n_features), dtype=np.float32)
    times = (np.datetime64("2022-01-01T00:05") + np.arange(n) * np.timedelta64(5, "m")).astype(
        "datetime64[us]"
    )
    return MarketSeries("BENCHUSDT", times, feats, open_, close)


def env_steps(
    series: MarketSeries, reward: Callable[..., float], cfg: EnvConfig, steps: int
) -> Callable[[], int]:
    """A run of ``steps`` random actions (drawn before timing) through a fresh environment."""
    env = TradingEnv([series], reward, cfg)
    rng = np.random.default_rng(0)
    actions: list[Any]
    if cfg.action_mode == "discrete":
        actions = rng.integers(0, 3, steps).tolist()
    else:  # what SB3 passes: one float32 row per step
        actions = list(rng.uniform(-1.0, 1.0, (steps, 1)).astype(np.float32))

    def run() -> int:
        env.reset(seed=0)
        step = env.step
        for a in actions:
            _, _, terminated, truncated, _ = step(a)
            if terminated or truncated:
                env.reset()
        return steps

    return run


def manifest(columns: list[str], window: int, action_mode: str) -> ModelManifest:
    return ModelManifest(
        algorithm="PPO",
        policy="MlpPolicy",
        action_mode=action_mode,
        window=window,
        feature_columns=columns,
        feature_set={},
        feature_set_version="bench",
        feature_view="bench",
        base_timeframe="5m",
        strategy={"name": "example", "version": "1.0.0", "ref": "bench"},
        max_position=1.0,
        allow_short=True,
        fee_bps=5.0,
        slippage_bps=2.0,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--bars", type=int, default=1_000_000, help="backtest bars")
    ap.add_argument("--ppo-steps", type=int, default=20_480, help="PPO training timesteps")
    ap.add_argument("--env-steps", type=int, default=300_000, help="raw env steps per run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--torch-threads", type=int, default=None, help="default: torch's choice")
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = ap.parse_args()
    if args.quick:
        args.bars, args.ppo_steps, args.env_steps, args.repeat = 100_000, 8192, 50_000, 1

    import torch

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    columns = list(default_feature_set().columns)
    nf = len(columns)
    strategy = ExampleStrategy()
    print(f"training benchmark: {nf} features, example strategy reward")
    print(
        f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads, numpy {np.__version__}"
    )
    print()

    train_series = synthetic_series(100_000, nf, seed=1)
    steps = args.env_steps
    cases: list[tuple[str, ActionMode, int]] = [
        ("discrete", "discrete", 1),
        ("continuous", "continuous", 1),
        ("discrete, window 8", "discrete", 8),
    ]
    for label, mode, window in cases:
        cfg = EnvConfig(window=window, action_mode=mode, feature_names=tuple(columns))
        _, t = timed(env_steps(train_series, strategy.reward, cfg, steps), args.repeat)
        line(f"env steps: {label}", t, steps, "steps")
    print(f"{'':48}target: over 200,000 steps/s (discrete, window 1)")

    print()
    cfg = EnvConfig(window=1, action_mode="discrete", feature_names=tuple(columns))
    n_envs = default_n_envs("PPO")
    job = FitJob(
        make_env=lambda: TradingEnv([train_series], strategy.reward, cfg),
        n_envs=n_envs,
        algorithm=AlgorithmSettings(),
        total_timesteps=args.ppo_steps,
        seed=0,
        normalize_observations=True,
        normalize_reward=True,
        make_batched_env=lambda n: BatchedTradingEnv(
            [train_series], strategy.reward, cfg, n, batch_reward=strategy.reward_batch
        ),
    )
    fitted = SB3Trainer(device="cpu", torch_threads=args.torch_threads).fit(job, lambda p: None)
    model, norm, done = fitted.model, fitted.normalization, fitted.timesteps
    hyper = fitted.hyperparameters
    line(
        f"PPO learn ({n_envs} batched, {hyper['n_steps']}/{hyper['batch_size']}/"
        f"{hyper['n_epochs']}, {done:,} steps)",
        [fitted.seconds],
        done,
        "steps",
    )

    predictor = Predictor(manifest(columns, 1, "discrete"), norm, model)

    print()
    n = args.bars
    series = synthetic_series(n, nf, seed=2)
    fast, t = timed(lambda: run_policy(predictor, series), args.repeat)
    line(f"run_policy, numpy fast path ({n:,} bars)", t, n)
    print(f"{'':48}target: over 100,000 bars/s")
    small = series.slice(0, min(n, FALLBACK_BARS))
    quick = run_policy(predictor, small)
    with mock.patch.object(predictor, "numpy_policy", return_value=None):
        slow, t = timed(lambda: run_policy(predictor, small), 1)
    line(f"run_policy, torch fallback ({len(small):,} bars)", t, len(small))
    same = np.array_equal(quick.positions, slow.positions) and np.allclose(
        quick.confidence, slow.confidence, atol=1e-5
    )
    print(f"{'':48}fast path == torch fallback: {'yes' if same else 'NO'}")
    costs = cfg.costs
    result, t = timed(
        lambda: backtest(predictor, [series], costs=costs, periods_per_year=BARS_PER_YEAR_5M),
        args.repeat,
    )
    line(f"backtest() whole ({n:,} bars)", t, n)
    trades = len(result.symbols[0].trades)
    print(f"{'':48}{trades:,} trades, long {np.mean(fast.positions > 0):.0%} of bars")


if __name__ == "__main__":
    main()
