"""Benchmark of the online path in embedded mode: bar close → order acknowledgement, per 1m bar.

Set-up (timed, printed): a home with synthetic 1m bars of BTCUSDT and ETHUSDT for 2024-01-01 ..
2024-01-20 and a tiny PPO champion (256 steps, a gate that passes anything), as the e2e paper
fixture builds it. Then N 1m bars (both symbols interleaved, default 10,000) are replayed from
2024-01-15 through the embedded online workflow (ingest → preprocess → inference → execution on
the in-memory bus, Feast's online store), the market clock moved to each bar's close, twice:
with ``execution.store`` = sqlite (the default) and memory.

In the same run, alternating with the real path (``--rounds``, default 3, the order rotated
every round), the floor (`replay_floor`: the same bars on the in-memory bus, handlers that only
forward, plus the irreducible store calls) and the path as it was before issue 15's latency
fixes (`old_behaviour.switched`, ``--no-old`` leaves it out): it prints total p99 / floor p99 and
each stage's overhead above the floor, for every bar and for the base-bar closes apart, now and
before.

Per bar, from ``pump(1)`` on: to the return of the last handler on the chain (preprocess,
inference, execution: the order acknowledged, or the minute marked), "bar close -> ack", and to
the bus being idle, "bar close -> idle", which adds the off-path work the in-memory bus delivers
after the chain (the topology's `OFF_PATH_TOPICS`: storing resampled bars), as the distributed
benchmark's stamps end at execution's acknowledgement. Bars whose close completes a base (5m)
bar run inference and execution and are reported apart from the other minutes. Stages are timed
by wrapping, in this process only, the bus handlers (patched on their classes before the runtime
subscribes them, since the bus keeps the bound methods) and the market-data / feature-store
methods they call; nested stages (a store call inside a handler) are indented under it.

    .venv/bin/python benchmarks/online.py [--bars 10000] [--rounds 3] [--no-old] [--home DIR]
        [--keep]

With ``--home`` an existing home that already holds the data and a champion is reused (set-up is
skipped when it has an MLflow database); ``--keep`` leaves the temporary home in place.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

from drl_trading.app.heap import HeapSettler
from drl_trading.app.infrastructure import feature_set_for
from drl_trading.app.runtime import EmbeddedRuntime
from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.domain import Bar, Symbol, Timeframe, TimeRange
from drl_trading.common.latency import LatencyHistogram
from drl_trading.common.logs import configure_logging
from drl_trading.execution.adapter.bus_handlers import ExecutionHandlers
from drl_trading.execution.core.records import RecordKind
from drl_trading.inference.adapter.bus_handlers import InferenceHandlers
from drl_trading.ingest.adapter.online_handlers import OnlineIngestHandlers
from drl_trading.ingest.adapter.replay_source import ReplaySource
from drl_trading.preprocess.adapter.bus_handlers import PreprocessHandlers
from drl_trading.testing.tiny_training import PERMISSIVE_GATE

warnings.filterwarnings("ignore", category=DeprecationWarning)
SYMBOLS = (Symbol("BTCUSDT"), Symbol("ETHUSDT"))
HISTORY = TimeRange.parse("2024-01-01", "2024-01-20")
REPLAY_START = TimeRange.parse("2024-01-15", "2024-01-20").start
PHASES = ("all", "base", "other")

# (label, depth for the printed tree); bus handlers at depth 1, what they call at depth 2
STAGES: tuple[tuple[str, int], ...] = (
    ("pump(1): ingest accept + publish", 1),
    ("market_data.upsert_bar (1m)", 2),
    ("market_data.upsert_bars (1m)", 2),
    ("run_until_idle()", 1),
    ("preprocess.on_preprocess_requested", 2),
    ("feature_store.write_online", 3),
    ("inference.on_preprocess_completed", 2),
    ("feature_store.online_features", 3),
    ("execution.on_bar_request", 2),
    ("execution.on_prediction", 2),
    ("ingest.on_store_resampled", 2),
    ("market_data.upsert_bars (resampled)", 3),
    ("after ack: flush staged bar writes", 1),
)
_HANDLERS: tuple[tuple[type, str, str], ...] = (
    (PreprocessHandlers, "on_preprocess_requested", "preprocess.on_preprocess_requested"),
    (InferenceHandlers, "on_preprocess_completed", "inference.on_preprocess_completed"),
    (ExecutionHandlers, "on_bar_request", "execution.on_bar_request"),
    (ExecutionHandlers, "on_prediction", "execution.on_prediction"),
    (OnlineIngestHandlers, "on_store_resampled", "ingest.on_store_resampled"),
)
OFF_PATH_STAGES = frozenset({"ingest.on_store_resampled"})
"""Handlers off the path to the order (the topology's `OFF_PATH_TOPICS`): their end is not the
acknowledgement."""


@dataclass
class Probe:
    """Timings of one bar are buffered, then filed under its class once the bar is known."""

    hists: dict[str, dict[str, LatencyHistogram]] = field(default_factory=dict)
    pending: list[tuple[str, float]] = field(default_factory=list)
    in_pump: bool = False
    acked: float | None = None
    """When the bar's last handler on the chain (preprocess, inference, execution) returned:
    the acknowledgement; what runs after it (storing resampled bars) is off the path."""

    def wrap(
        self, stage: str | Callable[[], str], fn: Callable[..., Any], *, chain: bool = False
    ) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                name = stage() if callable(stage) else stage
                done = time.perf_counter()
                self.pending.append((name, done - t0))
                if chain:
                    self.acked = done

        return timed

    def add_bar(self, t0: float, t1: float, t2: float) -> None:
        """The bar's totals: pump from ``t0`` to ``t1``, the bus idle at ``t2``, acknowledged
        when its last chain handler returned (``t2`` if none ran)."""
        ack = t2 if self.acked is None or self.acked < t1 else self.acked
        self.add("pump(1): ingest accept + publish", t1 - t0)
        self.add("run_until_idle()", t2 - t1)
        self.add("bar close -> ack", ack - t0)
        self.add("bar close -> idle", t2 - t0)
        self.acked = None

    def add(self, stage: str, seconds: float) -> None:
        self.pending.append((stage, seconds))

    def flush(self, phase: str | None) -> None:
        """File the buffered timings under ``phase`` (and "all"); None drops them (warm-up)."""
        if phase is not None:
            for stage, seconds in self.pending:
                per = self.hists.setdefault(stage, {p: LatencyHistogram() for p in PHASES})
                per["all"].record(seconds)
                per[phase].record(seconds)
        self.pending.clear()

    def get(self, stage: str, phase: str = "all") -> LatencyHistogram:
        return self.hists.get(stage, {}).get(phase) or LatencyHistogram()


class RecordingSource:
    """`paper`'s clocked source: the market clock moves to each bar's close as it is delivered;
    also remembers the bar so that the benchmark can tell base-bar closes from other minutes."""

    def __init__(self, inner: ReplaySource, clock: ManualClock) -> None:
        self._inner = inner
        self._clock = clock
        self.last: Bar | None = None

    def bars(self) -> Iterator[Bar]:
        for bar in self._inner.bars():
            self._clock.set(bar.close_time)
            self.last = bar
            yield bar

    def close(self) -> None:
        self._inner.close()


@dataclass
class RunResult:
    label: str
    bars: int
    seconds: float
    probe: Probe
    counts: dict[str, int]
    predictions: int


def build_home(home: Path) -> AppSettings:
    """The e2e paper fixture's home: synthetic history of both symbols and a tiny champion."""
    from drl_trading.app.ingest import bootstrap_ingest, build_provider
    from drl_trading.ingest.core.service import TrainingDataRequest
    from drl_trading.training.core.service import TrainingRequest

    settings = load_settings(
        home=home,
        training={
            "total_timesteps": 256,
            "env": {"n_envs": 2},
            "gate": PERMISSIVE_GATE,
        },
        # the tiny policy's confidences sit near 1/3: with the example's 0.4 minimum every
        # signal would be rejected and orders, fills and their commits would go unmeasured
        strategy={"params": {"min_confidence": 0.0}},
        execution={"max_daily_loss": 1.0, "max_drawdown": 1.0},
    )
    configure_logging(settings.logging.level, settings.logging.json_output)  # as the CLI does
    if (home / "mlflow" / "mlflow.db").exists():
        print(f"set-up: reusing {home}")
        return settings
    request = TrainingDataRequest(SYMBOLS, HISTORY)
    t0 = time.perf_counter()
    with EmbeddedRuntime.open(settings) as runtime:
        training = runtime.enable_training()
        training.expect(TrainingRequest(SYMBOLS, HISTORY, request.request_id))
        ingest = bootstrap_ingest(
            settings, build_provider(settings, "synthetic"), runtime.market_data, runtime.bus
        )
        t1 = time.perf_counter()
        ingest.ingest_history(request)
        runtime.run_until_idle()
        result = training.results[request.request_id]
        if not result.champion:
            raise SystemExit("set-up: the trained model was not promoted to champion")
    took = time.perf_counter() - t0
    print(
        f"set-up: {took:.1f} s (opening runtime + torch/MLflow imports {t1 - t0:.1f} s; "
        f"ingest 2 x {(HISTORY.end - HISTORY.start).days} days of 1m bars, preprocess, Feast, "
        f"PPO 256 steps, backtest + gate {took - (t1 - t0):.1f} s)"
    )
    return settings


def replay(settings: AppSettings, label: str, n_bars: int, old: bool = False) -> RunResult:
    """The real path; ``old``: with the behaviour before issue 15's latency fixes."""
    import old_behaviour

    spec = feature_set_for(settings)
    base = spec.base_timeframe
    clock = ManualClock(REPLAY_START)
    probe = Probe()
    # enough minutes for n bars of every symbol, and a day to spare
    end = REPLAY_START + timedelta(minutes=n_bars // len(SYMBOLS) + 1, days=1)
    with ExitStack() as stack:
        if old:
            stack.enter_context(old_behaviour.switched())
        for cls, name, stage in _HANDLERS:
            timed = probe.wrap(stage, getattr(cls, name), chain=stage not in OFF_PATH_STAGES)
            stack.enter_context(mock.patch.object(cls, name, timed))
        t0 = time.perf_counter()
        runtime = stack.enter_context(EmbeddedRuntime.open(settings))
        md, fs = runtime.market_data, runtime.feature_store

        def upsert_stage() -> str:
            kind = "1m" if probe.in_pump else "resampled"
            return f"market_data.upsert_bars ({kind})"

        stack.enter_context(
            mock.patch.object(md, "upsert_bars", probe.wrap(upsert_stage, md.upsert_bars))
        )
        stack.enter_context(
            mock.patch.object(
                md, "upsert_bar", probe.wrap("market_data.upsert_bar (1m)", md.upsert_bar)
            )
        )
        for name in ("write_online", "online_features"):
            method = getattr(fs, name)
            stack.enter_context(
                mock.patch.object(fs, name, probe.wrap(f"feature_store.{name}", method))
            )
        source = RecordingSource(ReplaySource(md, SYMBOLS, REPLAY_START, end), clock)
        online = runtime.enable_online(source, clock=clock, symbols=SYMBOLS)
        live_from = base.floor(REPLAY_START)
        online.ingest.start(SYMBOLS, live_from - timedelta(days=1), live_from=live_from)
        runtime.run_until_idle()  # gap fill → catch-up → streaming
        # as `paper` does (app/heap.py); before the fixes nothing was frozen embedded
        heap = None if old else HeapSettler()
        if heap is not None:
            heap.settle()
        probe.flush(None)
        warm = time.perf_counter() - t0
        bars = 0
        started = time.perf_counter()
        while bars < n_bars:
            t0 = time.perf_counter()
            probe.in_pump = True
            got = online.ingest.pump(1)
            probe.in_pump = False
            t1 = time.perf_counter()
            if got == 0:
                probe.flush(None)
                break
            runtime.run_until_idle()
            t2 = time.perf_counter()
            probe.add_bar(t0, t1, t2)
            runtime.flush()  # staged market-data writes, after the ack (as `paper` does)
            probe.add("after ack: flush staged bar writes", time.perf_counter() - t2)
            if heap is not None:
                heap.settle()
            assert source.last is not None
            close = source.last.close_time
            probe.flush("base" if base.floor(close) == close else "other")
            bars += 1
        seconds = time.perf_counter() - started
        status = online.execution.service.status()
        counts = {k.value: status.counts.get(k, 0) for k in RecordKind}
        predictions = online.inference.service.status().predictions
    print(f"[{label}] opened runtime, loaded champion, caught up 1 day: {warm:.1f} s")
    return RunResult(label, bars, seconds, probe, counts, predictions)


def replay_floor(settings: AppSettings, label: str, n_bars: int) -> RunResult:
    """The embedded floor on the same bars: the same paced-by-clock `ReplaySource` over the
    same market data, the in-memory bus as the runtime builds it with the same consumer groups
    and topics, and handlers that only forward the event they got, plus the store calls the
    path cannot do without:

    * preprocess, at a base-bar close: the Feast online write of one feature vector (inference
      in another process, or after a restart, reads it there: it must be written before the
      completion is announced); other minutes: nothing.
    * inference: the online read of that vector (served from the store's own-writes cache, as
      in the real path).
    * execution, per signal: one commit of the execution store (the checkpoint, unchanged, and
      one SKIP record with the signal id marked processed: the durable trace that makes a
      redelivered signal safe to drop, which must precede the acknowledgement); per bar:
      nothing (the per-bar mark commit keeps state, not a decision, and could be batched).

    Not counted as irreducible: ingest's validation and the staging of the 1m bar (the write
    itself is flushed after the ack in both runs), resampled-bar storage, the indicators, the
    policy and the risk engine: that is the work the floor leaves out on purpose."""
    from drl_trading.app.infrastructure import build_bus, build_feature_store, build_market_data
    from drl_trading.common.adapter.memory_bus import InMemoryBus
    from drl_trading.common.domain import utc
    from drl_trading.common.events import Event, Topic
    from drl_trading.execution.adapter.memory_store import InMemoryExecutionStore
    from drl_trading.execution.adapter.sqlite_store import SQLiteExecutionStore
    from drl_trading.execution.core.records import Checkpoint, PortfolioSnapshot, TradeRecord
    from drl_trading.execution.core.risk import initial_risk_state
    from drl_trading.strategy.feature_view import view_for
    from latency_floor import bar_request, closes_base

    spec = feature_set_for(settings)
    base = spec.base_timeframe
    view = view_for(spec)
    clock = ManualClock(REPLAY_START)
    probe = Probe()
    end = REPLAY_START + timedelta(minutes=n_bars // len(SYMBOLS) + 1, days=1)
    t0 = time.perf_counter()
    bus = build_bus(
        settings.model_copy(update={"bus": settings.bus.model_copy(update={"kind": "memory"})})
    )
    assert isinstance(bus, InMemoryBus)
    md, fs = build_market_data(settings), build_feature_store(settings)
    ex = settings.execution
    store = (
        InMemoryExecutionStore()
        if ex.store == "memory"
        else SQLiteExecutionStore(ex.store_path or settings.home / "execution.sqlite")
    )
    try:
        vectors = fs.online_features(view, list(SYMBOLS))
        values = {
            s: vectors[s].values if s in vectors else (0.0,) * len(view.columns) for s in SYMBOLS
        }
        checkpoint = Checkpoint(
            PortfolioSnapshot(ex.initial_cash), initial_risk_state(ex.initial_cash, clock.now())
        )
        store.commit(checkpoint)  # the first commit writes the whole checkpoint: not timed

        def preprocess(event: Event) -> None:
            if not closes_base(event, base):
                return
            symbol = event.symbols[0]  # type: ignore[attr-defined]
            fs.write_online(view, symbol, event.bar_close_time, values[symbol])  # type: ignore[attr-defined]
            bus.publish(Topic.PREPROCESS_COMPLETED_ONLINE, event, key=str(symbol))

        def inference(event: Event) -> None:
            symbol = event.symbols[0]  # type: ignore[attr-defined]
            fs.online_features(view, [symbol])
            bus.publish(Topic.PREDICT_COMPLETED, event, key=str(symbol))

        def decided(event: Event) -> None:
            symbol = event.symbols[0]  # type: ignore[attr-defined]
            record = TradeRecord(
                f"floor-{event.event_id}",
                RecordKind.SKIP,
                symbol,
                clock.now(),
                signal_id=event.event_id,
                risk_check="floor",
                signal_time=utc(event.bar_close_time),  # type: ignore[attr-defined]
            )
            store.commit(checkpoint, [record], processed_signal_id=event.event_id)

        wrapped = {
            "preprocess.on_preprocess_requested": probe.wrap(
                "preprocess.on_preprocess_requested", preprocess, chain=True
            ),
            "inference.on_preprocess_completed": probe.wrap(
                "inference.on_preprocess_completed", inference, chain=True
            ),
            "execution.on_bar_request": probe.wrap(
                "execution.on_bar_request", lambda event: None, chain=True
            ),
            "execution.on_prediction": probe.wrap("execution.on_prediction", decided, chain=True),
        }
        for name in ("write_online", "online_features"):
            fs_method = getattr(fs, name)
            setattr(fs, name, probe.wrap(f"feature_store.{name}", fs_method))
        # the topology's groups and topics (`drl_trading.app.topology`), in its order
        bus.subscribe(
            Topic.PREPROCESS_REQUESTED,
            group="preprocess",
            handler=wrapped["preprocess.on_preprocess_requested"],
        )
        bus.subscribe(
            Topic.PREPROCESS_COMPLETED_ONLINE,
            group="inference",
            handler=wrapped["inference.on_preprocess_completed"],
        )
        bus.subscribe(
            Topic.PREDICT_COMPLETED, group="execution", handler=wrapped["execution.on_prediction"]
        )
        bus.subscribe(
            Topic.PREPROCESS_REQUESTED,
            group="execution",
            handler=wrapped["execution.on_bar_request"],
        )
        source = RecordingSource(ReplaySource(md, SYMBOLS, base.floor(REPLAY_START), end), clock)
        bars_iter = iter(source.bars())
        # the loop's own housekeeping, as the real path's: the heap settled between bars (the
        # collector's young collections there, not inside a bar's handlers)
        heap = HeapSettler()
        heap.settle()
        warm = time.perf_counter() - t0
        bars = 0
        started = time.perf_counter()
        while bars < n_bars:
            t0 = time.perf_counter()
            bar = next(bars_iter, None)
            if bar is not None:
                close = bar.open_time + bar.timeframe.duration
                bus.publish(
                    Topic.PREPROCESS_REQUESTED,
                    bar_request(bar, close, time.time()),
                    key=str(bar.symbol),
                )
            t1 = time.perf_counter()
            if bar is None:
                probe.flush(None)
                break
            while bus.poll(1_000_000):
                pass
            t2 = time.perf_counter()
            probe.add_bar(t0, t1, t2)
            heap.settle()
            probe.flush("base" if base.floor(bar.close_time) == bar.close_time else "other")
            bars += 1
        seconds = time.perf_counter() - started
    finally:
        store.close()
        close_fs = getattr(fs, "close", None)
        if close_fs is not None:
            close_fs()
        md.close()
    print(f"[{label}] floor opened its stores: {warm:.1f} s")
    decisions = probe.get("execution.on_prediction").count
    return RunResult(label, bars, seconds, probe, {"skip": decisions}, decisions)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.3f}"


def report(result: RunResult, base: Timeframe) -> None:
    p = result.probe
    total = p.get("bar close -> ack")
    snap, b, o = (
        total.snapshot(),
        p.get("bar close -> ack", "base"),
        p.get("bar close -> ack", "other"),
    )
    rate = result.bars / result.seconds if result.seconds else 0.0
    print(
        f"\n== execution.store = {result.label}: {result.bars:,} bars in {result.seconds:.2f} s "
        f"= {rate:,.0f} bars/s; {b.count:,} {base.value} closes, {o.count:,} other minutes; "
        f"{result.predictions} predictions, records {result.counts}"
    )
    head = (
        f"{'ms':<44}{'calls':>7}{'p50':>9}{'p99':>9}{'max':>9}{'mean':>9}"
        f"{'base p50':>10}{'base p99':>9}{'othr p50':>9}{'othr p99':>9}{'ms/bar':>8}"
    )
    print(head)
    print("-" * len(head))

    def row(label: str, stage: str) -> None:
        h = p.get(stage)
        s = h.snapshot()
        hb, ho = p.get(stage, "base").snapshot(), p.get(stage, "other").snapshot()
        per_bar = s.mean * s.count / result.bars if result.bars else 0.0
        print(
            f"{label:<44}{s.count:>7}{ms(s.p50):>9}{ms(s.p99):>9}{ms(s.max):>9}{ms(s.mean):>9}"
            f"{ms(hb.p50):>10}{ms(hb.p99):>9}{ms(ho.p50):>9}{ms(ho.p99):>9}{per_bar * 1e3:>8.3f}"
        )

    row("BAR CLOSE -> ACK (last chain handler done)", "bar close -> ack")
    row("bar close -> idle (+ off-path work)", "bar close -> idle")
    for stage, depth in STAGES:
        row("  " * depth + stage, stage)
    handlers = sum(p.get(s).snapshot().mean * p.get(s).count for _, _, s in _HANDLERS)
    idle = p.get("run_until_idle()")
    rest = idle.snapshot().mean * idle.count - handlers
    print(
        f"{'    bus: encode/decode/dispatch (rest of run_until_idle)':<98}"
        f"{rest / max(result.bars, 1) * 1e3:>8.3f}"
    )
    print(f"(absolute p99 {snap.p99 * 1e3:.2f} ms: machine-bound, compare the ratios below)")


FLOOR_STAGES: tuple[tuple[str, str], ...] = (
    ("bar close -> ack", "bar close -> ack"),
    ("bar close -> idle", "bar close -> idle"),
    ("pump(1): ingest accept + publish", "pump(1): ingest accept + publish"),
    ("run_until_idle()", "run_until_idle()"),
    ("preprocess.on_preprocess_requested", "preprocess.on_preprocess_requested"),
    ("  feature_store.write_online", "feature_store.write_online"),
    ("inference.on_preprocess_completed", "inference.on_preprocess_completed"),
    ("  feature_store.online_features", "feature_store.online_features"),
    ("execution.on_bar_request", "execution.on_bar_request"),
    ("execution.on_prediction", "execution.on_prediction"),
    ("ingest.on_store_resampled (no floor)", "ingest.on_store_resampled"),
)


def report_floor(
    store: str, real: list[RunResult], floor: list[RunResult]
) -> dict[str, list[float]]:
    """The real runs against the floor runs of the same rounds: p50/p99 per stage (the phase
    of the whole bar, and the base closes apart, where inference and execution run). Returns
    the rounds' total p99 / floor p99 by phase."""
    from latency_floor import print_floor_table

    def table(result: RunResult, phase: str) -> dict[str, tuple[float, float]]:
        out = {}
        for _, stage in FLOOR_STAGES:
            h = result.probe.get(stage, phase)
            if h.count:
                snap = h.snapshot()
                out[stage] = (snap.p50 * 1e3, snap.p99 * 1e3)
        return out

    ratios: dict[str, list[float]] = {}
    for phase, what in (("all", "every bar"), ("base", "bars closing a base bar")):
        ratios[phase] = print_floor_table(
            f"execution.store = {store}, {what}: real path against the floor",
            FLOOR_STAGES,
            [table(r, phase) for r in real],
            [table(f, phase) for f in floor],
            "bar close -> ack",
        )
    return ratios


def main() -> None:
    from latency_floor import spread

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--bars", type=int, default=10_000, help="1m bars to replay (all symbols)")
    ap.add_argument("--home", type=Path, default=None, help="default: a temporary directory")
    ap.add_argument("--keep", action="store_true", help="keep the temporary home")
    ap.add_argument("--rounds", type=int, default=3, help="real/old/floor rounds, rotating")
    ap.add_argument(
        "--no-old", action="store_true", help="leave out the path before the latency fixes"
    )
    args = ap.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="drl-online-bench-"))
    print(
        f"online benchmark: {args.bars:,} 1m bars of {', '.join(SYMBOLS)} from "
        f"{REPLAY_START:%Y-%m-%d}; {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()}), Python {platform.python_version()}"
    )
    print(f"home: {home}")
    try:
        settings = build_home(home)
        base = feature_set_for(settings).base_timeframe
        summary: list[str] = []
        for store in ("sqlite", "memory"):
            real: list[RunResult] = []
            before: list[RunResult] = []
            floor: list[RunResult] = []
            runs: list[tuple[str, Callable[[AppSettings, str, int], RunResult], list[RunResult]]]
            runs = [("real", replay, real), ("floor", replay_floor, floor)]
            if not args.no_old:
                runs.insert(1, ("old", functools.partial(replay, old=True), before))
            for r in range(args.rounds):
                shift = r % len(runs)
                for kind, run, into in runs[shift:] + runs[:shift]:
                    run_dir = home / "bench-online" / f"{store}-{kind}-{r}"
                    shutil.rmtree(run_dir, ignore_errors=True)
                    run_dir.mkdir(parents=True)
                    execution = settings.execution.model_copy(
                        update={"store": store, "store_path": run_dir / f"execution.{store}"}
                    )
                    run_settings = settings.model_copy(update={"execution": execution})
                    into.append(run(run_settings, f"{store} {kind} {r + 1}", args.bars))
            report(real[-1], base)
            now = report_floor(store, real, floor)
            summary.append(
                f"execution.store = {store}: total p99 / floor p99 every bar "
                f"{spread(now['all'])}x, base closes {spread(now['base'])}x"
            )
            if before:
                then = report_floor(f"{store} (before the latency fixes)", before, floor)
                summary.append(
                    f"  before the latency fixes, same rounds: every bar {spread(then['all'])}x, "
                    f"base closes {spread(then['base'])}x"
                )
        print("\n" + "\n".join(summary))
    finally:
        if args.home is None and not args.keep:
            shutil.rmtree(home, ignore_errors=True)
        elif args.home is None:
            print(f"kept {home}")


if __name__ == "__main__":
    main()
