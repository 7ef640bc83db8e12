"""Calibration of the promotion gate: false-promotion and detection rates over M datasets each.

Runs the whole offline pipeline (synthetic 1h bars -> preprocess -> walk-forward training over
folds x seeds -> the default gate, default costs) in a fresh embedded home per dataset, on M
independent null datasets (edge 0: a random walk, nothing to learn) and on M datasets with a
planted edge (`ingest.synthetic.edge`, on 1h bars). Datasets differ by `ingest.synthetic.seed`.
Printed per dataset: the gate's verdict and the numbers it judged (out-of-sample Sharpe, its
90% CI, deflated Sharpe, best baseline, seeds' Sharpes, failed checks) and the oracle rule's
Sharpe after costs over the same out-of-sample span (what a perfect learner of the edge gets);
at the end the false-promotion rate (null promoted / M, target <= 5%) and the detection rate
(planted promoted / M), each with a Clopper-Pearson interval. What is small is the training
(`drl_trading.testing.gate_calibration`); the gate is the default one.

    .venv/bin/python benchmarks/gate_calibration.py [--m 20] [--edge 0.5] [--timesteps 6144]
        [--folds 2] [--seeds 2] [--days 120] [--json results.json] [--homes DIR]

About 16..24 s per dataset on a shared 2-core machine with the defaults (M = 20: 11..16 minutes;
--seeds 1: 8..9 s).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

from drl_trading.ingest.adapter.synthetic_edge import planted_sharpe
from drl_trading.testing.gate_calibration import (
    EDGE_TIMEFRAME,
    CalibrationSetup,
    DatasetOutcome,
    Kind,
    calibrate,
    calibration_report,
    datasets,
    promotion_rate,
)

DEFAULT_EDGE = 0.5
"""Planted 1h edge: the oracle's Sharpe is about 31 before and roughly 20 after the default
7 bps costs over 60 days (docs/data-path.md); at 0.3 it keeps only about 7 after costs."""


def _quiet() -> None:
    """Keep stdout to the benchmark's lines: MLflow's and the services' info logs go."""
    warnings.filterwarnings("ignore")
    logging.disable(logging.INFO)
    try:
        import structlog

        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    except ImportError:  # pragma: no cover - structlog is a dependency
        pass


def _row(o: DatasetOutcome) -> str:
    seeds = ", ".join(f"{s:.2f}" for s in o.seed_sharpes)
    failed = ",".join(o.failed) or "-"
    return (
        f"{o.kind:<7} #{o.index:<2} seed {o.data_seed:<5} edge {o.edge:.2f}  "
        f"{'PROMOTE' if o.promote else 'refuse '}  OOS Sharpe {o.sharpe:6.2f} "
        f"(CI {o.ci_lower:6.2f}..{o.ci_upper:6.2f})  DSR {o.dsr:.2f} ({o.trials} trials)  "
        f"best baseline {o.best_baseline} {o.best_baseline_sharpe:.2f}  seeds [{seeds}]  "
        f"oracle {o.oracle_sharpe:6.2f}  failed {failed}  {o.seconds:.0f} s"
    )


def _summary(outcomes: list[DatasetOutcome]) -> None:
    labels: tuple[tuple[Kind, str], ...] = (
        ("null", "false-promotion rate"),
        ("planted", "detection rate"),
    )
    for kind, label in labels:
        of_kind = [o for o in outcomes if o.kind == kind]
        if not of_kind:
            continue
        print(f"{label:<21} {promotion_rate(outcomes, kind).text()}")
        sharpe = statistics.median(o.sharpe for o in of_kind)
        oracle = statistics.median(o.oracle_sharpe for o in of_kind)
        dsr_ok = sum(o.dsr >= 0.95 for o in of_kind)
        failed = Counter(k for o in of_kind for k in o.failed)
        print(
            f"  {kind}: median OOS Sharpe {sharpe:.2f}, median oracle after costs {oracle:.2f}, "
            f"DSR >= 0.95 in {dsr_ok}/{len(of_kind)}; failed checks: "
            + (", ".join(f"{k} {n}" for k, n in failed.most_common()) or "none")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=20, help="Datasets of each kind (default 20).")
    parser.add_argument("--edge", type=float, default=DEFAULT_EDGE, help="Planted 1h edge.")
    defaults = CalibrationSetup()
    parser.add_argument("--timesteps", type=int, default=defaults.timesteps, help="Per fit.")
    parser.add_argument("--folds", type=int, default=defaults.folds)
    parser.add_argument("--seeds", type=int, default=defaults.seeds, help="Per fold.")
    parser.add_argument("--days", type=int, default=defaults.days, help="Range per dataset.")
    parser.add_argument(
        "--only", choices=("null", "planted"), default=None, help="Run one kind only."
    )
    parser.add_argument("--json", type=Path, default=None, help="Write the results here too.")
    parser.add_argument(
        "--homes", type=Path, default=None, help="Keep each dataset's home under this folder."
    )
    args = parser.parse_args()
    if args.homes is not None and args.homes.exists() and any(args.homes.iterdir()):
        parser.error(f"--homes {args.homes} is not empty: each dataset needs a fresh home")
    _quiet()
    setup = CalibrationSetup(
        days=args.days, timesteps=args.timesteps, folds=args.folds, seeds=args.seeds
    )
    try:
        todo = [d for d in datasets(args.m, args.edge) if args.only in (None, d.kind)]
    except ValueError as exc:
        parser.error(f"{exc} (--m, --edge)")
    print(
        f"gate calibration: M={args.m} per kind, edge {args.edge} on {EDGE_TIMEFRAME} "
        f"(oracle {planted_sharpe(args.edge, EDGE_TIMEFRAME):.1f} before costs), "
        f"{setup.days} days of 1h bars of {setup.symbol}, {setup.folds} folds x "
        f"{setup.seeds} seeds x {setup.timesteps} PPO steps, default gate and costs",
        flush=True,
    )
    root = args.homes or Path(tempfile.mkdtemp(prefix="gate-calibration-"))
    began = time.perf_counter()

    def report(outcomes: list[DatasetOutcome]) -> None:
        print(_row(outcomes[-1]), flush=True)
        if args.json is not None:  # after every dataset: a stopped run keeps what it measured
            payload = calibration_report(setup, args.edge, outcomes, time.perf_counter() - began)
            args.json.write_text(json.dumps(payload, indent=2))

    outcomes = calibrate(setup, todo, root, keep_homes=args.homes is not None, on_outcome=report)
    if args.homes is None:
        shutil.rmtree(root, ignore_errors=True)
    seconds = time.perf_counter() - began
    _summary(outcomes)
    print(
        f"{len(outcomes)} datasets in {seconds / 60:.1f} min ({seconds / len(outcomes):.0f} s each)"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
