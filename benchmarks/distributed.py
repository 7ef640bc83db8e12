"""Benchmarks of the distributed deployment on the local stack (bash scripts/stack.sh up).

0. Execution's commit of a bar that only moved the marks, durable (before issue 15's latency
   fixes) against not durable at once (``synchronous_commit`` off), alternated: their ratio.
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
   prints total p99 / floor p99 and each stage's overhead above the floor's hop. With
   ``--compare-old``, each round also replays the next slice of as many bars with the services
   as they were before issue 15's latency fixes (`old_behaviour.py`), on the same account and
   topics, and prints their ratio to the same round's floor.

    .venv/bin/python benchmarks/distributed.py [--bars N] [--online-bars N] [--rounds N]
        [--skip-online] [--only-online] [--only-commits] [--compare-old] [--profile DIR]
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


def mark_commits(n: int, rounds: int = 5) -> None:
    """Execution's commit of a bar that only moved the marks, on PostgreSQL: durable (as before
    issue 15's latency fixes: the commit waits for the WAL flush) against ``durable=False``
    (``synchronous_commit`` off for that transaction), alternating in rounds of ``n`` commits;
    the ratio per round, median (min..max)."""
    import statistics

    from drl_trading.execution.adapter.postgres_store import PostgresExecutionStore
    from drl_trading.execution.core.records import Checkpoint, Mark, PortfolioSnapshot
    from drl_trading.execution.core.risk import initial_risk_state
    from latency_floor import spread

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    store = PostgresExecutionStore(DSN, schema=schema)
    t0 = TimeRange.parse("2024-01-01", "2024-01-02").start
    risk = initial_risk_state(10_000.0, t0)
    times: dict[bool, list[float]] = {True: [], False: []}
    try:
        minute = 0
        for r in range(rounds):
            for durable in (True, False) if r % 2 == 0 else (False, True):
                laps = []
                for _ in range(n):
                    minute += 1
                    cp = Checkpoint(
                        PortfolioSnapshot(10_000.0),
                        risk,
                        marks={SYMBOLS[0]: Mark(100.0 + minute, t0 + timedelta(minutes=minute))},
                    )
                    started = time.perf_counter()
                    store.commit(cp, durable=durable)
                    laps.append(time.perf_counter() - started)
                times[durable].append(statistics.median(laps))
    finally:
        store.close()
        with psycopg.connect(DSN, autocommit=True) as con:
            con.execute(f"DROP SCHEMA {schema} CASCADE")
    ratios = [a / b for a, b in zip(times[True], times[False], strict=True)]
    print(
        f"execution mark commit on PostgreSQL, median of {n} per round over {rounds} rounds: "
        f"durable {spread([t * 1e3 for t in times[True]])} ms, durable=False "
        f"{spread([t * 1e3 for t in times[False]])} ms; durable / not {spread(ratios)}x"
    )


CHAIN = ("ingest", "preprocess", "inference", "execution")
STAGES = (*CHAIN, "total")


def _chain(
    config: Path, home: Path, bars: int, kind: str, profile: Path | None = None
) -> tuple[float, dict[str, dict[str, float]], list[str], list[str]]:
    """One replay through four processes: the services (``kind`` "services": `drl-trading
    serve`; "old": the same before the latency fixes, `old_behaviour.py`) or their floor
    ("floor": `latency_floor.py`); returns the replay's wall time, execution's stage table (ms
    by stage and quantile) and, for the services, their handler and position-wait metric
    lines. With ``profile``, the services run under cProfile (main thread, where the handlers
    run), each writing ``<profile>/<service>-<config stem>.prof`` when it stops."""
    from drl_trading.testing.service_processes import (
        log_tail,
        metric,
        service_port,
        start_service,
        stop_services,
        wait_ready,
    )

    floor = kind == "floor"

    def start(name: str) -> subprocess.Popen[bytes]:
        if kind == "services" and profile is not None:
            out = profile / f"{name}-{config.stem}.prof"
            cli = str(Path(sys.executable).with_name("drl-trading"))
            argv = ["--config", str(config), "serve", name, "--port", "0"]
            return subprocess.Popen(
                [sys.executable, "-m", "cProfile", "-o", str(out), cli, *argv],
                stdout=subprocess.PIPE,
                stderr=logs[name].open("ab"),
                env={**os.environ, "COLUMNS": "200"},
            )
        if kind == "services":
            return start_service(config, name, home)
        if kind == "old":
            script = Path(__file__).with_name("old_behaviour.py")
            argv = ["--config", str(config), "serve", name, "--port", "0"]
        else:
            script = Path(__file__).with_name("latency_floor.py")
            argv = ["--config", str(config), name]
        return subprocess.Popen(
            [sys.executable, str(script), *argv],
            stdout=subprocess.PIPE,
            stderr=logs[name].open("ab"),
            env={**os.environ, "COLUMNS": "200"},
        )

    def scrape(port: int) -> list[str]:
        url = f"http://127.0.0.1:{port}/metrics"
        body: bytes = urllib.request.urlopen(url).read()
        return body.decode().splitlines()

    prefix = {"services": "", "old": "old-", "floor": "floor-"}[kind]
    logs = {name: home / f"{prefix}{name}.log" for name in CHAIN}
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
                for name in ("ingest", "preprocess", "inference", "execution")
                for line in scrape(ports[name])
                if line.startswith(
                    (
                        "drl_handler_seconds_sum",
                        "drl_handler_seconds_count",
                        "drl_gc_pause_seconds_sum",
                        "drl_gc_pause_seconds_count",
                    )
                )
                or (line.startswith("drl_gc_pause_seconds_bucket") and 'le="0.01"' in line)
            ]
        )
        waits = (
            []
            if floor
            else [
                line
                for line in scrape(ports["inference"])
                if line.startswith(
                    ("drl_inference_position_wait_seconds_", "drl_inference_position_states{")
                )
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


def with_replay_range(config: Path, suffix: str, start: datetime, end: datetime) -> Path:
    """A copy of ``config`` (named ``<stem>-<suffix>.yaml``) whose serve replay is [start, end)."""
    data = yaml.safe_load(config.read_text())
    data["serve"].update({"start": start.isoformat(), "end": end.isoformat()})
    path = config.with_name(f"{config.stem}-{suffix}.yaml")
    path.write_text(yaml.safe_dump(data))
    return path


def online(
    bars: int,
    home: Path,
    rounds: int,
    compare_old: bool = False,
    profile: Path | None = None,
    warmup_bars: int = 200,
) -> None:
    """The four services against their floor (`latency_floor.py`), alternated: ``rounds``
    rounds, each a consecutive slice of ``bars / rounds`` bars replayed by the services (which
    continue their account from the slice before) and by the floor on the same bars, the order
    rotated every round; with ``compare_old`` the services as they were before the latency
    fixes replay the next slice in each round, continuing the same account. The services, and
    then the floor, first replay ``warmup_bars`` bars unmeasured: the first replay on a new
    account and stack pays once for what the others find ready (in three runs it had a p99
    twice the others', and it was always the new services'; a first floor round on its new
    topics had a p50 of 20.6 ms against 4.6-6.7 ms in the later ones)."""
    from drl_trading.testing.shared_stack import distributed_replay_config, drop_kafka_namespace
    from drl_trading.testing.tiny_training import ingest_and_train
    from latency_floor import print_floor_table, spread

    minutes = bars // len(SYMBOLS) // rounds
    per_round = minutes * len(SYMBOLS)
    slices = 2 if compare_old else 1
    replay = TimeRange.parse("2024-01-15", "2024-02-15")
    warm_minutes = warmup_bars // len(SYMBOLS)
    first = replay.start + timedelta(minutes=warm_minutes)  # the measured rounds start here
    end = first + timedelta(minutes=minutes * rounds * slices)
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
    results: dict[str, list[dict[str, tuple[float, float]]]] = {
        "services": [],
        "old": [],
        "floor": [],
    }
    handler_lines: dict[str, list[str]] = {}
    waits: dict[str, list[str]] = {}
    try:
        if warm_minutes:
            # the floor too: its first replay creates its namespace's topics and groups, and
            # a slow first floor round would flatter the services' ratio
            for kind, base in (("services", config), ("floor", floor_config)):
                cfg = with_replay_range(base, f"{kind}-warmup", replay.start, first)
                streamed = _chain(cfg, home, warm_minutes * len(SYMBOLS), kind)[0]
                print(
                    f"warm-up: the {kind} replayed {warm_minutes * len(SYMBOLS):,} bars in "
                    f"{streamed:.1f} s, not measured"
                )
        for r in range(rounds):
            lo = first + timedelta(minutes=minutes * r * slices)
            # the services (and the old ones) continue one account: their slices in time order,
            # the earlier one to each in turn; the floor replays the services' slice
            kinds = ["services", "old"][:slices]
            kinds = kinds if r % 2 == 0 else kinds[::-1]
            starts = {k: lo + timedelta(minutes=minutes * i) for i, k in enumerate(kinds)}
            runs = [(k, config, starts[k]) for k in kinds]
            runs.insert(r % (len(runs) + 1), ("floor", floor_config, starts["services"]))
            for kind, base, start in runs:
                cfg = with_replay_range(
                    base, f"{kind}-round{r}", start, start + timedelta(minutes=minutes)
                )
                streamed, table, lines, w = _chain(cfg, home, per_round, kind, profile)
                got = {
                    s: (table.get(s, {}).get("p50", 0.0), table.get(s, {}).get("p99", 0.0))
                    for s in STAGES
                }
                results[kind].append(got)
                if lines:
                    handler_lines[kind], waits[kind] = lines, w
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
    summary: list[str] = []
    switches = os.environ.get("DRL_OLD_BEHAVIOUR") or "all"
    old = f"services before the latency fixes ({switches})"
    for kind, what in (("services", "services"), ("old", old)):
        if not results[kind]:
            continue
        ratios = print_floor_table(
            f"bar receipt -> order decided across 4 processes, {what} against the floor",
            labels,
            results[kind],
            results["floor"],
            "total",
        )
        summary.append(f"{what}: total p99 / floor p99 {spread(ratios)}x")
        print(f"{'handler (ms, mean per event, last round)':<60}{'events':>9}{'mean':>9}")
        sums: dict[tuple[str, str], list[float]] = {}
        lines = handler_lines.get(kind, [])
        for line in lines:
            if not line.startswith("drl_handler_seconds"):
                continue
            labels_, value = line.rsplit(" ", 1)
            service = labels_.split('service="')[1].split('"')[0]
            topic = labels_.split('topic="')[1].split('"')[0]
            sums.setdefault((service, topic), [0.0, 0.0])[
                line.startswith("drl_handler_seconds_count")
            ] = float(value)
        for (service, topic), (total, count) in sorted(sums.items()):
            if count:
                print(f"{service + ' ' + topic:<60}{count:9.0f}{total / count * 1e3:9.2f}")
        wait = {
            x.split("{")[0].rsplit("_", 1)[1]: float(x.rsplit(" ", 1)[1])
            for x in waits.get(kind, [])
            if x.startswith("drl_inference_position_wait_seconds_")
        }
        sources = {
            x.split('source="')[1].split('"')[0]: float(x.rsplit(" ", 1)[1])
            for x in waits.get(kind, [])
            if x.startswith("drl_inference_position_states{")
        }
        if sources:
            print(
                "inference took symbol states from notifications "
                f"{sources.get('notification', 0):.0f} times, read the store "
                f"{sources.get('store', 0):.0f} times"
            )
        decisions = sum(count for (svc, _), (_, count) in sums.items() if svc == "inference")
        if wait.get("count"):
            print(
                f"inference waited for execution's mark {wait['count']:.0f} times in "
                f"{decisions:.0f} decisions, mean {wait['sum'] / wait['count'] * 1e3:.2f} ms"
            )
        else:
            print(f"inference never waited for execution's mark ({decisions:.0f} decisions)")
        print_collector_pauses(lines)
    print("\n" + "\n".join(summary))


def print_collector_pauses(lines: list[str]) -> None:
    """Python's garbage collector per service and generation in the last round (from
    ``drl_gc_pause_seconds``): collections, their total and how many paused over 10 ms."""
    table: dict[tuple[str, str], dict[str, float]] = {}
    for line in lines:
        if not line.startswith("drl_gc_pause_seconds"):
            continue
        labels_, value = line.rsplit(" ", 1)
        service = labels_.split('service="')[1].split('"')[0]
        generation = labels_.split('generation="')[1].split('"')[0]
        row = table.setdefault((service, generation), {})
        if line.startswith("drl_gc_pause_seconds_bucket"):
            row["under_10ms"] = float(value)
        else:
            row[line.split("{")[0].rsplit("_", 1)[1]] = float(value)
    if not table:
        return
    print(
        f"{'garbage collector (last round)':<40}{'collections':>12}{'total ms':>10}{'> 10 ms':>9}"
    )
    for (service, generation), row in sorted(table.items()):
        count = row.get("count", 0.0)
        over = count - row.get("under_10ms", count)
        print(
            f"{service + ' generation ' + generation:<40}{count:12.0f}"
            f"{row.get('sum', 0.0) * 1e3:10.1f}{over:9.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--online-bars", type=int, default=10_000)
    parser.add_argument("--skip-online", action="store_true")
    parser.add_argument("--only-online", action="store_true")
    parser.add_argument(
        "--only-commits", action="store_true", help="only execution's mark commit, durable or not"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="services/floor rounds; --online-bars is split"
    )
    parser.add_argument(
        "--compare-old",
        action="store_true",
        help="also replay with the services before the latency fixes (old_behaviour.py; "
        "DRL_OLD_BEHAVIOUR=heap,... switches back only those)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run the services under cProfile, a .prof per service and round in DIR (slower: "
        "read the profiles, not this run's latencies)",
    )
    parser.add_argument(
        "--warmup-bars",
        type=int,
        default=200,
        help="bars the services and the floor replay first, unmeasured (the first replay on a "
        "new account or namespace pays once for what later ones find ready)",
    )
    args = parser.parse_args()
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    print(f"distributed benchmark on the local stack; {os.cpu_count()} CPUs")
    if not args.only_online:
        mark_commits(200)
        if args.only_commits:
            return
        postgres(args.bars)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.only_online:
            backfill(args.bars, Path(tmp))
        if not args.skip_online:
            online(
                args.online_bars,
                Path(tmp),
                args.rounds,
                args.compare_old,
                args.profile,
                args.warmup_bars,
            )


if __name__ == "__main__":
    main()
