"""The spacing check: do a source's bars have the timeframe they are ingested as?

Validation judges rows one at a time (on the grid, in order, prices consistent), so hourly bars
declared as 1m pass every rule: each hour is on the minute grid. Stored as 1m they would report
every missing minute as a gap (an hourly EURUSD file: 5,001 gaps, 419,800 missing bars) and
preprocessing would build every 5m..1h bar from a single hourly bar, silently. So before the first
chunk of a symbol is stored, ingest measures the most common step between consecutive open times
and refuses a source whose bars are not of the declared timeframe.

The rule (issue 12's plan, "Timeframe flow" item 3), over the steps of the first rows fetched:

- the most common step is the declared timeframe: accepted;
- the most common step is *smaller* than the declared timeframe: refused (1m bars declared 1h);
- the most common step is larger: refused only when at most `MIN_DECLARED_SHARE` of the steps
  equal the declared timeframe. Illiquid 1m data with holes, where a 2m or 5m step is the most
  common, still has many 1m steps and passes; hourly bars have none.

Steps are measured between consecutive distinct open times in sorted order, so duplicates and
out-of-order rows (validation's business, reported by their own rules) do not distort them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from drl_trading.common.domain import Symbol, Timeframe
from drl_trading.common.errors import UsageError

MIN_ROWS = 3
"""Rows needed before spacing is judged (two steps); a source with fewer is not measured."""

MIN_DECLARED_SHARE = 0.01
"""Largest share of steps equal to the declared timeframe at which a coarser most common step is
still refused (1 %): above it the data is the declared timeframe with holes."""

_UNITS = (("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000))


def step_text(micros: int) -> str:
    """A step in the largest whole unit: ``1h``, ``90m``, ``2d``, ``30s`` (µs otherwise)."""
    for unit, size in _UNITS:
        if micros % size == 0:
            return f"{micros // size}{unit}"
    return f"{micros}µs"


class SpacingMismatchError(UsageError):
    """A source's bars are not of the declared timeframe (exit code 2, nothing of the symbol
    stored). ``measured`` is the most common step (µs), ``count`` how many of ``steps`` it is."""

    def __init__(
        self,
        symbol: Symbol,
        source: str,
        declared: Timeframe,
        measured: int,
        count: int,
        steps: int,
    ) -> None:
        self.symbol = symbol
        self.declared = declared
        self.measured = measured
        self.count = count
        self.steps = steps
        if declared is Timeframe.M1:
            hint = (
                "this version ingests and preprocesses 1m bars only (an ingest --timeframe "
                "option comes next): use a 1m export of this data"
            )
        else:
            hint = f"declare the timeframe the bars have ({step_text(measured)})"
        super().__init__(
            f"{symbol}: the bars from {source} are {step_text(measured)} apart ({count:,} of "
            f"{steps:,} steps), not {declared} as declared; nothing of {symbol} was stored; "
            f"{hint}"
        )


def check_spacing(
    symbol: Symbol, source: str, declared: Timeframe, open_times: npt.NDArray[np.int64]
) -> None:
    """Raise `SpacingMismatchError` when the open times (µs) are not ``declared`` bars (the
    module's rule); fewer than `MIN_ROWS` distinct times are not judged."""
    times = np.unique(np.asarray(open_times, dtype=np.int64))
    if times.size < MIN_ROWS:
        return
    steps = np.diff(times)
    values, counts = np.unique(steps, return_counts=True)
    top = int(np.argmax(counts))  # ties: the smallest step, np.unique sorts
    measured = int(values[top])
    want = declared.micros
    if measured == want:
        return
    declared_share = int(counts[values == want].sum()) / steps.size
    if measured < want or declared_share <= MIN_DECLARED_SHARE:
        raise SpacingMismatchError(
            symbol, source, declared, measured, int(counts[top]), int(steps.size)
        )
