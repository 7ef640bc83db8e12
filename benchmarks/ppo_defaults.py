"""PPO's defaults against the old path, at the same timesteps: env steps/s and what it learned.

Trains PPO through the training service (`TrainingService.train`: the trainer, the environment
building, VecNormalize, the validation backtest and its walk-forward evidence, exactly what
`drl-trading train` runs) on the quickstart's data: synthetic 1m bars of BTCUSDT and ETHUSDT
over 60 days with the planted edge (0.5 on 5m bars, `drl_trading.ingest.adapter.synthetic_edge`),
the default feature set and costs, ingested and preprocessed once into a temporary embedded
home. Candidates, each trained once per seed:

* ``old``: the path before these defaults: 4 `TradingEnv` copies in SB3's DummyVecEnv
  (``training.env.vectorized: dummy``), SB3's PPO defaults (n_steps 2048, batch 64, 10 epochs);
* ``new``: the defaults (``training.env.n_envs`` null: 32 batched copies; n_steps 256, batch
  1024, 5 epochs: `drl_trading.training.core.hyperparameters`);
* any ``--candidate N_ENVS,N_STEPS,BATCH,EPOCHS`` (batched copies), for choosing the defaults.

Each seed is one round; the candidates alternate their order from round to round. Printed per
round and candidate: env steps/s (the service's ``train.steps_per_second``: timesteps over the
seconds of ``model.learn``), the out-of-sample validation Sharpe after costs (the walk-forward
evidence the gate judges, ``evidence.sharpe``), the test-range Sharpe and the wall time of the
whole ``train`` call; then per candidate the median steps/s with min..max, the ratio to the
first candidate within each round, the Sharpes per seed with their mean and std, and a verdict:
not worse when the candidate's mean Sharpe is within the larger of the two seed spreads (std) of
the first candidate's, or above it.

``--algorithm MaskablePPO`` or ``RecurrentPPO`` (the other PPOs, whose defaults are
Stable-Baselines3's): ``current`` (their defaults: 4 batched copies, n_steps 2048, batch 64, 10
epochs) against ``ppo-style`` (PPO's defaults given explicitly: 32 batched copies, 256/1024/5),
so that their defaults can follow PPO's where that measured as fast and not worse.

``--device cuda`` (a GPU machine, as is): the defaults and a large configuration
(`GPU_CANDIDATE`: 256 copies, batch 8192) each on CPU and on the GPU, side by side. Without a
GPU torch can see it says so and runs the CPU candidates only (exit 0).

    .venv/bin/python benchmarks/ppo_defaults.py [--timesteps 200000] [--seeds 3] [--days 60]
        [--candidate 64,128,2048,4 ...] [--no-old] [--device cpu|cuda]
        [--algorithm PPO|MaskablePPO|RecurrentPPO]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from drl_trading.app.offline_workflow import ingest_history
from drl_trading.app.runtime import EmbeddedRuntime
from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.app.training import build_training_service
from drl_trading.common.adapter.memory_registry import InMemoryRegistry
from drl_trading.common.domain import Symbol, TimeRange, parse_time
from drl_trading.common.events import new_id
from drl_trading.ingest.core.service import TrainingDataRequest
from drl_trading.training.core.config import TrainingSettings
from drl_trading.training.core.hyperparameters import PPO_N_ENVS, fit_hyperparameters
from drl_trading.training.core.service import TrainingRequest


@dataclass(frozen=True, slots=True)
class Candidate:
    """One way to train: the ``training`` settings it changes (the rest are the defaults)."""

    name: str
    training: dict[str, Any]


OLD = Candidate(
    "old (DummyVecEnv x4, 2048/64/10)",
    {
        "env": {"n_envs": 4, "vectorized": "dummy"},
        "algorithm": {"hyperparameters": {"n_steps": 2048, "batch_size": 64, "n_epochs": 10}},
    },
)
_NEW = fit_hyperparameters("PPO", {}, PPO_N_ENVS, 10**9).values
NEW = Candidate(
    f"new defaults ({PPO_N_ENVS} batched, "
    f"{_NEW['n_steps']}/{_NEW['batch_size']}/{_NEW['n_epochs']})",
    {},
)
GPU_CANDIDATE = (256, 128, 8192, 5)
"""n_envs, n_steps, batch_size, n_epochs of the large configuration of ``--device cuda``."""


def grid_candidate(text: str) -> Candidate:
    """``N_ENVS,N_STEPS,BATCH,EPOCHS`` as a candidate of batched copies."""
    try:
        n_envs, n_steps, batch, epochs = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--candidate {text!r}: give N_ENVS,N_STEPS,BATCH,EPOCHS, e.g. 64,128,2048,4"
        ) from None
    return sized(n_envs, n_steps, batch, epochs)


def sized(n_envs: int, n_steps: int, batch: int, epochs: int) -> Candidate:
    hyper = {"n_steps": n_steps, "batch_size": batch, "n_epochs": epochs}
    return Candidate(
        f"{n_envs} batched, {n_steps}/{batch}/{epochs}",
        {"env": {"n_envs": n_envs}, "algorithm": {"hyperparameters": hyper}},
    )


def on_device(candidate: Candidate, device: str) -> Candidate:
    return Candidate(f"{candidate.name} on {device}", {**candidate.training, "device": device})


def _quiet() -> None:
    """Keep stdout to the benchmark's lines: the services' info logs and warnings go."""
    warnings.filterwarnings("ignore")
    logging.disable(logging.INFO)
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def base_settings(home: Path, edge: float, edge_timeframe: str) -> AppSettings:
    """The quickstart's settings in ``home``: its planted edge, the default feature set, costs
    and gate."""
    return load_settings(
        home=home, ingest={"synthetic": {"edge": edge, "edge_timeframe": edge_timeframe}}
    )


def merged(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True, slots=True)
class Outcome:
    steps_per_second: float
    oos_sharpe: float
    test_sharpe: float
    wall: float


def train_once(
    runtime: EmbeddedRuntime,
    settings: AppSettings,
    candidate: Candidate,
    seed: int,
    timesteps: int,
    symbols: tuple[Symbol, ...],
    rng: TimeRange,
    root: Path,
) -> Outcome:
    training = merged(
        settings.training.model_dump(exclude_unset=True),
        {"device": "cpu", **candidate.training, "seed": seed, "total_timesteps": timesteps},
    )
    chosen = settings.model_copy(update={"training": TrainingSettings.model_validate(training)})
    registry = InMemoryRegistry(root / new_id())  # a fresh one: no trials of the others counted
    service = build_training_service(chosen, runtime.market_data, runtime.feature_store, registry)
    began = time.perf_counter()
    result = service.train(TrainingRequest(symbols, rng, new_id()))
    wall = time.perf_counter() - began
    assert result.evidence is not None
    return Outcome(
        result.steps_per_second,
        result.evidence.sharpe,
        result.test.mean("model", "sharpe"),
        wall,
    )


def spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summary(candidates: list[Candidate], results: dict[str, list[Outcome]]) -> None:
    first = candidates[0]
    base = results[first.name]
    print()
    print(f"{'candidate':<44}{'steps/s median (min..max)':>28}  {'ratio to first':>24}")
    for c in candidates:
        rates = [o.steps_per_second for o in results[c.name]]
        ratios = [
            o.steps_per_second / b.steps_per_second
            for o, b in zip(results[c.name], base, strict=True)
        ]
        print(
            f"{c.name:<44}{statistics.median(rates):>12,.0f} ({min(rates):,.0f}..{max(rates):,.0f})"
            f"  {statistics.median(ratios):>8.2f}x ({min(ratios):.2f}..{max(ratios):.2f})"
        )
    print()
    base_sharpes = [o.oos_sharpe for o in base]
    for c in candidates:
        sharpes = [o.oos_sharpe for o in results[c.name]]
        tests = [o.test_sharpe for o in results[c.name]]
        walls = [o.wall for o in results[c.name]]
        mean, sd = statistics.fmean(sharpes), spread(sharpes)
        line = (
            f"{c.name:<44} OOS Sharpe per seed [{', '.join(f'{s:.1f}' for s in sharpes)}] "
            f"mean {mean:.1f} sd {sd:.1f}; test [{', '.join(f'{s:.1f}' for s in tests)}]; "
            f"train() wall median {statistics.median(walls):.1f} s"
        )
        if c is not first:
            allowed = max(sd, spread(base_sharpes))
            gap = mean - statistics.fmean(base_sharpes)
            worse = gap < -allowed
            line += f"; vs first {gap:+.1f} (seed spread {allowed:.1f}): " + (
                "WORSE beyond the seed spread" if worse else "not worse beyond the seed spread"
            )
        print(line)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--timesteps", type=int, default=200_000, help="PPO steps per training")
    ap.add_argument("--seeds", type=int, default=3, help="rounds, one training seed each")
    ap.add_argument("--first-seed", type=int, default=42)
    ap.add_argument("--days", type=int, default=60, help="range of 1m bars, from 2024-01-01")
    ap.add_argument("--symbols", default="BTCUSDT,ETHUSDT")
    ap.add_argument("--edge", type=float, default=0.5, help="planted edge (quickstart's)")
    ap.add_argument("--edge-timeframe", default="5m")
    ap.add_argument(
        "--candidate",
        type=grid_candidate,
        action="append",
        default=[],
        metavar="N_ENVS,N_STEPS,BATCH,EPOCHS",
        help="another candidate (batched copies on CPU); repeatable",
    )
    ap.add_argument(
        "--algorithm",
        choices=("PPO", "MaskablePPO", "RecurrentPPO"),
        default="PPO",
        help="the other PPOs: their current defaults against PPO's (given explicitly)",
    )
    ap.add_argument("--no-old", action="store_true", help="leave the old path out")
    ap.add_argument("--no-new", action="store_true", help="leave the defaults out")
    ap.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cuda: also train the defaults and a large configuration on the GPU",
    )
    args = ap.parse_args()
    _quiet()
    import torch

    candidates = [] if args.no_old else [OLD]
    candidates += [] if args.no_new else [NEW]
    candidates += args.candidate
    if args.algorithm != "PPO":
        current = fit_hyperparameters(args.algorithm, {}, 4, 10**9).values
        candidates = [
            Candidate(
                f"current ({current['n_steps']}/{current['batch_size']}/"
                f"{current.get('n_epochs', 10)})",
                {},
            ),
            sized(PPO_N_ENVS, _NEW["n_steps"], _NEW["batch_size"], _NEW["n_epochs"]),
            *args.candidate,
        ]
        candidates = [
            Candidate(
                f"{args.algorithm} {c.name}",
                merged(c.training, {"algorithm": {"name": args.algorithm}}),
            )
            for c in candidates
        ]
    if args.device == "cuda":
        both = [NEW, sized(*GPU_CANDIDATE)]
        cpu = [on_device(c, "cpu") for c in both]
        if torch.cuda.is_available():
            gpu = [on_device(c, "cuda") for c in both]
            candidates = [c for pair in zip(cpu, gpu, strict=True) for c in pair]
            print(f"GPU: {torch.cuda.get_device_name(0)}")
        else:
            print(
                "no CUDA GPU visible to torch (torch.cuda.is_available() is False, torch "
                f"{torch.__version__}): the GPU candidates are left out, CPU only"
            )
            candidates = cpu
    if not candidates:
        ap.error("no candidates left (--no-old and --no-new without --candidate)")
    symbols = tuple(Symbol(s) for s in args.symbols.split(","))
    start = parse_time("2024-01-01")
    rng = TimeRange(start, start + timedelta(days=args.days))
    print(
        f"{args.algorithm} defaults benchmark: {args.timesteps:,} steps per training, "
        f"seeds: {args.seeds}, "
        f"{args.days} days of 1m bars of {', '.join(symbols)} (edge {args.edge} on "
        f"{args.edge_timeframe}), torch {torch.__version__}, 1 torch thread",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="ppo-defaults-") as tmp:
        root = Path(tmp)
        settings = base_settings(root / "home", args.edge, args.edge_timeframe)
        began = time.perf_counter()
        with EmbeddedRuntime.open(settings) as runtime:
            request = TrainingDataRequest(symbols, rng)
            ingest_history(
                settings,
                runtime.bus,
                runtime.market_data,
                "synthetic",
                None,
                request,
                request_preprocessing=True,
            )
            runtime.run_until_idle()
            print(f"data ingested and preprocessed in {time.perf_counter() - began:.0f} s")
            results: dict[str, list[Outcome]] = {c.name: [] for c in candidates}
            for r in range(args.seeds):
                seed = args.first_seed + r
                order = candidates if r % 2 == 0 else list(reversed(candidates))
                for c in order:
                    o = train_once(
                        runtime, settings, c, seed, args.timesteps, symbols, rng, root / "runs"
                    )
                    results[c.name].append(o)
                    print(
                        f"seed {seed}  {c.name:<44}{o.steps_per_second:>9,.0f} steps/s  "
                        f"OOS Sharpe {o.oos_sharpe:6.1f}  test {o.test_sharpe:6.1f}  "
                        f"train() {o.wall:5.1f} s",
                        flush=True,
                    )
    summary(candidates, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
