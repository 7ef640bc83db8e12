"""structlog set-up: readable lines for people, JSON lines for machines; a console on stderr and
a rotating log file that also keeps the tracebacks.

structlog hands every event to the standard library's logging (as the libraries' own records
go), and two handlers render them at the configured level: the console, with an exception
summarised on its line (a traceback is for the log file, not for the user), and the log file,
with full tracebacks. The file does not go below the console's level: an INFO line per handled
signal rendered to a file would cost the order path ~0.1 ms a bar. Credentials inside any string
are masked in both, the file's text after rendering (a traceback quotes whatever its exception
said). `TRACEBACK_LOGGER` writes to the file only: the CLI puts the traceback of an error there
after printing its one-line message.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import tempfile
import warnings
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, TextIO

import structlog

from drl_trading.common.redaction import mask_secrets

NOISY_LIBRARIES = ("mlflow", "alembic", "feast", "urllib3", "git")
LOG_FILE_NAME = "drl-trading.log"
LOG_FILE_MAX_BYTES = 5 * 1024 * 1024
"""Size at which the log file rotates (bytes); `LOG_FILE_BACKUPS` older files are kept."""
LOG_FILE_BACKUPS = 3
TRACEBACK_LOGGER = "drl_trading.tracebacks"
"""A logger that writes to the log file only (not propagated to the console)."""


def home_log_file(home: Path) -> Path:
    """The log file of a home: ``<home>/logs/drl-trading.log``."""
    return home / "logs" / LOG_FILE_NAME


def fallback_log_file() -> Path:
    """Where the log goes when the home's cannot be written or is not known yet (the settings
    did not load): the system's temporary folder."""
    return Path(tempfile.gettempdir()) / "drl-trading-logs" / LOG_FILE_NAME


