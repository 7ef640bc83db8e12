"""How many trials were already run for a model: what its deflated Sharpe is deflated by.

Every training run of a model tags itself with the model's name (`MODEL_NAME_TAG`) and logs its
evidence, one Sharpe per seed (`Evidence.metrics`). A user who tried 50 configurations of one
model has 50 finished runs under that tag in the registry's experiment: their seeds are the
trials counted, and their logged Sharpes give the variance of the trial Sharpes. The count goes
through the kernel's `ModelRegistry.find_runs` (the in-memory fake in tests, MLflow otherwise),
so it reads exactly what the runs logged.

Counted: FINISHED runs only (a run that failed produced no figure anyone could select); a run
without ``evidence.seeds`` (logged before the walk-forward evidence) counts one trial with its
``validation.sharpe``. Runs of other experiments are not seen: the experiment is the scope.
"""

from __future__ import annotations

import math

from drl_trading.common.model_registry import ModelRegistry, RunInfo
from drl_trading.training.core.evidence import Trials

__all__ = ["FINISHED", "MODEL_NAME_TAG", "past_trials"]

MODEL_NAME_TAG = "model_name"
"""The run tag naming the registered model a training run trains."""
FINISHED = "FINISHED"


def _run_trials(run: RunInfo) -> tuple[int, list[float]]:
    m = run.metrics
    seeds = m.get("evidence.seeds")
    if seeds is None or not math.isfinite(seeds) or seeds < 1:
        legacy = m.get("validation.sharpe")
        return 1, [legacy] if legacy is not None and math.isfinite(legacy) else []
    n = int(seeds)
    sharpes = [m[k] for i in range(n) if (k := f"evidence.seed{i}.sharpe") in m]
    return n, [s for s in sharpes if math.isfinite(s)]


def past_trials(registry: ModelRegistry, model_name: str, exclude_run: str) -> Trials:
    """The trials of ``model_name``'s finished runs in the registry, ``exclude_run`` (the run
    now in progress) left out."""
    count = 0
    sharpes: list[float] = []
    for run in registry.find_runs({MODEL_NAME_TAG: model_name}):
        if run.run_id == exclude_run or run.status != FINISHED:
            continue
        n, values = _run_trials(run)
        count += n
        sharpes.extend(values)
    return Trials(count, tuple(sharpes))
