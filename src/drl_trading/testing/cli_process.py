"""`drl-trading` in a process of its own, as a user runs it: what the end-to-end tests of the
command line start, and what the command printed, read as one line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

CLI = str(Path(sys.executable).with_name("drl-trading"))
"""The console script installed beside this interpreter (the command a user types)."""

SETTINGS_PREFIX = "DRL_TRADING_"
"""The prefix of the environment variables that set settings."""


def run_cli(
    home: Path,
    *args: str,
    config: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    inherit_settings: bool = True,
) -> subprocess.CompletedProcess[str]:
    """``drl-trading --home HOME [--config CONFIG] ARGS`` to its end, output captured as text.

    The command gets this process's environment with a wide console (``COLUMNS=400``, so that
    no phrase a test looks for is wrapped) and ``env`` laid over it; without
    ``inherit_settings`` this process's ``DRL_TRADING_*`` variables are left out first, so that
    only the file and ``env`` set settings. A non-zero exit is returned, not raised; one
    running past ``timeout`` (seconds) raises `subprocess.TimeoutExpired`."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if inherit_settings or not k.upper().startswith(SETTINGS_PREFIX)
    }
    options = ["--home", str(home)] + (["--config", str(config)] if config else [])
    return subprocess.run(
        [CLI, *options, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**inherited, "COLUMNS": "400", **(env or {})},
    )


def said(proc: subprocess.CompletedProcess[str]) -> str:
    """Everything the command printed (stdout, then stderr), its line wrapping undone."""
    return " ".join((proc.stdout + proc.stderr).split())
