"""The kill switch reaches a running paper session from another process: `drl-trading kill`
while `drl-trading paper` replays; no order after the acknowledgement, the halt stays in the
stored account, and a flatten on the stored account carries its market time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from drl_trading.app.settings import AppSettings
from drl_trading.common.domain import Symbol, TimeRange, parse_time
from drl_trading.execution.adapter.sqlite_store import SQLiteExecutionStore
from drl_trading.execution.core.records import ControlKind, RecordKind, TradingState
from drl_trading.testing.tiny_training import ingest_and_train, tiny_training_settings

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SYMBOLS = (Symbol("BTCUSDT"), Symbol("ETHUSDT"))
RANGE = TimeRange.parse("2024-01-01", "2024-01-16")
EPOCH = parse_time("1970-01-01")
CLI = str(Path(sys.executable).with_name("drl-trading"))


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> AppSettings:
    settings = tiny_training_settings(tmp_path_factory.mktemp("kill"), timesteps=256)
    assert ingest_and_train(settings, SYMBOLS, RANGE).champion
    return settings


def test_kill_reaches_a_running_session(home: AppSettings, tmp_path: Path) -> None:
    # trade on every signal (the tiny model's confidences sit near 1/3), so orders come early
    config = tmp_path / "trade-always.yaml"
    config.write_text("strategy:\n  params:\n    min_confidence: 0.0\n")
    base = [CLI, "--config", str(config), "--home", str(home.home)]
    env = {**os.environ, "COLUMNS": "200"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args], capture_output=True, text=True, timeout=300, check=False, env=env
        )

    report = tmp_path / "session.json"
    log = tmp_path / "paper.log"
    # paced: 3000 market minutes per wall minute, 1200 minutes of both symbols: about 24 s
    paper_args = [*base, "paper", "-s", "BTCUSDT,ETHUSDT", "--session", "ks", "--fresh",
                  "--start", "2024-01-14", "--end", "2024-01-16", "--speed", "3000",
                  "--max-bars", "2400", "--out", str(report)]  # fmt: skip
    store_file = home.home / "paper" / "ks" / "execution.sqlite"
    with log.open("w") as out:
        paper = subprocess.Popen(paper_args, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            wait_until(store_file.exists, 300, "the session's store")
            watcher = SQLiteExecutionStore(store_file)
            try:
                wait_until(
                    lambda: watcher.counts()[RecordKind.ORDER] >= 2 or paper.poll() is not None,
                    300,
                    "the session's first orders",
                )
            finally:
                watcher.close()
            assert paper.poll() is None, "the session ended before the kill: " + log.read_text()
            killed = cli("kill", "--session", "ks", "--reason", "stop now", "--wait", "120")
            assert killed.returncode == 0, killed.stdout + killed.stderr
            assert "acknowledged by the running session" in killed.stdout
            assert "halted (kill switch: stop now)" in killed.stdout
            assert paper.wait(timeout=600) == 0, log.read_text()[-4000:]
        finally:
            if paper.poll() is None:
                paper.kill()
                paper.wait()
    assert "kill request #1 applied" in log.read_text()
    session = json.loads(report.read_text())
    assert session["bars"] == 2400  # the session ran on to its end, halted
    assert session["trading_state"] == "halted"

    store = SQLiteExecutionStore(store_file)
    try:
        checkpoint = store.load()
        assert checkpoint is not None and checkpoint.risk.state is TradingState.HALTED
        control = store.control(1)
        assert control is not None and control.kind is ControlKind.KILL
        assert control.applied_by == session["session"][:12]
        assert control.applied_at is not None and control.applied_at.year == 2024
        assert control.records_before is not None
        records = store.records_since(EPOCH)
        before, after = records[: control.records_before], records[control.records_before :]
        assert any(r.kind is RecordKind.ORDER for r in before)
        assert [r for r in after if r.kind is RecordKind.ORDER] == []
        # the session went on deciding after the kill: every signal refused as halted
        halted = [r for r in after if r.kind is RecordKind.REJECTION and r.risk_check == "halted"]
        assert halted and all(r.at >= control.applied_at for r in halted)
        last_bar = max(m.as_of for m in checkpoint.marks.values())
    finally:
        store.close()

    # no session runs now: a flatten goes to the stored account, at its market time
    flat = cli("kill", "--session", "ks", "--flatten")
    assert flat.returncode == 0, flat.stdout + flat.stderr
    assert "no session is running on account 'ks'" in flat.stdout
    store = SQLiteExecutionStore(store_file)
    try:
        second = store.control(2)
        assert second is not None and second.applied_at == last_bar
        for r in store.records_since(EPOCH)[second.records_before :]:
            assert r.at == last_bar and r.risk_check in ("halt_flatten", "halted"), r
    finally:
        store.close()
    resumed = cli("resume", "--session", "ks")
    assert resumed.returncode == 0 and "active" in resumed.stdout, resumed.stdout + resumed.stderr
