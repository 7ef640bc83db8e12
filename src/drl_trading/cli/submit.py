"""`drl-trading submit-training`: the offline workflow on a distributed deployment.

The submission (requested.training, the history ingested here, the wait for the worker's
completed.training) is `drl_trading.app.training_submission`'s; this command shows it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from drl_trading.cli.context import console, err_console, fail, state, symbols_and_range
from drl_trading.cli.ingest import ingest_with_progress, print_ingest_report
from drl_trading.cli.options import DataTimeframe, End, HistorySource, SourcePath, Start
from drl_trading.common.domain import Timeframe
from drl_trading.common.events import ErrorOccurred
from drl_trading.evaluation.report_html import yes_no
from drl_trading.ingest.core.service import TrainingDataRequest


def submit_training(
    ctx: typer.Context,
    symbols: Annotated[str, typer.Option("--symbols", "-s", help="Comma-separated.")],
    start: Start,
    end: End,
    source: HistorySource = "synthetic",
    path: SourcePath = None,
    timeframe: DataTimeframe = Timeframe.M1,
    timesteps: Annotated[
        int | None, typer.Option(help="Training timesteps (default: the worker's config).")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the worker's completed.training.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the result.")] = 3600.0,
) -> None:
    """Submit a training run to the distributed deployment (bus.kind kafka): ingest the history,
    request its features, and wait for the training worker's result."""
    from drl_trading.app.training_submission import TrainingSubmission

    settings = state(ctx).settings()
    if settings.bus.kind != "kafka":
        raise fail("submit-training needs the distributed bus (bus.kind: kafka); use `train`", 2)
    syms, rng = symbols_and_range(symbols, start, end)
    request = TrainingDataRequest(tuple(syms), rng, timeframe=timeframe)
    cid = request.request_id
    with TrainingSubmission(settings, request, total_timesteps=timesteps, listen=wait) as run:
        report = ingest_with_progress(
            lambda on_progress: run.submit(source, path, on_progress=on_progress)
        )
        print_ingest_report(report)
        console.print(f"training requested (correlation id {cid})")
        if not wait:
            return
        with console.status("waiting for the training worker"):
            got = run.wait(timeout)
    if got is None:
        raise fail(f"no result from the training worker in {timeout:.0f} s (correlation {cid})")
    if isinstance(got, ErrorOccurred):
        err_console.print(f"[red]training failed: {got.error_type}: {got.message}[/red]")
        raise typer.Exit(1)
    console.print(
        f"registered {got.model_name} version {got.model_version} (run {got.run_id}); "
        f"champion: {yes_no(got.champion)} ({got.gate_reason})"
    )
    for name, value in got.metrics.items():
        console.print(f"  {name}: {value:.4f}")
