"""`drl-trading serve SERVICE`: run one service as its own process (distributed deployment)."""

from __future__ import annotations

from typing import Annotated

import typer

from drl_trading.cli.context import console, fail, state
from drl_trading.common.errors import OperatorError


def serve(
    ctx: typer.Context,
    service: Annotated[
        str, typer.Argument(help="ingest, preprocess, training, inference or execution.")
    ],
    port: Annotated[
        int | None, typer.Option(help="Health/metrics port (default: serve.ports[SERVICE]).")
    ] = None,
) -> None:
    """Run one service until SIGTERM/SIGINT: consume its topics, expose /healthz, /readyz and
    /metrics, log JSON with correlation ids (set logging.json_output)."""
    from drl_trading.app.services import build_service
    from drl_trading.app.topology import SERVICES

    settings = state(ctx).settings()
    if service not in SERVICES:
        raise fail(f"unknown service {service!r}; one of {', '.join(SERVICES)}", 2)
    try:
        process = build_service(service, settings)
    except OperatorError:
        raise  # its own line and exit code, from the CLI's guard (`drl_trading.cli.errors`)
    except (ValueError, RuntimeError, LookupError) as exc:
        raise fail(f"{service}: {exc}") from None
    chosen = settings.serve.port(service, port)
    bound = process.serve_http(chosen, settings.serve.host)
    console.print(f"{service}: health and metrics on http://{settings.serve.host}:{bound}")
    process.install_signal_handlers()
    process.run()
