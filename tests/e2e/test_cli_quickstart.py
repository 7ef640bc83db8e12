"""The main job as a user runs it: `drl-trading quickstart` (reduced size), then `train` and
`backtest` on the same home folder, each in its own process."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from drl_trading.testing.cli_process import run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

# a 512-step policy's confidences sit near 1/3: under the example strategy's 0.4 minimum it would
# never trade, and the paper/backtest comparison below would compare two flat books
STRATEGY = '{"min_confidence": 0.0}'


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"DRL_TRADING_TRAINING__ENV__N_ENVS": "2", "DRL_TRADING_STRATEGY__PARAMS": STRATEGY}
    return run_cli(home, *args, env=env)


def test_quickstart_then_train_and_backtest(tmp_path: Path) -> None:
    home = tmp_path / "home"
    qs = _run(home, "quickstart", "--start", "2024-01-01", "--end", "2024-01-16", "-t", "512")
    assert qs.returncode == 0, qs.stderr[-4000:]
    out = qs.stdout
    for needle in ("test backtest: BTCUSDT", "test backtest: ETHUSDT", "Sharpe", "buy-and-hold"):
        assert needle in out
    assert "models:/drl-example/1" in out
    assert re.search(r"MLflow run id: [0-9a-f]{32}", out)
    assert re.search(r"champion:\s+(yes|no): \S", out)
    report = Path(re.search(r"report:\s+(\S+\.html)", out).group(1))  # type: ignore[union-attr]
    assert report.exists()
    assert "<svg" in report.read_text()
    metrics = json.loads(Path(re.search(r"metrics:\s+(\S+\.json)", out).group(1)).read_text())  # type: ignore[union-attr]
    assert metrics["model"] == "models:/drl-example/1"

    # the printed next step: paper-trade the test range; its per-symbol metrics are the test
    # backtest's (one engine: same model, bars, costs and signal check)
    command = re.search(r"paper-trade the test range: drl-trading (paper .*)", out)
    assert command is not None, out[-2000:]
    session = tmp_path / "session.json"
    paper = _run(home, *command.group(1).split(), "--out", str(session))
    assert paper.returncode == 0, paper.stderr[-4000:]
    live = json.loads(session.read_text())
    assert live["trading_state"] == "active"
    assert set(metrics["test"]["symbols"]) == set(live["per_symbol"]) == {"BTCUSDT", "ETHUSDT"}
    for symbol, expected in metrics["test"]["symbols"].items():
        got = live["per_symbol"][symbol]["model"]
        assert got["n_steps"] == expected["model"]["n_steps"]
        assert got["n_trades"] == expected["model"]["n_trades"] > 0
        for key in ("total_return", "sharpe", "max_drawdown", "fees_paid", "exposure"):
            assert got[key] == pytest.approx(expected["model"][key], rel=1e-9, abs=1e-12), key

    train = _run(
        home, "train", "-s", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-01-16", "-t", "256"
    )
    assert train.returncode == 0, train.stderr[-4000:]
    assert "models:/drl-example/2" in train.stdout

    bt = _run(
        home, "backtest", "--model", "drl-example/2", "-s", "ETHUSDT",
        "--start", "2024-01-08", "--end", "2024-01-16",
    )  # fmt: skip
    assert bt.returncode == 0, bt.stderr[-4000:]
    assert "backtest models:/drl-example/2: ETHUSDT" in bt.stdout
    assert re.search(r"report:\s+\S+backtest-\d{8}-\d{6}\.html", bt.stdout)

    missing = _run(
        home, "backtest", "--model", "drl-example@nope", "-s", "ETHUSDT",
        "--start", "2024-01-08", "--end", "2024-01-16",
    )  # fmt: skip
    assert missing.returncode == 1
    assert "nope" in missing.stderr
    no_data = _run(
        home, "train", "-s", "SOLUSDT", "--start", "2024-01-01", "--end", "2024-01-16", "-t", "64"
    )
    assert no_data.returncode == 1
    assert "SOLUSDT" in no_data.stderr
