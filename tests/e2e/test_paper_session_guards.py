"""`drl-trading paper` never succeeds silently on nothing, and an account re-run over a range it
traded gives honest figures (issue 11, item 2): a symbol or range without stored bars fails
before the model loads, naming each symbol and what is stored; the same range twice is refused
naming --fresh and --session; after a kill and a resume a rerun continues the account from its
last bar, and the report's return, fees and records agree with each other and with the store."""

from __future__ import annotations

import functools
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from drl_trading.app.settings import AppSettings
from drl_trading.common.domain import Symbol, TimeRange, parse_time
from drl_trading.execution.adapter.sqlite_store import SQLiteExecutionStore
from drl_trading.execution.core.records import RecordKind, TradeRecord
from drl_trading.testing.cli_process import run_cli, said
from drl_trading.testing.tiny_training import ingest_and_train, tiny_training_settings

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

EPOCH = parse_time("1970-01-01")
Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> AppSettings:
    settings = tiny_training_settings(tmp_path_factory.mktemp("guards"), timesteps=256)
    rng = TimeRange.parse("2024-01-01", "2024-01-16")
    assert ingest_and_train(settings, (Symbol("BTCUSDT"),), rng).champion
    return settings


@pytest.fixture(scope="module")
def cli(home: AppSettings, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    # trade on every signal (the tiny model's confidences sit near 1/3), so there are fills
    config = tmp_path_factory.mktemp("config") / "trade-always.yaml"
    config.write_text("strategy:\n  params:\n    min_confidence: 0.0\n")
    return functools.partial(run_cli, home.home, config=config)


def records(home: AppSettings, session: str) -> list[TradeRecord]:
    store = SQLiteExecutionStore(home.home / "paper" / session / "execution.sqlite")
    try:
        return store.records_since(EPOCH)
    finally:
        store.close()


def test_symbols_without_stored_bars_fail_before_the_model_loads(
    home: AppSettings, cli: Cli
) -> None:
    # a model that does not exist: the bars are checked first, so it is never looked up
    proc = cli("paper", "-s", "XRPUSDT,BTCUSDT,SOLUSDT", "-m", "no-such-model/9",
               "--start", "2024-01-15", "--end", "2024-01-16", "--session", "nobars")  # fmt: skip
    out = said(proc)
    assert proc.returncode == 1, out
    assert "no stored 1m bars for XRPUSDT, SOLUSDT in 2024-01-15..2024-01-16" in out
    assert "stored: BTCUSDT 2024-01-01..2024-01-16" in out
    assert "drl-trading ingest" in out
    assert "no-such-model" not in out and "Traceback" not in out
    assert not (home.home / "paper" / "nobars").exists()  # no account was created


def test_a_range_without_stored_bars_fails(home: AppSettings, cli: Cli) -> None:
    proc = cli("paper", "-s", "BTCUSDT", "--start", "2024-02-21", "--end", "2024-03-01",
               "--session", "norange")  # fmt: skip
    out = said(proc)
    assert proc.returncode == 1, out
    assert "no stored 1m bars for BTCUSDT in 2024-02-21..2024-03-01" in out
    assert "stored: BTCUSDT 2024-01-01..2024-01-16" in out
    assert "Traceback" not in out


def test_max_bars_below_one_is_a_usage_error(cli: Cli) -> None:
    proc = cli("paper", "-s", "BTCUSDT", "--start", "2024-01-15", "--end", "2024-01-16",
               "--max-bars", "0")  # fmt: skip
    assert proc.returncode == 2
    assert "--max-bars must be at least 1, got 0" in said(proc)


def test_the_same_range_twice_is_refused_and_leaves_the_account_alone(
    home: AppSettings, cli: Cli, tmp_path: Path
) -> None:
    args = ("paper", "-s", "BTCUSDT", "--session", "rr", "--start", "2024-01-15T00:00",
            "--end", "2024-01-15T01:00", "--out", str(tmp_path / "rr.json"))  # fmt: skip
    first = cli(*args)
    assert first.returncode == 0, said(first)[-2000:]
    assert json.loads((tmp_path / "rr.json").read_text())["bars"] == 60
    kept = records(home, "rr")

    again = cli(*args)
    out = said(again)
    assert again.returncode == 1, out
    assert "paper account 'rr' already traded 2024-01-15..2024-01-15T01:00" in out
    assert "--fresh" in out and "--session NAME" in out
    assert "Traceback" not in out
    assert records(home, "rr") == kept

    fresh = cli(*args, "--fresh")
    assert fresh.returncode == 0, said(fresh)[-2000:]
    report = json.loads((tmp_path / "rr.json").read_text())
    assert (report["bars"], report["continued_from"]) == (60, None)


def test_after_a_kill_a_rerun_continues_with_consistent_figures(
    home: AppSettings, cli: Cli, tmp_path: Path
) -> None:
    rng = ("--start", "2024-01-15T00:00", "--end", "2024-01-15T03:00")
    paper = ("paper", "-s", "BTCUSDT", "--session", "k", *rng)
    # stops inside a base bar, holding what the model bought
    first = cli(*paper, "--fresh", "--max-bars", "93", "--out", str(tmp_path / "1.json"))
    assert first.returncode == 0, said(first)[-2000:]
    one = json.loads((tmp_path / "1.json").read_text())
    assert one["bars"] == 93
    killed = cli("kill", "--session", "k", "--flatten", "--reason", "test")
    assert killed.returncode == 0, said(killed)
    resumed = cli("resume", "--session", "k")
    assert resumed.returncode == 0, said(resumed)
    before = len(records(home, "k"))

    second = cli(*paper, "--out", str(tmp_path / "2.json"))
    out = said(second)
    assert second.returncode == 0, out[-2000:]
    assert "continues from 2024-01-15T01:33 UTC" in out
    two = json.loads((tmp_path / "2.json").read_text())
    assert two["continued_from"].startswith("2024-01-15 01:33")
    assert two["bars"] == 180 - 93  # only the bars new to the account
    # the report covers the continuation, and its figures agree with each other...
    assert two["start_equity"] == pytest.approx(one["equity"], rel=1e-12)
    assert two["equity"] == pytest.approx(two["start_equity"] * (1 + two["total_return"]))
    assert two["metrics"]["total_return"] == pytest.approx(two["total_return"], abs=1e-12)
    assert two["account_return"] == pytest.approx(two["equity"] / two["initial_cash"] - 1)
    # ... and with the trade records of the session
    session = records(home, "k")[before:]
    fills = [r for r in session if r.kind is RecordKind.FILL]
    assert fills, "the kill's flatten order fills in the continuation"
    assert two["fees_paid"] == pytest.approx(sum(r.fee for r in fills), rel=1e-9)
    assert two["fees_paid"] > 0
    for kind in RecordKind:
        assert two["records"][kind.value] == sum(r.kind is kind for r in session)
    btc = two["per_symbol"]["BTCUSDT"]["model"]
    assert btc["fees_paid"] >= 0
    assert btc["total_return"] == pytest.approx(two["total_return"], abs=1e-9)

    third = cli(*paper)
    assert third.returncode == 1
    assert "already traded" in said(third) and "--fresh" in said(third)
