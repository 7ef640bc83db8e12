"""Progress bars for long commands (rich, on stderr so stdout stays parseable), and the progress
callbacks of the offline workflow's steps drawn as bars."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from drl_trading.app.offline_workflow import (
    PREPROCESS_STEPS,
    IngestProgress,
    PreprocessProgress,
    TrainProgress,
)
from drl_trading.cli.context import err_console
from drl_trading.common.domain import Symbol

if TYPE_CHECKING:  # only a type here: ingest and preprocess need not import training
    from drl_trading.training.core.progress import TrainingProgress


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


class LazyProgress:
    """A `progress_bar` that appears with its first task: a step that fails before reporting
    any progress shows no bar."""

    def __init__(self) -> None:
        self._bar: Progress | None = None

    @property
    def bar(self) -> Progress:
        if self._bar is None:
            self._bar = progress_bar()
            self._bar.start()
        return self._bar

    def __enter__(self) -> LazyProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def ingest_bars(bars: LazyProgress) -> IngestProgress:
    """One bar per symbol, in the market's bars of history stored."""
    tasks: dict[Symbol, TaskID] = {}

    def on_progress(symbol: Symbol, done: int, total: int) -> None:
        bar = bars.bar
        if symbol not in tasks:
            tasks[symbol] = bar.add_task(f"ingest {symbol}", total=total)
        bar.update(tasks[symbol], completed=done)

    return on_progress


def preprocess_bars(bar: Progress) -> PreprocessProgress:
    """One bar per symbol, in preprocess steps."""
    tasks: dict[Symbol, TaskID] = {}

    def on_progress(symbol: Symbol, step: str) -> None:
        if symbol not in tasks:
            tasks[symbol] = bar.add_task(f"preprocess {symbol}", total=len(PREPROCESS_STEPS))
        bar.update(tasks[symbol], advance=1, description=f"preprocess {symbol}: {step}")

    return on_progress


def workflow_train_bar(bar: Progress) -> TrainProgress:
    """The training bar of a whole workflow: folds, mean episode reward and equity."""
    task: TaskID | None = None

    def on_progress(p: TrainingProgress) -> None:
        nonlocal task
        if task is None:
            task = bar.add_task("train", total=p.total)
        fold = f" fold {p.fold + 1}/{p.folds}" if p.folds > 1 else ""
        reward = "-" if p.mean_episode_reward is None else f"{p.mean_episode_reward:.2f}"
        equity = "-" if p.mean_episode_equity is None else f"{p.mean_episode_equity:.3f}"
        bar.update(
            task,
            completed=p.timesteps,
            total=p.total,
            description=f"train{fold}: reward {reward}, equity {equity}, "
            f"{p.steps_per_second:,.0f} steps/s",
        )

    return on_progress


def train_bar(bar: Progress, total: int) -> TrainProgress:
    """The bar of `drl-trading train`: shown from the start, with the mean episode reward."""
    task = bar.add_task("train", total=total)

    def on_progress(p: TrainingProgress) -> None:
        reward = "-" if p.mean_episode_reward is None else f"{p.mean_episode_reward:.2f}"
        bar.update(
            task,
            completed=p.timesteps,
            description=f"train: reward {reward}, {p.steps_per_second:,.0f} steps/s",
        )

    return on_progress
