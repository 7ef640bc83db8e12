"""`drl-trading features ...`: inspect and export stored feature matrices."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from drl_trading.app.infrastructure import feature_set_for
from drl_trading.app.runtime import EmbeddedRuntime
from drl_trading.cli.context import console, err_console, fail, state
from drl_trading.cli.options import End, Start
from drl_trading.common.domain import TimeRange, parse_symbols
from drl_trading.common.feature_dataset import DatasetError, load_feature_matrix
from drl_trading.strategy.feature_view import view_for

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
    settings = state(ctx).settings()
    try:
        syms = parse_symbols(symbol)
        rng = TimeRange.parse(start, end)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    spec = feature_set_for(settings)
    with EmbeddedRuntime.open(settings) as runtime:
        try:
            result = load_feature_matrix(
                runtime.market_data, runtime.feature_store, view_for(spec), syms, rng
            )
        except (DatasetError, LookupError) as exc:
            raise fail(str(exc)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    frame = result.frame
    if out.suffix == ".csv":
        frame.write_csv(out)
    else:
        frame.write_parquet(out)
    for sym, missing in result.missing_rows.items():
        if missing:
            err_console.print(
                f"[yellow]{sym}: {missing} base bars had no feature row yet (warm-up) and were "
                "left out[/yellow]"
            )
    console.print(
        f"wrote {frame.height} rows x {len(frame.columns)} columns "
        f"({len(spec.columns)} features, view {spec.view_name}) to {out}"
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
