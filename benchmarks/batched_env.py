"""Environment steps per second: `BatchedTradingEnv` against `TradingEnv` copies in SB3's
DummyVecEnv and gym-anytrading's StocksEnv, on the same bars with precomputed random actions.

Every candidate steps the same synthetic 1m series (100,000 bars by default, 16 standard-normal
features, window 1, 2048-bar episodes reset when done) for ``--steps`` environment steps (summed
over the copies, which step together at most 20,000 times), through the interface training uses:
SB3's ``VecEnv.step`` for the batched environment (`SB3BatchedVecEnv`) and for DummyVecEnv (each
copy in Monitor, as `SB3Trainer` builds them), and StocksEnv's own ``step``/``reset`` loop (one
env, its ``Close`` column, ``window_size`` = the window, ``frame_bound`` = the whole series). The
reward is the example strategy's (``reward_batch`` in the batched environment; a row also shows
the batched environment calling the scalar ``reward`` once per copy). StocksEnv's reward is its
own (a price difference), so it does less per step than ours.

The machine is shared, so absolute rates are noisy: each round runs every candidate once, in an
order that alternates between rounds, after one untimed warm-up of each; every figure is the
median over the rounds with min..max, and each ratio is taken within a round.

    .venv/bin/python benchmarks/batched_env.py [--bars 100000] [--steps 200000] [--rounds 5]

gym-anytrading is the optional ``bench`` extra: ``pip install -c constraints.txt -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from drl_trading.common.market_series import MarketSeries
from drl_trading.training.core.batched_env import BatchedTradingEnv
from drl_trading.training.core.env import EnvConfig, TradingEnv

SEED = 7


def series(n: int, n_features: int) -> MarketSeries:
    rng = np.random.default_rng(1)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, n)))
    opens = close * np.exp(rng.normal(0.0, 0.0002, n))
    times = (np.datetime64("2024-01-01T00:01") + np.arange(n) * np.timedelta64(1, "m")).astype(
        "datetime64[us]"
    )
    feats = rng.standard_normal((n, n_features)).astype(np.float32)
    return MarketSeries("BENCHUSDT", times, feats, opens, close)


MAX_VECTOR_STEPS = 20_000
"""A few copies step at most this many times per pass (env steps/s is what is compared), so that
one copy's slow pass does not make a round take minutes."""


def vector_steps(steps: int, n: int) -> int:
    return max(1, min(MAX_VECTOR_STEPS, steps // n))


Runner = Callable[[], int]
"""Runs one timed pass; returns the environment steps it took (summed over the copies)."""


def batched_runner(
    s: MarketSeries, cfg: EnvConfig, n: int, steps: int, *, scalar_reward: bool
) -> Runner:
    from drl_trading_example_strategy import ExampleStrategy

    from drl_trading.training.adapter.sb3_batched_vec_env import seeded_vec_env

    strategy = ExampleStrategy()
    batch = None if scalar_reward else strategy.reward_batch
    venv = seeded_vec_env(BatchedTradingEnv([s], strategy.reward, cfg, n, batch_reward=batch), SEED)
    actions = np.random.default_rng(2).integers(0, 3, (vector_steps(steps, n), n))

    def run() -> int:
        for a in actions:
            venv.step(a)
        return actions.size

    return run


def dummy_runner(s: MarketSeries, cfg: EnvConfig, n: int, steps: int) -> Runner:
    from drl_trading_example_strategy import ExampleStrategy
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    strategy = ExampleStrategy()

    def make(i: int) -> Callable[[], Any]:
        def _init() -> Any:
            env = TradingEnv([s], strategy.reward, cfg)
            env.reset(seed=SEED + i)
            return Monitor(env, info_keywords=("equity",))

        return _init

    venv = DummyVecEnv([make(i) for i in range(n)])
    venv.seed(SEED)
    venv.reset()
    actions = np.random.default_rng(2).integers(0, 3, (vector_steps(steps, n), n))

    def run() -> int:
        for a in actions:
            venv.step(a)
        return actions.size

    return run


def stocks_runner(s: MarketSeries, window: int, steps: int) -> Runner:
    import pandas as pd
    from gym_anytrading.envs import StocksEnv

    df = pd.DataFrame({"Close": s.close})
    env = StocksEnv(df=df, window_size=window, frame_bound=(window, len(df)))
    env.reset(seed=SEED)
    actions = np.random.default_rng(2).integers(0, 2, steps).tolist()

    def run() -> int:
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()
        return len(actions)

    return run


def spread(values: list[float], fmt: str) -> str:
    return (
        f"{format(statistics.median(values), fmt)} "
        f"({format(min(values), fmt)} .. {format(max(values), fmt)})"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--bars", type=int, default=100_000)
    ap.add_argument("--features", type=int, default=16)
    ap.add_argument("--window", type=int, default=1)
    ap.add_argument("--steps", type=int, default=200_000, help="env steps per candidate and round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--copies", type=int, nargs="+", default=[1, 4, 8, 64, 256, 1024])
    ap.add_argument(
        "--dummy-max",
        type=int,
        default=64,
        help="DummyVecEnv only up to this many copies (each copy holds its own Python lists)",
    )
    args = ap.parse_args()
    if importlib.util.find_spec("gym_anytrading") is None:
        print(
            "gym-anytrading is not installed; it is the optional benchmark extra:\n"
            "    pip install -c constraints.txt -e '.[bench]'",
            file=sys.stderr,
        )
        return 2
    warnings.filterwarnings("ignore", category=UserWarning)  # gym's env checker on StocksEnv
    s = series(args.bars, args.features)
    cfg = EnvConfig(window=args.window, episode_bars=2048)
    candidates: dict[str, Runner] = {
        "StocksEnv (gym-anytrading)": stocks_runner(s, args.window, args.steps)
    }
    for n in args.copies:
        if n <= args.dummy_max:
            candidates[f"DummyVecEnv({n}) of TradingEnv"] = dummy_runner(s, cfg, n, args.steps)
        candidates[f"BatchedTradingEnv({n})"] = batched_runner(
            s, cfg, n, args.steps, scalar_reward=False
        )
    fallback = max(n for n in args.copies if n <= args.dummy_max)
    candidates[f"BatchedTradingEnv({fallback}), scalar reward"] = batched_runner(
        s, cfg, fallback, args.steps, scalar_reward=True
    )
    names = list(candidates)
    for name in names:  # warm-up: first-call costs (imports, caches) are not timed
        candidates[name]()
    rates: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            t0 = time.perf_counter()
            done = candidates[name]()
            rates[name].append(done / (time.perf_counter() - t0))

    print(
        f"{args.bars:,} bars, {args.features} features, window {args.window}, episodes of 2048 "
        f"bars, {args.steps:,} env steps per candidate, {args.rounds} rounds (median, min..max)"
    )
    width = max(len(n) for n in names) + 2
    for name in names:
        print(f"{name:<{width}}{spread(rates[name], ',.0f')} env steps/s")
    stocks = rates[names[0]]
    print()
    for n in args.copies:
        b = rates[f"BatchedTradingEnv({n})"]
        vs_stocks = [x / y for x, y in zip(b, stocks, strict=True)]
        text = f"N={n:<5} batched / StocksEnv {spread(vs_stocks, '.2f')}x"
        d = rates.get(f"DummyVecEnv({n}) of TradingEnv")
        if d is not None:
            vs_dummy = [x / y for x, y in zip(b, d, strict=True)]
            text += f"   batched / DummyVecEnv {spread(vs_dummy, '.2f')}x"
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
