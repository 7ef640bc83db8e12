"""Servers of the distributed deployment that are down or refuse the credentials end a command
in one line naming the server, never in a traceback or a bug report (issue 11, item 4).

Each setting points at a closed port on 127.0.0.1 (bound, then closed: nothing listens), or, for
the credentials, at the local stack's real PostgreSQL and Redis with a planted password. Each
case runs the CLI in a subprocess, as a user does, and checks the exit code, the server's
address, what failed, the settings to check, that no traceback was printed and that the
password appears nowhere, the log included (where the traceback is).
"""

from __future__ import annotations

import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from drl_trading.testing.cli_process import run_cli
from tests.conftest import require_server

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

STATUS = "check that it runs (bash scripts/stack.sh status)"


def closed_port() -> int:
    """A local port nothing listens on: bound by this process, then closed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def postgres_down(secret: str, **env: str) -> tuple[int, dict[str, str]]:
    """A closed port, and the environment that points PostgreSQL at it with the planted
    password ``secret``, plus ``env`` (the settings that make the command use PostgreSQL)."""
    port = closed_port()
    pg = {"DRL_TRADING_POSTGRES__PORT": str(port), "DRL_TRADING_POSTGRES__PASSWORD": secret}
    return port, {**pg, **env}


def assert_server_error(
    home: Path, result: subprocess.CompletedProcess[str], secret: str, *phrases: str
) -> str:
    """Exit 1, one line holding every phrase, no traceback on the console, the traceback in
    the log, and ``secret`` nowhere."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == 1, output
    assert "internal error" not in output, output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    err = " ".join(result.stderr.split())
    for phrase in phrases:
        assert phrase in err, err
    log = (home / "logs" / "drl-trading.log").read_text()
    assert "Traceback (most recent call last)" in log
    assert secret not in output + log
    return err


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def secret() -> str:
    return f"pw-{uuid.uuid4().hex}"


INGEST = ["ingest", "-s", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-01-02"]


def test_postgres_down(home: Path, secret: str) -> None:
    port, env = postgres_down(secret, DRL_TRADING_MARKET_DATA__KIND="postgres")
    assert_server_error(
        home,
        run_cli(home, *INGEST, env=env),
        secret,
        f"PostgreSQL server 127.0.0.1:{port} is unreachable: Connection refused",
        STATUS,
        "postgres.host, postgres.port",
    )


def test_postgres_down_for_the_execution_store(home: Path, secret: str) -> None:
    port, env = postgres_down(secret, DRL_TRADING_EXECUTION__STORE="postgres")
    assert_server_error(
        home,
        run_cli(home, "kill", "--reason", "test", env=env),
        secret,
        f"PostgreSQL server 127.0.0.1:{port} is unreachable",
        STATUS,
    )


def test_postgres_down_under_serve(home: Path, secret: str) -> None:
    port, env = postgres_down(secret, DRL_TRADING_MARKET_DATA__KIND="postgres")
    assert_server_error(
        home,
        run_cli(home, "serve", "preprocess", "--port", "0", env=env),
        secret,
        f"PostgreSQL server 127.0.0.1:{port} is unreachable",
        STATUS,
    )


def test_db_migrate_with_postgres_down(home: Path, secret: str) -> None:
    port, env = postgres_down(secret)
    assert_server_error(
        home,
        run_cli(home, "db", "migrate", env=env),
        secret,
        f"PostgreSQL server 127.0.0.1:{port} is unreachable",
    )


def test_a_wrong_postgres_password(home: Path, secret: str) -> None:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    env = {
        "DRL_TRADING_MARKET_DATA__KIND": "postgres",
        "DRL_TRADING_POSTGRES__HOST": "127.0.0.1",
        "DRL_TRADING_POSTGRES__PORT": "5432",
        "DRL_TRADING_POSTGRES__PASSWORD": secret,
    }
    for args in (INGEST, ["serve", "ingest", "--port", "0"]):
        assert_server_error(
            home,
            run_cli(home, *args, env=env),
            secret,
            "PostgreSQL server 127.0.0.1:5432 refused the credentials",
            "password authentication failed",
            "DRL_TRADING_POSTGRES__PASSWORD",
        )


def test_redis_down(home: Path, secret: str) -> None:
    port = closed_port()
    env = {
        "DRL_TRADING_FEATURE_STORE__ONLINE_STORE": "redis",
        "DRL_TRADING_FEATURE_STORE__REDIS_CONNECTION_STRING": f"127.0.0.1:{port},password={secret}",
    }
    for args in (
        ["preprocess", "-s", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-01-02"],
        ["serve", "preprocess", "--port", "0"],
    ):
        assert_server_error(
            home,
            run_cli(home, *args, env=env),
            secret,
            f"Redis online store 127.0.0.1:{port} is unreachable",
            "Connection refused",
            STATUS,
            "feature_store.redis_connection_string",
        )


def test_redis_refusing_the_credentials(home: Path, secret: str) -> None:
    require_server("Redis", "127.0.0.1", 6379)
    env = {
        "DRL_TRADING_FEATURE_STORE__ONLINE_STORE": "redis",
        "DRL_TRADING_FEATURE_STORE__REDIS_CONNECTION_STRING": f"127.0.0.1:6379,password={secret}",
    }
    args = ["preprocess", "-s", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-01-02"]
    assert_server_error(
        home,
        run_cli(home, *args, env=env),
        secret,
        "Redis online store 127.0.0.1:6379 refused the credentials",
        "feature_store.redis_connection_string",
    )


def test_mlflow_tracking_server_down(home: Path, secret: str) -> None:
    """MLflow alone would retry for minutes; the check at start gives up within
    `TRACKING_PROBE_BOUND_S` (the subprocess timeout bounds this test, no timing asserted)."""
    port = closed_port()
    uri = f"http://ml:{secret}@127.0.0.1:{port}"
    env = {"DRL_TRADING_TRAINING__REGISTRY__TRACKING_URI": uri}
    for args in (
        ["backtest", "-m", "drl-example/1", "-s", "BTCUSDT", "--start", "2024-01-02",
         "--end", "2024-01-03"],
        ["serve", "training", "--port", "0"],
    ):  # fmt: skip
        assert_server_error(
            home,
            run_cli(home, *args, env=env),
            secret,
            f"MLflow tracking server http://ml:***@127.0.0.1:{port} is unreachable",
            "Connection refused",
            STATUS,
            "training.registry.tracking_uri",
        )
