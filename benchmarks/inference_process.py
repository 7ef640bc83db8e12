"""What the inference process costs to start: imports, model load, first decision, memory.

A tiny PPO policy is fitted and written as a model package (with and without its numpy layers,
`policy.npz`); then, in a fresh interpreter per run, the modules `drl-trading serve inference`
composes itself from are imported (the MLflow registry included), the package is loaded and one
decision is made. Printed per package: median seconds (min..max) of the import and of load plus
decide, the peak resident memory (VmHWM, Linux), and which of torch / stable-baselines3 /
gymnasium / the training service got imported.

    .venv/bin/python benchmarks/inference_process.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import drl_trading.app.services
import drl_trading.app.inference
import drl_trading.common.adapter.mlflow_registry
import drl_trading.execution.adapter.postgres_store
import drl_trading.execution.adapter.store_positions
import drl_trading.inference.adapter.registry_model_source
from drl_trading.policy.predictor import Predictor
t1 = time.perf_counter()
import numpy as np
p = Predictor.load(sys.argv[1])
p.decide(np.zeros((p.manifest.window, p.manifest.n_features)), np.zeros((1, 3)))
t2 = time.perf_counter()
heavy = ("torch", "stable_baselines3", "gymnasium", "drl_trading.training.core.service")
print(json.dumps({
    "import_s": t1 - t0,
    "load_decide_s": t2 - t1,
    # VmHWM restarts at exec (ru_maxrss would include the parent's peak before the fork)
    "maxrss_mib": next(
        int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")
    ) / 1024,
    "heavy": [m for m in heavy if m in sys.modules],
}))
"""


def make_packages(folder: Path) -> tuple[Path, Path]:
    """(package with numpy layers, the same package without them)."""
    from drl_trading.common.market_series import MarketSeries
    from drl_trading.policy.package import ModelManifest, write_package
    from drl_trading.strategy.api import BaseStrategy
    from drl_trading.training.adapter.sb3_trainer import SB3Trainer
    from drl_trading.training.core.config import AlgorithmSettings
    from drl_trading.training.core.env import EnvConfig, TradingEnv
    from drl_trading.training.core.ports import FitJob

    n, names = 400, tuple(f"f{i}" for i in range(8))
    rng = np.random.default_rng(1)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    times = np.datetime64("2024-01-01T00:05") + np.arange(n) * np.timedelta64(5, "m")
    series = MarketSeries(
        "BTCUSDT",
        times.astype("datetime64[us]"),
        rng.standard_normal((n, len(names))).astype(np.float32),
        close,
        close,
    )
    env = EnvConfig(window=4, episode_bars=32, feature_names=names)
    algorithm = AlgorithmSettings(name="PPO", hyperparameters={"n_steps": 64}, net_arch=[64, 64])
    fitted = SB3Trainer(device="cpu", torch_threads=1).fit(
        FitJob(
            make_env=lambda: TradingEnv([series], BaseStrategy().reward, env),
            n_envs=1,
            algorithm=algorithm,
            total_timesteps=128,
            seed=1,
            normalize_observations=True,
            normalize_reward=True,
        ),
        lambda p: None,
    )
    manifest = ModelManifest(
        algorithm="PPO",
        policy="default",
        action_mode=env.action_mode,
        window=env.window,
        feature_columns=list(names),
        feature_set={},
        feature_set_version="bench",
        feature_view="bench_view",
        base_timeframe="5m",
        strategy={"name": "base", "version": "0", "ref": "bench"},
        max_position=env.max_position,
        allow_short=env.allow_short,
        fee_bps=env.fee_bps,
        slippage_bps=env.slippage_bps,
    )
    with_layers = write_package(
        folder / "with-layers", fitted.model, fitted.normalization, manifest
    )
    without = folder / "without-layers"
    shutil.copytree(with_layers, without)
    (without / "policy.npz").unlink()
    return with_layers, without


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}..{max(values):.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        packages = make_packages(Path(tmp))
        print(f"inference process start-up, {args.repeat} fresh interpreters per package")
        print(f"{'package':16s} {'import s':>22s} {'load+decide s':>22s} {'RSS MiB':>8s}  heavy")
        runs: dict[Path, list[dict[str, object]]] = {p: [] for p in packages}
        for _ in range(args.repeat):
            for package in packages:  # alternate, so both see the same machine
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(package)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs[package].append(json.loads(out.stdout.splitlines()[-1]))
        for package, got in runs.items():
            imp = [float(str(r["import_s"])) for r in got]
            load = [float(str(r["load_decide_s"])) for r in got]
            rss = statistics.median(float(str(r["maxrss_mib"])) for r in got)
            heavy = sorted({m for r in got for m in r["heavy"]})  # type: ignore[attr-defined]
            print(f"{package.name:16s} {spread(imp):>22s} {spread(load):>22s} {rss:8.0f}  {heavy}")


if __name__ == "__main__":
    main()
