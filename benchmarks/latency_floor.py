"""The latency floor of the online chain: the same hops with handlers that only forward.

A latency figure alone says as much about the machine as about the code (issue 15: p99 8.1 ms
embedded here, 3.1 ms elsewhere). The floor is what the same chain costs with nothing but the
transport and the irreducible store calls, measured in the same run on the same bars; the
benchmarks report the real chain's p99 as a multiple of the floor's and each stage's overhead
above the floor's hop.

Distributed floor (``python benchmarks/latency_floor.py --config FILE SERVICE``, started by
`benchmarks/distributed.py`): four processes with the real services' consume loop
(`ServiceProcess`, `InstrumentedBus`), the real bus client (`build_bus`: the same producer and
consumer configuration) on the same topic names, consumer groups and partitions:

* ingest: the same paced `ReplaySource` as ``serve ingest`` (same bars, same speed); each bar
  becomes the `PreprocessDataRequested` ingest publishes (its ``received`` and ``ingest``
  stamps), published with the bus's encoding;
* preprocess (group ``preprocess``, ``requested.preprocess-data``): at each base-bar close (the
  bars the real preprocess completes) the message's bytes, unchanged, go to
  ``completed.preprocess-data.online``;
* inference (group ``inference``): the bytes, unchanged, to ``completed.predict``;
* execution (group ``execution``, ``completed.predict`` and ``requested.preprocess-data``, as the
  real one): records the stage latencies; the bars are consumed and dropped.

The bus decodes every message as it does for a real handler (`KafkaBus._handle`); nothing else
is decoded. The forwarded value is the received bytes; each forwarder adds its stamp as a header
(``floor.<stage>``, wall-clock seconds), which the execution floor adds to the stamps the event
carries, so the floor's stages are measured as the real ones (`StageLatency`: stage = previous
stamp to its own, bus hand-over included) and served on ``/metrics`` the same way.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from drl_trading.common.domain import Bar, Symbol, Timeframe
from drl_trading.common.events import (
    Event,
    PreprocessDataRequested,
    ProcessingMode,
    ResampledBar,
    Topic,
)
from drl_trading.common.latency import stamp
from drl_trading.ingest.core.online_service import bar_correlation_id

HEADER = "floor."
"""Prefix of the header in which a floor forwarder stamps its stage (Unix seconds, repr)."""


def bar_request(bar: Bar, close_time: datetime, received: float) -> PreprocessDataRequested:
    """The event real ingest publishes for a live bar (`OnlineIngestService._publish_online`),
    stamped ``received`` and ``ingest``."""
    return PreprocessDataRequested(
        correlation_id=bar_correlation_id(bar.symbol, bar.open_time),
        mode=ProcessingMode.ONLINE,
        symbols=[bar.symbol],
        timeframe=bar.timeframe,
        start=bar.open_time,
        end=close_time,
        bar_close_time=close_time,
        bars=[
            ResampledBar(
                open_time=bar.open_time,
                open=bar.open,
                high=bar.high,
                low=bar.low,
                close=bar.close,
                volume=bar.volume,
            )
        ],
        stages=stamp({"received": received}, "ingest"),
    )


def closes_base(event: Event, base: Timeframe) -> bool:
    """Whether a bar request completes a base bar (24/7 markets: its close is on the grid)."""
    close = getattr(event, "bar_close_time", None)
    return close is not None and base.floor(close) == close


# -- ratios -------------------------------------------------------------------------------------
def spread(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    """``median (min..max)`` of one figure over rounds."""
    if not values:
        return "n/a"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}..{fmt.format(max(values))})"


def print_floor_table(
    title: str,
    stages: Sequence[tuple[str, str]],
    real: Sequence[dict[str, tuple[float, float]]],
    floor: Sequence[dict[str, tuple[float, float]]],
    total: str,
) -> list[float]:
    """Per round: the real chain's and the floor's p50/p99 (ms) of every stage; printed as the
    median over rounds with min..max, with the overhead (real minus floor, within a round) and
    the ratio of the totals' p99. ``stages`` pairs a label with the key both tables use.
    Returns the rounds' ratios total p99 / floor p99."""
    print(f"\n{title} (ms; median over {len(real)} rounds, min..max)")
    head = (
        f"{'stage':<36}{'real p50':>10}{'floor p50':>11}{'real p99':>10}{'floor p99':>11}"
        f"{'over p50':>24}{'over p99':>24}"
    )
    print(head)
    print("-" * len(head))
    for label, key in stages:
        pairs = [(r.get(key), f.get(key)) for r, f in zip(real, floor, strict=True)]
        if any(r is None for r, _ in pairs):
            continue
        rp50 = [r[0] for r, _ in pairs if r is not None]
        rp99 = [r[1] for r, _ in pairs if r is not None]
        fp50 = [f[0] if f is not None else 0.0 for _, f in pairs]
        fp99 = [f[1] if f is not None else 0.0 for _, f in pairs]
        o50 = [a - b for a, b in zip(rp50, fp50, strict=True)]
        o99 = [a - b for a, b in zip(rp99, fp99, strict=True)]
        has_floor = any(f is not None for _, f in pairs)
        print(
            f"{label:<36}{statistics.median(rp50):>10.3f}"
            f"{(f'{statistics.median(fp50):.3f}' if has_floor else '-'):>11}"
            f"{statistics.median(rp99):>10.3f}"
            f"{(f'{statistics.median(fp99):.3f}' if has_floor else '-'):>11}"
            f" {spread(o50, '{:.3f}'):>23} {spread(o99, '{:.3f}'):>23}"
        )
    ratios = [r[total][1] / f[total][1] for r, f in zip(real, floor, strict=True) if f[total][1]]
    p50s = [r[total][0] / f[total][0] for r, f in zip(real, floor, strict=True) if f[total][0]]
    print(
        f"total p99 / floor p99: {spread(ratios)}x   (p50: {spread(p50s)}x)   goal <= 2x: "
        f"{'met' if ratios and statistics.median(ratios) <= 2.0 else 'NOT met'}"
    )
    return ratios


