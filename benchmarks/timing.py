"""Timing and table lines shared by the benchmark commands (imported from the script folder)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def timed(fn: Callable[[], T], repeat: int) -> tuple[T, list[float]]:
    times: list[float] = []
    result: T
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return result, times


def line(
    name: str, times: list[float], rows: int | None = None, unit: str = "bars", width: int = 38
) -> None:
    """Median seconds, rate per second of ``rows`` and the spread, one aligned line."""
    med = statistics.median(times)
    rate = f"{rows / med:>14,.0f} {unit}/s" if rows else " " * 22
    spread = f"(min {min(times):.3f} .. max {max(times):.3f}, n={len(times)})"
    print(f"{name:<{width}}{med:>9.3f} s {rate}  {spread}")
