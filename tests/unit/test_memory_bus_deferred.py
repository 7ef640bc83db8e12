"""The in-memory bus delivers the topology's off-path topics (storing resampled bars) only when
nothing on the path is pending, so that in one process they follow a bar's order instead of
running between its features and its decision; per-key order and delivery are unchanged."""

from __future__ import annotations

from datetime import UTC, datetime

from drl_trading.app.infrastructure import build_bus
from drl_trading.app.settings import load_settings
from drl_trading.app.topology import OFF_PATH_TOPICS
from drl_trading.common.adapter.memory_bus import InMemoryBus
from drl_trading.common.domain import Symbol
from drl_trading.common.events import Event, PreprocessDataRequested, ProcessingMode, Topic

PATH = Topic.PREPROCESS_REQUESTED
NEXT = Topic.PREPROCESS_COMPLETED_ONLINE
OFF = Topic.STORE_RESAMPLED_REQUESTED


def _event(tag: str) -> PreprocessDataRequested:
    return PreprocessDataRequested(
        mode=ProcessingMode.ONLINE,
        symbols=[Symbol("BTCUSDT")],
        start=datetime(2024, 1, 1, tzinfo=UTC),
        end=datetime(2024, 1, 2, tzinfo=UTC),
        correlation_id=tag,
    )


def _chain(bus: InMemoryBus, seen: list[str]) -> None:
    """A bar's chain: the first handler publishes an off-path event *before* its next step, as
    preprocess asks ingest to store the resampled bars before announcing the features."""

    def first(event: Event) -> None:
        seen.append(f"path {event.correlation_id}")
        bus.publish(OFF, _event(f"store {event.correlation_id}"), key="BTCUSDT")
        bus.publish(NEXT, _event(f"next {event.correlation_id}"), key="BTCUSDT")

    def then(event: Event) -> None:
        seen.append(event.correlation_id)

    def off(event: Event) -> None:
        seen.append(f"off {event.correlation_id}")

    # subscription order puts the off-path consumer first: without deferral it would run first
    bus.subscribe(OFF, group="ingest", handler=off)
    bus.subscribe(PATH, group="preprocess", handler=first)
    bus.subscribe(NEXT, group="inference", handler=then)


def _two_bars(bus: InMemoryBus) -> list[str]:
    """Bars a and b through the chain, the bus polled until idle; what the handlers saw."""
    seen: list[str] = []
    _chain(bus, seen)
    for tag in ("a", "b"):
        bus.publish(PATH, _event(tag), key="BTCUSDT")
    while bus.poll():
        pass
    return seen


DEFERRED_ORDER = ["path a", "next a", "path b", "next b", "off store a", "off store b"]


def test_off_path_topics_wait_until_the_path_is_idle() -> None:
    bus = InMemoryBus(deferred=[OFF])
    assert _two_bars(bus) == DEFERRED_ORDER
    assert bus.pending() == 0


def test_without_deferral_the_sweep_interleaves_every_topic() -> None:
    # bar a's storing runs before bar b's chain (in one thread: ahead of b's decision)
    assert _two_bars(InMemoryBus()) == [
        "path a",
        "next a",
        "off store a",
        "path b",
        "next b",
        "off store b",
    ]


def test_max_messages_counts_deferred_deliveries_too() -> None:
    bus = InMemoryBus(deferred=[OFF])
    seen: list[str] = []
    _chain(bus, seen)
    bus.publish(PATH, _event("a"), key="BTCUSDT")
    assert bus.poll(2) == 2
    assert seen == ["path a", "next a"]
    assert bus.poll(5) == 1
    assert seen[-1] == "off store a"


def test_the_embedded_bus_defers_the_topologys_off_path_topics(tmp_path: object) -> None:
    bus = build_bus(load_settings(home=tmp_path))
    assert isinstance(bus, InMemoryBus)
    assert OFF in OFF_PATH_TOPICS
    assert _two_bars(bus) == DEFERRED_ORDER
