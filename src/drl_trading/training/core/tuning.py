"""One tuning trial: train a configuration on every walk-forward fold and seed, judge it on the
validation folds only, and log it as a trial of the model.

The objective is the out-of-sample Sharpe the gate judges (`evidence.walk_forward_evidence`:
the seeds' mean returns over the folds' validation ranges, after costs). The test range is cut
off the data before any series is built, so no trial can read it: the test backtest stays the
unseen check of whatever configuration the study selects.

After each fold the trial reports the Sharpe of the folds so far (`evidence.oos_sharpe`) and
asks whether to stop; a pruned trial still logs the evidence of the folds it ran. Every trial is
one run tagged with the model's name and logging ``evidence.*`` as a training run does, so the
deflated Sharpe of later trainings counts its seeds as trials (`trials.past_trials`): pruned
trials too, since a configuration seen and dropped was part of the selection. The run is nested
under the study's run (`PARENT_RUN_TAG`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import polars as pl

from drl_trading.training.core.backtest_report import annualisation_line
from drl_trading.training.core.evidence import (
    Evidence,
    FoldOutcome,
    fold_outcome,
    oos_sharpe,
)
from drl_trading.training.core.search_space import Suggest, TrialParameters
from drl_trading.training.core.service import (
    ALWAYS_OPEN,
    FoldInputs,
    TrainingRequest,
    TrainingService,
)
from drl_trading.training.core.trials import MODEL_NAME_TAG

__all__ = [
    "PARENT_RUN_TAG",
    "STUDY_TAG",
    "TRIAL_TAG",
    "TrialOutcome",
    "TrialPrunedError",
    "TuningTrial",
    "evaluate_trial",
]

PARENT_RUN_TAG = "mlflow.parentRunId"
"""MLflow's tag of a nested run: the UI shows the trial under the study's run."""
STUDY_TAG = "tuning.study"
TRIAL_TAG = "tuning.trial"
STATE_TAG = "tuning.state"


class TuningTrial(Suggest, Protocol):
    """One trial of a study, as the tuning library runs it."""

    @property
    def number(self) -> int:
        """The trial's number in its study (0, 1, ...: unique across workers)."""
        ...

    def report(self, value: float, step: int) -> None:
        """Record the intermediate objective ``value`` after fold ``step``."""
        ...

    def should_prune(self) -> bool:
        """Whether the pruner stops the trial at its last reported value."""
        ...


class TrialPrunedError(Exception):
    """The pruner stopped the trial after ``folds`` folds (its evidence is logged)."""

    def __init__(self, folds: int, value: float, run_id: str) -> None:
        self.folds = folds
        self.value = value
        self.run_id = run_id
        super().__init__(f"pruned after {folds} fold(s) at Sharpe {value:.3f}")


@dataclass(frozen=True, slots=True)
class TrialOutcome:
    value: float
    """The objective: the out-of-sample Sharpe over every fold and seed (annualised)."""
    evidence: Evidence
    run_id: str
    folds: int


def evaluate_trial(
    service: TrainingService,
    request: TrainingRequest,
    trial: TuningTrial,
    parameters: TrialParameters,
    *,
    study: str,
    parent_run_id: str,
) -> TrialOutcome:
    """Train ``service``'s configuration (already holding ``parameters``) on every fold and
    seed of ``request``, measure it on the validation folds and log it as one run of the model.
    Raises `TrialPrunedError` when the pruner stops it after a fold."""
    cfg = service.settings
    data = service.prepare(request)
    splits = data.splits
    folds = splits.folds
    # nothing at or after the end of the last validation range reaches a model (the embargo
    # and the test range lie there)
    horizon = max(f.validation.end for f in folds)
    frame = data.dataset.frame.filter(pl.col("bar_open_time") < horizon)
    columns = service.feature_set.columns
    base = service.feature_set.base_timeframe
    calendar = data.calendar
    ppy = data.periods_per_year
    env_cfg = service.env_config()
    total = request.total_timesteps or cfg.total_timesteps
    calendar_name = ALWAYS_OPEN if calendar is None else calendar.name
    annualised = annualisation_line(ppy, calendar_name, base)
    manifest = service._manifest(
        request, splits, env_cfg, frame.height, data.view_name, calendar, data.data_timeframe
    )
    tags = {
        MODEL_NAME_TAG: service.model_name,
        PARENT_RUN_TAG: parent_run_id,
        STUDY_TAG: study,
        TRIAL_TAG: str(trial.number),
        "correlation_id": request.correlation_id,
        "strategy": service.strategy.name,
        "algorithm": cfg.algorithm.name,
        "symbols": ",".join(request.symbols),
        "seeds": str(cfg.seeds),
    }
    fits = len(folds) * cfg.seeds
    outcomes: list[FoldOutcome] = []
    pruned_at: float | None = None
    with service.registry.start_run(f"{study}-trial-{trial.number}", tags) as run:
        run.log_params(
            {
                "tuning": {**parameters.hyperparameters, **_prefixed(parameters)},
                "config": service.resolved_config,
                "splits": splits.describe(),
                "total_timesteps": total,
                "seed": cfg.seed,
            }
        )
        inputs = FoldInputs(frame, columns, base, calendar, env_cfg, total, fits)
        for k, fold in enumerate(folds):
            seeded = service.fit_fold(k, fold, inputs, run, manifest, ppy, annualised)
            results = [result for _, result in seeded]
            outcomes.append(fold_outcome(k, fold.validation, results))
            value = oos_sharpe(outcomes, ppy)
            run.log_metrics(
                {
                    f"fold{k}.validation.sharpe": results[0].mean("model", "sharpe"),
                    "tuning.intermediate": value,
                },
                step=k,
            )
            trial.report(value, k)
            if k < len(folds) - 1 and trial.should_prune():
                pruned_at = value
                break
        evidence = service.record_evidence(run, outcomes, ppy)
        run.log_metrics({"tuning.value": evidence.sharpe})
        run.set_tags({STATE_TAG: "pruned" if pruned_at is not None else "complete"})
    if pruned_at is not None:
        raise TrialPrunedError(len(outcomes), pruned_at, run.run_id)
    return TrialOutcome(evidence.sharpe, evidence, run.run_id, len(outcomes))


def _prefixed(parameters: TrialParameters) -> dict[str, object]:
    return {f"strategy.{k}": v for k, v in parameters.strategy_params.items()}


def mixed_seed(*parts: int) -> int:
    """One 31-bit seed from several integers, hashed (numpy's SeedSequence) rather than added:
    with a sum, worker seeds that differ by one (consecutive process ids) and study sizes that
    differ by one (one worker asked a trial before the other joined) gave two workers the same
    seed, so they drew the same values trial after trial."""
    return int(np.random.SeedSequence([p % 2**63 for p in parts]).generate_state(1)[0] >> 1)
