"""`drl-trading compare MODEL_A MODEL_B`: two registered models side by side on the same range."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from drl_trading.cli.context import console, err_console, fail, state, symbols_and_range
from drl_trading.cli.options import End, FeeBps, SlippageBps, Start

_REF = "NAME/version, NAME@alias, NAME or models:/..."


def compare(
    ctx: typer.Context,
    model_a: Annotated[str, typer.Argument(metavar="MODEL_A", help=f"Model A ({_REF}).")],
    model_b: Annotated[str, typer.Argument(metavar="MODEL_B", help=f"Model B ({_REF}).")],
    symbols: Annotated[str, typer.Option("--symbols", "-s", help="Comma-separated.")],
    start: Start,
    end: End,
    fee_bps: FeeBps = None,
    slippage_bps: SlippageBps = None,
    confidence: Annotated[
        float,
        typer.Option("--confidence", help="Two-sided coverage of the intervals, in (0, 1)."),
    ] = 0.90,
) -> None:
    """Backtest two models on the same symbols, range and costs and put them side by side:
    Sharpe with its bootstrap interval, the Sharpe difference with a paired bootstrap interval
    and P(A > B); writes HTML + JSON, logs an MLflow run."""
    from drl_trading.app.model_backtest import BacktestError
    from drl_trading.app.model_compare import compare_models

    settings = state(ctx).settings()
    syms, rng = symbols_and_range(symbols, start, end)
    try:
        done = compare_models(
            settings,
            model_a,
            model_b,
            syms,
            rng,
            fee_bps=fee_bps,
            slippage_bps=slippage_bps,
            confidence=confidence,
        )
    except BacktestError as exc:
        raise fail(str(exc)) from None
    for line in done.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {line}")
    c = done.comparison
    table = Table(title=f"compare on {','.join(syms)} ({c.steps:,} steps both have)")
    table.add_column("metric")
    table.add_column(f"A: {c.a.name}", justify="right")
    table.add_column(f"B: {c.b.name}", justify="right")
    for row in c.rows():
        table.add_row(*row)
    console.print(table)
    console.print(c.difference_line(), soft_wrap=True)
    console.print(f"annualised with {done.annualisation}", soft_wrap=True)
    console.print(done.costs_line, soft_wrap=True)
    console.print(f"report:        {done.html_path}", soft_wrap=True)
    console.print(f"metrics:       {done.json_path}", soft_wrap=True)
    console.print(f"MLflow run id: {done.run_id}")
