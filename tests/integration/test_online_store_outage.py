"""The Redis online store going away and coming back, on a Redis server of the test's own."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from drl_trading.common.adapter.feast_feature_store import FeastFeatureStore
from drl_trading.common.domain import Symbol, Timeframe, parse_time
from drl_trading.common.errors import OnlineStoreConnectionError
from drl_trading.common.ports import FeatureViewSpec
from tests.conftest import require_server

pytestmark = pytest.mark.integration

VIEW = FeatureViewSpec(
    name="o__000000000001",
    feature_set_name="o",
    feature_set_version="000000000001",
    base_timeframe=Timeframe.M5,
    columns=("a",),
    ttl=None,
)
S = Symbol("BTCUSDT")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:  # scripts/stack.sh installs it; the stack's Redis proves it ran
        require_server("Redis", "127.0.0.1", 6379)
        pytest.fail("redis-server is not on PATH although a Redis server runs")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("redis-server did not start")


def test_an_unreachable_online_store_is_reported_unavailable_then_recovers(
    tmp_path: Path,
) -> None:
    port = _free_port()
    server = _redis(port, tmp_path)
    store = FeastFeatureStore(
        tmp_path / "repo",
        tmp_path / "data",
        online_store={"type": "redis", "connection_string": f"127.0.0.1:{port}"},
        project=f"o{uuid.uuid4().hex[:10]}",
        read_own_writes=False,
    )
    t1, t2 = parse_time("2024-01-01T00:05"), parse_time("2024-01-01T00:10")
    try:
        store.register(VIEW)
        store.write_online(VIEW, S, t1, [1.0])
        server.terminate()
        server.wait(timeout=10)
        with pytest.raises(OnlineStoreConnectionError) as failed:
            store.write_online(VIEW, S, t2, [2.0])
        assert failed.value.unavailable and failed.value.retryable
        with pytest.raises(OnlineStoreConnectionError):
            store.online_features(VIEW, [S])
        server = _redis(port, tmp_path)  # back, empty (no persistence), as after a restart
        store.write_online(VIEW, S, t2, [2.0])
        got = store.online_features(VIEW, [S])
        assert got[S].event_time == t2 and got[S].values == (2.0,)
    finally:
        server.kill()
