"""Command-line options several commands share, declared once so their names and help agree."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from drl_trading.app.ingest import Source
from drl_trading.common.domain import Timeframe

Start = Annotated[str, typer.Option(help="Start (inclusive), ISO date or time, UTC.")]
End = Annotated[str, typer.Option(help="End (exclusive), ISO date or time, UTC.")]
FileStart = Annotated[
    str | None,
    typer.Option(
        "--start",
        help="Start (inclusive), ISO date or time, UTC; for --source file default the file's "
        "first bar.",
    ),
]
FileEnd = Annotated[
    str | None,
    typer.Option(
        "--end",
        help="End (exclusive), ISO date or time, UTC; for --source file default the file's "
        "last bar + 1 bar.",
    ),
]
HistorySource = Annotated[Source, typer.Option(help="Where bars come from.")]
SourcePath = Annotated[
    Path | None,
    typer.Option(help="For --source file: CSV/Parquet path; {symbol} is replaced per symbol."),
]
DataTimeframe = Annotated[
    Timeframe,
    typer.Option(
        "--timeframe",
        help="The bars' timeframe at the source; stored under it, resampled only to coarser "
        "ones. A file whose spacing differs is refused.",
    ),
]
FeeBps = Annotated[
    float | None,
    typer.Option(
        "--fee-bps",
        min=0.0,
        help="Fee in bps of the traded notional, in place of the model's own for this run "
        "(a cost stress test; default: each model's).",
    ),
]
SlippageBps = Annotated[
    float | None,
    typer.Option(
        "--slippage-bps",
        min=0.0,
        help="Slippage in bps against each fill, in place of the model's own for this run "
        "(default: each model's).",
    ),
]
SessionModel = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", help="NAME@alias or NAME/version (default: inference.model_ref)."
    ),
]
ReplayStart = Annotated[str | None, typer.Option(help="Replay start (inclusive), UTC.")]
ReplayEnd = Annotated[str | None, typer.Option(help="Replay end (exclusive), UTC.")]
MaxBars = Annotated[
    int | None, typer.Option(help="Stop after this many bars (of the data timeframe).")
]
SessionReport = Annotated[
    Path | None, typer.Option(help="Session report JSON (default: reports/).")
]
