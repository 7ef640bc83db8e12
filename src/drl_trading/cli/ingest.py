"""`drl-trading ingest`: fetch, validate and store 1m history; optionally preprocess it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from drl_trading.app.ingest import Source, bootstrap_ingest, build_provider
from drl_trading.app.runtime import EmbeddedRuntime
from drl_trading.app.settings import AppSettings
from drl_trading.cli.context import console, err_console, fail, state
from drl_trading.cli.options import End, HistorySource, SourcePath, Start
from drl_trading.cli.pipeline import print_preprocess_outcome, run_preprocess
from drl_trading.cli.progress import progress_bar
from drl_trading.common.domain import Symbol, TimeRange, parse_symbols
from drl_trading.common.ports import MarketDataRepository, MessageBus
from drl_trading.ingest.core.service import BatchRejectedError, IngestReport, TrainingDataRequest


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
    with EmbeddedRuntime.open(settings) as runtime:
        report = run_ingest(runtime, source, path, request, request_preprocessing=preprocess)
        print_ingest_report(report)
        if preprocess:
            observer = run_preprocess(runtime, request.request_id)
            if not print_preprocess_outcome(observer):
                raise typer.Exit(1)


def run_ingest(
    runtime: EmbeddedRuntime,
    source: Source,
    path: Path | None,
    request: TrainingDataRequest,
    *,
    request_preprocessing: bool,
) -> IngestReport:
    """Ingest ``request`` from ``source`` with a progress bar per symbol; errors exit the CLI
    with their message (bad arguments with code 2)."""
    return run_ingest_with(
        runtime.settings,
        runtime.bus,
        runtime.market_data,
        source,
        path,
        request,
        request_preprocessing=request_preprocessing,
    )


def run_ingest_with(
    settings: AppSettings,
    bus: MessageBus,
    market_data: MarketDataRepository,
    source: Source,
    path: Path | None,
    request: TrainingDataRequest,
    *,
    request_preprocessing: bool,
) -> IngestReport:
    """`run_ingest` on given adapters (the distributed submitter has no embedded runtime)."""
    rng = request.range
    try:
        provider = build_provider(settings, source, path)
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc), 2) from None
    service = bootstrap_ingest(settings, provider, market_data, bus)
    total_minutes = int((rng.end - rng.start).total_seconds() // 60)
    with progress_bar() as bar:
        tasks = {s: bar.add_task(f"ingest {s}", total=total_minutes) for s in request.symbols}

        def on_progress(symbol: Symbol, last: datetime, rows: int) -> None:
            done = int((last - rng.start).total_seconds() // 60) + 1
            bar.update(tasks[symbol], completed=min(done, total_minutes))

        try:
            report = service.ingest_history(
                request, request_preprocessing=request_preprocessing, on_progress=on_progress
            )
        except BatchRejectedError as exc:
            raise fail(str(exc)) from None
        except (FileNotFoundError, LookupError, ValueError, KeyError) as exc:
            raise fail(f"{type(exc).__name__}: {exc}") from None
        for task in tasks.values():
            bar.update(task, completed=total_minutes)
    return report


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
