"""`quickstart` trains for ``training.total_timesteps`` from the file and from the environment
(issue 11, item 5: its ``--timesteps`` default used to mask both), each a tiny run in its own
process: three days of one symbol, one small feature set, 96 or 64 PPO steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from drl_trading.testing.cli_process import run_cli
from drl_trading.testing.tiny_training import write_tiny_quickstart_config

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def _quickstart(tmp_path: Path, name: str, env: dict[str, str]) -> str:
    config = write_tiny_quickstart_config(tmp_path / "tiny.yaml", timesteps=96)
    done = run_cli(
        tmp_path / name,
        "quickstart", "-s", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-01-04",
        config=config, env=env, inherit_settings=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Traceback" not in done.stderr
    return done.stdout


def test_quickstart_trains_as_long_as_the_file_says(tmp_path: Path) -> None:
    out = _quickstart(tmp_path, "file", {})
    assert "training: 96 steps in" in out


def test_quickstart_trains_as_long_as_the_environment_says(tmp_path: Path) -> None:
    out = _quickstart(tmp_path, "env", {"DRL_TRADING_TRAINING__TOTAL_TIMESTEPS": "64"})
    assert "training: 64 steps in" in out
