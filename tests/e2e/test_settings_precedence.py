"""`quickstart` trains for ``training.total_timesteps`` from the file and from the environment
(issue 11, item 5: its ``--timesteps`` default used to mask both), each a tiny run in its own
process: three days of one symbol, one small feature set, 96 or 64 PPO steps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CLI = str(Path(sys.executable).with_name("drl-trading"))

TINY = {
    "preprocess": {
        "store_timeframes": ["5m"],
        "feature_set": {
            "name": "tiny",
            "base_timeframe": "5m",
            "time_encodings": False,
            "timeframes": [{"timeframe": "5m", "indicators": [{"kind": "rsi", "period": 7}]}],
        },
    },
    "training": {
        "total_timesteps": 96,
        "random_agent_seeds": 1,
        "env": {"n_envs": 1, "episode_bars": 32},
        "algorithm": {"hyperparameters": {"n_steps": 32, "batch_size": 32, "n_epochs": 1}},
    },
}


def _quickstart(tmp_path: Path, name: str, env: dict[str, str]) -> str:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("DRL_TRADING_")}
    done = subprocess.run(
        [CLI, "--home", str(tmp_path / name), "--config", str(config), "quickstart",
         "-s", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-01-04"],
        capture_output=True, text=True, timeout=600, check=False,
        env={**clean, "COLUMNS": "200", **env},
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
