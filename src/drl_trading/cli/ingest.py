"""`drl-trading ingest`: fetch, validate and store bars of one timeframe; optionally preprocess."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from drl_trading.app.infrastructure import build_calendars
from drl_trading.app.ingest import Source, stored_bars
from drl_trading.app.offline_workflow import (
    IngestProgress,
    NothingStoredError,
    OfflineWorkflow,
    SourceError,
    WorkflowError,
    history_range,
)
from drl_trading.app.settings import AppSettings
from drl_trading.cli.context import console, err_console, fail, state
from drl_trading.cli.options import DataTimeframe, FileEnd, FileStart, HistorySource, SourcePath
from drl_trading.cli.pipeline import print_preprocess_outcome, run_preprocess
from drl_trading.cli.progress import LazyProgress, ingest_bars
from drl_trading.common.calendar import CalendarBook
from drl_trading.common.domain import Symbol, Timeframe, TimeRange, parse_symbols
from drl_trading.common.errors import (
    CommandInterruptedError,
    CommandTerminatedError,
    Terminated,
    interrupt_name,
)
from drl_trading.common.ports import MarketDataRepository
from drl_trading.ingest.core.service import IngestReport, TrainingDataRequest


def ingest(
    ctx: typer.Context,
    symbols: Annotated[
        str, typer.Option("--symbols", "-s", help="Comma-separated, e.g. BTCUSDT,ETHUSDT.")
    ],
    start: FileStart = None,
    end: FileEnd = None,
    source: HistorySource = "synthetic",
    path: SourcePath = None,
    timeframe: DataTimeframe = Timeframe.M1,
    preprocess: Annotated[
        bool, typer.Option("--preprocess", help="Then resample and compute features via the bus.")
    ] = False,
) -> None:
    """Fetch OHLCV bars of one timeframe (default 1m), validate them, store them idempotently,
    and report bad rows and gaps (closures of the symbol's market calendar are none).
    --start and --end are needed, except for --source file: left out, they are the file's."""
    settings = state(ctx).settings()
    try:
        syms = parse_symbols(symbols)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    rng = resolve_range(settings, source, path, syms, start, end, timeframe)
    request = TrainingDataRequest(tuple(syms), rng, timeframe=timeframe)
    with OfflineWorkflow.open(settings) as workflow:
        try:
            report = ingest_with_progress(
                lambda on_progress: workflow.ingest(
                    source, path, request, request_preprocessing=preprocess, on_progress=on_progress
                )
            )
            workflow.runtime.flush()  # the report says "stored": so it is, before it is shown
        except KeyboardInterrupt as exc:
            calendars = build_calendars(settings)
            raise interrupted_ingest(workflow.runtime.market_data, request, exc, calendars) from exc
        print_ingest_report(report)
        if preprocess:
            outcome = run_preprocess(workflow, request.request_id)
            if not print_preprocess_outcome(outcome):
                raise typer.Exit(1)


def resolve_range(
    settings: AppSettings,
    source: Source,
    path: Path | None,
    symbols: list[Symbol],
    start: str | None,
    end: str | None,
    timeframe: Timeframe = Timeframe.M1,
) -> TimeRange:
    """The range to ingest (`history_range`), saying on stderr what came from the file; its
    errors exit the CLI (code 2 for arguments, 1 for a file that cannot be read)."""
    try:
        chosen = history_range(settings, source, path, symbols, start, end, timeframe)
    except (ValueError, SourceError) as exc:
        raise fail(str(exc), 2) from None
    except WorkflowError as exc:
        raise fail(str(exc)) from None
    if chosen.note is not None:
        err_console.print(chosen.note)
    return chosen.range


def ingest_with_progress(step: Callable[[IngestProgress], IngestReport]) -> IngestReport:
    """Run an ingest ``step`` with a progress bar per symbol; its errors exit the CLI with
    their message (a source the arguments cannot build with code 2; a symbol of which nothing
    was stored with code 1, after the report)."""
    with LazyProgress() as bars:
        try:
            return step(ingest_bars(bars))
        except SourceError as exc:
            raise fail(str(exc), 2) from None
        except NothingStoredError as exc:
            nothing_stored = exc
        except WorkflowError as exc:
            raise fail(str(exc)) from None
    print_ingest_report(nothing_stored.report)
    raise fail(str(nothing_stored)) from None


def interrupted_ingest(
    market_data: MarketDataRepository,
    request: TrainingDataRequest,
    interrupt: BaseException | None = None,
    calendars: CalendarBook | None = None,
) -> CommandInterruptedError:
    """The Ctrl-C of an ingest, with the bars of the range stored now (read back from the
    store, so a bar the progress showed but the store never committed is not counted; each
    chunk is one transaction, so none is half there) and what a rerun does."""
    rng = request.range
    tf = request.timeframe
    stored = stored_bars(market_data, request.symbols, tf, rng.start, rng.end, calendars)
    counts = ", ".join(f"{s} {n:,} of {expected:,}" for s, (n, expected) in stored.items())
    terminated = isinstance(interrupt, Terminated)
    error = CommandTerminatedError if terminated else CommandInterruptedError
    how = interrupt_name(interrupt) if interrupt else "Ctrl-C"
    return error(
        f"interrupted ({how}): {tf} bars stored in {rng.start:%Y-%m-%d %H:%M} .. "
        f"{rng.end:%Y-%m-%d %H:%M}: {counts}; rerun the same command to continue (ingest "
        "upserts: what is stored is kept, nothing is stored twice)"
    )


def print_ingest_report(report: IngestReport) -> None:
    table = Table(title=f"ingest from {report.source}: {report.range}")
    columns = (
        "symbol",
        "fetched",
        "stored",
        "warm-up",
        "new",
        "updated",
        "unchanged",
        "quarantined",
        "gaps",
        "missing",
    )
    for col in columns:
        table.add_column(col, justify="right" if col != "symbol" else "left")
    for s in report.symbols:
        table.add_row(
            str(s.symbol),
            str(s.fetched_rows),
            str(s.stored_rows),
            str(s.warmup_rows),
            str(s.inserted_rows),
            str(s.updated_rows),
            str(s.unchanged_rows),
            str(s.quarantined_rows),
            str(len(s.gaps)),
            str(s.missing_bars),
        )
    console.print(table)
    for s in report.symbols:
        if s.violation_counts:
            what = (
                "every row quarantined, nothing stored"
                if s.nothing_stored
                else "invalid rows quarantined"
            )
            err_console.print(f"[yellow]{s.symbol}: {what}:[/yellow] {s.violations()}")
            for v in s.examples[:5]:
                err_console.print(f"  {v.describe()}")
        for gap in s.gaps[:5]:
            err_console.print(
                f"[yellow]{s.symbol}: gap[/yellow] {gap.start.isoformat()} .. "
                f"{gap.end.isoformat()} ({gap.missing_bars} bars missing)"
            )
        if len(s.gaps) > 5:
            err_console.print(f"  ... and {len(s.gaps) - 5} more gaps")