# -- distributed floor processes -----------------------------------------------------------------
def _forwarding_bus(settings: Any) -> Any:
    """`build_bus`'s Kafka client, with the message in hand exposed to the handler: the
    forwarders publish the received bytes, not a re-encoded event."""
    from drl_trading.app.infrastructure import build_bus
    from drl_trading.common.adapter.kafka_bus import KafkaBus

    bus = build_bus(settings)
    if not isinstance(bus, KafkaBus):
        raise SystemExit("the distributed latency floor needs bus.kind: kafka")

    class ForwardingKafkaBus(KafkaBus):
        current: tuple[bytes, str, dict[str, str]] = (b"", "", {})

        def _handle(
            self,
            group: str,
            topic: str,
            handler: Any,
            payload: bytes,
            key: str,
            headers: dict[str, str],
        ) -> None:
            self.current = (payload, key, headers)
            super()._handle(group, topic, handler, payload, key, headers)

    bus.__class__ = ForwardingKafkaBus  # same client objects and options as build_bus made
    return bus


def build_floor(name: str, settings: Any) -> Any:
    """The floor process of ``name``: `ServiceProcess` over the forwarding bus."""
    from drl_trading.app.infrastructure import build_calendars, feature_set_for
    from drl_trading.app.process import InstrumentedBus, Metrics, ServiceProcess
    from drl_trading.app.services import STREAM_TOPICS, metrics_gauge
    from drl_trading.common.latency import StageLatency

    metrics = Metrics(name)
    raw = _forwarding_bus(settings)
    raw.ensure_topics([*STREAM_TOPICS, *(Topic.dlq(t) for t in STREAM_TOPICS), Topic.error(name)])
    bus = InstrumentedBus(raw, metrics, None)
    base = feature_set_for(settings).base_timeframe

    def forward(to: str, stage: str, only_base: bool) -> Any:
        def handler(event: Event) -> None:
            if only_base and not closes_base(event, base):
                return
            payload, key, headers = raw.current
            raw.publish_raw(
                to, payload, key=key, headers={**headers, HEADER + stage: repr(time.time())}
            )

        return handler

    if name == "preprocess":
        bus.subscribe(
            Topic.PREPROCESS_REQUESTED,
            group=name,
            handler=forward(Topic.PREPROCESS_COMPLETED_ONLINE, "preprocess", True),
        )
        process = ServiceProcess(name, bus, metrics)
    elif name == "inference":
        bus.subscribe(
            Topic.PREPROCESS_COMPLETED_ONLINE,
            group=name,
            handler=forward(Topic.PREDICT_COMPLETED, "inference", False),
        )
        process = ServiceProcess(name, bus, metrics)
    elif name == "execution":
        latency = StageLatency()

        def decided(event: Event) -> None:
            headers = raw.current[2]
            stages = dict(getattr(event, "stages", {}) or {})
            for key, value in headers.items():
                if key.startswith(HEADER):
                    stages[key[len(HEADER) :]] = float(value)
            latency.record(stamp(stages, "execution"))

        bus.subscribe(Topic.PREDICT_COMPLETED, group=name, handler=decided)
        bus.subscribe(Topic.PREPROCESS_REQUESTED, group=name, handler=lambda event: None)
        process = ServiceProcess(name, bus, metrics, stages=latency.snapshot)
    elif name == "ingest":
        from drl_trading.app.infrastructure import build_market_data
        from drl_trading.ingest.adapter.replay_source import ReplaySource

        cfg = settings.serve
        symbols = [Symbol(s) for s in cfg.symbols]
        market_data = build_market_data(settings)
        source = ReplaySource(
            market_data,
            symbols,
            base.floor(cfg.start),
            cfg.end,
            speed=cfg.speed,
            timeframe=cfg.timeframe,
            calendars=build_calendars(settings),
        )
        bars: Iterator[Bar] = iter(source.bars())
        streamed = metrics_gauge(metrics, "drl_ingest_bars_streamed", "Live bars streamed")
        count = 0

        def tick() -> int:
            nonlocal count
            bar = next(bars, None)
            if bar is None:
                return 0
            received = time.time()
            close = bar.open_time + bar.timeframe.duration
            bus.publish(
                Topic.PREPROCESS_REQUESTED, bar_request(bar, close, received), key=str(bar.symbol)
            )
            count += 1
            streamed.set(count)
            return 1

        process = ServiceProcess(
            name, bus, metrics, tick=tick, on_close=[source.close, market_data.close]
        )
    else:
        raise SystemExit(f"no floor for {name!r}: ingest, preprocess, inference or execution")
    group = name
    process.lag = lambda: int(raw.lag(group))
    process.ready = lambda: bool(raw.joined())
    return process


def serve_floor(argv: Sequence[str]) -> None:
    """Entry point of one floor process; prints the line `service_port` reads."""
    from drl_trading.app.settings import load_settings
    from drl_trading.common.logs import configure_logging

    ap = argparse.ArgumentParser(description="one process of the distributed latency floor")
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("service")
    args = ap.parse_args(argv)
    settings = load_settings(config_file=args.config)
    configure_logging(settings.logging.level, settings.logging.json_output)
    process = build_floor(args.service, settings)
    bound = process.serve_http(0, settings.serve.host)
    print(f"{args.service}: health and metrics on http://{settings.serve.host}:{bound}", flush=True)
    process.install_signal_handlers()
    process.run()


if __name__ == "__main__":
    serve_floor(sys.argv[1:])
