"""The offline workflow's bus steps as the CLI shows them: progress bars while the embedded bus
is pumped (`drl_trading.app.offline_workflow`), then what came back on its topics."""

from __future__ import annotations

from rich.table import Table

from drl_trading.app.offline_workflow import OfflineWorkflow, WorkflowOutcome
from drl_trading.cli.context import console, err_console
from drl_trading.cli.progress import preprocess_bars, progress_bar, workflow_train_bar


def run_preprocess(workflow: OfflineWorkflow, correlation_id: str) -> WorkflowOutcome:
    """Pump the bus (a published request must already be on it) with a progress bar per
    preprocessed symbol and one for an expected training run."""
    with progress_bar() as bar:
        return workflow.run(
            correlation_id, on_preprocess=preprocess_bars(bar), on_train=workflow_train_bar(bar)
        )


def print_preprocess_outcome(outcome: WorkflowOutcome) -> bool:
    for err in outcome.errors:
        err_console.print(f"[red]{err.service} failed:[/red] {err.error_type}: {err.message}")
    for done in outcome.completed:
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
        for out in done.outputs:
            if out.warmup_note is not None:
                err_console.print(f"[yellow]{out.warmup_note}[/yellow]")
    return outcome.succeeded
