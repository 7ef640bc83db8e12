"""Keeping Python's cyclic garbage collector off the path of a bar.

A full collection rescans every tracked object the process holds. After the imports a service
needs (Feast pulls in pandas, pyarrow and torch: ~340k objects) that rescan takes ~130 ms on a
2-core machine, and it lands on whichever bar's handler happens to allocate the object that
crosses the collector's threshold: a pause far above a bar's whole budget, in the p99 of every
stage. `gc.freeze` moves the objects alive now out of the collector's sight (they are still
freed by reference counting; only cycles among them are never collected), after which a full
collection scans only what was created since: microseconds to a few milliseconds.

Freezing once at start-up is not enough: Feast and the model's libraries are imported lazily,
by the first event that needs them (preprocess's catch-up, inference's first online read), so
the big heap arrives after the start-up freeze. `HeapSettler.settle` is called between events
(after a consume loop's turn, whose output is flushed; after a session's bar, once it is
acknowledged) and collects and freezes again whenever modules were imported since its last
freeze: the lazy imports' cost is paid once, between events, instead of at every full
collection on the path.

The young generations are collected between events too. The collector starts a collection of
generation 0 when allocations exceed deallocations by its threshold (700), from inside whichever
allocation crosses it: in an embedded replay one bar in a hundred paid one (0.13-0.6 ms, and a
generation-1 collection of ~1 ms one bar in a thousand), as many bars as the p99 counts. `settle`
runs that collection itself once a quarter of the threshold is reached (`YOUNG_SHARE`), and the
older generation it would have triggered with it, so the allocator rarely reaches the threshold
inside a handler.

`CollectorPauses` times every collection (`gc.callbacks`) so that a service can serve them as
metrics and a benchmark can tell a collector pause from the code's own work; the callback only
records, and the service's loop drains the record into its metrics between events (a callback
that took the metrics' lock could deadlock on a thread that held it).
"""

from __future__ import annotations

import gc
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["CollectorPauses", "HeapSettler"]


YOUNG_SHARE = 0.25
"""Share of generation 0's threshold at which `settle` collects it (see the module)."""


class HeapSettler:
    """Collects and freezes the heap when modules were imported since the last time, and
    collects the young generations between events (see the module)."""

    def __init__(self, modules: Callable[[], int] = lambda: len(sys.modules)) -> None:
        self._modules = modules
        self._frozen_at: int | None = None
        self.freezes = 0
        """How often `settle` collected and froze (the first call always does)."""
        self.last_seconds = 0.0
        """Wall seconds of the last collect-and-freeze."""
        self.young_collections = 0
        """Collections of the young generations `settle` ran between events."""

    def settle(self) -> bool:
        """Collect and freeze when this is the first call or modules were imported since the
        last freeze; returns whether it did. Cheap otherwise (one length): call it between
        every two events."""
        if self._frozen_at is not None and self._modules() == self._frozen_at:
            self._collect_young()
            return False
        began = time.perf_counter()
        gc.collect()
        gc.freeze()
        self.last_seconds = time.perf_counter() - began
        self._frozen_at = self._modules()
        self.freezes += 1
        return True

    def _collect_young(self) -> None:
        """Collect generation 0 once `YOUNG_SHARE` of its threshold is allocated, with each
        older generation whose own count this collection would make it due (as the collector
        itself would: generation 1 after ``threshold[1]`` collections of 0, 2 after
        ``threshold[2]`` of 1). Nothing when the collector is disabled.

        The full collection is forced too, although the collector would also wait until the
        objects that survived into generation 2 exceed a quarter of it: collecting at a quarter
        of the threshold promotes young objects sooner, and without the forced full collections
        the collector's own ran more often, inside handlers (the unit suite, which runs paper
        sessions and service loops in-process, took 125 s that way against 80 s with them and
        88 s without young collections at all, in one sitting)."""
        t0, t1, t2 = gc.get_threshold()
        if t0 <= 0 or not gc.isenabled():
            return
        c0, c1, c2 = gc.get_count()
        if c0 < t0 * YOUNG_SHARE:
            return
        generation = 0
        if c1 + 1 > t1:
            generation = 2 if c2 + 1 > t2 else 1
        gc.collect(generation)
        self.young_collections += 1


class CollectorPauses:
    """Times every collection of the cyclic collector while installed (``with`` or
    `install`/`remove`); `drain` hands the pauses recorded since its last call to
    ``observe(generation, seconds)``.

    The collector's callback runs in whichever thread allocated the object that triggered the
    collection, at any bytecode, possibly while that thread holds a lock: a Prometheus
    histogram's (a scrape, or the loop's own ``observe``) is not reentrant, so observing from
    inside the callback could deadlock the thread on itself. The callback only appends to a
    bounded deque (one C call, no lock taken in Python); the thread that owns the metrics
    drains it between events. Pauses beyond `capacity` between two drains are counted in
    `dropped`, oldest first."""

    def __init__(self, observe: Callable[[int, float], None], capacity: int = 16_384) -> None:
        self._observe = observe
        self._began: float | None = None
        self._pauses: deque[tuple[int, float]] = deque(maxlen=capacity)
        self.dropped = 0
        """Pauses that no `drain` reached before the deque was full (lost, oldest first)."""

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        elif self._began is not None:
            if len(self._pauses) == self._pauses.maxlen:
                self.dropped += 1
            self._pauses.append((int(info["generation"]), time.perf_counter() - self._began))
            self._began = None

    def drain(self) -> int:
        """Observe the pauses recorded since the last drain, in order; returns how many. Call
        it from the thread that owns ``observe``'s locks, never from a collector callback."""
        drained = 0
        while True:
            try:
                generation, seconds = self._pauses.popleft()
            except IndexError:
                return drained
            self._observe(generation, seconds)
            drained += 1

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def remove(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def __enter__(self) -> CollectorPauses:
        self.install()
        return self

    def __exit__(self, *_: object) -> None:
        self.remove()
