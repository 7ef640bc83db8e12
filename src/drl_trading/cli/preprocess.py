"""`drl-trading preprocess`: resample stored bars and compute features, through the bus."""

from __future__ import annotations

from typing import Annotated

import typer

from drl_trading.app.offline_workflow import OfflineWorkflow
from drl_trading.cli.context import state, symbols_and_range
from drl_trading.cli.options import End, Start
from drl_trading.cli.pipeline import print_preprocess_outcome, run_preprocess


def preprocess(
    ctx: typer.Context,
    symbols: Annotated[str, typer.Option("--symbols", "-s", help="Comma-separated symbols.")],
    start: Start,
    end: End,
) -> None:
    """Publish requested.preprocess-data for stored bars and run the preprocess service on it."""
    settings = state(ctx).settings()
    syms, rng = symbols_and_range(symbols, start, end)
    with OfflineWorkflow.open(settings) as workflow:
        correlation_id = workflow.request_preprocessing(syms, rng)
        outcome = run_preprocess(workflow, correlation_id)
        if not print_preprocess_outcome(outcome):
            raise typer.Exit(1)
