"""The one-line errors of servers that are down or refuse the credentials, built from what the
clients say (libpq's messages, Redis client errors), without a server."""

from __future__ import annotations

import pytest
import redis.exceptions

from drl_trading.cli.errors import describe
from drl_trading.common.adapter.feast_feature_store import online_store_error, redis_address
from drl_trading.common.adapter.postgres_schema import connection_error, server_address
from drl_trading.common.errors import (
    EXIT_FAILURE,
    DatabaseConnectionError,
    OperatorError,
    TrackingServerConnectionError,
)

DSN = "host=db.internal port=6543 user=drl password=hunter2 dbname=drl sslmode=prefer"
REFUSED = (
    'connection failed: connection to server at "10.0.0.5", port 6543 failed: Connection '
    "refused\n\tIs the server running on that host and accepting TCP/IP connections?\n"
)
WRONG_PASSWORD = (
    'connection failed: connection to server at "10.0.0.5", port 6543 failed: FATAL:  password '
    'authentication failed for user "drl"\nconnection to server at "10.0.0.5", port 6543 '
    'failed: FATAL:  password authentication failed for user "drl"\n'
)
NO_DATABASE = (
    'connection failed: connection to server at "10.0.0.5", port 6543 failed: FATAL:  database '
    '"nodb" does not exist\n'
)


def test_the_address_of_a_dsn_never_carries_its_password() -> None:
    assert server_address(DSN) == "db.internal:6543"
    assert server_address("dbname=drl") == "localhost:5432"  # libpq's defaults


@pytest.mark.parametrize(
    ("libpq", "problem", "line"),
    [
        (
            REFUSED,
            "unreachable",
            "PostgreSQL server db.internal:6543 is unreachable: Connection refused; check that "
            "it runs (bash scripts/stack.sh status) and postgres.host, postgres.port and "
            "postgres.dbname",
        ),
        (
            WRONG_PASSWORD,
            "credentials",
            "PostgreSQL server db.internal:6543 refused the credentials: password authentication "
            'failed for user "drl"; check postgres.user and the password '
            "(DRL_TRADING_POSTGRES__PASSWORD, postgres.password or postgres.password_file)",
        ),
        (
            NO_DATABASE,
            "refused",
            'PostgreSQL server db.internal:6543 refused the connection: database "nodb" does not '
            "exist; check postgres.host, postgres.port and postgres.dbname",
        ),
    ],
)
def test_libpq_failures_become_one_line(libpq: str, problem: str, line: str) -> None:
    error = connection_error(DSN, RuntimeError(libpq))
    assert isinstance(error, DatabaseConnectionError) and isinstance(error, OperatorError)
    assert error.problem == problem
    assert str(error) == line
    failure = describe(error, "ingest")
    assert (failure.message, failure.exit_code, failure.internal) == (line, EXIT_FAILURE, False)


def test_a_connection_lost_mid_call_is_retryable_and_says_the_next_call_reconnects() -> None:
    error = connection_error(DSN, RuntimeError("server closed the connection unexpectedly"), True)
    assert error.retryable and error.unavailable  # the bus waits for the server
    assert "is unreachable: connection lost (server closed the connection unexpectedly)" in str(
        error
    )
    assert "the next call reconnects" in str(error)


def test_redis_errors_name_the_store_and_not_the_password() -> None:
    address = redis_address("cache.internal:6380,password=hunter2,ssl=true")
    assert address == "cache.internal:6380"
    down = online_store_error(address, redis.exceptions.ConnectionError("Connection refused."))
    assert down is not None and down.problem == "unreachable"
    assert str(down).startswith("Redis online store cache.internal:6380 is unreachable: ")
    assert "feature_store.redis_connection_string" in str(down)
    denied = online_store_error(address, redis.exceptions.AuthenticationError("WRONGPASS"))
    assert denied is not None and denied.problem == "credentials"
    assert "refused the credentials: WRONGPASS" in str(denied)
    assert online_store_error(address, redis.exceptions.ResponseError("WRONGTYPE")) is None
    assert "hunter2" not in str(down) + str(denied)


def test_a_tracking_uri_is_shown_with_its_password_masked() -> None:
    error = TrackingServerConnectionError("https://ml:hunter2@mlflow.internal", "timed out")
    assert str(error).startswith(
        "MLflow tracking server https://ml:***@mlflow.internal is unreachable: timed out; "
    )
    assert "training.registry.tracking_uri" in str(error) and "hunter2" not in str(error)
