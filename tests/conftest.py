"""Shared fixtures: bar frames, settings with a temporary home."""

from __future__ import annotations

import warnings
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
    import os
    import socket

    try:
        with socket.create_connection((host, port), timeout=1.0):
            return
    except OSError as exc:
        message = f"{name} is not reachable at {host}:{port} ({exc}); run: bash scripts/stack.sh up"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
