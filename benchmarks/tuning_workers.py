"""Tuning shared by workers: one `drl-trading tune --worker` process against several on one
study in the local PostgreSQL, the same number of trials asked, in one run.

Set-up (untimed): a home whose market data and study storage are the local PostgreSQL (its own
schema, dropped at the end), ``--days`` of synthetic 1m bars of BTCUSDT ingested and preprocessed
with the default feature set, and an MLflow experiment on the local server for the trials' runs.
Then, per round, each candidate (1 worker, ``--workers`` workers) tunes a new study until it
holds ``--trials`` trials (`--worker`: the count is the study's, every worker's trials summed),
with the default search space (PPO's and the example strategy's tunables), the median pruner,
``--folds`` walk-forward folds of ``--timesteps`` steps each. The first worker gives the data
and creates the study; the others join it by name. Candidates alternate in order between rounds.

Printed per candidate: wall time from the first worker's start to the last one's exit, the
trials each worker ran, complete / pruned / failed, the best validation Sharpe (on synthetic
data a random walk: whatever it finds is luck, which the deflated Sharpe discounts), and trials
per minute; then the ratio of trials per minute, several workers against one, per round.

    bash scripts/stack.sh up      # PostgreSQL and the MLflow server
    .venv/bin/python benchmarks/tuning_workers.py [--trials 8] [--workers 2] [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import yaml

from drl_trading.testing.cli_process import CLI
from local_stack import require_servers

DSN = "postgresql://drl:drl@127.0.0.1:5432/drl"
TRACKING = "http://127.0.0.1:5000"
SYMBOL = "BTCUSDT"


def _config(path: Path, schema: str, run: str, args: argparse.Namespace) -> Path:
    data: dict[str, Any] = {
        "market_data": {"kind": "postgres"},
        "postgres": {"schema_name": schema},
        "training": {
            "total_timesteps": args.timesteps,
            "split": {"walk_forward_folds": args.folds},
            "registry": {
                "tracking_uri": TRACKING,
                "experiment": run,
                "model_name": f"drl-{run}",
            },
        },
        "tuning": {"storage": "postgres", "pruner": {"kind": "median"}},
    }
    path.write_text(yaml.safe_dump(data))
    return path


@dataclass
class Outcome:
    workers: int
    wall_s: float
    per_worker: list[int]
    states: dict[str, int]
    best: float | None

    @property
    def trials(self) -> int:
        return sum(self.per_worker)

    @property
    def per_minute(self) -> float:
        return self.trials / self.wall_s * 60.0


def _cli(home: Path, config: Path, *args: str) -> list[str]:
    return [CLI, "--home", str(home), "--config", str(config), *args]


def _tune(
    home: Path, config: Path, study: str, workers: int, data: list[str], trials: int
) -> Outcome:
    env = {**os.environ, "COLUMNS": "400"}
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            _cli(home, config, "tune", "--study", study, "--worker", "--trials", str(trials))
            + (data if k == 0 else []),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for k in range(workers)
    ]
    outputs = [p.communicate(timeout=3600) for p in procs]
    wall = time.perf_counter() - t0
    per_worker: list[int] = []
    for p, (out, err) in zip(procs, outputs, strict=True):
        if p.returncode != 0:
            sys.exit(f"a tune worker exited {p.returncode}:\n{out[-3000:]}\n{err[-3000:]}")
        per_worker.append(sum(1 for line in out.splitlines() if line.startswith("trial ")))
    states, best = _study(home, config, study)
    return Outcome(workers, wall, per_worker, states, best)


def _study(home: Path, config: Path, study: str) -> tuple[dict[str, int], float | None]:
    import optuna

    from drl_trading.app.settings import load_settings
    from drl_trading.app.tuning import study_storage

    where = study_storage(load_settings(config, home=home), study)
    storage = optuna.storages.RDBStorage(
        where.url, engine_kwargs={"connect_args": {"options": f"-csearch_path={where.schema}"}}
    )
    try:
        loaded = optuna.load_study(study_name=study, storage=storage)
        states = dict(Counter(t.state.name.lower() for t in loaded.trials))
        values = [t.value for t in loaded.trials if t.state.name == "COMPLETE"]
        best = max((v for v in values if v is not None), default=None)
    finally:
        storage.engine.dispose()
    return states, best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--trials", type=int, default=8, help="trials each study holds at the end")
    ap.add_argument("--workers", type=int, default=2, help="workers of the shared candidate")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--days", type=int, default=14, help="days of synthetic 1m bars")
    ap.add_argument("--folds", type=int, default=2, help="walk-forward folds per trial")
    ap.add_argument("--timesteps", type=int, default=8192, help="PPO steps per fold")
    args = ap.parse_args()
    if args.workers < 2:
        ap.error("--workers must be at least 2 (one worker is the other candidate)")
    require_servers("PostgreSQL", "MLflow")
    run = f"bench_tune_{uuid.uuid4().hex[:8]}"
    start = date(2024, 1, 1)
    data = ["-s", SYMBOL, "--start", str(start), "--end", str(start + timedelta(days=args.days))]
    with psycopg.connect(DSN, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {run}")
    try:
        with tempfile.TemporaryDirectory(prefix="drl-bench-tune-") as tmp:
            home = Path(tmp) / "home"
            config = _config(Path(tmp) / "tune.yaml", run, run, args)
            ingest = subprocess.run(
                _cli(home, config, "ingest", "--source", "synthetic", *data, "--preprocess"),
                capture_output=True,
                text=True,
            )
            if ingest.returncode != 0:
                sys.exit(f"ingest failed:\n{ingest.stdout[-3000:]}\n{ingest.stderr[-3000:]}")
            outcomes: dict[int, list[Outcome]] = {1: [], args.workers: []}
            for r in range(args.rounds):
                order = [1, args.workers] if r % 2 == 0 else [args.workers, 1]
                for k in order:
                    got = _tune(home, config, f"round{r}-w{k}", k, data, args.trials)
                    outcomes[k].append(got)
                    print(
                        f"round {r}, {k} worker(s): {got.wall_s:.0f} s, trials "
                        f"{'+'.join(map(str, got.per_worker))} = {got.trials}, {got.states}, "
                        f"best {got.best if got.best is None else round(got.best, 2)}",
                        flush=True,
                    )
    finally:
        with psycopg.connect(DSN, autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {run} CASCADE")
    print(
        f"\n{args.days} days of synthetic 1m {SYMBOL}, {args.trials} trials a study, {args.folds} "
        f"folds of {args.timesteps:,} PPO steps, median pruner, {args.rounds} round(s), "
        f"{os.cpu_count()} cores"
    )
    for k, runs in outcomes.items():
        walls = [o.wall_s for o in runs]
        rates = [o.per_minute for o in runs]
        print(
            f"{k} worker(s): wall {statistics.median(walls):.0f} s "
            f"({min(walls):.0f}..{max(walls):.0f}), {statistics.median(rates):.2f} trials/min"
        )
    ratios = [
        many.per_minute / one.per_minute
        for one, many in zip(outcomes[1], outcomes[args.workers], strict=True)
    ]
    print(
        f"trials/min, {args.workers} workers / 1: {statistics.median(ratios):.2f}x "
        f"({min(ratios):.2f}..{max(ratios):.2f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