def _mask_secrets(
    _logger: object, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Credentials inside any string of a log line (a library's error quoting a connection
    string or URI) are masked before it is written."""
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = mask_secrets(value)
    return event


def _exception_on_one_line(
    _logger: object, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """The console's view of an event with an exception: its type and message as ``error``,
    the traceback left to the log file."""
    exc_info = event.pop("exc_info", None)
    event.pop("exception", None)
    if exc_info is True:
        exc_info = sys.exc_info()
    exc: BaseException | None = None
    if isinstance(exc_info, BaseException):
        exc = exc_info
    elif isinstance(exc_info, tuple) and len(exc_info) == 3:
        exc = exc_info[1]
    if exc is not None:
        event.setdefault("error", mask_secrets(f"{type(exc).__name__}: {exc}"))
    return event


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler on the stderr of the moment: a stream captured at configuration time may be
    closed later (a test runner's capture, a redirected CLI invocation)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


class _LogFileHandler(logging.handlers.RotatingFileHandler):
    """The rotating log file (a type of its own, so that the current file can be found)."""


class _AtLevelOrTraceback(logging.Filter):
    """The log file's level, except for `TRACEBACK_LOGGER`, whose records always pass: the
    traceback of a failure the console reported belongs in the file at any ``--log-level``."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level or record.name == TRACEBACK_LOGGER


class _MaskingFormatter(structlog.stdlib.ProcessorFormatter):
    """Masks credentials in the whole rendered line, traceback included."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(super().format(record))


def _open_log_file(path: Path) -> _LogFileHandler:
    path.parent.mkdir(parents=True, exist_ok=True)
    return _LogFileHandler(
        path, maxBytes=LOG_FILE_MAX_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
    )


def _file_handler(preferred: Path) -> tuple[_LogFileHandler | None, str | None]:
    """A handler on ``preferred``, else on `fallback_log_file` with the reason why."""
    try:
        return _open_log_file(preferred), None
    except OSError as exc:
        reason = f"cannot write the log file {preferred} ({exc.strerror or exc})"
    try:
        handler = _open_log_file(fallback_log_file())
    except OSError as exc:
        return None, f"{reason}; nor {fallback_log_file()} ({exc.strerror or exc}): no log file"
    return handler, f"{reason}; logging to {handler.baseFilename} instead"


def current_log_file() -> Path | None:
    """The log file the process writes to, if any."""
    for handler in logging.getLogger(TRACEBACK_LOGGER).handlers:
        if isinstance(handler, _LogFileHandler):
            return Path(handler.baseFilename)
    return None


def log_traceback(message: str, exc: BaseException, level: int = logging.ERROR) -> Path | None:
    """Write ``message`` and the traceback of ``exc`` to the log file only; a process whose
    logging was never configured (its settings did not load) writes to `fallback_log_file`.
    Returns the file written, None if no file could be written."""
    tracebacks = logging.getLogger(TRACEBACK_LOGGER)
    if current_log_file() is None:
        try:
            handler = _open_log_file(fallback_log_file())
        except OSError:
            return None
        handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(message)s"))
        tracebacks.addHandler(handler)
        tracebacks.propagate = False
        tracebacks.setLevel(logging.DEBUG)
    tracebacks.log(level, "%s", message, exc_info=(type(exc), exc, exc.__traceback__))
    return current_log_file()


def configure_logging(
    level: str = "WARNING", json_output: bool = False, log_file: Path | None = None
) -> Path | None:
    """Console at ``level``; with ``log_file``, that file too (rotating, at the same level,
    tracebacks in full). Returns the log file written (the temporary folder's when
    ``log_file`` cannot be written, with a warning saying so), or None."""
    numeric = getattr(logging, level.upper(), logging.WARNING)
    # MLflow gives its loggers a stderr handler of its own when imported (lazily, after this):
    # its records then bypass these handlers (the console level, the log file)
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    if numeric > logging.DEBUG:
        # libraries' chatter (database migrations, serialisation advice, download bars) buries
        # what the user asked for; DEBUG shows it all again
        for name in NOISY_LIBRARIES:
            logging.getLogger(name).setLevel(max(numeric, logging.ERROR))
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\..*")
        warnings.filterwarnings("ignore", category=FutureWarning)
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    pre_chain: list[structlog.typing.Processor] = [
        structlog.processors.add_log_level,
        stamp,
        _mask_secrets,
    ]
    strip = structlog.stdlib.ProcessorFormatter.remove_processors_meta
    console_renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    console_steps: list[structlog.typing.Processor] = [strip]
    if numeric > logging.DEBUG:  # DEBUG shows tracebacks on the console too
        console_steps.append(_exception_on_one_line)
    elif json_output:
        console_steps.append(structlog.processors.format_exc_info)
    console = _StderrHandler()
    console.setLevel(numeric)
    console.setFormatter(
        _MaskingFormatter(
            processors=[*console_steps, console_renderer], foreign_pre_chain=pre_chain
        )
    )
    handlers: list[logging.Handler] = [console]
    file_handler, problem = (None, None) if log_file is None else _file_handler(log_file)
    if file_handler is not None:
        file_renderer: list[structlog.typing.Processor] = (
            [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
            if json_output
            else [
                structlog.dev.ConsoleRenderer(
                    colors=False, exception_formatter=structlog.dev.plain_traceback
                )
            ]
        )
        file_handler.addFilter(_AtLevelOrTraceback(numeric))
        file_handler.setFormatter(
            _MaskingFormatter(processors=[strip, *file_renderer], foreign_pre_chain=pre_chain)
        )
        handlers.append(file_handler)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if isinstance(old, _LogFileHandler):
            old.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(numeric)
    tracebacks = logging.getLogger(TRACEBACK_LOGGER)
    for old in list(tracebacks.handlers):
        tracebacks.removeHandler(old)
        if isinstance(old, _LogFileHandler) and old is not file_handler:
            old.close()
    tracebacks.propagate = False
    tracebacks.setLevel(logging.DEBUG)
    if file_handler is not None:
        tracebacks.addHandler(file_handler)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            stamp,
            _mask_secrets,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    if problem is not None:
        structlog.get_logger(__name__).warning(problem)
    return None if file_handler is None else Path(file_handler.baseFilename)
