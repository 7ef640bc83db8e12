"""State shared by every command: resolved settings and the console."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console

from drl_trading.app.settings import AppSettings, ConfigError, load_settings
from drl_trading.common.logs import configure_logging

console = Console(stderr=False)
err_console = Console(stderr=True)


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
            try:
                settings = load_settings(self.config, **overrides)
            except ConfigError as exc:
                err_console.print(f"[red]error:[/red] {exc}")
                raise typer.Exit(2) from None
            if self.log_level:
                level = self.log_level.upper()
                settings = settings.model_copy(
                    update={"logging": settings.logging.model_copy(update={"level": level})}
                )
            configure_logging(settings.logging.level, settings.logging.json_output)
            self._settings = settings
        return self._settings


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliState)
    return obj


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)
