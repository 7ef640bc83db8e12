"""Runs the preprocess step through the bus and reports what came back on its topics."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from rich.table import Table

from drl_trading.app.runtime import EmbeddedRuntime
from drl_trading.cli.context import console, err_console
from drl_trading.cli.progress import progress_bar
from drl_trading.common.domain import Symbol
from drl_trading.common.events import (
    ErrorOccurred,
    Event,
    PreprocessDataCompleted,
    PreprocessDataRequested,
    Topic,
)
from drl_trading.preprocess.adapter.bus_handlers import GROUP as PREPROCESS_GROUP

if TYPE_CHECKING:  # only a type here: ingest and preprocess need not import training
    from drl_trading.training.core.service import TrainingProgress

OBSERVER = "cli"


class WorkflowObserver:
    """Collects completion and error events of one correlation id."""

    def __init__(self, runtime: EmbeddedRuntime, correlation_id: str) -> None:
        self.correlation_id = correlation_id
        self.completed: list[PreprocessDataCompleted] = []
        self.errors: list[ErrorOccurred] = []
        bus = runtime.bus
        bus.subscribe(Topic.PREPROCESS_COMPLETED_OFFLINE, group=OBSERVER, handler=self._on_done)
        bus.subscribe(Topic.error(PREPROCESS_GROUP), group=OBSERVER, handler=self._on_error)
        bus.subscribe(Topic.error("training"), group=OBSERVER, handler=self._on_error)

    def _on_done(self, event: Event) -> None:
        if (
            isinstance(event, PreprocessDataCompleted)
            and event.correlation_id == self.correlation_id
        ):
            self.completed.append(event)

    def _on_error(self, event: Event) -> None:
        if isinstance(event, ErrorOccurred) and event.correlation_id == self.correlation_id:
            self.errors.append(event)


def run_preprocess(runtime: EmbeddedRuntime, correlation_id: str) -> WorkflowObserver:
    """Pump the bus (a published request must already be on it) with a progress bar."""
    observer = WorkflowObserver(runtime, correlation_id)
    steps = ("read", "resample", "features", "store")
    with progress_bar() as bar:
        tasks: dict[Symbol, object] = {}

        def on_progress(symbol: Symbol, step: str) -> None:
            if symbol not in tasks:
                tasks[symbol] = bar.add_task(f"preprocess {symbol}", total=len(steps))
            bar.update(tasks[symbol], advance=1, description=f"preprocess {symbol}: {step}")  # type: ignore[arg-type]

        runtime.preprocess.on_progress = on_progress
        training = runtime.training
        if training is not None:
            train_task = None

            def on_train(p: TrainingProgress) -> None:
                nonlocal train_task
                if train_task is None:
                    train_task = bar.add_task("train", total=p.total)
                fold = f" fold {p.fold + 1}/{p.folds}" if p.folds > 1 else ""
                reward = "-" if p.mean_episode_reward is None else f"{p.mean_episode_reward:.2f}"
                equity = "-" if p.mean_episode_equity is None else f"{p.mean_episode_equity:.3f}"
                bar.update(
                    train_task,
                    completed=p.timesteps,
                    total=p.total,
                    description=f"train{fold}: reward {reward}, equity {equity}, "
                    f"{p.steps_per_second:,.0f} steps/s",
                )

            training.service.on_progress = on_train
        try:
            runtime.run_until_idle()
        finally:
            runtime.preprocess.on_progress = None
            if training is not None:
                training.service.on_progress = None
    return observer


def publish_preprocess_request(
    runtime: EmbeddedRuntime, symbols: list[Symbol], start: datetime, end: datetime
) -> PreprocessDataRequested:
    from drl_trading.common.events import ProcessingMode

    event = PreprocessDataRequested(
        mode=ProcessingMode.OFFLINE, symbols=symbols, start=start, end=end
    )
    runtime.bus.publish(Topic.PREPROCESS_REQUESTED, event, key=str(symbols[0]))
    return event


def print_preprocess_outcome(observer: WorkflowObserver) -> bool:
    for err in observer.errors:
        err_console.print(f"[red]{err.service} failed:[/red] {err.error_type}: {err.message}")
    for done in observer.completed:
        table = Table(
            title=f"features {done.feature_set_name} v{done.feature_set_version} "
            f"(view {done.feature_view})"
        )
        for col in ("symbol", "feature rows", "warm-up dropped", "first", "last", "bars stored"):
            table.add_column(col)
        for out in done.outputs:
            bars = ", ".join(f"{t.timeframe.value}:{t.bars}" for t in out.timeframes)
            table.add_row(
                str(out.symbol),
                str(out.feature_rows),
                str(out.warmup_rows_dropped),
                out.first_feature_time.isoformat() if out.first_feature_time else "-",
                out.last_feature_time.isoformat() if out.last_feature_time else "-",
                bars,
            )
        console.print(table)
    return not observer.errors and bool(observer.completed)
