"""`drl-trading ingest`: fetch, validate and store 1m history; optionally preprocess it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from rich.table import Table

from drl_trading.app.offline_workflow import (
    IngestProgress,
    OfflineWorkflow,
    SourceError,
    WorkflowError,
)
from drl_trading.cli.context import console, err_console, fail, state
from drl_trading.cli.options import End, HistorySource, SourcePath, Start
from drl_trading.cli.pipeline import print_preprocess_outcome, run_preprocess
from drl_trading.cli.progress import LazyProgress, ingest_bars
from drl_trading.common.domain import TimeRange, parse_symbols
from drl_trading.ingest.core.service import IngestReport, TrainingDataRequest


def ingest(
    ctx: typer.Context,
    symbols: Annotated[
        str, typer.Option("--symbols", "-s", help="Comma-separated, e.g. BTCUSDT,ETHUSDT.")
    ],
    start: Start,
    end: End,
    source: HistorySource = "synthetic",
    path: SourcePath = None,
    preprocess: Annotated[
        bool, typer.Option("--preprocess", help="Then resample and compute features via the bus.")
    ] = False,
) -> None:
    """Fetch 1m OHLCV bars, validate them, store them idempotently, and report bad rows and gaps."""
    settings = state(ctx).settings()
    try:
        syms = parse_symbols(symbols)
        rng = TimeRange.parse(start, end)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    request = TrainingDataRequest(tuple(syms), rng)
    with OfflineWorkflow.open(settings) as workflow:
        report = ingest_with_progress(
            lambda on_progress: workflow.ingest(
                source, path, request, request_preprocessing=preprocess, on_progress=on_progress
            )
        )
        print_ingest_report(report)
        if preprocess:
            outcome = run_preprocess(workflow, request.request_id)
            if not print_preprocess_outcome(outcome):
                raise typer.Exit(1)


def ingest_with_progress(step: Callable[[IngestProgress], IngestReport]) -> IngestReport:
    """Run an ingest ``step`` with a progress bar per symbol; its errors exit the CLI with
    their message (a source the arguments cannot build with code 2)."""
    with LazyProgress() as bars:
        try:
            return step(ingest_bars(bars))
        except SourceError as exc:
            raise fail(str(exc), 2) from None
        except WorkflowError as exc:
            raise fail(str(exc)) from None


def print_ingest_report(report: IngestReport) -> None:
    table = Table(title=f"ingest from {report.source}: {report.range.start} .. {report.range.end}")
    for col in ("symbol", "fetched", "stored", "new", "updated", "quarantined", "gaps", "missing"):
        table.add_column(col, justify="right" if col != "symbol" else "left")
    for s in report.symbols:
        table.add_row(
            str(s.symbol),
            str(s.fetched_rows),
            str(s.stored_rows),
            str(s.inserted_rows),
            str(s.updated_rows),
            str(s.quarantined_rows),
            str(len(s.gaps)),
            str(s.missing_bars),
        )
    console.print(table)
    for s in report.symbols:
        if s.violation_counts:
            counts = ", ".join(f"{r.value}={n}" for r, n in s.violation_counts.items())
            err_console.print(f"[yellow]{s.symbol}: invalid rows quarantined:[/yellow] {counts}")
            for v in s.examples[:5]:
                err_console.print(f"  {v.describe()}")
        for gap in s.gaps[:5]:
            err_console.print(
                f"[yellow]{s.symbol}: gap[/yellow] {gap.start.isoformat()} .. "
                f"{gap.end.isoformat()} ({gap.missing_bars} bars missing)"
            )
        if len(s.gaps) > 5:
            err_console.print(f"  ... and {len(s.gaps) - 5} more gaps")
