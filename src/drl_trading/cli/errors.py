"""What a failed command shows: one line naming the problem and what to do, an exit code, and
the traceback in the log file only.

Every command runs inside `GuardedGroup.invoke` (the root group of the CLI), which turns what
escapes a command into a message with `describe` and an exit code:

* 0 done; 1 the command could not do its work (the environment: a store another process holds,
  a server or exchange that cannot be reached; or an internal error); 2 arguments or
  configuration it cannot run with (typer's own usage errors use 2 as well); 130 Ctrl-C;
  143 SIGTERM (`drl_trading.common.errors.Terminated`, stopped the way Ctrl-C stops).
* `OperatorError` (the kernel's errors that adapters raise, `drl_trading.common.errors`) and
  `ConfigError`: their message, their code.
* Ctrl-C or SIGTERM: ``interrupted (Ctrl-C)`` (``(SIGTERM)``) and what a rerun of that command
  does.
* Anything else is a bug: ``internal error: <type>: <message> (traceback written to <file>)``.

typer's exits and usage errors pass through untouched (they already print one line).
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperGroup
from typer.exceptions import TyperException

from drl_trading.app.settings import ConfigError
from drl_trading.common.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    OperatorError,
    Terminated,
    interrupt_name,
)
from drl_trading.common.logs import fallback_log_file, log_traceback
from drl_trading.common.redaction import mask_secrets

INTERRUPT_HINTS: dict[str, str] = {
    "ingest": "the bars stored so far are kept; rerun the same command to continue (ingest "
    "upserts: nothing is stored twice)",
    "quickstart": "the bars and features stored so far are kept, no model was registered; rerun "
    "the same command to continue (ingest and preprocessing upsert, training starts over)",
    "preprocess": "the features stored so far are kept; rerun the same command to continue",
    "train": "no model was registered from this run (its MLflow run is marked failed); rerun the "
    "same command to train again",
    "tune": "trials that finished are kept in the study (the one running is marked failed); "
    "rerun the same command to continue it",
    "backtest": "the backtest did not finish (its MLflow run, if started, is marked failed); "
    "rerun the same command",
    "features": "a file being written may be incomplete; rerun the same command to write it again",
    "serve": "the service stopped before it began serving; rerun the same command to start it",
    "paper": "the paper account keeps what it recorded; rerun the same command to start the "
    "session again",
}
DEFAULT_INTERRUPT_HINT = "rerun the same command to run it again"
MAX_MESSAGE_CHARS = 500
"""An internal error's message is cut to this many characters on the console (the log file
has it whole)."""


@dataclass(frozen=True, slots=True)
class Failure:
    """What the user is told about an exception: the line, the exit code, and how loudly
    its traceback is logged (a user's error or a Ctrl-C is a warning, a bug an error; both
    at or above the default level, so the log file always has them)."""

    message: str
    exit_code: int
    log_level: int
    internal: bool = False


def describe(exc: BaseException, command: str | None = None) -> Failure:
    """The `Failure` of ``exc`` raised by ``command`` (the top-level command name)."""
    if isinstance(exc, KeyboardInterrupt):
        hint = INTERRUPT_HINTS.get(command or "", DEFAULT_INTERRUPT_HINT)
        code = EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
        return Failure(f"interrupted ({interrupt_name(exc)}): {hint}", code, logging.WARNING)
    if isinstance(exc, OperatorError):
        return Failure(str(exc), exc.exit_code, logging.WARNING)
    if isinstance(exc, ConfigError):
        return Failure(str(exc), EXIT_USAGE, logging.WARNING)
    if isinstance(exc, PermissionError):
        where = exc.filename or "a file"
        return Failure(
            f"permission denied: {where}; check its owner and mode, or use another --home",
            EXIT_FAILURE,
            logging.WARNING,
        )
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" for {exc.filename}" if exc.filename else ""
        return Failure(
            f"no space left on the device{where}; free some space (or use another --home) and "
            "rerun",
            EXIT_FAILURE,
            logging.WARNING,
        )
    text = _one_line(str(exc))
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return Failure(f"internal error: {detail}", EXIT_FAILURE, logging.ERROR, internal=True)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_MESSAGE_CHARS else line[: MAX_MESSAGE_CHARS - 1] + "…"


def report(exc: BaseException, command: str | None = None) -> int:
    """Print the one line of ``exc`` on stderr, write its traceback to the log file, and
    return the exit code."""
    from drl_trading.cli.context import err_console

    failure = describe(exc, command)
    message = mask_secrets(failure.message)
    written = log_traceback(f"{command or 'drl-trading'}: {message}", exc, failure.log_level)
    if failure.internal:
        if written is None:
            message += " (no log file could be written for its traceback)"
        elif written == fallback_log_file():
            message += f" (traceback written to {written}: the home's log was not available)"
        else:
            message += f" (traceback written to {written})"
    if failure.exit_code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
        err_console.print(f"[yellow]{escape(message)}[/yellow]", soft_wrap=True)
    elif failure.internal:  # the message starts with "internal error: "
        label, _, rest = message.partition(": ")
        err_console.print(f"[red]{label}:[/red] {escape(rest)}", soft_wrap=True)
    else:
        err_console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return failure.exit_code


class GuardedGroup(TyperGroup):
    """The root command group: what escapes a command becomes `report`'s line and exit code
    (typer's own exits, aborts and usage errors pass through)."""

    def invoke(self, ctx: Any) -> Any:
        pending = list(getattr(ctx, "_protected_args", []) or []) + list(ctx.args)
        command = next((a for a in pending if not a.startswith("-")), None)
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except (KeyboardInterrupt, Exception) as exc:
            raise typer.Exit(report(exc, command)) from None
