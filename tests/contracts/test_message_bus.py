"""Contract of the message-bus port, over the in-memory bus and Kafka (a real broker, started by
scripts/stack.sh; each test gets its own namespace of topics and groups)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from drl_trading.common.adapter.memory_bus import InMemoryBus
from drl_trading.common.domain import Symbol
from drl_trading.common.events import (
    DeadLetter,
    ErrorOccurred,
    Event,
    PreprocessDataRequested,
    ProcessingMode,
    Topic,
    decode,
)
from tests.conftest import require_server

T = Topic.PREPROCESS_REQUESTED


def _event(symbol: str, i: int) -> PreprocessDataRequested:
    return PreprocessDataRequested(
        mode=ProcessingMode.ONLINE,
        symbols=[Symbol(symbol)],
        start=datetime(2024, 1, 1, tzinfo=UTC),
        end=datetime(2024, 1, 2, tzinfo=UTC),
        correlation_id=f"{symbol}-{i}",
    )


KAFKA = os.environ.get("DRL_TEST_KAFKA", "127.0.0.1:9092")


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.integration)])
def bus_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    made: list[Any] = []

    def make(**kwargs: Any) -> Any:
        if request.param == "memory":
            bus: Any = InMemoryBus(**kwargs)
        else:
            from drl_trading.common.adapter.kafka_bus import KafkaBus, KafkaOptions

            host, port = KAFKA.rsplit(":", 1)
            require_server("Kafka", host, int(port))
            sleep = kwargs.pop("sleep", time.sleep)
            options = KafkaOptions(
                bootstrap_servers=KAFKA,
                namespace=f"test-{uuid.uuid4().hex[:10]}.",
                retry_backoff_s=0.0,
                **kwargs,
            )
            bus = KafkaBus(options, sleep=sleep)
        made.append(bus)
        return bus

    yield make
    for bus in made:
        bus.close()
        if request.param == "kafka":
            bus.drop_namespace()  # the shared broker keeps no test's topics


def drain(bus: Any) -> None:
    if isinstance(bus, InMemoryBus):
        while bus.poll():
            pass
    else:
        bus.drain()


def test_per_key_order_is_kept(bus_factory: Callable[..., Any]) -> None:
    bus = bus_factory(partitions=3)
    seen: list[str] = []
    bus.subscribe(T, group="g", handler=lambda e: seen.append(e.correlation_id))
    for i in range(20):
        for sym in ("AAA", "BBB", "CCC", "DDD"):
            bus.publish(T, _event(sym, i), key=sym)
    drain(bus)
    assert len(seen) == 80
    for sym in ("AAA", "BBB", "CCC", "DDD"):
        mine = [s for s in seen if s.startswith(sym)]
        assert mine == [f"{sym}-{i}" for i in range(20)]


def test_each_group_gets_every_message(bus_factory: Callable[..., Any]) -> None:
    bus = bus_factory()
    a: list[Event] = []
    b: list[Event] = []
    bus.subscribe(T, group="a", handler=a.append)
    bus.subscribe(T, group="b", handler=b.append)
    for i in range(5):
        bus.publish(T, _event("AAA", i), key="AAA")
    drain(bus)
    assert [e.correlation_id for e in a] == [e.correlation_id for e in b]
    assert len(a) == 5
    assert bus.pending() == 0


def test_events_round_trip_through_the_wire_format(bus_factory: Callable[..., Any]) -> None:
    bus = bus_factory()
    got: list[Event] = []
    bus.subscribe(T, group="g", handler=got.append)
    sent = _event("AAA", 1)
    bus.publish(T, sent, key="AAA")
    drain(bus)
    assert got == [sent]
    assert got[0] is not sent  # decoded from bytes, not passed by reference


def test_transient_failure_is_retried_then_succeeds(
    bus_factory: Callable[..., Any],
) -> None:
    bus = bus_factory(max_attempts=3)
    calls: list[str] = []

    def flaky(event: Event) -> None:
        calls.append(event.correlation_id)
        if len(calls) < 3:
            raise ConnectionError("store unavailable")

    bus.subscribe(T, group="g", handler=flaky)
    bus.publish(T, _event("AAA", 1), key="AAA")
    drain(bus)
    assert calls == ["AAA-1"] * 3
    assert bus.messages(Topic.dlq(T)) == []


def test_poison_message_goes_to_dlq_with_error_event_and_does_not_block(
    bus_factory: Callable[..., Any],
) -> None:
    bus = bus_factory(max_attempts=2, partitions=1)
    handled: list[str] = []

    def handler(event: Event) -> None:
        if event.correlation_id == "AAA-0":
            raise RuntimeError("boom")
        handled.append(event.correlation_id)

    bus.subscribe(T, group="svc", handler=handler)
    for i in range(3):
        bus.publish(T, _event("AAA", i), key="AAA")
    drain(bus)
    assert handled == ["AAA-1", "AAA-2"]
    (letter,) = bus.messages(Topic.dlq(T))
    assert isinstance(letter, DeadLetter)
    assert letter.attempts == 2
    assert letter.error_type == "RuntimeError"
    assert letter.message == "boom"
    assert letter.topic == T
    assert decode(letter.payload.encode()).correlation_id == "AAA-0"
    (error,) = bus.messages(Topic.error("svc"))
    assert isinstance(error, ErrorOccurred)
    assert error.correlation_id == "AAA-0"
    assert error.service == "svc"


class DatabaseDownError(ConnectionError):
    unavailable = True


def test_an_unavailable_dependency_is_waited_for_and_never_dead_lettered(
    bus_factory: Callable[..., Any],
) -> None:
    slept: list[float] = []
    bus = bus_factory(max_attempts=2, sleep=slept.append, unavailable_timeout_s=60.0)
    calls = 0

    def handler(event: Event) -> None:
        nonlocal calls
        calls += 1
        if calls <= 5:  # more failures than max_attempts: a restart, not a poison message
            raise DatabaseDownError("database restarting")

    bus.subscribe(T, group="g", handler=handler)
    bus.publish(T, _event("AAA", 0), key="AAA")
    drain(bus)
    assert calls == 6
    assert bus.messages(Topic.dlq(T)) == []
    assert len(slept) == 5 and slept == sorted(slept)
    assert bus.pending() == 0


def test_a_dependency_down_too_long_stops_the_consumer_uncommitted(
    bus_factory: Callable[..., Any],
) -> None:
    bus = bus_factory(sleep=lambda s: None, unavailable_timeout_s=1.0)

    def handler(event: Event) -> None:
        raise DatabaseDownError("database gone")

    bus.subscribe(T, group="g", handler=handler)
    bus.publish(T, _event("AAA", 0), key="AAA")
    with pytest.raises(DatabaseDownError):
        drain(bus)
    assert bus.messages(Topic.dlq(T)) == []
    assert bus.pending() == 1  # redelivered to the restarted service


def test_non_retryable_error_skips_retries(bus_factory: Callable[..., Any]) -> None:
    bus = bus_factory(max_attempts=5)
    calls = 0

    class PermanentError(LookupError):
        retryable = False

    def handler(event: Event) -> None:
        nonlocal calls
        calls += 1
        raise PermanentError("no data")

    bus.subscribe(T, group="g", handler=handler)
    bus.publish(T, _event("AAA", 0), key="AAA")
    drain(bus)
    assert calls == 1
    assert len(bus.messages(Topic.dlq(T))) == 1


def test_malformed_message_is_dead_lettered(bus_factory: Callable[..., Any]) -> None:
    bus = bus_factory()
    got: list[Event] = []
    bus.subscribe(T, group="g", handler=got.append)
    bus.publish_raw(T, b'{"event_type": "nope"}', key="AAA")
    bus.publish_raw(T, b"\xff not json", key="AAA")
    bus.publish(T, _event("AAA", 1), key="AAA")
    drain(bus)
    assert [e.correlation_id for e in got] == ["AAA-1"]
    letters = bus.messages(Topic.dlq(T))
    assert len(letters) == 2
    assert all(isinstance(x, DeadLetter) and x.error_type == "EventDecodeError" for x in letters)


def test_redelivery_after_rewind_is_at_least_once(bus_factory: Callable[..., Any]) -> None:
    bus = bus_factory()
    got: list[str] = []
    bus.subscribe(T, group="g", handler=lambda e: got.append(e.correlation_id))
    for i in range(3):
        bus.publish(T, _event("AAA", i), key="AAA")
    drain(bus)
    bus.rewind("g", T)
    drain(bus)
    assert got == ["AAA-0", "AAA-1", "AAA-2"] * 2


def test_events_published_by_handlers_are_delivered(
    bus_factory: Callable[..., Any],
) -> None:
    bus = bus_factory()
    out: list[str] = []
    bus.subscribe(T, group="a", handler=lambda e: bus.publish("x.next", e, key="k"))
    bus.subscribe("x.next", group="b", handler=lambda e: out.append(e.correlation_id))
    bus.publish(T, _event("AAA", 7), key="AAA")
    drain(bus)
    assert out == ["AAA-7"]


def test_double_subscription_of_a_group_is_refused(bus_factory: Callable[..., Any]) -> None:
    bus = bus_factory()
    bus.subscribe(T, group="g", handler=lambda e: None)
    with pytest.raises(ValueError, match="already subscribes"):
        bus.subscribe(T, group="g", handler=lambda e: None)


@pytest.mark.integration
@pytest.mark.parametrize("bus_factory", ["kafka"], indirect=True)  # a broker's notion
def test_kafka_namespace_topics_can_be_dropped(bus_factory: Callable[..., Any]) -> None:
    bus = bus_factory()
    bus.publish(T, _event("AAA", 0), key="AAA")
    ns = bus.options.namespace
    assert bus.drop_namespace() >= 1
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = [t for t in bus._admin.list_topics(timeout=10).topics if t.startswith(ns)]
        if not left:
            break
        time.sleep(0.2)
    assert not left
