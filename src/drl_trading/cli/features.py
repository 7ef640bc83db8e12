"""`drl-trading features ...`: inspect and export stored feature matrices."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from drl_trading.app.infrastructure import feature_set_for
from drl_trading.cli.context import console, err_console, fail, state, symbols_and_range
from drl_trading.cli.options import End, Start
from drl_trading.cli.output import FormatOption, OutputFormat, write_rows
from drl_trading.strategy.feature_set import (
    SEED_WEIGHT_TOLERANCE,
    TIME_ENCODING_COLUMNS,
    FeatureSetSpec,
)

features_app = typer.Typer(help="Inspect and export stored features.", no_args_is_help=True)


@features_app.command("export")
def export(
    ctx: typer.Context,
    symbol: Annotated[
        str, typer.Option("--symbol", "--symbols", "-s", help="One or more, comma-separated.")
    ],
    start: Start,
    end: End,
    out: Annotated[Path, typer.Option(help="Output file (.parquet or .csv).")],
) -> None:
    """Write the feature matrix as training sees it (Feast point-in-time reads at bar closes)."""
    from drl_trading.app.feature_export import export_features
    from drl_trading.app.offline_workflow import WorkflowError

    settings = state(ctx).settings()
    syms, rng = symbols_and_range(symbol, start, end)
    try:
        written = export_features(settings, syms, rng, out)
    except WorkflowError as exc:
        raise fail(str(exc)) from None
    for sym, missing in written.missing_rows.items():
        if missing:
            err_console.print(
                f"[yellow]{sym}: {missing} base bars had no feature row yet (warm-up) and were "
                "left out[/yellow]"
            )
    console.print(
        f"wrote {written.rows} rows x {written.columns} columns "
        f"({written.features} features, view {written.view}) to {out}"
    )


@features_app.command("info")
def info(ctx: typer.Context, fmt: FormatOption = OutputFormat.TABLE) -> None:
    """Show the configured feature set: version, timeframes and columns."""
    spec = feature_set_for(state(ctx).settings())
    if fmt is not OutputFormat.TABLE:
        write_rows(fmt, INFO_COLUMNS, info_rows(spec), sys.stdout)
        return
    console.print(
        f"feature set [bold]{spec.name}[/bold] version {spec.version}, base timeframe "
        f"{spec.base_timeframe.value}, look-back {spec.lookback()} (history before a start for "
        f"every indicator's seed to weigh below {SEED_WEIGHT_TOLERANCE:g})"
    )
    table = Table("timeframe", "warm-up (bars)", "features")
    for tf in spec.timeframes:
        table.add_row(
            tf.timeframe.value,
            f"{tf.warmup_bars()} ({tf.lookback()})",
            ", ".join(c.split("__")[0] for c in tf.columns()),
        )
    if spec.time_encodings:
        table.add_row("calendar", "0", ", ".join(TIME_ENCODING_COLUMNS))
    console.print(table)


INFO_COLUMNS = ("feature_set", "version", "timeframe", "feature", "column")
"""One CSV/JSON row per column of the feature matrix, in the matrix's order."""


def info_rows(spec: FeatureSetSpec) -> list[tuple[str, ...]]:
    head = (spec.name, spec.version)
    rows: list[tuple[str, ...]] = [
        (*head, tf.timeframe.value, c.split("__")[0], c)
        for tf in spec.timeframes
        for c in tf.columns()
    ]
    if spec.time_encodings:
        rows += [(*head, "calendar", c, c) for c in TIME_ENCODING_COLUMNS]
    return rows
