"""A user's own file, as pandas writes it, through the CLI in its own process (issue 12, part
3): `quickstart --source file` with no --start/--end trains on the file's range; a range the
file misses, and a file too short for the splits, are one-line errors that give the file's (or
the stored) range."""

from __future__ import annotations

import re
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from drl_trading.testing.cli_process import run_cli
from drl_trading.testing.pandas_csv import write_pandas_csv
from drl_trading.testing.tiny_training import write_tiny_quickstart_config

pytestmark = pytest.mark.e2e


def pandas_csv(path: Path, start: str, days: int) -> Path:
    """``days`` of 1m bars from ``start`` as pandas writes them, shown in Berlin time."""
    return write_pandas_csv(path, start, days, seed=11, shown_in="Europe/Berlin")


def run(home: Path, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(home, *args, config=config, env={"DRL_TRADING_TRAINING__ENV__N_ENVS": "1"})


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
    config = write_tiny_quickstart_config(tmp_path / "tiny.yaml")
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
