"""`drl-trading config show|example`: the resolved configuration, and every key with its default."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

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


@config_app.command("example")
def example(
    out: Annotated[
        Path | None, typer.Option(help="Write it to this file (configs/example.yaml) instead.")
    ] = None,
) -> None:
    """Print every section and key with its default and description, as YAML (what
    configs/example.yaml holds). Reads no configuration: the defaults of the code."""
    from drl_trading.app.example_config import example_yaml

    text = example_yaml()
    if out is None:
        sys.stdout.write(text)
        return
    out.write_text(text)
    console.print(f"wrote {out}")
