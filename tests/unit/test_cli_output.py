"""Output a person reads and output a program reads (issue 11, "honest output"): tables are not
cut when stdout is no terminal, listings also come as CSV or JSON, `trades --kind` is repeatable
and checked, and flags read as words (JSON keeps the booleans)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drl_trading.app.infrastructure import feature_set_for
from drl_trading.app.paper_account import store_path
from drl_trading.app.settings import load_settings
from drl_trading.cli.app import app
from drl_trading.common.domain import Side, Symbol
from drl_trading.common.model_registry import ModelVersion
from drl_trading.evaluation.backtest import BacktestResult, SymbolBacktest
from drl_trading.evaluation.baselines import buy_and_hold_positions, random_positions
from drl_trading.execution.adapter.sqlite_store import SQLiteExecutionStore
from drl_trading.execution.core.records import (
    Checkpoint,
    PortfolioSnapshot,
    RecordKind,
    RiskState,
    TradeRecord,
    TradingState,
)
from drl_trading.policy.package import ModelManifest
from drl_trading.training.core.backtest_report import backtest_documents
from drl_trading.training.core.gate import GateDecision
from tests.unit.test_report import result, walk

NARROW = {"COLUMNS": "60", "DRL_TRADING_HOME": None, "DRL_TRADING_CONFIG": None}
CSV_COLUMNS = ["at", "kind", "symbol", "side", "quantity", "price", "fee", "realised_pnl",
               "model_version", "risk_check", "reason", "client_order_id", "signal_id"]  # fmt: skip


def _at(minute: int) -> datetime:
    return datetime(2024, 1, 7, 12, minute, tzinfo=UTC)


RECORDS = [
    TradeRecord("r1", RecordKind.ORDER, Symbol("BTCUSDT"), _at(34), client_order_id="c-1",
                signal_id="s-1", side=Side.BUY, quantity=0.123456789, price=43251.123456789,
                model_version="drl-base/3", risk_check="max_position_reduced_to_limit"),
    TradeRecord("r2", RecordKind.FILL, Symbol("BTCUSDT"), _at(35), client_order_id="c-1",
                signal_id="s-1", side=Side.BUY, quantity=0.123456789, price=43260.987654321,
                fee=2.123456789, model_version="drl-base/3"),
    TradeRecord("r3", RecordKind.REJECTION, Symbol("ETHUSDT"), _at(40), signal_id="s-2",
                side=Side.SELL, model_version="drl-base/3", risk_check="halted",
                reason="kill switch [operator] engaged: no orders until resume"),
    TradeRecord("r4", RecordKind.SKIP, Symbol("ETHUSDT"), _at(45), signal_id="s-3",
                model_version="drl-base/3", risk_check="dust", reason="target unchanged"),
]  # fmt: skip


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A paper account ``default`` holding `RECORDS`."""
    home = tmp_path / "home"
    path = store_path(load_settings(home=home), "default")
    path.parent.mkdir(parents=True)
    store = SQLiteExecutionStore(path)
    risk = RiskState(TradingState.ACTIVE, "", _at(0), 1e4, 1e4, 1e4)
    store.commit(Checkpoint(PortfolioSnapshot(cash=1e4), risk), RECORDS)
    store.close()
    return home


