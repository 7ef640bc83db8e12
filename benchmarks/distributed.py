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

    .venv/bin/python benchmarks/distributed.py [--bars N] [--online-bars N] [--skip-online]
        [--only-online]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
import urllib.request
import uuid
import warnings
from datetime import timedelta
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


def online(bars: int, home: Path) -> None:
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

    minutes = bars // len(SYMBOLS)
    replay = TimeRange.parse("2024-01-15", "2024-02-15")
    end = replay.start + timedelta(minutes=minutes)
    # 20 market minutes (40 bars) per second
    config = distributed_replay_config(home, "bench", replay.start, end, 1200.0, "WARNING")
    settings = load_settings(config_file=config)
    t0 = time.perf_counter()
    history = TimeRange(TimeRange.parse("2024-01-01", "2024-01-02").start, end)
    assert ingest_and_train(settings, SYMBOLS, history).champion
    took = time.perf_counter() - t0
    print(f"online set-up (ingest, train, register on the MLflow server): {took:.1f} s")
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports: dict[str, int] = {}
    try:
        for group in (("preprocess", "inference", "execution"), ("ingest",)):
            for name in group:
                procs[name] = start_service(config, name, home)
            for name in group:
                ports[name] = service_port(procs[name], name, home)
            for name in group:
                if not wait_ready(ports[name], 180.0):
                    raise SystemExit(f"{name} never became ready: {log_tail(home / f'{name}.log')}")
        t1 = time.perf_counter()
        while metric(ports["ingest"], "drl_ingest_bars_streamed", timeout=5.0) != bars:
            if time.perf_counter() - t1 > 1800:
                raise SystemExit("replay did not finish")
            time.sleep(1)
        streamed = time.perf_counter() - t1
        time.sleep(3)
        text = urllib.request.urlopen(f"http://127.0.0.1:{ports['execution']}/metrics").read()
        handler_lines = [
            line
            for name in ("preprocess", "inference", "execution")
            for line in urllib.request.urlopen(f"http://127.0.0.1:{ports[name]}/metrics")
            .read()
            .decode()
            .splitlines()
            if line.startswith(("drl_handler_seconds_sum", "drl_handler_seconds_count"))
        ]
        waits = [
            line
            for line in urllib.request.urlopen(f"http://127.0.0.1:{ports['inference']}/metrics")
            .read()
            .decode()
            .splitlines()
            if line.startswith("drl_inference_position_wait_seconds_")
        ]
    finally:
        stop_services(procs.values())
        with psycopg.connect(DSN, autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {settings.postgres.schema_name} CASCADE")
        drop_kafka_namespace(settings)
    print(f"replayed {bars:,} bars through 4 processes in {streamed:.1f} s (paced at 40 bars/s)")
    lines = [x for x in text.decode().splitlines() if x.startswith("drl_stage_latency_seconds")]
    table: dict[str, dict[str, float]] = {}
    for line in lines:
        labels, value = line.rsplit(" ", 1)
        stage = labels.split('stage="')[1].split('"')[0]
        q = labels.split('quantile="')[1].split('"')[0]
        table.setdefault(stage, {})[q] = float(value) * 1e3
    print(f"{'stage (ms, per decision)':<28}{'p50':>9}{'p99':>9}{'max':>9}")
    for stage in ("ingest", "preprocess", "inference", "execution", "total"):
        row = table.get(stage, {})
        print(
            f"{stage:<28}{row.get('p50', 0):9.2f}{row.get('p99', 0):9.2f}{row.get('max', 0):9.2f}"
        )
    print(f"{'handler (ms, mean per event)':<60}{'events':>9}{'mean':>9}")
    sums: dict[tuple[str, str], list[float]] = {}
    for line in handler_lines:
        labels, value = line.rsplit(" ", 1)
        service = labels.split('service="')[1].split('"')[0]
        topic = labels.split('topic="')[1].split('"')[0]
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
    p99 = table.get("total", {}).get("p99", float("inf"))
    verdict = "met" if p99 < 25 else "NOT met"
    print(f"target p99 < 25 ms bar receipt -> order ack across processes: {verdict} ({p99:.2f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--online-bars", type=int, default=10_000)
    parser.add_argument("--skip-online", action="store_true")
    parser.add_argument("--only-online", action="store_true")
    args = parser.parse_args()
    print(f"distributed benchmark on the local stack; {os.cpu_count()} CPUs")
    if not args.only_online:
        postgres(args.bars)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.only_online:
            backfill(args.bars, Path(tmp))
        if not args.skip_online:
            online(args.online_bars, Path(tmp))


if __name__ == "__main__":
    main()
