"""Training progress: what a caller watching a run sees, and the curve logged on the run.

The trainer reports a fit's progress (`FitProgress`); the service adds which walk-forward fold
it belongs to, hands it to the caller's callback (a progress bar) and logs the mean episode
reward and equity on the run whenever new episodes finished since the last point.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from drl_trading.common.model_registry import ExperimentRun
from drl_trading.training.core.ports import FitProgress


@dataclass
class TrainingProgress:
    """What the progress callback receives, every few thousand steps."""

    fold: int
    folds: int
    timesteps: int
    total: int
    mean_episode_reward: float | None
    mean_episode_equity: float | None
    steps_per_second: float


ProgressCallback = Callable[[TrainingProgress], None]


class TrainingCurve:
    """The `FitProgressHook` of fold ``fold`` of ``folds``: calls ``on_progress`` with every
    report and logs ``train.episode_reward`` / ``train.episode_equity`` (prefixed ``fold<k>.``
    when there are several folds) at the step reached."""

    def __init__(
        self, on_progress: ProgressCallback | None, run: ExperimentRun, fold: int, folds: int
    ) -> None:
        self.on_progress = on_progress
        self.run = run
        self.fold = fold
        self.folds = folds
        self.logged = 0
        """Episodes finished at the last logged point."""

    def __call__(self, p: FitProgress) -> None:
        mean_r, mean_e = p.mean_episode_reward, p.mean_episode_equity
        if self.on_progress is not None:
            self.on_progress(
                TrainingProgress(
                    self.fold, self.folds, p.timesteps, p.total, mean_r, mean_e, p.steps_per_second
                )
            )
        if mean_r is not None and p.episodes > self.logged:
            self.logged = p.episodes
            prefix = f"fold{self.fold}." if self.folds > 1 else ""
            metrics = {f"{prefix}train.episode_reward": mean_r}
            if mean_e is not None and math.isfinite(mean_e):
                metrics[f"{prefix}train.episode_equity"] = mean_e
            self.run.log_metrics(metrics, step=p.timesteps)