def invoke(home: Path, *args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(app, ["--home", str(home), *args], env=NARROW)
    if res.exit_code not in (0, 1, 2):  # a crash shows its traceback in the test's failure
        raise AssertionError(res.output) from res.exception
    return res.exit_code, res.stdout, res.stderr


def assert_table_uncut(out: str) -> None:
    """Every record's time, kind and risk check in full, nothing ellipsized."""
    assert "…" not in out
    for r in RECORDS:
        assert r.at.isoformat() in out  # 2024-01-07T12:34:00+00:00, not 2024-01-07…
        assert r.kind.value in out
        assert r.risk_check in out
    assert "drl-base/3" in out and "43251.1" in out


def test_trades_table_is_not_cut_when_stdout_is_no_terminal(home: Path) -> None:
    code, out, _ = invoke(home, "trades")
    assert code == 0
    assert_table_uncut(out)


def test_trades_table_is_not_cut_in_a_pipe_of_a_real_process(home: Path) -> None:
    """The console is sized when the CLI starts (``$COLUMNS`` is read then): a real process, its
    stdout a pipe."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRL_TRADING_")}
    proc = subprocess.run(
        [sys.executable, "-m", "drl_trading.cli.app", "--home", str(home), "trades"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**env, "COLUMNS": "60"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_table_uncut(proc.stdout)


def test_trades_as_csv_holds_every_row_and_column_at_full_precision(home: Path) -> None:
    code, out, _ = invoke(home, "trades", "--format", "csv", "--limit", "1")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == CSV_COLUMNS
    body = [dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]]
    assert len(body) == len(RECORDS)  # --limit is the table's
    assert [r["at"] for r in body] == [r.at.isoformat() for r in RECORDS]
    assert float(body[0]["price"]) == 43251.123456789
    assert body[1]["fee"] == "2.123456789"
    assert body[2]["reason"] == "kill switch [operator] engaged: no orders until resume"
    assert body[3]["side"] == body[3]["price"] == ""


def test_trades_as_json_keeps_numbers_and_nulls(home: Path) -> None:
    code, out, _ = invoke(home, "trades", "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert [list(r) for r in rows] == [CSV_COLUMNS] * len(RECORDS)
    assert [r["kind"] for r in rows] == ["order", "fill", "rejection", "skip"]
    assert rows[0]["price"] == 43251.123456789 and rows[0]["quantity"] == 0.123456789
    assert rows[0]["at"] == "2024-01-07T12:34:00+00:00"
    assert rows[3]["price"] is None and rows[3]["side"] is None


def test_the_csv_file_is_the_csv_output_and_its_note_leaves_stdout_parseable(
    home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "t.csv"
    code, out, err = invoke(home, "trades", "--format", "json", "--csv", str(path))
    assert code == 0
    assert len(json.loads(out)) == len(RECORDS)
    assert f"{len(RECORDS)} records written" in err
    _, as_csv, _ = invoke(home, "trades", "--format", "csv")
    assert list(csv.reader(path.open(newline=""))) == list(csv.reader(io.StringIO(as_csv)))


@pytest.mark.parametrize(
    ("args", "kinds"),
    [
        (["--kind", "fill", "--kind", "rejection"], ["fill", "rejection"]),
        (["--kind", "order,skip"], ["order", "skip"]),
        (["--kind", "Fill"], ["fill"]),
        ([], ["order", "fill", "rejection", "skip"]),
    ],
)
def test_kind_is_repeatable(home: Path, args: list[str], kinds: list[str]) -> None:
    code, out, _ = invoke(home, "trades", "--format", "json", *args)
    assert code == 0
    assert [r["kind"] for r in json.loads(out)] == kinds


def test_an_unknown_kind_is_a_usage_error_naming_the_kinds(home: Path) -> None:
    code, out, err = invoke(home, "trades", "--kind", "fill", "--kind", "fills")
    assert code == 2
    assert out == ""
    assert "unknown kind 'fills'" in err
    for kind in RecordKind:
        assert kind.value in err
    assert "Traceback" not in err


def test_features_info_lists_every_column_uncut_and_as_csv_and_json(tmp_path: Path) -> None:
    spec = feature_set_for(load_settings(home=tmp_path))
    code, out, _ = invoke(tmp_path, "features", "info")
    assert code == 0
    assert "…" not in out
    for tf in spec.timeframes:  # each timeframe's features on its one row
        assert ", ".join(c.split("__")[0] for c in tf.columns()) in out
    code, out, _ = invoke(tmp_path, "features", "info", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["column"] for r in rows] == list(spec.columns)
    assert {(r["feature_set"], r["version"]) for r in rows} == {(spec.name, spec.version)}
    code, out, _ = invoke(tmp_path, "features", "info", "--format", "json")
    assert code == 0
    assert json.loads(out) == rows


def _backtest() -> BacktestResult:
    n = 240
    times, open_, close = walk(n, seed=3)
    model, trades = result("model", "BTCUSDT", times, open_, close, random_positions(n, seed=5))
    hold, _ = result("buy-and-hold", "BTCUSDT", times, open_, close, buy_and_hold_positions(n))
    assert model.trace is not None and hold.trace is not None
    sym = SymbolBacktest("BTCUSDT", model.metrics, model.trace, trades,
                         {"buy-and-hold": hold.metrics}, {"buy-and-hold": hold.trace},
                         skipped_bars=0, mean_confidence=None)  # fmt: skip
    return BacktestResult([sym], bars=n, seconds=0.1)


@pytest.mark.parametrize(("promote", "word"), [(False, "no"), (True, "yes")])
def test_the_report_says_champion_in_words_and_the_json_keeps_the_boolean(
    tmp_path: Path, promote: bool, word: str
) -> None:
    spec = feature_set_for(load_settings(home=tmp_path))
    manifest = ModelManifest(
        algorithm="PPO", policy="MlpPolicy", action_mode="discrete", window=4,
        feature_columns=list(spec.columns), feature_set=spec.model_dump(mode="json"),
        feature_set_version=spec.version, feature_view=spec.view_name,
        base_timeframe=spec.base_timeframe.value, strategy={"name": "example", "version": "1"},
        max_position=1.0, allow_short=True, fee_bps=5.0, slippage_bps=2.0,
    )  # fmt: skip
    test = _backtest()
    reason = "validation Sharpe 0.12 vs threshold 0.5"
    docs = backtest_documents(
        test,
        ModelVersion("drl-base", "3", "run-1"),
        title="Backtest",
        extra={"run id": "run-1"},
        stem="drl-base-v3-test",
        manifest=manifest,
        validation=test,
        gate=GateDecision(promote, reason),
    )
    assert f"<th>champion</th><td>{word} ({reason})</td>" in docs.html
    assert ">True" not in docs.html and ">False" not in docs.html
    payload = json.loads(docs.metrics_json)
    assert payload["gate"] == {"promoted": promote, "reason": reason}
    assert payload["metadata"]["champion"] == f"{word} ({reason})"
