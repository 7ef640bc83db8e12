"""Composition of each service as a process: the configured adapters, its subscriptions, its loop.

These are the same handlers the embedded runtime wires in one process; here each service gets
its own bus client (Kafka in the distributed configuration), stores and clock. What crosses
process boundaries goes through the bus or the shared stores: inference reads the agent's
position from the execution store (`StorePositions`).

Preprocess, inference and execution may run as several instances in one consumer group: the bus
splits the symbols between them by partition and, at every rebalance, tells each instance which
symbols it still holds; state kept for any other symbol is dropped (rebuilt from the stores when
one comes back). Execution's instances share one
account in PostgreSQL, each event handled under the account's lock; a store held in one process
(memory, SQLite) refuses a second instance.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from drl_trading.app.infrastructure import (
    build_bus,
    build_calendars,
    build_feature_store,
    build_market_data,
    feature_set_for,
)
from drl_trading.app.process import InstrumentedBus, Metrics, ServiceProcess
from drl_trading.app.settings import AppSettings
from drl_trading.app.topology import SERVICES, consumed_topics
from drl_trading.common.adapter.feast_feature_store import FeastFeatureStore
from drl_trading.common.adapter.system_clock import ManualClock, SystemClock
from drl_trading.common.domain import Symbol
from drl_trading.common.errors import UsageError
from drl_trading.common.events import Topic
from drl_trading.common.ports import Clock, FeatureStore

if TYPE_CHECKING:
    from drl_trading.execution.adapter.ccxt_broker import CcxtBroker

log = structlog.get_logger(__name__)
# every consumed topic, and completed.training (submit-training waits on it)
STREAM_TOPICS = (*consumed_topics(), Topic.TRAINING_COMPLETED)


@dataclass(frozen=True, slots=True)
class _Wiring:
    """What every service's composition gets: configuration, its bus, metrics and clock
    (``manual`` when the clock follows the market time of the events)."""

    settings: AppSettings
    bus: InstrumentedBus
    metrics: Metrics
    clock: Clock
    manual: ManualClock | None


def build_service(name: str, settings: AppSettings) -> ServiceProcess:
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}; one of {', '.join(SERVICES)}")
    metrics = Metrics(name)
    market = settings.serve.clock == "market"
    start = settings.serve.start or datetime.now(UTC)
    manual = ManualClock(start) if market else None
    clock: Clock = manual if manual is not None else SystemClock()
    if name == "training" and settings.bus.kind == "kafka":
        # one handler is a whole training run: the consumer must not be deemed stuck
        kafka = settings.bus.kafka
        longer = kafka.model_copy(
            update={"max_poll_interval_ms": max(kafka.max_poll_interval_ms, 4 * 3_600_000)}
        )
        settings = settings.model_copy(
            update={"bus": settings.bus.model_copy(update={"kafka": longer})}
        )
    raw = build_bus(settings)
    ensure = getattr(raw, "ensure_topics", None)
    if ensure is not None:  # learn (or create) every topic now: not on the first live message
        ensure([*STREAM_TOPICS, *(Topic.dlq(t) for t in STREAM_TOPICS), Topic.error(name)])
    bus = InstrumentedBus(raw, metrics, manual)
    builder: Callable[[_Wiring], ServiceProcess] = {
        "ingest": _ingest,
        "preprocess": _preprocess,
        "training": _training,
        "inference": _inference,
        "execution": _execution,
    }[name]
    process = builder(_Wiring(settings, bus, metrics, clock, manual))
    lag = getattr(raw, "lag", None)
    if lag is not None:
        group = name
        process.lag = lambda: int(lag(group))
    assigned = getattr(raw, "assigned", None)
    if assigned is not None:  # how the group split the partitions: which instance serves what
        gauge = metrics_gauge(metrics, "drl_assigned_partitions", "Partitions consumed here")
        gauge.set_function(lambda: float(assigned(name)))
    joined = getattr(raw, "joined", None)
    if joined is not None:  # ready once the consumers have their partitions, and the service is
        own = process.ready
        process.ready = lambda: bool(joined()) and own()
    return process


def _symbols(settings: AppSettings) -> list[Symbol]:
    return [Symbol(s) for s in settings.serve.symbols]


def import_feast(features: FeatureStore) -> None:
    """Build the Feast store now (importing Feast and the pandas and pyarrow under it; torch only
    if Feast is ever asked for a tensor: common/adapter/feast_import.py),
    before the service loop's start-up freezes the heap (app/heap.py), rather than at the first
    request that needs it: preprocess's catch-up, just before the first live bars."""
    if isinstance(features, FeastFeatureStore):
        features.feast()


