"""A user's own file, as pandas writes it, through the CLI in its own process (issue 12, part
3): `quickstart --source file` with no --start/--end trains on the file's range; a range the
file misses, and a file too short for the splits, are one-line errors that give the file's (or
the stored) range."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.e2e

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
        "total_timesteps": 32,
        "random_agent_seeds": 1,
        "env": {"n_envs": 1, "episode_bars": 32},
        "algorithm": {"hyperparameters": {"n_steps": 32, "batch_size": 32, "n_epochs": 1}},
    },
}
"""One small feature set, so that a one-day file has feature rows (and too few for the splits)."""


def pandas_csv(path: Path, start: str, days: int) -> Path:
    """``days`` of 1m bars from ``start`` (UTC) the way a pandas user writes them: a seeded
    random walk, indexed by a tz-aware DatetimeIndex shown in Berlin time, default `to_csv`
    (an unnamed first column of ``2024-05-01 02:00:00+02:00``)."""
    n = days * 24 * 60
    index = pd.date_range(start, periods=n, freq="1min", tz="UTC").tz_convert("Europe/Berlin")
    close = 100 * np.exp(np.cumsum(np.random.default_rng(11).normal(0, 1e-3, n)))
    opens = np.r_[close[0], close[:-1]]
    pd.DataFrame(
        {
            "open": opens,
            "high": np.maximum(opens, close) * 1.0005,
            "low": np.minimum(opens, close) * 0.9995,
            "close": close,
            "volume": np.random.default_rng(12).uniform(1, 10, n),
        },
        index=index,
    ).to_csv(path)
    assert path.read_text().startswith(",open,high,low,close,volume\n")
    return path


def run(home: Path, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "400", "DRL_TRADING_TRAINING__ENV__N_ENVS": "1"}
    options = ["--home", str(home)] + (["--config", str(config)] if config else [])
    return subprocess.run(
        [CLI, *options, *args], capture_output=True, text=True, timeout=600, check=False, env=env
    )


def test_quickstart_on_a_pandas_csv_uses_the_files_range(tmp_path: Path) -> None:
    path = pandas_csv(tmp_path / "f.csv", "2024-05-01", days=10)
    done = run(
        tmp_path / "home",
        "quickstart", "--source", "file", "--path", str(path), "--symbols", "TESTUSDT",
        "--timesteps", "64",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert "using the file's range 2024-05-01 00:00..2024-05-11 00:00 UTC" in done.stderr
    assert "ingest from file: 2024-05-01 00:00..2024-05-11 00:00 UTC" in done.stdout
    assert re.search(r"TESTUSDT\s+│\s+14400\s+│\s+14400\s+│", done.stdout), done.stdout[:2000]
    assert "test backtest: TESTUSDT" in done.stdout
    assert "models:/drl-example/1" in done.stdout
    paper = re.search(r"--start (\S+) --end (\S+) --fresh", done.stdout)
    assert paper is not None, done.stdout[-2000:]
    test_start, test_end = (datetime.fromisoformat(t) for t in paper.groups())
    assert datetime(2024, 5, 1) < test_start < test_end == datetime(2024, 5, 11)


def test_a_range_the_file_misses_names_the_files_range(tmp_path: Path) -> None:
    path = pandas_csv(tmp_path / "f.csv", "2024-05-01", days=1)
    done = run(
        tmp_path / "home",
        "ingest", "--source", "file", "--path", str(path), "--symbols", "TESTUSDT",
        "--start", "2024-01-01", "--end", "2024-03-01",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: {path}: no TESTUSDT bars in the requested range 2024-01-01 00:00..2024-03-01 "
        "00:00 UTC; the file holds 2024-05-01 00:00..2024-05-02 00:00 UTC: ask for a range "
        "inside it (--start 2024-05-01T00:00 --end 2024-05-02T00:00), or leave --start/--end "
        "out to use the file's range"
    ]


def test_a_file_too_short_for_the_splits_says_what_is_stored_and_needed(tmp_path: Path) -> None:
    path = pandas_csv(tmp_path / "f.csv", "2024-01-10", days=1)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    done = run(
        tmp_path / "home",
        "quickstart", "--source", "file", "--path", str(path), "--symbols", "TESTUSDT",
        config=config,
    )  # fmt: skip
    assert done.returncode == 1
    assert "using the file's range 2024-01-10 00:00..2024-01-11 00:00 UTC" in done.stderr
    failure = next(line for line in done.stderr.splitlines() if "training failed" in line)
    assert "too little data for the splits: the feature rows stored in the requested range " in (
        failure
    )
    assert "(1m bars stored: TESTUSDT 2024-01-10 00:00..2024-01-11 00:00 UTC) cover 2024-01-10" in (
        failure
    )
    assert "need at least 1 day 16 h 25 min" in failure
    assert "TimeRange(" not in done.stderr
    assert "Traceback" not in done.stderr
