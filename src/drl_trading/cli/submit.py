"""`drl-trading submit-training`: the offline workflow on a distributed deployment.

The submitter plays the design's first arrows: it tells the training worker what to train
(``requested.training``) and submits the training data request to ingest, here in this process
(history from the chosen source into the shared market-data store, then
``requested.preprocess-data`` on the bus). The preprocess process computes the features, the
training worker (`drl-trading serve training`, any machine) trains, registers and backtests, and
announces ``completed.training``, which this command waits for unless told not to.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from drl_trading.cli.context import console, err_console, fail, state
from drl_trading.cli.ingest import print_ingest_report, run_ingest_with
from drl_trading.cli.options import End, HistorySource, SourcePath, Start
from drl_trading.common.domain import TimeRange, parse_symbols
from drl_trading.common.events import (
    ErrorOccurred,
    Event,
    Topic,
    TrainingCompleted,
    TrainingRequested,
)
from drl_trading.ingest.core.service import TrainingDataRequest


def submit_training(
    ctx: typer.Context,
    symbols: Annotated[str, typer.Option("--symbols", "-s", help="Comma-separated.")],
    start: Start,
    end: End,
    source: HistorySource = "synthetic",
    path: SourcePath = None,
    timesteps: Annotated[
        int | None, typer.Option(help="Training timesteps (default: the worker's config).")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the worker's completed.training.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the result.")] = 3600.0,
) -> None:
    """Submit a training run to the distributed deployment (bus.kind kafka): ingest the history,
    request its features, and wait for the training worker's result."""
    from drl_trading.app.infrastructure import build_bus, build_market_data

    settings = state(ctx).settings()
    if settings.bus.kind != "kafka":
        raise fail("submit-training needs the distributed bus (bus.kind: kafka); use `train`", 2)
    try:
        syms = parse_symbols(symbols)
        rng = TimeRange.parse(start, end)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    request = TrainingDataRequest(tuple(syms), rng)
    cid = request.request_id
    bus = build_bus(settings)
    market_data = build_market_data(settings, write_behind=False)  # read by preprocess next
    outcome: list[Event] = []
    try:
        if wait:  # listen before anything is requested, so the answer cannot be missed
            group = f"submit-{cid}"
            for topic in (Topic.TRAINING_COMPLETED, Topic.error("training")):
                bus.subscribe(
                    topic,
                    group=group,
                    handler=lambda e: outcome.append(e) if e.correlation_id == cid else None,
                )
        # the worker learns of the run first: the features it waits for come after
        bus.publish(
            Topic.TRAINING_REQUESTED,
            TrainingRequested(
                correlation_id=cid,
                symbols=list(syms),
                start=rng.start,
                end=rng.end,
                total_timesteps=timesteps,
            ),
            key=",".join(str(s) for s in syms),
        )
        report = run_ingest_with(
            settings, bus, market_data, source, path, request, request_preprocessing=True
        )
        flush = getattr(market_data, "flush", None)
        if flush is not None:
            flush()
        print_ingest_report(report)
        console.print(f"training requested (correlation id {cid})")
        if not wait:
            return
        deadline = time.monotonic() + timeout
        with console.status("waiting for the training worker"):
            while not outcome and time.monotonic() < deadline:
                bus.poll(timeout=0.5)
    finally:
        bus.close()
        market_data.close()
    if not outcome:
        raise fail(f"no result from the training worker in {timeout:.0f} s (correlation {cid})")
    got = outcome[0]
    if isinstance(got, ErrorOccurred):
        err_console.print(f"[red]training failed: {got.error_type}: {got.message}[/red]")
        raise typer.Exit(1)
    assert isinstance(got, TrainingCompleted)
    console.print(
        f"registered {got.model_name} version {got.model_version} (run {got.run_id}); "
        f"champion: {got.champion} ({got.gate_reason})"
    )
    for name, value in got.metrics.items():
        console.print(f"  {name}: {value:.4f}")
