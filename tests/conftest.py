"""Shared fixtures: bar frames, settings with a temporary home, the local stack's servers (skip
or fail where one is not running) and a PostgreSQL schema of a test's own."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.common.bars import BAR_SCHEMA
from drl_trading.common.domain import parse_time

warnings.filterwarnings("ignore", category=DeprecationWarning, module="ibis")


def make_bars(
    start: str | datetime, n: int, step_minutes: int = 1, price: float = 100.0
) -> pl.DataFrame:
    """``n`` valid bars on the grid from ``start``: a gentle zig-zag with positive volume."""
    t0 = parse_time(start)
    times = [t0 + timedelta(minutes=step_minutes * i) for i in range(n)]
    opens = [price + (i % 7) * 0.1 for i in range(n)]
    closes = [price + ((i + 1) % 7) * 0.1 for i in range(n)]
    return pl.DataFrame(
        {
            "open_time": times,
            "open": opens,
            "high": [max(o, c) + 0.05 for o, c in zip(opens, closes, strict=True)],
            "low": [min(o, c) - 0.05 for o, c in zip(opens, closes, strict=True)],
            "close": closes,
            "volume": [10.0 + i % 5 for i in range(n)],
        },
        schema=BAR_SCHEMA,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def settings(home: Path) -> AppSettings:
    return load_settings(home=home)


def require_server(name: str, host: str, port: int) -> None:
    """Skip a test whose server is not running, except in CI (``CI=true``), where a missing
    server is a failure: the CI script starts the stack (scripts/stack.sh up)."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=1.0):
            return
    except OSError as exc:
        message = f"{name} is not reachable at {host}:{port} ({exc}); run: bash scripts/stack.sh up"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


PG_DSN = os.environ.get("DRL_TEST_PG", "postgresql://drl:drl@127.0.0.1:5432/drl")
"""The local stack's PostgreSQL (scripts/stack.sh), or ``DRL_TEST_PG``."""


@contextmanager
def postgres_schema(prefix: str) -> Iterator[str]:
    """The name of a schema of the caller's own on `PG_DSN` (``PREFIX_`` and ten hex digits),
    dropped with all it holds afterwards; `require_server` first."""
    import psycopg

    require_server("PostgreSQL", "127.0.0.1", 5432)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
