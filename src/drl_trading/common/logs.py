"""structlog set-up: readable lines for people, JSON lines for machines, to stderr."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import MutableMapping
from typing import Any

import structlog

from drl_trading.common.redaction import mask_secrets

NOISY_LIBRARIES = ("mlflow", "alembic", "feast", "urllib3", "git")


def _mask_secrets(
    _logger: object, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Credentials inside any string of a log line (a library's error quoting a connection
    string or URI) are masked before it is written."""
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = mask_secrets(value)
    return event


def _stderr_now(*_args: object) -> structlog.PrintLogger:
    """A logger on the stderr of the moment: a stream captured at configuration time may be
    closed later (a test runner's capture, a redirected CLI invocation)."""
    return structlog.PrintLogger(sys.stderr)


def configure_logging(level: str = "WARNING", json_output: bool = False) -> None:
    numeric = getattr(logging, level.upper(), logging.WARNING)
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(message)s", force=True)
    if numeric > logging.DEBUG:
        # libraries' chatter (database migrations, serialisation advice, download bars) buries
        # what the user asked for; DEBUG shows it all again
        for name in NOISY_LIBRARIES:
            logging.getLogger(name).setLevel(max(numeric, logging.ERROR))
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\..*")
        warnings.filterwarnings("ignore", category=FutureWarning)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _mask_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_now,
        cache_logger_on_first_use=False,
    )
