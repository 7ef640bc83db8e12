"""`drl-trading preprocess`: resample stored bars and compute features, through the bus."""

from __future__ import annotations

from typing import Annotated

import typer

from drl_trading.app.offline_workflow import OfflineWorkflow
from drl_trading.cli.context import fail, state
from drl_trading.cli.options import End, Start
from drl_trading.cli.pipeline import print_preprocess_outcome, run_preprocess
from drl_trading.common.domain import TimeRange, parse_symbols


def preprocess(
    ctx: typer.Context,
    symbols: Annotated[str, typer.Option("--symbols", "-s", help="Comma-separated symbols.")],
    start: Start,
    end: End,
) -> None:
    """Publish requested.preprocess-data for stored bars and run the preprocess service on it."""
    settings = state(ctx).settings()
    try:
        syms = parse_symbols(symbols)
        rng = TimeRange.parse(start, end)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    with OfflineWorkflow.open(settings) as workflow:
        correlation_id = workflow.request_preprocessing(syms, rng)
        outcome = run_preprocess(workflow, correlation_id)
        if not print_preprocess_outcome(outcome):
            raise typer.Exit(1)
