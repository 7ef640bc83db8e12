"""Benchmarks of the distributed deployment on the local stack (bash scripts/stack.sh up).

1. PostgreSQL market data: upsert of N 1m bars (binary COPY + upsert), the same again (every row
   an update), and a range read (binary COPY out), rows/s.
2. Backfill through Kafka + PostgreSQL: N synthetic 1m bars ingested (validated, written to
   PostgreSQL), `requested.preprocess-data` published on Kafka, preprocess consuming it in its
   own consumer group (resample, features, Feast offline write) until
   `completed.preprocess-data.offline` arrives: bars/s end to end.
3. Online latency across processes: a tiny model trained and registered on the MLflow server,
   then ingest, preprocess, inference and execution as four `drl-trading serve` processes on a
   replay of ``--online-bars`` bars; the latency from a bar's receipt by ingest to the execution
   decision (order acknowledged) is read from execution's per-stage histograms (/metrics).
   In the same run, alternating with the services (``--rounds``, default 3, each replaying
   ``--online-bars / rounds`` consecutive bars), the latency floor: the same four processes,
   topics, client settings and bars with handlers that only forward (`latency_floor.py`); it
   prints total p99 / floor p99 and each stage's overhead above the floor's hop.

    .venv/bin/python benchmarks/distributed.py [--bars N] [--online-bars N] [--rounds N]
        [--skip-online] [--only-online]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import warnings
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import yaml

from drl_trading.app.settings import load_settings
from drl_trading.common.adapter.kafka_bus import KafkaBus, KafkaOptions
from drl_trading.common.adapter.postgres_market_data import PostgresMarketData
from drl_trading.common.domain import Symbol, Timeframe, TimeRange
from drl_trading.common.events import Event, PreprocessDataCompleted, Topic
from drl_trading.ingest.adapter.synthetic_provider import SyntheticProvider

warnings.filterwarnings("ignore", category=DeprecationWarning)
ROOT = Path(__file__).resolve().parents[1]
DSN = os.environ.get("DRL_BENCH_PG", "postgresql://drl:drl@127.0.0.1:5432/drl")
SYMBOLS = (Symbol("BTCUSDT"), Symbol("ETHUSDT"))


def rate(n: int, seconds: float) -> str:
    return f"{seconds:8.2f} s  {n / seconds:12,.0f} /s"


def postgres(n: int) -> None:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    start = TimeRange.parse("2020-01-01", "2030-01-01").start
    import polars as pl

    provider = SyntheticProvider(seed=3)
    bars = pl.concat(
        list(provider.fetch(Symbol("BTCUSDT"), Timeframe.M1, start, start + timedelta(minutes=n)))
    )
    repo = PostgresMarketData(DSN, schema=schema)
    try:
        t0 = time.perf_counter()
        first = repo.upsert_bars(Symbol("BTCUSDT"), Timeframe.M1, bars)
        t1 = time.perf_counter()
        again = repo.upsert_bars(Symbol("BTCUSDT"), Timeframe.M1, bars)
        t2 = time.perf_counter()
        back = repo.read_bars(Symbol("BTCUSDT"), Timeframe.M1, start, start + timedelta(days=9999))
        t3 = time.perf_counter()
    finally:
        repo.close()
        with psycopg.connect(DSN, autocommit=True) as con:
            con.execute(f"DROP SCHEMA {schema} CASCADE")
    assert first.inserted == n
    assert again.unchanged == n
    assert back.height == n
    print(f"PostgreSQL upsert of {n:,} new bars (COPY binary + upsert)   {rate(n, t1 - t0)}")
    print(f"PostgreSQL upsert of the same {n:,} bars (all unchanged)      {rate(n, t2 - t1)}")
    print(f"PostgreSQL range read of {n:,} bars (COPY binary out)          {rate(n, t3 - t2)}")


def backfill(n: int, home: Path) -> None:
    from drl_trading.app.infrastructure import build_feature_store
    from drl_trading.app.ingest import bootstrap_ingest
    from drl_trading.app.preprocess import bootstrap_preprocess
    from drl_trading.ingest.core.service import TrainingDataRequest

    run = uuid.uuid4().hex[:8]
    data = yaml.safe_load((ROOT / "configs" / "distributed.yaml").read_text())
    data["home"] = str(home / "backfill")
    data["postgres"]["schema_name"] = f"bench_{run}"
    data["bus"]["kafka"]["namespace"] = f"bench-{run}."
    data["feature_store"]["project"] = f"bench_{run}"
    data["logging"] = {"level": "WARNING", "json_output": False}
    config = home / "backfill.yaml"
    config.write_text(yaml.safe_dump(data))
    settings = load_settings(config_file=config)
    k = settings.bus.kafka
    options = KafkaOptions(bootstrap_servers=k.bootstrap_servers, namespace=k.namespace)
    ingest_bus, preprocess_bus = KafkaBus(options), KafkaBus(options)
    repo = PostgresMarketData(settings.postgres.dsn(), schema=settings.postgres.schema_name)
    features = build_feature_store(settings)
    done: list[Event] = []
    try:
        bootstrap_preprocess(settings, preprocess_bus, repo, features)
        preprocess_bus.subscribe(
            Topic.PREPROCESS_COMPLETED_OFFLINE, group="bench", handler=done.append
        )
        preprocess_bus.drain(idle_s=0.2)  # consumers joined
        start = TimeRange.parse("2020-01-01", "2020-01-02").start
        rng = TimeRange(start, start + timedelta(minutes=n))
        ingest = bootstrap_ingest(settings, SyntheticProvider(seed=3), repo, ingest_bus)
        t0 = time.perf_counter()
        ingest.ingest_history(TrainingDataRequest((SYMBOLS[0],), rng))
        t1 = time.perf_counter()
        while not done and time.perf_counter() - t1 < 600:
            preprocess_bus.poll(timeout=0.1)
        t2 = time.perf_counter()
    finally:
        preprocess_bus.close()
        ingest_bus.close()
        ingest_bus.drop_namespace()  # after the consumers' final commits
        repo.close()
        with psycopg.connect(DSN, autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS bench_{run} CASCADE")
    assert done, "no completion"
    assert isinstance(done[0], PreprocessDataCompleted)
    rows = done[0].outputs[0].feature_rows
    print(f"backfill {n:,} bars: ingest (generate, validate, PostgreSQL)  {rate(n, t1 - t0)}")
    print(f"  then preprocess over Kafka (read, resample, {rows:,} feature rows) {t2 - t1:6.2f} s")
    print(f"  ingest -> preprocess end to end                              {rate(n, t2 - t0)}")


CHAIN = ("ingest", "preprocess", "inference", "execution")
STAGES = (*CHAIN, "total")


def _chain(
    config: Path, home: Path, bars: int, floor: bool
) -> tuple[float, dict[str, dict[str, float]], list[str], list[str]]:
    """One replay through four processes: the services (`drl-trading serve`) or their floor
    (`latency_floor.py`); returns the replay's wall time, execution's stage table (ms by stage
    and quantile) and, for the services, their handler and position-wait metric lines."""
    from drl_trading.testing.service_processes import (
        log_tail,
        metric,
        service_port,
        start_service,
        stop_services,
        wait_ready,
    )

    def start(name: str) -> subprocess.Popen[bytes]:
        if not floor:
            return start_service(config, name, home)
        script = Path(__file__).with_name("latency_floor.py")
        return subprocess.Popen(
            [sys.executable, str(script), "--config", str(config), name],
            stdout=subprocess.PIPE,
            stderr=(home / f"floor-{name}.log").open("ab"),
        )

    def scrape(port: int) -> list[str]:
        url = f"http://127.0.0.1:{port}/metrics"
        body: bytes = urllib.request.urlopen(url).read()
        return body.decode().splitlines()

    logs = {name: home / (f"floor-{name}.log" if floor else f"{name}.log") for name in CHAIN}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports: dict[str, int] = {}
    try:
        for group in (("preprocess", "inference", "execution"), ("ingest",)):
            for name in group:
                procs[name] = start(name)
            for name in group:
                ports[name] = service_port(procs[name], name, logs[name].parent)
            for name in group:
                if not wait_ready(ports[name], 180.0):
                    raise SystemExit(f"{name} never became ready: {log_tail(logs[name])}")
        t1 = time.perf_counter()
        while metric(ports["ingest"], "drl_ingest_bars_streamed", timeout=5.0) != bars:
            dead = [name for name, proc in procs.items() if proc.poll() is not None]
            if dead:
                raise SystemExit(f"{dead[0]} stopped mid-replay: {log_tail(logs[dead[0]])}")
            if time.perf_counter() - t1 > 1800:
                raise SystemExit(f"replay did not finish: {log_tail(logs['ingest'])}")
            time.sleep(1)
        streamed = time.perf_counter() - t1
        time.sleep(3)
        text = scrape(ports["execution"])
        handler_lines = (
            []
            if floor
            else [
                line
                for name in ("preprocess", "inference", "execution")
                for line in scrape(ports[name])
                if line.startswith(("drl_handler_seconds_sum", "drl_handler_seconds_count"))
            ]
        )
        waits = (
            []
            if floor
            else [
                line
                for line in scrape(ports["inference"])
                if line.startswith("drl_inference_position_wait_seconds_")
            ]
        )
    finally:
        stop_services(procs.values())
    table: dict[str, dict[str, float]] = {}
    for line in text:
        if not line.startswith("drl_stage_latency_seconds"):
            continue
        labels, value = line.rsplit(" ", 1)
        stage = labels.split('stage="')[1].split('"')[0]
        q = labels.split('quantile="')[1].split('"')[0]
        table.setdefault(stage, {})[q] = float(value) * 1e3
    return streamed, table, handler_lines, waits


def _floor_config(config: Path) -> Path:
    """The services' configuration on a namespace of its own: the same topic names, partitions
    and client settings, and no message of one chain reaches the other's consumer groups."""
    data = yaml.safe_load(config.read_text())
    data["bus"]["kafka"]["namespace"] = data["bus"]["kafka"]["namespace"] + "floor."
    path = config.with_name(config.stem + "-floor.yaml")
    path.write_text(yaml.safe_dump(data))
    return path


