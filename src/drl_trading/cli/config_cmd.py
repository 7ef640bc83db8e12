"""`drl-trading config show`: print the resolved configuration."""

from __future__ import annotations

import typer
import yaml

from drl_trading.app.infrastructure import feature_set_for
from drl_trading.cli.context import console, state

config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)


@config_app.command("show")
def show(ctx: typer.Context) -> None:
    """Print the resolved configuration (defaults, YAML file and environment merged), secrets
    and credentials inside URIs and connection strings masked."""
    settings = state(ctx).settings()
    console.print(yaml.safe_dump(settings.masked_dump(), sort_keys=False), end="")
    fs = feature_set_for(settings)
    console.print(f"# feature set {fs.name} version {fs.version} ({len(fs.columns)} features)")
