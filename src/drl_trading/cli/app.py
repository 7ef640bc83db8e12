"""Entry point of the CLI (``drl-trading``, ``python -m drl_trading.cli.app``).

The commands (`drl_trading.cli.commands`) import most of the package, about a second of work;
they are imported inside `main`, so that a Ctrl-C in that second exits 130 with one line
instead of a traceback from the middle of an import. ``app`` is still importable from here.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from drl_trading.common.errors import EXIT_INTERRUPTED

if TYPE_CHECKING:
    from drl_trading.cli.commands import app as app


def main() -> None:
    try:
        from drl_trading.cli.commands import app
    except KeyboardInterrupt:
        sys.stderr.write("interrupted (Ctrl-C) while starting: nothing was done\n")
        raise SystemExit(EXIT_INTERRUPTED) from None
    app()


def __getattr__(name: str) -> Any:
    if name == "app":
        from drl_trading.cli.commands import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    main()