def _with_range(config: Path, suffix: str, start: datetime, end: datetime) -> Path:
    data = yaml.safe_load(config.read_text())
    data["serve"].update({"start": start.isoformat(), "end": end.isoformat()})
    path = config.with_name(f"{config.stem}-{suffix}.yaml")
    path.write_text(yaml.safe_dump(data))
    return path


def online(bars: int, home: Path, rounds: int) -> None:
    """The four services against their floor (`latency_floor.py`), alternated: ``rounds``
    rounds, each a consecutive slice of ``bars / rounds`` bars replayed by the services (which
    continue their account from the slice before) and, in the other order every other round, by
    the floor on the same bars."""
    from drl_trading.testing.shared_stack import distributed_replay_config, drop_kafka_namespace
    from drl_trading.testing.tiny_training import ingest_and_train
    from latency_floor import print_floor_table

    minutes = bars // len(SYMBOLS) // rounds
    per_round = minutes * len(SYMBOLS)
    replay = TimeRange.parse("2024-01-15", "2024-02-15")
    end = replay.start + timedelta(minutes=minutes * rounds)
    # 20 market minutes (40 bars) per second
    config = distributed_replay_config(home, "bench", replay.start, end, 1200.0, "WARNING")
    floor_config = _floor_config(config)
    settings = load_settings(config_file=config)
    t0 = time.perf_counter()
    history = TimeRange(TimeRange.parse("2024-01-01", "2024-01-02").start, end)
    assert ingest_and_train(settings, SYMBOLS, history).champion
    took = time.perf_counter() - t0
    print(f"online set-up (ingest, train, register on the MLflow server): {took:.1f} s")
    print(
        f"{rounds} rounds of {per_round:,} bars (40 bars/s), services and floor alternating "
        f"(floor: the same 4 processes, topics, client settings and bars, handlers that forward)"
    )
    real: list[dict[str, tuple[float, float]]] = []
    floor: list[dict[str, tuple[float, float]]] = []
    handler_lines: list[str] = []
    waits: list[str] = []
    try:
        for r in range(rounds):
            lo = replay.start + timedelta(minutes=minutes * r)
            hi = lo + timedelta(minutes=minutes)
            runs = [("services", config), ("floor", floor_config)]
            for kind, base in runs if r % 2 == 0 else runs[::-1]:
                cfg = _with_range(base, f"round{r}", lo, hi)
                streamed, table, lines, w = _chain(cfg, home, per_round, kind == "floor")
                got = {
                    s: (table.get(s, {}).get("p50", 0.0), table.get(s, {}).get("p99", 0.0))
                    for s in STAGES
                }
                (floor if kind == "floor" else real).append(got)
                if lines:
                    handler_lines, waits = lines, w
                print(
                    f"round {r + 1} {kind:<8} {per_round:,} bars in {streamed:5.1f} s: total p50 "
                    f"{got['total'][0]:6.2f} ms, p99 {got['total'][1]:6.2f} ms, max "
                    f"{table.get('total', {}).get('max', 0.0):6.2f} ms"
                )
    finally:
        with psycopg.connect(DSN, autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {settings.postgres.schema_name} CASCADE")
        drop_kafka_namespace(settings)
        drop_kafka_namespace(load_settings(config_file=floor_config))
    labels = [
        (f"{s} (bus hand-over included)" if s != "total" else "total, receipt -> ack", s)
        for s in STAGES
    ]
    print_floor_table(
        "bar receipt -> order decided across 4 processes, services against the floor",
        labels,
        real,
        floor,
        "total",
    )
    print(f"{'handler (ms, mean per event, last services round)':<60}{'events':>9}{'mean':>9}")
    sums: dict[tuple[str, str], list[float]] = {}
    for line in handler_lines:
        labels_, value = line.rsplit(" ", 1)
        service = labels_.split('service="')[1].split('"')[0]
        topic = labels_.split('topic="')[1].split('"')[0]
        sums.setdefault((service, topic), [0.0, 0.0])[
            line.startswith("drl_handler_seconds_count")
        ] = float(value)
    for (service, topic), (total, count) in sorted(sums.items()):
        if count:
            print(f"{service + ' ' + topic:<60}{count:9.0f}{total / count * 1e3:9.2f}")
    wait = {x.split("{")[0].rsplit("_", 1)[1]: float(x.rsplit(" ", 1)[1]) for x in waits}
    if wait.get("count"):
        print(
            f"inference waited for execution's mark {wait['count']:.0f} times, "
            f"mean {wait['sum'] / wait['count'] * 1e3:.2f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--online-bars", type=int, default=10_000)
    parser.add_argument("--skip-online", action="store_true")
    parser.add_argument("--only-online", action="store_true")
    parser.add_argument(
        "--rounds", type=int, default=3, help="services/floor rounds; --online-bars is split"
    )
    args = parser.parse_args()
    print(f"distributed benchmark on the local stack; {os.cpu_count()} CPUs")
    if not args.only_online:
        postgres(args.bars)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.only_online:
            backfill(args.bars, Path(tmp))
        if not args.skip_online:
            online(args.online_bars, Path(tmp), args.rounds)


if __name__ == "__main__":
    main()
