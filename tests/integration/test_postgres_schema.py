"""Schema migrations on the real PostgreSQL of the local stack: ordered, once, tamper-evident."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from drl_trading.common.adapter.postgres_schema import available, migrate
from tests.conftest import PG_DSN, postgres_schema

pytestmark = pytest.mark.integration


@pytest.fixture
def schema() -> Iterator[str]:
    with postgres_schema("test") as name:
        yield name


def test_migrations_apply_in_order_once(schema: str) -> None:
    with psycopg.connect(PG_DSN) as con:
        first = migrate(con, schema)
        again = migrate(con, schema)
        versions = con.execute(
            f"SELECT version FROM {schema}.schema_migrations ORDER BY version"
        ).fetchall()
        tables = {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                [schema],
            ).fetchall()
        }
    assert [m.version for m in first] == [m.version for m in available()] == [1, 2, 3, 4, 5]
    assert again == []
    assert [v for (v,) in versions] == [1, 2, 3, 4, 5]
    assert {
        "ohlcv",
        "ohlcv_quarantine",
        "schema_migrations",
        "records",
        "positions",
        "controls",
        "reconciliation",
    } <= tables


def test_an_edited_migration_is_refused(schema: str) -> None:
    with psycopg.connect(PG_DSN) as con:
        migrate(con, schema)
        con.execute(f"UPDATE {schema}.schema_migrations SET checksum = 'x' WHERE version = 1")
        con.commit()
        with pytest.raises(RuntimeError, match="changed after it was applied"):
            migrate(con, schema)


def test_db_migrate_command(schema: str, tmp_path: Path) -> None:
    cli = str(Path(sys.executable).with_name("drl-trading"))
    env = {**os.environ, "DRL_TRADING_POSTGRES__SCHEMA_NAME": schema}
    run = [cli, "--home", str(tmp_path), "db", "migrate"]
    first = subprocess.run(run, capture_output=True, text=True, env=env, check=False)
    assert first.returncode == 0, first.stderr
    assert "applied V001__market_data" in first.stdout
    second = subprocess.run(run, capture_output=True, text=True, env=env, check=False)
    assert "(0 applied now)" in second.stdout
    bad = {**env, "DRL_TRADING_POSTGRES__PORT": "1"}
    refused = subprocess.run(run, capture_output=True, text=True, env=bad, check=False)
    assert refused.returncode == 1
    assert "PostgreSQL server 127.0.0.1:1 is unreachable" in refused.stderr


def test_market_data_reconnects_after_the_server_dropped_its_connection(schema: str) -> None:
    """A PostgreSQL restart (here: the server terminating our backend) fails the call in
    flight with a retryable error; the next call opens a new connection and carries on."""
    from drl_trading.common.adapter.postgres_market_data import PostgresMarketData
    from drl_trading.common.domain import Symbol, Timeframe, parse_time
    from drl_trading.common.errors import DatabaseConnectionError
    from tests.conftest import make_bars

    repo = PostgresMarketData(PG_DSN, schema=schema)
    symbol = Symbol("BTCUSDT")
    bars = make_bars("2024-01-01", 10)
    try:
        assert repo.upsert_bars(symbol, Timeframe.M1, bars[:5]).inserted == 5
        backend = repo._con.info.backend_pid  # the server process serving this repository
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [backend])
        with pytest.raises(DatabaseConnectionError, match="connection lost") as failed:
            repo.upsert_bars(symbol, Timeframe.M1, bars[5:])
        assert getattr(failed.value, "retryable", False)
        # what a bus does next: the handler again, on a new connection
        assert repo.upsert_bars(symbol, Timeframe.M1, bars[5:]).inserted == 5
        day = (parse_time("2024-01-01"), parse_time("2024-01-02"))
        assert repo.read_bars(symbol, Timeframe.M1, *day).height == 10
        assert repo.reconnects == 1
    finally:
        repo.close()