def _preprocess(w: _Wiring) -> ServiceProcess:
    from drl_trading.app.preprocess import bootstrap_preprocess

    # the completions it publishes announce the resampled bars it wrote: no write-behind
    market_data = build_market_data(w.settings, write_behind=False)
    features = build_feature_store(w.settings)
    import_feast(features)
    handlers = bootstrap_preprocess(w.settings, w.bus, market_data, features)
    _on_symbols_moved(w, "preprocess", handlers.on_symbols_moved)
    return ServiceProcess("preprocess", w.bus, w.metrics, on_close=[market_data.close])


def _training(w: _Wiring) -> ServiceProcess:
    """The training worker: takes ``requested.training``, trains when the request's offline
    features are ready, registers on the configured registry, announces ``completed.training``.
    A run takes minutes inside one handler: the consumer's poll interval is sized for it
    (``bus.kafka.max_poll_interval_ms``)."""
    from drl_trading.app.training import bootstrap_training

    market_data = build_market_data(w.settings, write_behind=False)
    features = build_feature_store(w.settings)
    handlers = bootstrap_training(w.settings, w.bus, market_data, features, worker=True)
    history = getattr(w.bus.inner, "messages", None)
    if history is not None:  # requests a previous life of the worker took but did not finish
        handlers.resume(
            history(Topic.TRAINING_REQUESTED),
            [*history(Topic.TRAINING_COMPLETED), *history(Topic.error("training"))],
        )
    trained = metrics_gauge(w.metrics, "drl_training_runs", "Training runs finished")

    def tick() -> int:
        trained.set(len(handlers.results))
        return 0

    return ServiceProcess("training", w.bus, w.metrics, tick=tick, on_close=[market_data.close])


def _execution(w: _Wiring) -> ServiceProcess:
    from prometheus_client import Histogram

    from drl_trading.app.execution import compose_execution
    from drl_trading.app.paper_account import SessionHeartbeat, process_session_id
    from drl_trading.common.latency import StageLatency

    stage_seconds = Histogram(
        "drl_stage_seconds",
        "Online chain: time of each stage (bus hand-over included) and the total, bar receipt to "
        "order decision",
        ["service", "stage"],
        buckets=(0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.05, 0.1, 0.25, 1.0),
        registry=w.metrics.registry,
    )
    latency = StageLatency(
        lambda stage, s: stage_seconds.labels(w.metrics.service, stage).observe(s)
    )
    settings, broker = _execution_broker(w.settings)
    parts = compose_execution(settings, w.bus, w.clock, _symbols(settings), latency, broker)
    _share_account(w, parts)
    # the first run of each statement is parsed and planned by the server: do it before the
    # first live signal rather than during it
    parts.store.is_processed("warm-up")
    parts.store.order("warm-up")
    session_id = process_session_id("execution")
    parts.service.attach(session_id)
    # `kill` from any process: this process says it runs the account, and applies the requests
    # at every loop turn (and before every signal and bar), so an idle stream acknowledges too
    heartbeat = SessionHeartbeat(parts.store, session_id).start()

    def tick() -> int:
        try:
            return len(parts.service.apply_controls())
        except Exception as exc:  # applied before the next event then, where the bus retries
            log.warning("control requests not applied", error=repr(exc))
            return 0

    return ServiceProcess(
        "execution",
        w.bus,
        w.metrics,
        tick=tick,
        on_close=[heartbeat.stop, parts.close],
        stages=latency.snapshot,
    )


