"""Two instances each of preprocess, inference and execution on the real stack, one of each
killed (SIGKILL) mid-stream: the survivors take the dead instances' symbols over, and the replay
ends as one instance of everything (the embedded runtime) ends it.

Set-up as `test_distributed.py` (synthetic history in PostgreSQL, features in Feast, a tiny model
on the MLflow server), with four symbols, so that each instance of a service serves some of
them. Ingest runs in this process and replays one market minute (a bar of every symbol) at a
time, waiting until every consumer group has committed everything before the next minute: the
run is then decided by what the services compute, not by how fast a loaded machine runs seven
processes, and a kill's hand-over (a session timeout, ~10 s) cannot make a signal fill a bar
later than it would in one process. The kill comes right after a base bar's close was marked,
while its features and decisions are in flight.

Checks: every base close of every symbol got exactly one feature vector (one event id, however
often it was announced) and at most one decision id, each decided once; the records and final
positions equal the embedded run's.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from drl_trading.app.process import ServiceProcess
from drl_trading.app.runtime import EmbeddedRuntime
from drl_trading.app.services import build_service
from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.app.topology import TOPOLOGY
from drl_trading.common.adapter.kafka_bus import KafkaBus
from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.domain import Symbol, TimeRange
from drl_trading.common.events import PredictionCompleted, PreprocessDataCompleted, Topic
from drl_trading.execution.adapter.postgres_store import PostgresExecutionStore
from drl_trading.execution.core.records import RecordKind, TradeRecord
from drl_trading.ingest.adapter.clocked_source import ClockedSource
from drl_trading.ingest.adapter.replay_source import ReplaySource
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
from tests.conftest import require_server

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.alone]

SYMBOLS = tuple(Symbol(s) for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"))
RANGE = TimeRange.parse("2024-01-01", "2024-01-16")
REPLAY = TimeRange.parse("2024-01-15T00:00", "2024-01-15T00:40")
MINUTES = 40
KILL_AT = REPLAY.start + timedelta(minutes=20)
"""A base (5m) close in the middle of the replay: killed once execution marked it."""
SCALED = ("preprocess", "inference", "execution")
PARTITIONS = {"preprocess": 4, "inference": 4, "execution": 8}
"""Partitions each group splits (4 per topic; execution consumes two topics)."""
CHAIN = ("preprocess", "inference", "execution", "ingest")
"""Consumer groups in the order events flow: a group found idle after the ones before it has
handled everything they published."""
DSN = "postgresql://drl:drl@127.0.0.1:5432/drl"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    for name, port in (("PostgreSQL", 5432), ("Redis", 6379), ("Kafka", 9092), ("MLflow", 5000)):
        require_server(name, "127.0.0.1", port)
    home = tmp_path_factory.mktemp("scale")
    path = distributed_replay_config(home, "scale", REPLAY.start, REPLAY.end, 60.0, "INFO")
    data = yaml.safe_load(path.read_text())
    data["serve"].update({"symbols": [str(s) for s in SYMBOLS], "speed": None})
    path.write_text(yaml.safe_dump(data))
    settings = load_settings(config_file=path)
    yield path
    with psycopg.connect(DSN, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {settings.postgres.schema_name} CASCADE")
    drop_kafka_namespace(settings)


@pytest.fixture(scope="module")
def trained(config: Path) -> AppSettings:
    settings = load_settings(config_file=config)
    assert ingest_and_train(settings, SYMBOLS, RANGE).champion
    return settings


def _embedded(settings: AppSettings) -> tuple[list[TradeRecord], dict[str, float]]:
    """The same replay in one process (in-memory bus), execution in memory."""
    execution = settings.execution.model_copy(update={"store": "memory"})
    local = settings.model_copy(update={"execution": execution})
    clock = ManualClock(REPLAY.start)
    with EmbeddedRuntime.open(local) as runtime:
        replay = ReplaySource(runtime.market_data, SYMBOLS, REPLAY.start, REPLAY.end)
        online = runtime.enable_online(ClockedSource(replay, clock), clock=clock, symbols=SYMBOLS)
        online.ingest.start(SYMBOLS, REPLAY.start - timedelta(days=1), live_from=REPLAY.start)
        runtime.run_until_idle()
        while online.ingest.pump(1):
            runtime.run_until_idle()
        records = online.execution.store.records_since(REPLAY.start - timedelta(days=1))
        positions = {str(s): p.quantity for s, p in online.execution.service.positions().items()}
    return records, positions


def _settle(ingest: ServiceProcess, timeout: float = 120.0) -> None:
    """Poll ingest (it stores the resampled bars preprocess sends) until every group of the
    chain has committed everything: asked in the order events flow, a group found idle after
    the ones before it has handled what they published before they were found idle."""
    bus = ingest.bus.inner
    assert isinstance(bus, KafkaBus)
    topics = {g: [s.topic for s in TOPOLOGY[g]] for g in CHAIN}
    deadline = time.monotonic() + timeout
    while not all(bus.group_lag(g, topics[g]) == 0 for g in CHAIN):
        assert time.monotonic() < deadline, {g: bus.group_lag(g, topics[g]) for g in CHAIN}
        ingest.bus.poll(timeout=0.02)


def _marked(settings: AppSettings, at: Any) -> bool:
    pg = settings.postgres
    store = PostgresExecutionStore(pg.dsn(), schema=pg.schema_name, migrate=False)
    try:
        marks = [store.symbol_state(s).mark for s in SYMBOLS]
    finally:
        store.close()
    return all(m is not None and m.as_of >= at for m in marks)


def _key(r: TradeRecord) -> tuple[Any, ...]:
    return (r.kind.value, str(r.symbol), r.side, r.signal_time, r.risk_check)


def test_two_instances_per_service_survive_a_kill_and_equal_one(
    trained: AppSettings, config: Path
) -> None:
    logs = config.parent
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports: dict[str, int] = {}
    ingest: ServiceProcess | None = None
    killed: list[str] = []
    try:
        names = [f"{s}-{i}" for s in SCALED for i in (1, 2)]
        for name in names:
            service, instance = name.rsplit("-", 1)
            procs[name] = start_service(config, service, logs, instance)
        for name in names:
            ports[name] = service_port(procs[name], name, logs)
        for name in names:
            assert wait_ready(ports[name], 180), log_tail(logs / f"{name}.log")
        # both instances of each service hold some of its partitions
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            held = {n: metric(ports[n], "drl_assigned_partitions") or 0 for n in names}
            if all(held[n] > 0 for n in names) and all(
                held[f"{s}-1"] + held[f"{s}-2"] == PARTITIONS[s] for s in SCALED
            ):
                break
            time.sleep(0.5)
        assert all(held[n] > 0 for n in names), held

        ingest = build_service("ingest", trained)
        deadline = time.monotonic() + 120
        while not ingest.ready():  # the catch-up done: streaming
            assert time.monotonic() < deadline, "ingest's catch-up did not complete"
            ingest.bus.poll(timeout=0.05)
        assert ingest.tick is not None
        minutes = 0
        while True:
            pumped = sum(ingest.tick() for _ in SYMBOLS)  # one bar of every symbol
            if not pumped:
                break
            minutes += 1
            if not killed and minutes == (KILL_AT - REPLAY.start) // timedelta(minutes=1):
                deadline = time.monotonic() + 30
                while not _marked(trained, KILL_AT):
                    assert time.monotonic() < deadline, "execution never marked the kill bar"
                    ingest.bus.poll(timeout=0.01)
                for service in SCALED:  # kill -9 while the close's vectors and decisions flow
                    procs[f"{service}-1"].kill()
                    killed.append(f"{service}-1")
                for name in killed:
                    procs[name].wait(timeout=10)
            _settle(ingest)
        assert minutes == MINUTES
        for name, proc in procs.items():
            assert name in killed or proc.poll() is None, (name, log_tail(logs / f"{name}.log"))
        # the survivors took every partition over
        for service in SCALED:
            assert metric(ports[f"{service}-2"], "drl_assigned_partitions") == PARTITIONS[service]
        bus = ingest.bus.inner
        assert isinstance(bus, KafkaBus)
        vectors = [
            e
            for e in bus.messages(Topic.PREPROCESS_COMPLETED_ONLINE)
            if isinstance(e, PreprocessDataCompleted)
        ]
        decisions = [
            e for e in bus.messages(Topic.PREDICT_COMPLETED) if isinstance(e, PredictionCompleted)
        ]
        pg = trained.postgres
        store = PostgresExecutionStore(pg.dsn(), schema=pg.schema_name)
        try:
            records = store.records_since(REPLAY.start - timedelta(days=1))
            checkpoint = store.load()
        finally:
            store.close()
    finally:
        stop_services(procs.values())
        if ingest is not None:
            ingest.stop()
            ingest.bus.close()
            for close in ingest.on_close:
                close()

    # every base close of every symbol: one feature vector, however often it was announced
    by_bar: dict[tuple[str, Any], set[str]] = {}
    for e in vectors:
        by_bar.setdefault((str(e.symbols[0]), e.bar_close_time), set()).add(e.event_id)
    closes = [REPLAY.start + timedelta(minutes=5 * k) for k in range(1, MINUTES // 5 + 1)]
    assert set(by_bar) == {(str(s), t) for s in SYMBOLS for t in closes}
    assert all(len(ids) == 1 for ids in by_bar.values()), by_bar
    # every decision: one id per symbol and bar, decided once by execution
    decided: dict[tuple[str, Any], set[str]] = {}
    for d in decisions:
        decided.setdefault((str(d.symbol), d.bar_close_time), set()).add(d.event_id)
    assert all(len(ids) == 1 for ids in decided.values()), decided
    signals = [r.signal_id for r in records if r.signal_id and r.kind is not RecordKind.FILL]
    assert len(signals) == len(set(signals)), "a signal was decided twice"
    assert set(signals) == {d.event_id for d in decisions}
    orders = [r for r in records if r.kind is RecordKind.ORDER]
    assert len({r.client_order_id for r in orders}) == len(orders), "a signal ordered twice"

    # the same trades and the same book as one instance of everything
    embedded, positions = _embedded(trained)
    assert len(orders) >= 3  # besides the decisions that kept the target, all compared below
    got = sorted(records, key=lambda r: str(r.symbol))  # stable: each symbol's order kept
    want = sorted(embedded, key=lambda r: str(r.symbol))
    assert [_key(r) for r in got] == [_key(r) for r in want]
    for g, w in zip(got, want, strict=True):
        assert g.quantity == pytest.approx(w.quantity, rel=1e-9, abs=1e-12)
        if w.price is not None:
            assert g.price == pytest.approx(w.price, rel=1e-12)
    assert checkpoint is not None
    final = {str(s): p.quantity for s, p in checkpoint.portfolio.positions.items()}
    assert final.keys() == positions.keys()
    for s in final:
        assert final[s] == pytest.approx(positions[s], rel=1e-9, abs=1e-12)
