"""`drl-trading reproduce RUN_ID`: train a logged run again from its record and compare."""

from __future__ import annotations

import math
from typing import Annotated

import typer
from rich.table import Table

from drl_trading.cli.context import console, err_console, state
from drl_trading.cli.progress import progress_bar, train_bar


def _cell(value: float | None) -> str:
    """Full precision (17 significant digits round-trip a float), so a mismatch is visible."""
    if value is None:
        return "-"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return f"{value:.17g}"


def reproduce(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The MLflow run id `train` printed.")],
) -> None:
    """Re-run a logged training run from its MLflow record (settings, data fingerprint, seeds,
    library versions) and compare every metric; exit 0 when all match, 1 otherwise."""
    from drl_trading.app.reproduce import reproduce_run

    settings = state(ctx).settings()
    with progress_bar() as bar:
        done = reproduce_run(
            settings, run_id, on_progress=train_bar(bar, settings.training.total_timesteps)
        )
    table = Table(title=f"reproduce {run_id}")
    table.add_column("metric")
    table.add_column("recorded", justify="right")
    table.add_column("reproduced", justify="right")
    table.add_column("match")
    for m in done.metrics:
        verdict = m.verdict if m.match else f"[red]{m.verdict}[/red]"
        verdict = f"[dim]{verdict}[/dim]" if not m.compared else verdict
        table.add_row(m.name, _cell(m.recorded), _cell(m.reproduced), verdict)
    console.print(table)
    for line in done.differences:
        err_console.print(f"[yellow]provenance:[/yellow] {line}")
    compared = [m for m in done.metrics if m.compared]
    matched = sum(m.match for m in compared)
    console.print(f"re-run:        MLflow run id {done.reproduced.run_id}")
    console.print(
        f"metrics:       {matched} of {len(compared)} match ({len(done.metrics) - len(compared)} "
        "not compared: timings, and what depends on the trials and champion of the moment)"
    )
    if not done.differences:
        console.print("provenance:    same data, feature set, seeds and library versions")
    if not done.matches:
        raise typer.Exit(1)
