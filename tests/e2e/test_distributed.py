"""The online workflow across separate processes on the real stack, against the embedded mode.

Set-up (one process, the distributed stores): synthetic history into PostgreSQL, features into
Feast (Parquet offline, Redis online), a model trained and registered on the MLflow server. Then
`drl-trading serve` runs ingest, preprocess, inference and execution as four processes over Kafka
on a replay (market clock), execution keeping its account in PostgreSQL. The same replay runs
embedded (one process, in-memory bus) on the same data and model: the trade records and the final
portfolio must be the same.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from drl_trading.app.runtime import EmbeddedRuntime
from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.domain import Symbol, Timeframe, TimeRange
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

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = (Symbol("BTCUSDT"), Symbol("ETHUSDT"))
RANGE = TimeRange.parse("2024-01-01", "2024-01-16")
REPLAY = TimeRange.parse("2024-01-15T00:00", "2024-01-15T02:00")
BARS = 120 * len(SYMBOLS)
SERVICES = ("preprocess", "inference", "execution", "ingest")
DSN = "postgresql://drl:drl@127.0.0.1:5432/drl"


@pytest.fixture(scope="module")
def stack() -> None:
    for name, port in (("PostgreSQL", 5432), ("Redis", 6379), ("Kafka", 9092), ("MLflow", 5000)):
        require_server(name, "127.0.0.1", port)


@pytest.fixture(scope="module")
def config(stack: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """configs/distributed.yaml, isolated: own schema, Kafka namespace, Feast project, model."""
    home = tmp_path_factory.mktemp("distributed")
    # 2 market minutes per second: the chain (tens of ms) decides each base close long before
    # the next minute arrives, even on a loaded 2-core machine; a replay has no backpressure, so
    # a stall longer than a market minute would fill a signal a bar later than embedded does
    path = distributed_replay_config(home, "e2e", REPLAY.start, REPLAY.end, 120.0, "INFO")
    schema = _settings(path).postgres.schema_name
    yield path
    with psycopg.connect(DSN, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    drop_kafka_namespace(_settings(path))


def _settings(config: Path) -> AppSettings:
    return load_settings(config_file=config)


@pytest.fixture(scope="module")
def trained(config: Path) -> AppSettings:
    settings = _settings(config)
    assert ingest_and_train(settings, SYMBOLS, RANGE).champion
    return settings


def _records(settings: AppSettings) -> list[TradeRecord]:
    pg = settings.postgres
    store = PostgresExecutionStore(pg.dsn(), schema=pg.schema_name)
    try:
        return store.records_since(REPLAY.start - timedelta(days=1))
    finally:
        store.close()


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
        store = online.execution.store
        records = store.records_since(REPLAY.start - timedelta(days=1))
        positions = {str(s): p.quantity for s, p in online.execution.service.positions().items()}
    return records, positions


def _key(r: TradeRecord) -> tuple[Any, ...]:
    return (r.kind.value, str(r.symbol), r.side, r.signal_time, r.risk_check)


def test_online_workflow_across_processes_equals_embedded(
    trained: AppSettings, config: Path
) -> None:
    logs = config.parent
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports: dict[str, int] = {}
    try:
        # a malformed message on every topic a service consumes: each goes to its DLQ with the
        # decode error, and the stream behind it goes on
        poison = _poison(trained)
        # consumers first, ingest last (as a deployment rolls out): a bar streamed before its
        # consumers joined would be handled late, and inference skips superseded bars
        for group in (SERVICES[:3], SERVICES[3:]):
            _start(config, group, logs, procs, ports)
        deadline = time.monotonic() + 240
        streamed = None
        while time.monotonic() < deadline:
            streamed = metric(ports["ingest"], "drl_ingest_bars_streamed")
            if streamed == BARS:
                break
            for name, proc in procs.items():
                assert proc.poll() is None, (name, log_tail(logs / f"{name}.log"))
            time.sleep(0.5)
        assert streamed == BARS, (streamed, {n: log_tail(logs / f"{n}.log") for n in procs})
        for name in SERVICES:
            ready = urllib.request.urlopen(f"http://127.0.0.1:{ports[name]}/readyz", timeout=2)
            assert ready.status == 200
            health = urllib.request.urlopen(f"http://127.0.0.1:{ports[name]}/healthz", timeout=2)
            assert health.status == 200
        # the chain settles: the last base close's signals are decided
        expected = BARS // 5
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            handled = metric(
                ports["execution"],
                f'drl_events_handled_total{{service="execution",topic="{"completed.predict"}"}}',
            )
            if handled is not None and handled >= expected:
                break
            time.sleep(0.5)
        time.sleep(1.0)
        decided = metric(
            ports["execution"], 'drl_stage_seconds_count{service="execution",stage="total"}'
        )
        assert decided is not None and decided >= expected
        distributed = _records(trained)
    finally:
        stop_services(procs.values())
    for name, proc in procs.items():
        assert proc.returncode == 0, (name, proc.returncode, log_tail(logs / f"{name}.log"))
    letters = _dead_letters(trained, poison)
    assert set(letters) == set(poison), letters
    assert all(err == "EventDecodeError" for err in letters.values()), letters
    # structured logs: JSON lines carrying correlation ids
    lines = [json.loads(x) for x in (logs / "execution.log").read_text().splitlines() if x]
    assert any("correlation_id" in x for x in lines)

    embedded, positions = _embedded(trained)
    orders = [r for r in distributed if r.kind is RecordKind.ORDER]
    assert len(orders) > 5
    # symbols interleave differently across processes: compare each symbol's records in order
    distributed = sorted(distributed, key=lambda r: str(r.symbol))  # stable: keeps each order
    embedded = sorted(embedded, key=lambda r: str(r.symbol))
    assert [_key(r) for r in distributed] == [_key(r) for r in embedded]
    for got, want in zip(distributed, embedded, strict=True):
        assert got.quantity == pytest.approx(want.quantity, rel=1e-9, abs=1e-12)
        if want.price is not None:
            assert got.price == pytest.approx(want.price, rel=1e-12)
        assert got.fee == pytest.approx(want.fee, rel=1e-9, abs=1e-12)
    pg = trained.postgres
    store = PostgresExecutionStore(pg.dsn(), schema=pg.schema_name)
    checkpoint = store.load()
    store.close()
    assert checkpoint is not None
    final = {str(s): p.quantity for s, p in checkpoint.portfolio.positions.items()}
    assert final.keys() == positions.keys()
    for s in final:
        assert final[s] == pytest.approx(positions[s], rel=1e-9, abs=1e-12)


def _start(
    config: Path,
    names: tuple[str, ...],
    logs: Path,
    procs: dict[str, subprocess.Popen[bytes]],
    ports: dict[str, int],
) -> None:
    """Start ``names`` side by side with ``config`` (each waits seconds for its imports) and
    wait until every one is ready; their processes and ports go into ``procs`` and ``ports``."""
    for name in names:
        procs[name] = start_service(config, name, logs)
    for name in names:
        ports[name] = service_port(procs[name], name, logs)
    for name in names:
        _wait_ready(ports[name], name, logs)


def _restart_stack(service: str) -> None:
    """Stop and start one server of the local stack with the project's own script."""
    for action in ("down", "up"):
        done = subprocess.run(
            ["bash", str(ROOT / "scripts" / "stack.sh"), action, service],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, (action, service, done.stdout[-2000:], done.stderr[-2000:])


@pytest.mark.parametrize("fault", ["processes", "infrastructure"])
def test_a_fault_mid_replay_loses_nothing_and_doubles_nothing(
    trained: AppSettings, config: Path, fault: str
) -> None:
    """In the middle of a replay: kill -9 of execution and a restart, then (once it is ready)
    kill -9 of preprocess and a restart; or a restart of PostgreSQL and then of Kafka under the
    running services. Execution resumes its account from PostgreSQL, a restarted preprocess
    rebuilds its state from the stored bars at the first bar Kafka redelivers, the services
    reconnect to restarted servers. Then: every base close got its feature vector and its stored
    bar, no signal placed a second order, no order filled twice, and every published prediction
    was decided exactly once. (The two process kills share one replay: each replay costs about a
    minute and a half of the suite.)"""
    logs = config.parent / fault
    logs.mkdir(exist_ok=True)
    # a second replay over the same day, in its own namespace and schema
    data = yaml.safe_load(config.read_text())
    run = uuid.uuid4().hex[:8]
    data["bus"]["kafka"]["namespace"] = f"{fault}-{run}."
    data["postgres"]["schema_name"] = f"fault_{run}"
    data["feature_store"]["project"] = f"fault_{run}"  # the first replay's vectors are newer
    path = logs / "fault.yaml"
    path.write_text(yaml.safe_dump(data))
    settings = _settings(path)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports: dict[str, int] = {}
    try:
        # the account and the replayed bars live in the fault schema: copy the bars over
        with psycopg.connect(DSN, autocommit=True) as con:
            con.execute(f"CREATE SCHEMA fault_{run}")
        _copy_bars(trained, settings)
        # the consumers start side by side (each waits seconds for its imports), then ingest
        _start(path, SERVICES[:3], logs, procs, ports)
        _start(path, SERVICES[3:], logs, procs, ports)
        time.sleep(15)  # some base closes decided
        if fault == "infrastructure":
            _restart_stack("postgres")
            time.sleep(5)
            _restart_stack("kafka")
        else:
            for name in ("execution", "preprocess"):
                procs[name].kill()  # kill -9: no shutdown, nothing flushed or committed after
                procs[name].wait(timeout=10)
                _start(path, (name,), logs, procs, ports)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if metric(ports["ingest"], "drl_ingest_bars_streamed") == BARS:
                break
            for name, proc in procs.items():
                assert proc.poll() is None, (name, log_tail(logs / f"{name}.log"))
            time.sleep(0.5)
        # the chain settles: nothing left for preprocess, inference and execution
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lags = [metric(ports[n], f'drl_consumer_lag{{service="{n}"}}') for n in SERVICES[:3]]
            if all(lag == 0 for lag in lags):
                break
            time.sleep(1.0)
        time.sleep(6)  # lag is measured every 5 s
        for name, proc in procs.items():
            assert proc.poll() is None, (name, log_tail(logs / f"{name}.log"))
        records = _records(settings)
        stored = _stored_base_bars(settings)
    finally:
        stop_services(procs.values())
        with psycopg.connect(DSN, autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS fault_{run} CASCADE")
    orders = [r for r in records if r.kind is RecordKind.ORDER]
    fills = [r for r in records if r.kind is RecordKind.FILL]
    assert orders, log_tail(logs / "execution.log")
    coids = [r.client_order_id for r in orders]
    assert len(coids) == len(set(coids)), "a signal placed two orders"
    signals = [r.signal_id for r in records if r.signal_id and r.kind is not RecordKind.FILL]
    assert len(signals) == len(set(signals)), "a signal was decided twice"
    assert len({r.client_order_id for r in fills}) == len(fills), "an order filled twice"
    from drl_trading.common.events import PredictionCompleted, PreprocessDataCompleted, Topic

    bus = _bus(settings)
    try:
        published = {
            e.event_id
            for e in bus.messages(Topic.PREDICT_COMPLETED)
            if isinstance(e, PredictionCompleted)
        }
        vectors = {
            (str(e.symbols[0]) if e.symbols else "", e.bar_close_time)
            for e in bus.messages(Topic.PREPROCESS_COMPLETED_ONLINE)
            if isinstance(e, PreprocessDataCompleted)
        }
    finally:
        bus.close()
        drop_kafka_namespace(settings)
    # every prediction published reached execution and was decided once, across the fault
    # (inference skips bars it could only decide late, while a service was down: not traded)
    assert published == set(signals), (len(published), len(set(signals)))
    assert len(published) >= BARS // 5 // 2
    # no bar lost, no feature vector missed
    closes = [REPLAY.start + timedelta(minutes=5 * k) for k in range(1, BARS // 10 + 1)]
    missing = {(str(s), t) for s in SYMBOLS for t in closes} - vectors
    assert not missing, sorted(missing)[:5]
    assert stored == {str(s): BARS // 10 for s in SYMBOLS}, stored


def _stored_base_bars(settings: AppSettings) -> dict[str, int]:
    """The replay's 5m bars ingest stored from preprocess's requests, per symbol."""
    from drl_trading.common.adapter.postgres_market_data import PostgresMarketData

    repo = PostgresMarketData(settings.postgres.dsn(), schema=settings.postgres.schema_name)
    try:
        return {
            str(s): repo.read_bars(s, Timeframe.M5, REPLAY.start, REPLAY.end).height
            for s in SYMBOLS
        }
    finally:
        repo.close()


def _copy_bars(source: AppSettings, target: AppSettings) -> None:
    from drl_trading.common.adapter.postgres_market_data import PostgresMarketData

    src = PostgresMarketData(source.postgres.dsn(), schema=source.postgres.schema_name)
    dst = PostgresMarketData(target.postgres.dsn(), schema=target.postgres.schema_name)
    try:
        for symbol in SYMBOLS:
            bars = src.read_bars(symbol, Timeframe.M1, RANGE.start, RANGE.end)
            dst.upsert_bars(symbol, Timeframe.M1, bars)
    finally:
        src.close()
        dst.close()


def _bus(settings: AppSettings) -> Any:
    from drl_trading.app.infrastructure import build_bus

    return build_bus(settings)


def _poison(settings: AppSettings) -> list[str]:
    from drl_trading.common.events import Topic

    topics = [
        Topic.PREPROCESS_REQUESTED,
        Topic.PREPROCESS_COMPLETED_CATCHUP,
        Topic.PREPROCESS_COMPLETED_ONLINE,
        Topic.STORE_RESAMPLED_REQUESTED,
        Topic.PREDICT_COMPLETED,
    ]
    bus = _bus(settings)
    try:
        for i, topic in enumerate(topics):
            payload = b"\xff not an event" if i % 2 else b'{"event_type": "nope"}'
            bus.publish_raw(str(topic), payload, key="BTCUSDT")
    finally:
        bus.close()
    return [str(t) for t in topics]


def _dead_letters(settings: AppSettings, topics: list[str]) -> dict[str, str]:
    """Topic -> error type of the dead letters that arrived for it."""
    from drl_trading.common.events import DeadLetter, Topic

    bus = _bus(settings)
    out: dict[str, str] = {}
    try:
        for topic in topics:
            for letter in bus.messages(Topic.dlq(topic)):
                if isinstance(letter, DeadLetter):
                    out[topic] = letter.error_type
    finally:
        bus.close()
    return out


def _wait_ready(port: int, name: str, logs: Path, timeout: float = 120.0) -> None:
    if not wait_ready(port, timeout):
        raise AssertionError(f"{name} not ready in {timeout} s:\n{log_tail(logs / f'{name}.log')}")
