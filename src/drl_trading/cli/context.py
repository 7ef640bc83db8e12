"""State shared by every command: resolved settings and the console."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console, ConsoleDimensions

from drl_trading.app.settings import (
    AppSettings,
    ConfigError,
    load_settings,
    warn_unknown_environment_variables,
)
from drl_trading.common.domain import Symbol, TimeRange, parse_symbols
from drl_trading.common.logs import configure_logging, home_log_file

PIPE_WIDTH = 10_000
"""Columns of a console that is not a terminal (a pipe, a file): no table is cut to fit, no line
is wrapped, since nobody resizes a file and its reader may be a program."""


class CliConsole(Console):
    """A rich console as wide as its terminal, or `PIPE_WIDTH` wide when it writes to none.

    Rich sizes a console without a terminal at ``$COLUMNS`` or 80 columns and then ellipsizes
    table cells (a timestamp becomes ``2024-01-07…``) and wraps long lines; output sent to a file
    must hold every character. The stream is asked at each print, as `Console` does (a test
    runner swaps ``sys.stdout``).
    """

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self.is_terminal:
            return size
        return ConsoleDimensions(max(size.width, PIPE_WIDTH), size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self.width, self.height = new_size


console = CliConsole(stderr=False)
err_console = CliConsole(stderr=True)


@dataclass
class CliState:
    config: Path | None = None
    home: Path | None = None
    log_level: str | None = None
    _settings: AppSettings | None = None

    def settings(self) -> AppSettings:
        if self._settings is None:
            overrides: dict[str, object] = {}
            if self.home is not None:
                overrides["home"] = self.home
            if self.log_level:
                # validated and merged like any other source (flag > environment > file)
                overrides["logging"] = {"level": self.log_level.upper()}
            try:
                settings = load_settings(self.config, **overrides)
            except ConfigError as exc:
                err_console.print(f"[red]error:[/red] {exc}")
                raise typer.Exit(2) from None
            configure_logging(
                settings.logging.level,
                settings.logging.json_output,
                log_file=home_log_file(settings.home),
            )
            warn_unknown_environment_variables()
            self._settings = settings
        return self._settings


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliState)
    return obj


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def symbols_and_range(symbols: str, start: str, end: str) -> tuple[list[Symbol], TimeRange]:
    """The ``--symbols`` list and the ``--start``/``--end`` range every data command takes;
    either one malformed is an argument error: one line, exit 2."""
    try:
        return parse_symbols(symbols), TimeRange.parse(start, end)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
