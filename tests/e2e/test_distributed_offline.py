"""The offline workflow across separate processes on the real stack, against the embedded mode.

`drl-trading serve preprocess` and `drl-trading serve training` run as processes over Kafka;
`drl-trading submit-training` (a third process) asks the worker to train, ingests synthetic
history into PostgreSQL and requests its features; preprocess writes them to Feast (Parquet
offline store), the worker trains, registers on the MLflow server and announces the result on
``completed.training``. The same request trained embedded (one process, in-memory bus and stores)
on the same data must give the same validation and test figures. Then the worker is killed
(kill -9), a second run is submitted while it is down, and its next life takes that request up
from Kafka and trains it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from drl_trading.app.infrastructure import build_bus
from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.common.domain import Symbol, TimeRange
from drl_trading.common.events import Topic, TrainingCompleted
from drl_trading.testing.service_processes import (
    log_tail,
    metric,
    service_port,
    start_service,
    stop_services,
    wait_ready,
)
from drl_trading.testing.shared_stack import distributed_replay_config, drop_kafka_namespace
from drl_trading.testing.tiny_training import ingest_and_train
from drl_trading.training.adapter.bus_handlers import completed_event
from tests.conftest import require_server

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SYMBOLS = (Symbol("BTCUSDT"), Symbol("ETHUSDT"))
RANGE = TimeRange.parse("2024-01-01", "2024-01-11")
DSN = "postgresql://drl:drl@127.0.0.1:5432/drl"


def _submit(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cli = str(Path(sys.executable).with_name("drl-trading"))
    args = [cli, "--config", str(config), "submit-training"]
    args += ["--symbols", ",".join(str(s) for s in SYMBOLS)]
    args += ["--start", RANGE.start.isoformat(), "--end", RANGE.end.isoformat()]
    return subprocess.run(
        [*args, "--timeout", "300", *extra], capture_output=True, text=True, timeout=420
    )


def _wait_for(settings: AppSettings, topic: str, correlation_id: str, timeout: float) -> bool:
    """An event of ``correlation_id`` on ``topic`` within ``timeout`` seconds."""
    bus = build_bus(settings)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.correlation_id == correlation_id for e in bus.messages(topic)):
                return True
            time.sleep(1.0)
        return False
    finally:
        bus.close()


def test_offline_workflow_across_processes_equals_embedded(tmp_path: Path) -> None:
    for name, port in (("PostgreSQL", 5432), ("Redis", 6379), ("Kafka", 9092), ("MLflow", 5000)):
        require_server(name, "127.0.0.1", port)
    config = distributed_replay_config(tmp_path, "offline", RANGE.start, RANGE.end, 1.0, "INFO")
    settings = load_settings(config_file=config)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in ("preprocess", "training"):
            procs[name] = start_service(config, name, tmp_path)
        for name in ("preprocess", "training"):
            port = service_port(procs[name], name, tmp_path)
            assert wait_ready(port, 120.0), log_tail(tmp_path / f"{name}.log")
        submitted = _submit(config)
        assert submitted.returncode == 0, (
            submitted.stdout[-3000:],
            submitted.stderr[-3000:],
            log_tail(tmp_path / "training.log"),
            log_tail(tmp_path / "preprocess.log"),
        )
        assert "registered" in submitted.stdout
        assert metric(port, "drl_training_runs") == 1.0

        # the worker dies (kill -9); a run submitted meanwhile gets its features; the worker's
        # next life reads the request back from Kafka and trains it
        procs["training"].kill()
        procs["training"].wait(timeout=10)
        later = _submit(config, "--no-wait")
        assert later.returncode == 0, (later.stdout[-3000:], later.stderr[-3000:])
        found = re.search(r"correlation id ([0-9a-f]{32})", later.stdout)
        assert found, later.stdout
        cid = found.group(1)
        assert _wait_for(settings, Topic.PREPROCESS_COMPLETED_OFFLINE, cid, 180.0)
        procs["training"] = start_service(config, "training", tmp_path)
        port = service_port(procs["training"], "training", tmp_path)
        assert wait_ready(port, 120.0), log_tail(tmp_path / "training.log")
        assert _wait_for(settings, Topic.TRAINING_COMPLETED, cid, 300.0), log_tail(
            tmp_path / "training.log"
        )
        bus = build_bus(settings)
        try:
            results = [
                e
                for e in bus.messages(Topic.TRAINING_COMPLETED)
                if isinstance(e, TrainingCompleted)
            ]
        finally:
            bus.close()
    finally:
        stop_services(procs.values())
        with psycopg.connect(DSN, autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {settings.postgres.schema_name} CASCADE")
        drop_kafka_namespace(settings)
    for name, proc in procs.items():
        assert proc.returncode == 0, (name, proc.returncode, log_tail(tmp_path / f"{name}.log"))
    assert sorted(r.model_version for r in results) == ["1", "2"]
    assert [r.correlation_id for r in results if r.model_version == "2"] == [cid]
    distributed = next(r for r in results if r.model_version == "1")
    assert distributed.champion

    # the same request, embedded: in-memory bus, market data and features, its own model name
    registry = settings.training.registry.model_copy(
        update={"model_name": f"{settings.training.registry.model_name}-embedded"}
    )
    local = settings.model_copy(
        update={
            "home": tmp_path / "embedded",
            "bus": settings.bus.model_copy(update={"kind": "memory"}),
            "market_data": settings.market_data.model_copy(update={"kind": "memory"}),
            "feature_store": settings.feature_store.model_copy(update={"kind": "memory"}),
            "training": settings.training.model_copy(update={"registry": registry}),
        }
    )
    # embedded as the submission ingests: with the features' warm-up before the range
    result = ingest_and_train(local, SYMBOLS, RANGE, with_warmup=True)
    embedded = completed_event(distributed.correlation_id, result)
    assert embedded.metrics.keys() == distributed.metrics.keys()
    for key, value in embedded.metrics.items():
        assert distributed.metrics[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
