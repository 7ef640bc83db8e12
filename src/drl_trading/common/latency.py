"""Latency histograms with constant memory, for every service that reports percentiles.

A service handling one message per bar for months cannot keep every sample, and a sliding sample
forgets the rare slow call that p99 exists to show. Buckets grow geometrically (HdrHistogram's
idea), so every recorded value is known to within ``precision`` of itself whatever its size, and
memory is fixed by the range: about 2,200 counters for 1 µs..1 h at 1 %.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LatencySnapshot:
    """Seconds. Percentiles are bucket upper bounds: never below the true value, at most
    ``precision`` above it (anything under ``lowest`` reads as ``lowest``), never above ``max``;
    erring high is the safe side for a latency budget."""

    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: float


class LatencyHistogram:
    """Counts of durations in log-spaced buckets; thread-safe so a status endpoint can read it
    while the consumer thread records."""

    def __init__(
        self,
        *,
        lowest: float = 1e-6,
        highest: float = 3600.0,
        precision: float = 0.01,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not 0.0 < lowest < highest:
            raise ValueError("need 0 < lowest < highest")
        if not 0.0 < precision < 1.0:
            raise ValueError("precision must be in (0, 1)")
        self._lowest = lowest
        self._log_growth = math.log1p(precision)
        self._growth = 1.0 + precision
        # bucket 0 holds [0, lowest); bucket i >= 1 holds [lowest * g^(i-1), lowest * g^i)
        self._counts = [0] * (self._index(highest) + 1)
        self._timer = timer
        self._lock = threading.Lock()
        self._count = 0
        self._sum = 0.0
        self._max = 0.0

    def _index(self, seconds: float) -> int:
        if seconds < self._lowest:
            return 0
        return int(math.log(seconds / self._lowest) / self._log_growth) + 1

    def _upper(self, index: int) -> float:
        return float(self._lowest * self._growth**index)

    def record(self, seconds: float) -> None:
        """Negative or non-finite durations (a clock stepping back) count as 0 rather than
        corrupting the statistics."""
        value = seconds if math.isfinite(seconds) and seconds > 0.0 else 0.0
        with self._lock:
            index = min(self._index(value), len(self._counts) - 1)
            self._counts[index] += 1
            self._count += 1
            self._sum += value
            self._max = max(self._max, value)

    @contextmanager
    def time(self) -> Iterator[None]:
        """Records how long the block took, including when it raises."""
        start = self._timer()
        try:
            yield
        finally:
            self.record(self._timer() - start)

    @property
    def count(self) -> int:
        return self._count

    def percentile(self, q: float) -> float:
        """``q`` in [0, 100]; 0.0 when nothing was recorded."""
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"percentile {q} outside [0, 100]")
        with self._lock:
            return self._percentile(q)

    def _percentile(self, q: float) -> float:
        if self._count == 0:
            return 0.0
        rank = max(1, math.ceil(q / 100.0 * self._count))
        seen = 0
        last = len(self._counts) - 1
        for index, n in enumerate(self._counts):
            seen += n
            if seen >= rank:
                # the top bucket also holds everything beyond ``highest``: only max bounds it
                return self._max if index == last else min(self._upper(index), self._max)
        return self._max

    def snapshot(self) -> LatencySnapshot:
        with self._lock:
            mean = self._sum / self._count if self._count else 0.0
            return LatencySnapshot(
                count=self._count,
                mean=mean,
                p50=self._percentile(50.0),
                p90=self._percentile(90.0),
                p99=self._percentile(99.0),
                max=self._max,
            )

    def reset(self) -> None:
        with self._lock:
            self._counts = [0] * len(self._counts)
            self._count = 0
            self._sum = 0.0
            self._max = 0.0


STAGE_CHAIN = ("received", "ingest", "preprocess", "inference", "execution")
"""Where a live bar's events are stamped (wall clock, Unix seconds, in ``Event.stages``):
``received`` when ingest took the bar from its source, ``ingest`` when it published the request,
``preprocess`` when the features were written, ``inference`` when the prediction was published
and ``execution`` when the signal was decided (the broker's acknowledgement included)."""


def stamp(stages: Mapping[str, float], name: str, at: float | None = None) -> dict[str, float]:
    """``stages`` plus ``name`` at ``at`` (now by default): each service adds its own stamp to
    what the event it handles carried, so the last event of the chain has them all."""
    return {**stages, name: time.time() if at is None else at}


class StageLatency:
    """Per-stage histograms of the online chain, recorded where the chain ends (execution).

    Stage ``s`` lasts from the previous stamp to ``s``'s stamp, so it includes the bus hand-over
    into the stage; ``total`` runs from ``received`` to the last stamp. Stamps are wall-clock
    times: across processes of one machine they compare, across machines only as well as their
    clocks agree.
    """

    def __init__(self, observe: Callable[[str, float], None] | None = None) -> None:
        """``observe(stage, seconds)`` also gets every measurement (a Prometheus histogram in a
        service process, which a monitoring system can aggregate across instances)."""
        self.histograms = {name: LatencyHistogram() for name in (*STAGE_CHAIN[1:], "total")}
        self._observe = observe

    def record(self, stages: Mapping[str, float]) -> None:
        chain = [(name, stages[name]) for name in STAGE_CHAIN if name in stages]
        measured = [
            (name, max(after - before, 0.0))
            for (_, before), (name, after) in itertools.pairwise(chain)
        ]
        if len(chain) > 1 and chain[0][0] == "received":
            measured.append(("total", max(chain[-1][1] - chain[0][1], 0.0)))
        for name, seconds in measured:
            self.histograms[name].record(seconds)
            if self._observe is not None:
                self._observe(name, seconds)

    def snapshot(self) -> dict[str, LatencySnapshot]:
        return {name: h.snapshot() for name, h in self.histograms.items()}