def _execution_broker(settings: AppSettings) -> tuple[AppSettings, CcxtBroker | None]:
    """``execution.broker``: paper (None: `compose_execution`'s paper broker), or the ccxt
    broker of ``execution.live`` for ``serve.symbols`` (a real account needs
    ``execution.live.confirm_real_account``), with the account's capital what the exchange
    holds (its quote balance), as in ``drl-trading live``."""
    if settings.execution.broker != "live":
        return settings, None
    from drl_trading.app.live_broker import build_live_broker

    broker = build_live_broker(settings.execution.live, _symbols(settings), SystemClock())
    execution = settings.execution.model_copy(update={"initial_cash": broker.cash})
    return settings.model_copy(update={"execution": execution}), broker


def _inference(w: _Wiring) -> ServiceProcess:
    from drl_trading.app.inference import compose_inference
    from drl_trading.execution.adapter.postgres_store import PostgresExecutionStore
    from drl_trading.execution.adapter.store_positions import StorePositions
    from drl_trading.strategy.feature_view import view_for

    if w.settings.execution.store != "postgres":
        raise ValueError(
            "inference as its own process reads positions from the execution store: set "
            "execution.store: postgres (configs/distributed.yaml)"
        )
    spec = feature_set_for(w.settings)
    pg = w.settings.postgres
    store = PostgresExecutionStore(pg.dsn(), schema=pg.schema_name)
    from prometheus_client import Histogram

    waited = Histogram(
        "drl_inference_position_wait_seconds",
        "Time inference waited for execution to mark the bar it decides on",
        ["service"],
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 3.0),
        registry=w.metrics.registry,
    ).labels(w.metrics.service)
    positions = StorePositions(
        store,
        spec.base_timeframe,
        w.clock,
        changed=store.wait_for_commit,
        on_wait=waited.observe,
        calendars=build_calendars(w.settings),
        listened=store.listened_state,
    )
    from prometheus_client import Gauge

    states = Gauge(
        "drl_inference_position_states",
        "Symbol states inference took for its decisions, by where from: the execution store's "
        "commit notifications, or a read of the store",
        ["service", "source"],
        registry=w.metrics.registry,
    )
    states.labels(w.metrics.service, "notification").set_function(lambda: positions.listened)
    states.labels(w.metrics.service, "store").set_function(lambda: positions.reads)
    for symbol in _symbols(w.settings):  # statements planned before the first live bar
        store.symbol_state(symbol)
    features = build_feature_store(w.settings)
    # warm up before declaring ready: the first online read imports Feast and connects to the
    # online store (about a second), which must not delay the first live bar's decision
    with contextlib.suppress(LookupError):  # a fresh deployment: no view registered yet
        features.online_features(view_for(spec), _symbols(w.settings))
    # subscribed: the service lives in the bus's handlers
    parts = compose_inference(
        w.settings,
        w.bus,
        features,
        positions,
        positions.price,
        w.clock,
        symbols=_symbols(w.settings),
        reload_between_events=True,
    )
    _on_symbols_moved(w, "inference", parts.handlers.on_symbols_moved)
    return ServiceProcess(
        "inference",
        w.bus,
        w.metrics,
        on_close=[store.close],
        between=[parts.service.maybe_reload],  # the registry poll, after a turn's decisions
    )


def _on_symbols_moved(w: _Wiring, group: str, retain: Callable[[Iterable[str]], None]) -> None:
    """At every rebalance of ``group`` (an instance of the service joined or left), call
    ``retain`` with the symbols this instance handled and still receives (a bus without consumer
    groups shared by processes never rebalances)."""
    listen = getattr(w.bus.inner, "on_rebalance", None)
    if listen is not None:
        listen(group, lambda change: retain(change.held_keys))


