"""Throughput of the online chain with one and with two instances of each scaled service.

On the local stack (bash scripts/stack.sh up): a tiny model trained and registered on the MLflow
server, then, per round, preprocess, inference and execution started as one or two
`drl-trading serve` processes each (with ``--single-execution`` also a third candidate: two
preprocess and inference, one execution), all instances of a service in one consumer group, and a
replay of ``--minutes`` market minutes of ``--symbols`` symbols pumped as fast as possible by an
ingest in this process. The first ``--warm-minutes`` are replayed untimed and drained (each
instance rebuilds a symbol's state from the stored bars at its first bar: a start-up cost). The
figure is bars/s: the other bars over the wall time from the first of them published to every
consumer group having committed everything (the chain drained). Rounds
alternate the candidates (1, 2, 1, 2, ...), each on the next slice of the same day, on one
account, namespace and feature project; the start-up of the processes is not timed.

Every figure is a ratio measured in one run; on a 2-core machine seven busy processes share two
cores, so a second instance cannot add CPU: the ratio there says what the hand-off costs, not
what a machine with a core per instance gains.

    .venv/bin/python benchmarks/scale_out.py [--symbols N] [--minutes N] [--rounds N]
        [--warm-minutes N] [--single-execution]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path

import psycopg
import yaml

from distributed import with_replay_range
from drl_trading.app.settings import load_settings
from drl_trading.common.domain import Symbol, TimeRange
from local_stack import require_servers

warnings.filterwarnings("ignore", category=DeprecationWarning)
DSN = "postgresql://drl:drl@127.0.0.1:5432/drl"
SCALED = ("preprocess", "inference", "execution")
CHAIN = ("preprocess", "inference", "execution", "ingest")
NAMES = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "LTCUSDT")


def _config(home: Path, symbols: list[Symbol], replay: TimeRange) -> Path:
    from drl_trading.testing.shared_stack import distributed_replay_config

    path = distributed_replay_config(home, "scale", replay.start, replay.end, 60.0, "WARNING")
    data = yaml.safe_load(path.read_text())
    data["serve"].update({"symbols": [str(s) for s in symbols], "speed": None})
    path.write_text(yaml.safe_dump(data))
    return path


def _round(config: Path, instances: tuple[int, ...], home: Path, warm: int) -> tuple[float, int]:
    """One replay with ``instances`` processes of each scaled service (in `SCALED` order):
    ``warm`` bars untimed (an instance rebuilds a symbol's state at its first bar: start-up,
    not throughput), drained, then the rest timed; (seconds, bars timed)."""
    settings = load_settings(config_file=config)
    from drl_trading.app.services import build_service
    from drl_trading.app.topology import TOPOLOGY
    from drl_trading.common.adapter.kafka_bus import KafkaBus
    from drl_trading.testing.service_processes import (
        log_tail,
        service_port,
        start_service,
        stop_services,
        wait_ready,
    )

    procs: dict[str, subprocess.Popen[bytes]] = {}
    ingest = None
    try:
        names = [
            f"{s}-{i}" for s, n in zip(SCALED, instances, strict=True) for i in range(1, n + 1)
        ]
        for name in names:
            service, instance = name.rsplit("-", 1)
            procs[name] = start_service(config, service, home, instance)
        for name in names:
            port = service_port(procs[name], name, home)
            if not wait_ready(port, 180.0):
                raise SystemExit(f"{name} never became ready: {log_tail(home / f'{name}.log')}")
        ingest = build_service("ingest", settings)
        while not ingest.ready():
            ingest.bus.poll(timeout=0.05)
        bus = ingest.bus.inner
        assert isinstance(bus, KafkaBus)
        assert ingest.tick is not None
        topics = {g: [s.topic for s in TOPOLOGY[g]] for g in CHAIN}

        def drain() -> None:  # every group committed everything (in the order events flow)
            while True:
                ingest.bus.poll(timeout=0.05)
                if all(bus.group_lag(g, topics[g]) == 0 for g in CHAIN):
                    return
                dead = [n for n, p in procs.items() if p.poll() is not None]
                if dead:
                    raise SystemExit(f"{dead[0]} stopped: {log_tail(home / f'{dead[0]}.log')}")

        for _ in range(warm):
            ingest.tick()
            ingest.bus.poll(timeout=0)
        drain()
        started = time.perf_counter()
        bars = 0
        while pumped := ingest.tick():
            bars += pumped
            ingest.bus.poll(timeout=0)
        drain()
        return time.perf_counter() - started, bars
    finally:
        stop_services(procs.values())
        if ingest is not None:
            ingest.bus.close()
            for close in ingest.on_close:
                close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--symbols", type=int, default=4, help="Symbols replayed (2..8).")
    parser.add_argument("--minutes", type=int, default=60, help="Market minutes per round.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds per candidate.")
    parser.add_argument(
        "--warm-minutes", type=int, default=10, help="Minutes replayed untimed first each round."
    )
    parser.add_argument(
        "--single-execution",
        action="store_true",
        help="Also two preprocess and inference with one execution (its account lock apart).",
    )
    args = parser.parse_args()
    if not 2 <= args.symbols <= len(NAMES):
        raise SystemExit(f"--symbols must be within 2..{len(NAMES)}")
    require_servers("PostgreSQL", "Redis", "Kafka", "MLflow")
    from drl_trading.testing.shared_stack import drop_kafka_namespace
    from drl_trading.testing.tiny_training import ingest_and_train

    symbols = [Symbol(s) for s in NAMES[: args.symbols]]
    candidates: dict[str, tuple[int, ...]] = {"one each": (1, 1, 1), "two each": (2, 2, 2)}
    if args.single_execution:
        candidates["two, one execution"] = (2, 2, 1)
    slices = args.rounds * len(candidates)
    train = TimeRange.parse("2024-01-01", "2024-01-15")
    day = train.end
    replay = TimeRange(day, day + timedelta(minutes=args.minutes * slices))
    with tempfile.TemporaryDirectory(prefix="drl-scale-") as tmp:
        home = Path(tmp)
        config = _config(home, symbols, replay)
        settings = load_settings(config_file=config)
        run = settings.postgres.schema_name
        try:
            print(f"training a tiny model on {len(symbols)} symbols ...", flush=True)
            ingest_and_train(settings, tuple(symbols), TimeRange(train.start, replay.end))
            results: dict[str, list[float]] = {c: [] for c in candidates}
            k = 0
            for r in range(args.rounds):
                for c, counts in candidates.items():
                    start = replay.start + timedelta(minutes=args.minutes * k)
                    part = with_replay_range(
                        config, str(k), start, start + timedelta(minutes=args.minutes)
                    )
                    warm = args.warm_minutes * len(symbols)
                    seconds, bars = _round(part, counts, home, warm)
                    results[c].append(bars / seconds)
                    print(
                        f"round {r + 1}, {c}: {bars} bars in {seconds:.2f} s = "
                        f"{bars / seconds:,.0f} bars/s",
                        flush=True,
                    )
                    k += 1
        finally:  # what this run created, and nothing else
            try:
                with psycopg.connect(DSN, autocommit=True) as con:
                    con.execute(f"DROP SCHEMA IF EXISTS {settings.postgres.schema_name} CASCADE")
                drop_kafka_namespace(settings)
            except Exception as exc:
                print(f"clean-up incomplete ({exc}): schema and namespace {run}", file=sys.stderr)
    print()
    print(f"{len(symbols)} symbols, {args.minutes} minutes a round, {args.rounds} rounds each")
    one = results["one each"]
    for c, v in results.items():
        line = (
            f"{c:<20} {statistics.median(v):8,.0f} bars/s (min {min(v):,.0f} .. max {max(v):,.0f})"
        )
        if c != "one each":
            ratios = sorted(b / a for a, b in zip(one, v, strict=True))
            line += (
                f"   / one each: {statistics.median(ratios):.2f}x "
                f"({ratios[0]:.2f}..{ratios[-1]:.2f}, each round's pair)"
            )
        print(line)


if __name__ == "__main__":
    main()
