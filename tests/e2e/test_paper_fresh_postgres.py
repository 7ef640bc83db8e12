"""`paper --fresh` starts the account over in whichever store holds it: with ``execution.store:
postgres`` its portfolio, trading state, records and control requests are deleted in the
database, not only the local account folder. It does so only once the session's start checks
passed (a refused session keeps its account) and never under a running session (one line,
exit 1, nothing deleted). On the local stack's PostgreSQL, in a schema of the test's own."""

from __future__ import annotations

import functools
import json
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from drl_trading.app.settings import AppSettings
from drl_trading.common.domain import Symbol, TimeRange, parse_time
from drl_trading.execution.adapter.postgres_store import PostgresExecutionStore
from drl_trading.execution.core.records import RecordKind, TradingState
from drl_trading.testing.cli_process import run_cli, said
from drl_trading.testing.tiny_training import ingest_and_train, tiny_training_settings
from tests.conftest import PG_DSN, postgres_schema

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

EPOCH = parse_time("1970-01-01")
RANGE = ("--start", "2024-01-15T00:00", "--end", "2024-01-15T02:00")
Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def schema() -> Iterator[str]:
    with postgres_schema("test_fresh") as name:
        yield name


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, schema: str) -> AppSettings:
    settings = tiny_training_settings(tmp_path_factory.mktemp("fresh-pg"), timesteps=256)
    rng = TimeRange.parse("2024-01-01", "2024-01-16")
    assert ingest_and_train(settings, (Symbol("BTCUSDT"),), rng).champion
    return settings


@pytest.fixture(scope="module")
def cli(home: AppSettings, schema: str, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    # the account in PostgreSQL; trade on every signal (the tiny model's confidences sit near
    # 1/3), so that the account has fills and records to delete
    config = tmp_path_factory.mktemp("config") / "postgres-account.yaml"
    config.write_text(
        "execution:\n  store: postgres\n"
        f"postgres:\n  schema_name: {schema}\n"
        "strategy:\n  params:\n    min_confidence: 0.0\n"
    )
    return functools.partial(run_cli, home.home, config=config)


def store(schema: str) -> PostgresExecutionStore:
    return PostgresExecutionStore(PG_DSN, schema=schema)


def account(schema: str) -> tuple[int, TradingState | None, int]:
    """Records, trading state and control requests of the account in the database."""
    handle = store(schema)
    try:
        checkpoint = handle.load()
        state = None if checkpoint is None else checkpoint.risk.state
        n = len(handle.records_since(EPOCH))
    finally:
        handle.close()
    with psycopg.connect(PG_DSN) as con:
        controls = con.execute(f"SELECT count(*) FROM {schema}.controls").fetchone()
    return n, state, int(controls[0]) if controls else 0


def test_fresh_deletes_the_account_in_postgres(
    home: AppSettings, cli: Cli, schema: str, tmp_path: Path
) -> None:
    paper = ("paper", "-s", "BTCUSDT", "--session", "pg", *RANGE)
    first = cli(*paper, "--out", str(tmp_path / "1.json"))
    assert first.returncode == 0, said(first)[-2000:]
    killed = cli("kill", "--session", "pg", "--reason", "before fresh")
    assert killed.returncode == 0, said(killed)
    recorded, state, controls = account(schema)
    assert recorded > 0 and state is TradingState.HALTED and controls == 1
    # the account is behind the whole range: without --fresh the rerun is refused
    again = cli(*paper)
    assert again.returncode == 1 and "--fresh" in said(again)

    # a session refused at its start checks keeps its account: here no such model
    refused = cli(*paper, "--fresh", "-m", "no-such-model/9")
    assert refused.returncode == 1, said(refused)
    assert "Traceback" not in said(refused)
    assert account(schema) == (recorded, TradingState.HALTED, 1)

    # a session running on the account (its heartbeat, as from another process) keeps it too
    other = store(schema)
    try:
        other.beat("other-session", datetime.now(UTC))
        busy = cli(*paper, "--fresh")
        out = said(busy)
        assert busy.returncode == 1, out
        assert "Traceback" not in out
        assert "paper account 'pg'" in out and f"schema '{schema}'" in out
        assert "is in use: session other-session runs on it" in out
        assert "--session NAME" in out
        assert len([line for line in busy.stderr.splitlines() if line.strip()]) == 1
        assert account(schema) == (recorded, TradingState.HALTED, 1)
    finally:
        other.end_session("other-session")
        other.close()

    fresh = cli(*paper, "--fresh", "--out", str(tmp_path / "2.json"))
    assert fresh.returncode == 0, said(fresh)[-2000:]
    report = json.loads((tmp_path / "2.json").read_text())
    assert (report["bars"], report["continued_from"]) == (120, None)
    assert report["trading_state"] == "active"  # the kill went with the account
    assert report["start_equity"] == report["initial_cash"]
    # the database holds this session's account only: its records, no control request
    assert report["account_records"] == report["records"]
    after, state, controls = account(schema)
    assert after == sum(report["records"][k.value] for k in RecordKind)
    assert state is TradingState.ACTIVE and controls == 0
