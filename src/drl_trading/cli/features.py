"""`drl-trading features ...`: inspect and export stored feature matrices."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from drl_trading.app.infrastructure import feature_set_for
from drl_trading.cli.context import console, err_console, fail, state
from drl_trading.cli.options import End, Start
from drl_trading.common.domain import TimeRange, parse_symbols

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
    try:
        syms = parse_symbols(symbol)
        rng = TimeRange.parse(start, end)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
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
def info(ctx: typer.Context) -> None:
    """Show the configured feature set: version, timeframes and columns."""
    spec = feature_set_for(state(ctx).settings())
    console.print(
        f"feature set [bold]{spec.name}[/bold] version {spec.version}, base timeframe "
        f"{spec.base_timeframe.value}, look-back {spec.lookback()}"
    )
    table = Table("timeframe", "features")
    for tf in spec.timeframes:
        table.add_row(tf.timeframe.value, ", ".join(c.split("__")[0] for c in tf.columns()))
    if spec.time_encodings:
        table.add_row("calendar", "tod_sin, tod_cos, dow_sin, dow_cos")
    console.print(table)
