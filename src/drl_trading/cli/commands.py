"""The typer app: global options (home folder, config file, log level) and the command groups.

Every command runs inside `GuardedGroup` (`drl_trading.cli.errors`): a failure prints one line
and exits 1 (2 for arguments or configuration, 130 for Ctrl-C); its traceback goes to the log
file ``<home>/logs/drl-trading.log`` only. `drl_trading.cli.app` is the entry point that
imports this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from drl_trading import __version__
from drl_trading.cli import (
    check,
    compare,
    config_cmd,
    db,
    features,
    ingest,
    live,
    paper,
    preprocess,
    reproduce,
    serve,
    submit,
    trades,
    training,
    tuning,
)
from drl_trading.cli.context import CliState
from drl_trading.cli.errors import GuardedGroup

app = typer.Typer(
    cls=GuardedGroup,
    name="drl-trading",
    help="Train deep-RL trading agents on market data and run them live.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"drl-trading {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar="DRL_TRADING_HOME",
            help="Folder for all embedded state (default ./.drl-trading).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", envvar="DRL_TRADING_CONFIG", help="YAML config file."),
    ] = None,
    log_level: Annotated[
        str | None, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    ctx.obj = CliState(config=config, home=home, log_level=log_level)


app.command("ingest")(ingest.ingest)
app.command("preprocess")(preprocess.preprocess)
app.command("train")(training.train)
app.command("backtest")(training.backtest)
app.command("compare")(compare.compare)
app.command("quickstart")(training.quickstart)
app.command("tune")(tuning.tune)
app.command("reproduce")(reproduce.reproduce)
app.command("paper")(paper.paper)
app.add_typer(live.live_app, name="live")
app.command("trades")(trades.trades)
app.command("kill")(trades.kill)
app.command("resume")(trades.resume)
app.command("serve")(serve.serve)
app.command("submit-training")(submit.submit_training)
app.add_typer(features.features_app, name="features")
app.add_typer(config_cmd.config_app, name="config")
app.add_typer(db.db_app, name="db")
app.add_typer(check.check_app, name="check")
