"""The collector kept off the path of a bar: `HeapSettler`, `CollectorPauses`, and the service
loop that freezes again after a handler's lazy imports and runs its other work between turns
(`ServiceProcess.between`: after a turn's handlers, and a failure there does not stop the
stream)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from drl_trading.app.heap import CollectorPauses, HeapSettler
from drl_trading.app.process import InstrumentedBus, Metrics, ServiceProcess
from drl_trading.common.adapter.memory_bus import InMemoryBus
from drl_trading.common.events import ErrorOccurred, Event


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the other tests' objects back in the collector's sight


class Modules:
    """A stand-in for ``len(sys.modules)``: a test "imports" by adding one."""

    def __init__(self) -> None:
        self.n = 100

    def __call__(self) -> int:
        return self.n


def test_the_first_settle_freezes_then_only_after_an_import() -> None:
    modules = Modules()
    heap = HeapSettler(modules)
    gc.unfreeze()
    assert heap.settle() is True
    assert gc.get_freeze_count() > 0 and heap.freezes == 1
    assert heap.settle() is False  # nothing imported since
    kept = [object() for _ in range(10)], {"cycle": None}
    modules.n += 1
    frozen = gc.get_freeze_count()
    assert heap.settle() is True
    assert heap.freezes == 2
    assert gc.get_freeze_count() > frozen  # what was created since is frozen too
    assert heap.settle() is False
    assert kept


def test_a_full_collection_after_settling_scans_only_what_came_since() -> None:
    heap = HeapSettler(Modules())
    bulk = [[i] for i in range(200_000)]  # a large heap, as an import leaves
    heap.settle()
    gc.collect()
    # the frozen objects are out of every generation: the oldest holds none of them
    assert len(gc.get_objects(generation=2)) < len(bulk)
    assert gc.get_freeze_count() >= len(bulk)


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    """Generous thresholds, so that no automatic collection runs while a test counts; restored."""
    was = gc.get_threshold()
    gc.set_threshold(100_000, 3, 2)
    gc.collect()
    yield gc.get_threshold()
    gc.set_threshold(*was)


def test_settle_collects_the_young_generations_between_events(
    thresholds: tuple[int, int, int],
) -> None:
    """Below a quarter of generation 0's threshold nothing runs; above it generation 0 is
    collected, and generation 1 (then 2) whenever the collector would have taken it along."""
    from drl_trading.app.heap import YOUNG_SHARE

    t0, t1, t2 = thresholds
    heap = HeapSettler(Modules())
    heap.settle()  # the first call freezes
    seen: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.append(record)
    try:
        kept: list[list[int]] = []
        few = int(t0 * YOUNG_SHARE) // 2
        kept.extend([i] for i in range(few))
        assert heap.settle() is False
        assert seen == [] and heap.young_collections == 0
        rounds = (t1 + 1) * (t2 + 1) + 1  # up to the first collection of generation 2
        for _ in range(rounds):
            kept.extend([i] for i in range(int(t0 * YOUNG_SHARE) + 1))
            heap.settle()
        assert kept
    finally:
        gc.callbacks.remove(record)
    assert heap.young_collections == len(seen) == rounds
    # the collector's own rhythm: generation 1 every (t1 + 1)-th, generation 2 after t2 of 1
    young = [0] * t1
    assert seen == [*young, 1, *young, 1, *young, 2, 0]


def test_settle_collects_nothing_while_the_collector_is_disabled(
    thresholds: tuple[int, int, int],
) -> None:
    heap = HeapSettler(Modules())
    heap.settle()
    gc.disable()
    try:
        kept = [[i] for i in range(thresholds[0])]
        heap.settle()
        assert kept and heap.young_collections == 0
    finally:
        gc.enable()


def test_collector_pauses_are_recorded_while_installed_and_observed_when_drained() -> None:
    seen: list[tuple[int, float]] = []
    with CollectorPauses(lambda g, s: seen.append((g, s))) as pauses:
        gc.collect(1)
        gc.collect(2)
        assert seen == []  # the callback only records: nothing observed inside a collection
        drained = pauses.drain()
    assert drained == len(seen) >= 2
    assert [g for g, _ in seen[-2:]] == [1, 2]
    assert all(s >= 0.0 for _, s in seen)
    gc.collect()
    assert pauses.drain() == 0  # removed: no more records
    assert pauses.dropped == 0


def test_pauses_beyond_the_capacity_are_counted_as_dropped_oldest_first() -> None:
    seen: list[int] = []
    with CollectorPauses(lambda g, s: seen.append(g), capacity=2) as pauses:
        gc.collect(0)
        gc.collect(1)
        gc.collect(2)
    pauses.drain()
    assert seen[-2:] == [1, 2]
    assert pauses.dropped >= 1


def test_a_pause_during_an_observation_does_not_take_the_observers_lock() -> None:
    """The deadlock this design avoids: a collection triggered while the metrics' lock is held
    (by a scrape, or by the loop's own observe) must not call back into the metrics."""
    import threading

    lock = threading.Lock()  # not reentrant, like a Prometheus histogram's
    found_held: list[int] = []

    def observe(generation: int, seconds: float) -> None:
        if not lock.acquire(blocking=False):  # a blocking acquire would wait for ever
            found_held.append(generation)
            return
        lock.release()

    with CollectorPauses(observe) as pauses, lock:
        gc.collect()
    assert pauses.drain() >= 1
    assert found_held == []


def _sample(message: str) -> Event:
    return ErrorOccurred(
        service="test",
        topic="t",
        failed_event_id=None,
        error_type="X",
        message=message,
        attempts=1,
    )


def test_the_service_loop_freezes_at_start_and_after_a_handler_imported() -> None:
    modules = Modules()
    metrics = Metrics("test")
    inner = InMemoryBus()
    bus = InstrumentedBus(inner, metrics, None)
    process = ServiceProcess("test", bus, metrics, heap=HeapSettler(modules))
    handled: list[str] = []

    def handler(event: Event) -> None:
        assert isinstance(event, ErrorOccurred)
        handled.append(event.message)
        if event.message == "imports":
            modules.n += 5  # a lazy import, as Feast's at a first online read
            gc.collect()  # a pause the metrics must show
        if len(handled) == 3:
            process.stop()

    bus.subscribe("t", group="g", handler=handler)
    for message in ("plain", "imports", "plain again"):
        inner.publish("t", _sample(message), key="k")
    process.run()
    assert handled == ["plain", "imports", "plain again"]
    freezes = metrics.registry.get_sample_value("drl_heap_freezes_total", {"service": "test"})
    assert freezes == 2  # at start, then after the turn whose handler imported
    full = metrics.registry.get_sample_value(
        "drl_gc_pause_seconds_count", {"service": "test", "generation": "2"}
    )
    assert full is not None and full >= 1


def test_work_between_turns_runs_after_the_handlers_and_survives_a_failure() -> None:
    metrics = Metrics("test")
    inner = InMemoryBus()
    bus = InstrumentedBus(inner, metrics, None)
    trace: list[str] = []
    process = ServiceProcess("test", bus, metrics)

    def handler(event: Event) -> None:
        assert isinstance(event, ErrorOccurred)
        trace.append(f"handled {event.message}")

    def failing() -> None:
        trace.append("failing")
        raise ConnectionError("registry unreachable")

    def counting() -> None:
        trace.append("between")
        if trace.count("between") == 1:
            inner.publish("t", _sample("second"), key="k")  # arrives during the housekeeping
        if trace.count("between") == 3:
            process.stop()

    process.between.extend([failing, counting])
    bus.subscribe("t", group="g", handler=handler)
    inner.publish("t", _sample("first"), key="k")
    process.run()
    assert trace[:6] == [
        "handled first",
        "failing",
        "between",  # the failure before it did not skip it
        "handled second",  # the next turn handled what arrived meanwhile
        "failing",
        "between",
    ]
    assert trace.count("handled first") == trace.count("handled second") == 1