def _share_account(w: _Wiring, parts: Any) -> None:
    """Execution instances of one consumer group share the account. In PostgreSQL each event is
    handled holding the account's lock, on the state the last instance committed; a store held
    in this process only (memory, SQLite) cannot be shared, nor can an exchange account (its
    order stream and reconciliation run in one process), so an instance that finds another one
    in its group stops before it handles anything."""
    from drl_trading.execution.adapter.postgres_store import PostgresExecutionStore

    cfg = w.settings.execution
    if isinstance(parts.store, PostgresExecutionStore):
        parts.handlers.account = parts.store
        if cfg.broker != "live":
            return
        why = "execution.broker 'live' follows the exchange account from one process"
    else:
        why = f"execution.store {cfg.store!r} keeps the account in one process"
    listen = getattr(w.bus.inner, "on_rebalance", None)
    members = getattr(w.bus.inner, "group_members", None)
    if listen is None or members is None:
        return

    def refuse_a_second_instance(change: Any) -> None:
        if change.gained and members("execution") > 1:
            raise UsageError(
                f"another execution instance runs in this consumer group, and {why}: they "
                "would trade the same cash. Run one execution instance, or (paper trading) "
                "set execution.store: postgres, one account shared by the instances"
            )

    listen("execution", refuse_a_second_instance)


def _ingest(w: _Wiring) -> ServiceProcess:
    from drl_trading.app.ingest import build_live_source, compose_online_ingest
    from drl_trading.common.bar_windows import BarWindows
    from drl_trading.common.domain import from_micros, to_micros
    from drl_trading.ingest.adapter.clocked_source import ClockedSource
    from drl_trading.ingest.core.live import slot_at
    from drl_trading.ingest.core.online_service import OnlineState
    from drl_trading.preprocess.core.checks import require_base_at_least

    cfg = w.settings.serve
    symbols = _symbols(w.settings)
    market_data = build_market_data(w.settings)
    spec = feature_set_for(w.settings)
    require_base_at_least(spec, cfg.timeframe)  # before anything is fetched or stored
    calendars = build_calendars(w.settings)
    calendar = calendars.for_symbols(symbols)
    # the stream starts where the market opens the base bar of serve.start (the next one while
    # the market is closed), so that the first base bar is whole: on 24/7, the base floor
    base = BarWindows(calendar, spec.base_timeframe)
    start = from_micros(base.first_open(to_micros(slot_at(base, cfg.start or datetime.now(UTC)))))
    if cfg.source == "replay" and cfg.end is None:
        raise ValueError("serve.source replay needs serve.start and serve.end")
    inner, history = build_live_source(
        w.settings,
        cfg.source,
        symbols,
        market_data,
        w.clock,
        start,
        cfg.end,
        cfg.speed,
        timeframe=cfg.timeframe,
    )
    source = ClockedSource(inner, w.manual, calendars=calendars)
    service = compose_online_ingest(
        w.bus, market_data, source, history, w.clock, timeframe=cfg.timeframe, calendars=calendars
    )
    # the feature set's look-back, in the market's bars: a live source fetches it, and the
    # catch-up feeds it so that every indicator has settled by the first live bar (and a
    # restarted preprocess rebuilds from the same origin, carried on every live bar)
    service.start(symbols, spec.history_start(calendar, start), live_from=start)
    streamed = metrics_gauge(w.metrics, "drl_ingest_bars_streamed", "Live bars streamed")

    def tick() -> int:
        n = service.pump(1) if service.state is OnlineState.STREAMING else 0
        streamed.set(service.stats().bars_streamed)
        flush = getattr(market_data, "flush", None)
        if flush is not None:
            try:
                flush()
            except Exception as exc:
                if not getattr(exc, "unavailable", False):
                    raise
                # the database restarts: the bars stay staged (already published) and the
                # next turn writes them; the live stream does not stop for it
                log.warning("market data write postponed", error=str(exc))
        return n

    def ready() -> bool:
        return service.state in (OnlineState.STREAMING, OnlineState.STOPPED)

    return ServiceProcess(
        "ingest",
        w.bus,
        w.metrics,
        tick=tick,
        ready=ready,
        on_close=[service.stop, market_data.close],
    )


def metrics_gauge(metrics: Metrics, name: str, doc: str) -> Any:
    from prometheus_client import Gauge

    return Gauge(name, doc, ["service"], registry=metrics.registry).labels(metrics.service)
