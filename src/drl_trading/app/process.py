"""One service as its own process: the consume loop, health, Prometheus metrics, shutdown.

`ServiceProcess` drives whatever the service subscribed on its bus (and, for ingest, its live
source) until asked to stop. Every handler goes through `InstrumentedBus`, which counts events
and errors per topic, times the handlers, and, with a market clock, moves the clock to the bar
time the event carries before the handler runs (a replay is judged on market time in every
process). An HTTP endpoint on ``port`` answers:

* ``/healthz`` (liveness): 200 while the loop has gone round within ``stall_after`` seconds;
* ``/readyz`` (readiness): 200 once the service said it is ready (consumers joined, model
  loaded, catch-up done), 503 before and while stopping;
* ``/metrics``: Prometheus text format.

SIGTERM and SIGINT stop the loop after the handler in flight; then the bus is closed (its
consumers leave their groups, the producer is flushed) and the stores are closed.
"""

from __future__ import annotations

import gc
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from drl_trading.app.heap import CollectorPauses, HeapSettler
from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.events import Event
from drl_trading.common.ports import Handler, MessageBus

log = structlog.get_logger(__name__)


class Metrics:
    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.service = service
        labels = ["service", "topic"]
        self.handled = Counter(
            "drl_events_handled", "Events handled", labels, registry=self.registry
        )
        self.errors = Counter(
            "drl_handler_errors", "Handler failures (each attempt)", labels, registry=self.registry
        )
        self.seconds = Histogram(
            "drl_handler_seconds",
            "Handler wall time",
            labels,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
            registry=self.registry,
        )
        self.dead_letters = Gauge(
            "drl_dead_letters", "Messages moved to a DLQ", ["service"], registry=self.registry
        )
        self.lag = Gauge(
            "drl_consumer_lag", "Messages not yet committed", ["service"], registry=self.registry
        )
        self.stage = Gauge(
            "drl_stage_latency_seconds",
            "Online chain stage latency (quantile)",
            ["service", "stage", "quantile"],
            registry=self.registry,
        )
        self.loops = Counter(
            "drl_loop_iterations", "Consume loop iterations", ["service"], registry=self.registry
        )
        self.gc_pauses = Histogram(
            "drl_gc_pause_seconds",
            "Pauses of Python's cyclic garbage collector, by generation (2: full)",
            ["service", "generation"],
            buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.heap_freezes = Counter(
            "drl_heap_freezes",
            "Collect-and-freeze of the heap (at start-up, then after a turn that imported modules)",
            ["service"],
            registry=self.registry,
        )

    def observe_gc(self, generation: int, seconds: float) -> None:
        self.gc_pauses.labels(self.service, str(generation)).observe(seconds)


class InstrumentedBus:
    """A `MessageBus` whose handlers are counted, timed and (optionally) clocked."""

    def __init__(self, inner: MessageBus, metrics: Metrics, clock: ManualClock | None) -> None:
        self.inner = inner
        self.metrics = metrics
        self.clock = clock

    def publish(self, topic: str, event: Event, *, key: str) -> None:
        self.inner.publish(topic, event, key=key)

    def subscribe(self, topic: str, *, group: str, handler: Handler) -> None:
        m = self.metrics
        labels = (m.service, topic)

        def wrapped(event: Event) -> None:
            if self.clock is not None:
                self._follow(event)
            started = time.perf_counter()
            try:
                handler(event)
            except Exception:
                m.errors.labels(*labels).inc()
                raise
            m.seconds.labels(*labels).observe(time.perf_counter() - started)
            m.handled.labels(*labels).inc()

        self.inner.subscribe(topic, group=group, handler=wrapped)

    def poll(self, max_messages: int | None = None, timeout: float | None = None) -> int:
        return self.inner.poll(max_messages, timeout)

    def close(self) -> None:
        self.inner.close()

    def _follow(self, event: Event) -> None:
        """Market time: the newest bar time any event has carried so far."""
        assert self.clock is not None
        when: datetime | None = getattr(event, "bar_close_time", None)
        if when is not None and when > self.clock.now():
            self.clock.set(when)


@dataclass
class ServiceProcess:
    name: str
    bus: InstrumentedBus
    metrics: Metrics
    tick: Callable[[], int] | None = None
    """Extra work per loop turn (ingest pumps its live source); returns units of work done."""
    ready: Callable[[], bool] = lambda: True
    on_close: list[Callable[[], None]] = field(default_factory=list)
    between: list[Callable[[], object]] = field(default_factory=list)
    """Work between two loop turns, after the turn's output is flushed, so off every event's
    path (inference's registry poll); one that raises is logged and the loop goes on."""
    lag: Callable[[], int] | None = None
    stages: Callable[[], dict[str, Any]] | None = None
    stall_after: float = 30.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _last_loop: float = field(default_factory=time.monotonic)
    _server: ThreadingHTTPServer | None = None
    _ready: bool = False
    heap: HeapSettler = field(default_factory=HeapSettler)
    _pauses: CollectorPauses | None = None

    def serve_http(self, port: int, host: str = "127.0.0.1") -> int:
        """Start the health/metrics endpoint in a thread; returns the bound port."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    alive = time.monotonic() - owner._last_loop < owner.stall_after
                    self._send(200 if alive else 503, "ok\n" if alive else "stalled\n")
                elif path == "/readyz":
                    ok = owner.is_ready()
                    self._send(200 if ok else 503, "ready\n" if ok else "not ready\n")
                elif path == "/metrics":
                    owner.refresh_gauges()
                    body = generate_latest(owner.metrics.registry)
                    self._send(200, body, CONTENT_TYPE_LATEST)
                else:
                    self._send(404, "not found\n")

            def _send(self, status: int, body: str | bytes, kind: str = "text/plain") -> None:
                data = body.encode() if isinstance(body, str) else body
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the scraper gave up; nothing to tell it

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        thread = threading.Thread(target=self._server.serve_forever, args=(0.2,), daemon=True)
        thread.start()
        return int(self._server.server_address[1])

    def is_ready(self) -> bool:
        """The loop's last verdict: readiness checks touch the Kafka consumer, which only the
        loop's thread may call, so a probe never waits on it."""
        return self._ready and not self._stop.is_set()

    def _check_ready(self) -> None:
        try:
            self._ready = bool(self.ready())
        except Exception as exc:
            log.debug("readiness check failed", error=repr(exc))
            self._ready = False

    def refresh_gauges(self) -> None:
        m = self.metrics
        stats = getattr(self.bus.inner, "stats", {}) or {}
        dead = sum(v for k, v in stats.items() if str(k).startswith("dead_lettered:"))
        m.dead_letters.labels(m.service).set(dead)
        if self.stages is not None:
            for stage, snap in self.stages().items():
                for q in ("p50", "p99", "max"):
                    m.stage.labels(m.service, stage, q).set(getattr(snap, q))

    def stop(self, *_: object) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def _measure_lag(self) -> None:
        """Consumer lag asks the broker (offsets and watermarks): done from the loop every few
        seconds, never from a scrape, which must answer at once."""
        if self.lag is None:
            return
        try:
            self.metrics.lag.labels(self.metrics.service).set(self.lag())
        except Exception as exc:
            log.debug("lag unavailable", error=str(exc))

    def _settle_heap(self) -> None:
        """Between two turns: the collector's pauses since the last turn into the metrics (in
        this thread, never from the collector's callback), then collect-and-freeze if the turn
        imported modules."""
        if self._pauses is not None:
            self._pauses.drain()
        if self.heap.settle():
            self.metrics.heap_freezes.labels(self.metrics.service).inc()
            log.debug(
                "heap frozen",
                service=self.name,
                frozen_objects=gc.get_freeze_count(),
                seconds=round(self.heap.last_seconds, 4),
            )

    def _between_turns(self) -> None:
        for work in self.between:
            try:
                work()
            except Exception as exc:  # housekeeping: the stream goes on without it
                log.warning("work between turns failed", service=self.name, error=repr(exc))

    def run(self) -> None:
        log.info("service started", service=self.name)
        # the start-up (Feast, torch, MLflow imports, the model) leaves a large heap that the
        # collector would rescan on every full collection, a pause of tens to hundreds of
        # milliseconds in the middle of the stream: move it out of the collector's sight, now
        # and after any turn whose handlers imported more (Feast is imported lazily by the
        # first event that needs it: app/heap.py)
        self._pauses = pauses = CollectorPauses(self.metrics.observe_gc)
        pauses.install()
        self._settle_heap()
        next_lag = next_ready = 0.0
        busy = False
        try:
            while not self._stop.is_set():
                self._last_loop = now = time.monotonic()
                if now >= next_lag:
                    self._measure_lag()
                    next_lag = now + 5.0
                if now >= next_ready:
                    self._check_ready()
                    next_ready = now + 0.25
                self.metrics.loops.labels(self.metrics.service).inc()
                # the tick did work last turn: do not wait on the bus this turn
                self.bus.poll(timeout=0.0 if busy else None)
                busy = bool(self.tick()) if self.tick is not None else False
                self._between_turns()
                # after the turn's handlers, whose output is flushed: O(1) unless they imported
                self._settle_heap()
        finally:
            pauses.remove()
            pauses.drain()
            if pauses.dropped:
                log.warning("collector pauses lost", service=self.name, dropped=pauses.dropped)
            log.info("service stopping", service=self.name)
            self.bus.close()
            for close in self.on_close:
                try:
                    close()
                except Exception as exc:
                    log.warning("close failed", error=repr(exc))
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
            log.info("service stopped", service=self.name)
