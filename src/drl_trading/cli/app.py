"""Entry point of the CLI (``drl-trading``, ``python -m drl_trading.cli.app``).

The commands (`drl_trading.cli.commands`) import most of the package, about a second of work;
they are imported inside `main`, so that a Ctrl-C in that second exits 130 with one line
instead of a traceback from the middle of an import. ``app`` is still importable from here.

SIGTERM (``docker stop``, systemd, ``kill PID``) raises `Terminated`, a KeyboardInterrupt, where
the signal arrives: every command then stops as on Ctrl-C (an ingest rolls back its open chunk
and reports what is stored, a paper session writes its report) and exits 143. Python's default
would end the process at once, mid-write and without a word.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

from drl_trading.common.errors import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    Terminated,
    interrupt_name,
    note_terminated,
)

if TYPE_CHECKING:
    from drl_trading.cli.commands import app as app


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise note_terminated()


def install_sigterm_handler() -> None:
    """Make SIGTERM raise `Terminated`, unless something chose its handling already (a parent
    that set it ignored, an embedding program's own handler)."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)


def main() -> None:
    install_sigterm_handler()
    try:
        from drl_trading.cli.commands import app
    except KeyboardInterrupt as exc:
        sys.stderr.write(f"interrupted ({interrupt_name(exc)}) while starting: nothing was done\n")
        code = EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
        raise SystemExit(code) from None
    app()


def __getattr__(name: str) -> Any:
    if name == "app":
        from drl_trading.cli.commands import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    main()
