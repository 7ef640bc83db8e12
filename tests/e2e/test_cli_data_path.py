"""The user's commands from the issue, run as a user runs them: a subprocess of the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

pytestmark = pytest.mark.e2e

CLI = [sys.executable, "-m", "drl_trading.cli.app"]


def run(home: Path | None, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("DRL_TRADING_HOME", None)
    if home is not None:
        env["DRL_TRADING_HOME"] = str(home)
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=env, timeout=300, check=False, cwd=cwd
    )


def test_default_home_is_relative_to_the_working_directory(tmp_path: Path) -> None:
    """The quickstart's case: no --home, state under ./.drl-trading of the current folder."""
    args = ["--symbols", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-01-09"]
    r = run(None, "ingest", *args, "--preprocess", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run(None, "features", "export", *args, "--out", "f.parquet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / ".drl-trading" / "market.duckdb").exists()
    assert (tmp_path / ".drl-trading" / "feast" / "registry.db").exists()
    assert pl.read_parquet(tmp_path / "f.parquet").height > 0


def test_ingest_preprocess_then_export(tmp_path: Path) -> None:
    home = tmp_path / "home"
    r = run(
        home,
        "ingest",
        "--source",
        "synthetic",
        "--symbols",
        "BTCUSDT,ETHUSDT",
        "--start",
        "2024-01-01",
        "--end",
        "2024-01-15",
        "--preprocess",
    )
    assert r.returncode == 0, r.stderr
    assert "BTCUSDT" in r.stdout
    assert "core__" in r.stdout
    out = tmp_path / "features.parquet"
    r = run(
        home,
        "features",
        "export",
        "--symbol",
        "BTCUSDT,ETHUSDT",
        "--start",
        "2024-01-01",
        "--end",
        "2024-01-15",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    frame = pl.read_parquet(out)
    assert set(frame["symbol"].unique()) == {"BTCUSDT", "ETHUSDT"}
    for tf in ("5m", "15m", "1h", "4h", "1d"):
        assert any(c.endswith(f"__{tf}") for c in frame.columns), tf
    assert frame.height > 2 * 7 * 288
    assert (home / "market.duckdb").exists()


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    r = run(
        tmp_path, "ingest", "--symbols", "BTCUSDT", "--start", "2024-02-01", "--end", "2024-01-01"
    )
    assert r.returncode == 2
    assert "empty time range" in r.stderr
    r = run(
        tmp_path, "preprocess", "--symbols", "NOPE", "--start", "2024-01-01", "--end", "2024-01-02"
    )
    assert r.returncode == 1
    assert "NOPE: no 1m bars stored" in r.stderr


def test_file_source_with_quarantine(tmp_path: Path) -> None:
    volumes = [-1 if i == 30 else 10 + i % 3 for i in range(180)]
    rows = [
        f"2024-01-01T{i // 60:02d}:{i % 60:02d}:00Z,100,101,99,100.5,{v}"
        for i, v in enumerate(volumes)
    ]
    r = _ingest_quarantining(tmp_path, rows)
    assert r.returncode == 0, r.stderr
    assert "negative_volume=1" in r.stderr
    assert "rule negative_volume: data row 31 " in r.stderr  # line 32, under the header


def _table_row(stdout: str, symbol: str) -> dict[str, str]:
    """The ingest report's row of ``symbol``, by column name."""
    lines = [line for line in stdout.splitlines() if "│" in line or "┃" in line]
    header = [c.strip() for c in lines[0].strip("┃ ").split("┃")]
    row = next(line for line in lines if line.strip("│ ").startswith(symbol))
    return dict(zip(header, (c.strip() for c in row.strip("│ ").split("│")), strict=True))


def test_ingesting_the_same_range_twice_reports_nothing_new(tmp_path: Path) -> None:
    """The user's case: the second identical ingest reports 0 new, 0 updated. The 8 days come
    with the feature set's 65-day warm-up before them (counted apart)."""
    args = ["ingest", "--source", "synthetic", "--symbols", "BTCUSDT"]
    args += ["--start", "2024-01-01", "--end", "2024-01-09"]
    first = run(tmp_path / "h1", *args)
    second = run(tmp_path / "h1", *args)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    rows = str(11520 + 65 * 1440)
    assert _table_row(first.stdout, "BTCUSDT") == {
        "symbol": "BTCUSDT",
        "fetched": rows,
        "stored": rows,
        "warm-up": str(65 * 1440),
        "new": rows,
        "updated": "0",
        "unchanged": "0",
        "quarantined": "0",
        "gaps": "0",
        "missing": "0",
    }
    again = _table_row(second.stdout, "BTCUSDT")
    assert (again["stored"], again["new"], again["updated"], again["unchanged"]) == (
        rows,
        "0",
        "0",
        rows,
    )


def _ingest_quarantining(
    tmp_path: Path, rows: list[str], *extra: str
) -> subprocess.CompletedProcess[str]:
    """`ingest --source file` of ``rows`` (CSV lines after the header) for TEST over the three
    hours 2024-01-01 00:00..03:00, with the quarantine policy."""
    csv = tmp_path / "bars.csv"
    csv.write_text("\n".join(["open_time,open,high,low,close,volume", *rows]) + "\n")
    return run(
        tmp_path / "home",
        "--config",
        str(_quarantine_config(tmp_path)),
        "ingest",
        "--source",
        "file",
        "--path",
        str(csv),
        "--symbols",
        "TEST",
        "--start",
        "2024-01-01",
        "--end",
        "2024-01-01T03:00",
        *extra,
    )


def _quarantine_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("ingest:\n  validation:\n    policy: quarantine\n")
    return cfg


def test_every_row_quarantined_fails_naming_symbol_count_and_rule(tmp_path: Path) -> None:
    # every timestamp at :30 s, off the 1m grid
    rows = [f"2024-01-01T{i // 60:02d}:{i % 60:02d}:30Z,100,101,99,100.5,10" for i in range(180)]
    r = _ingest_quarantining(tmp_path, rows, "--preprocess")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert "TEST: every row quarantined, nothing stored: off_grid=180" in r.stderr  # the warning
    assert "error: TEST: all 180 fetched rows were quarantined (off_grid=180)" in r.stderr
    assert "rule off_grid: data row 1 " in r.stderr
    assert _table_row(r.stdout, "TEST")["quarantined"] == "180"
    assert "core__" not in r.stdout  # nothing was preprocessed


def test_help_on_every_command(tmp_path: Path) -> None:
    r = run(tmp_path, "--help")
    assert r.returncode == 0, r.stderr
    assert "Usage" in r.stdout
    # every command and sub-command the app registers, found by walking it (new ones included)
    from typer.main import get_command
    from typer.testing import CliRunner

    from drl_trading.cli.app import app

    def walk(cmd: object, path: list[str]) -> list[list[str]]:
        out = [path]
        if hasattr(cmd, "commands"):  # a group (typer ships its own click)
            for name, sub in cmd.commands.items():
                out += walk(sub, [*path, name])
        return out

    paths = walk(get_command(app), [])
    assert ["paper"] in paths
    assert ["features", "export"] in paths
    runner = CliRunner()
    for path in paths:
        res = runner.invoke(app, [*path, "--help"])
        assert res.exit_code == 0, (path, res.output)
        assert "Usage" in res.output, path
