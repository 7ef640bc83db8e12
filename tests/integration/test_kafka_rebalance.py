"""Two instances of a service in one consumer group on the real broker: they split the keys by
partition, per-key order kept; a joining instance takes partitions only after what was handled
on them is committed (nothing handled twice), the instance that gave them up learns which keys
it lost, and one that leaves hands its partitions back."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from drl_trading.common.adapter.kafka_bus import KafkaBus, KafkaOptions, Rebalance
from drl_trading.common.domain import Symbol
from drl_trading.common.events import Event, PreprocessDataRequested, ProcessingMode, Topic
from tests.conftest import require_server

pytestmark = pytest.mark.integration

KAFKA = os.environ.get("DRL_TEST_KAFKA", "127.0.0.1:9092")
T = Topic.PREPROCESS_REQUESTED
KEYS = [f"SYM{k}" for k in range(8)]


@pytest.fixture
def buses() -> Iterator[Callable[[], KafkaBus]]:
    host, port = KAFKA.rsplit(":", 1)
    require_server("Kafka", host, int(port))
    namespace = f"test-{uuid.uuid4().hex[:10]}."
    made: list[KafkaBus] = []

    def make() -> KafkaBus:
        made.append(KafkaBus(KafkaOptions(bootstrap_servers=KAFKA, namespace=namespace)))
        return made[-1]

    yield make
    for bus in made:
        bus.close()
    made[0].drop_namespace()


def _event(key: str, i: int) -> PreprocessDataRequested:
    return PreprocessDataRequested(
        mode=ProcessingMode.ONLINE,
        symbols=[Symbol(key)],
        start=datetime(2024, 1, 1, tzinfo=UTC),
        end=datetime(2024, 1, 2, tzinfo=UTC),
        correlation_id=f"{key}-{i}",
    )


def _until(done: Callable[[], bool], *buses: KafkaBus, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        for bus in buses:
            bus.poll(timeout=0.05)


def test_instances_split_the_keys_and_hand_partitions_over(
    buses: Callable[[], KafkaBus],
) -> None:
    a, b = buses(), buses()
    handled: list[tuple[str, str]] = []  # (instance, correlation id)
    changes: dict[str, list[Rebalance]] = {"a": [], "b": []}
    for name, bus in (("a", a), ("b", b)):
        bus.on_rebalance("svc", changes[name].append)

    def handler(name: str) -> Callable[[Event], None]:
        return lambda e: handled.append((name, e.correlation_id))

    def publish(round_: int) -> None:
        for i in range(5):
            for key in KEYS:
                a.publish(T, _event(key, 10 * round_ + i), key=key)

    a.subscribe(T, group="svc", handler=handler("a"))
    publish(0)
    _until(lambda: len(handled) == 40, a)
    assert a.assigned("svc") == 4 and a.group_members("svc") == 1
    assert changes["a"][0].gained == {(str(T), p) for p in range(4)}

    # a second instance joins: the partitions are split, A learns the keys it gave up
    b.subscribe(T, group="svc", handler=handler("b"))
    _until(lambda: b.assigned("svc") > 0 and a.assigned("svc") + b.assigned("svc") == 4, a, b)
    assert a.group_members("svc") == 2
    lost = set().union(*(c.lost_keys for c in changes["a"]))
    assert lost and lost < set(KEYS)
    assert changes["a"][-1].held_keys == set(KEYS) - lost  # what A still serves, state intact
    publish(1)
    _until(lambda: len(handled) == 80, a, b)
    second = handled[40:]
    by_key: dict[str, set[str]] = {}
    for name, cid in second:
        by_key.setdefault(cid.split("-")[0], set()).add(name)
    assert all(len(owners) == 1 for owners in by_key.values()), by_key  # one owner per key
    assert {k for k, owners in by_key.items() if owners == {"b"}} == lost
    for key in KEYS:  # per-key order kept across the hand-over
        order = [int(cid.split("-")[1]) for _, cid in second if cid.startswith(f"{key}-")]
        assert order == sorted(order) == list(range(10, 15))

    # B leaves: A gets its partitions back and resumes after what B committed
    b.close()
    _until(lambda: a.assigned("svc") == 4, a)
    publish(2)
    _until(lambda: len(handled) == 120, a, timeout=30.0)
    time.sleep(1.0)
    a.poll(timeout=0.5)
    ids = [cid for _, cid in handled]
    assert len(ids) == len(set(ids)) == 120, "a message was handled twice"
    assert all(name == "a" for name, _ in handled[80:])
    assert a.group_lag("svc", [T]) == 0
