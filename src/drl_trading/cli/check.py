"""`drl-trading check ...`: checks of the user's own data and configuration.

``check lookahead`` prints one line when nothing changed and exits 0; otherwise a table of every
column that changed at or before a cut (symbol, cut, feature or observation, when first, how
many rows, the largest change and when) and exits 1.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from drl_trading.cli.context import console, fail, state, symbols_and_range
from drl_trading.cli.options import End, Start

check_app = typer.Typer(help="Check your data and feature set.", no_args_is_help=True)

TIME_FORMAT = "%Y-%m-%d %H:%M"


@check_app.command("lookahead")
def lookahead(
    ctx: typer.Context,
    symbols: Annotated[str, typer.Option("--symbols", "-s", help="Comma-separated symbols.")],
    start: Start,
    end: End,
    cuts: Annotated[
        int, typer.Option(min=1, help="Cut times per symbol, spread over the range's base bars.")
    ] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the cut times and perturbations.")] = 0,
    tolerance: Annotated[
        float,
        typer.Option(min=0.0, help="Absolute difference still counted as unchanged (0: exact)."),
    ] = 0.0,
    observations: Annotated[
        bool,
        typer.Option(
            "--observations/--no-observations",
            help="Also compare the training environment's observations.",
        ),
    ] = True,
) -> None:
    """Perturb every stored bar after each cut time, recompute the features (and environment
    observations) in memory, and report any value at or before the cut that changed: look-ahead.
    Exits 1 when one did. Nothing is written."""
    from drl_trading.app.lookahead import check_lookahead

    settings = state(ctx).settings()
    syms, rng = symbols_and_range(symbols, start, end)
    report = check_lookahead(
        settings,
        syms,
        rng,
        cuts=cuts,
        seed=seed,
        tolerance=tolerance,
        observations=observations,
    )
    if not report.cuts:
        raise fail(f"no cut time fits in {rng}: it holds fewer than two feature rows", 1)
    rows = [c.feature_rows for c in report.cuts]
    span = f"{min(rows):,}" if min(rows) == max(rows) else f"{min(rows):,}-{max(rows):,}"
    what = f"{report.features} features"
    if report.observation_entries:
        what += f" and {report.observation_entries} observation entries"
    context = (
        f"{', '.join(syms)}, {report.data_timeframe.value} bars, feature set {report.feature_set}"
    )
    if report.clean:
        console.print(
            f"no look-ahead: {len(report.cuts)} cuts, {what} x {span} rows at or before each cut "
            f"unchanged ({context})"
        )
        return
    table = Table("symbol", "cut", "kind", "column", "first changed", "rows", "largest", "at")
    for f in report.findings:
        c = f.change
        table.add_row(
            str(f.symbol),
            f"{c.cut:{TIME_FORMAT}}",
            f.kind,
            c.column,
            f"{c.first:{TIME_FORMAT}}",
            str(c.rows),
            f"{c.largest:.3g}",
            f"{c.at:{TIME_FORMAT}}",
        )
    console.print(table)
    columns = {(f.kind, f.change.column) for f in report.findings}
    hit = {(f.symbol, f.change.cut) for f in report.findings}
    console.print(
        f"look-ahead: {len(columns)} column(s) changed at or before {len(hit)} of "
        f"{len(report.cuts)} cuts when only later bars changed ({context}); a feature must use "
        "only bars closed by its row's time"
    )
    raise typer.Exit(1)
