"""Historical bars from frames held in memory: the fake beside the provider port.

Unit tests and scripts hand it each symbol's bars (bad rows included: judging them is ingest's
job) and it serves them as every provider does: the rows with ``start <= open_time < end``, in
the order given, in frames of at most ``chunk_rows`` rows. Like every provider it never sorts,
deduplicates or repairs, and like a file it serves the bars it holds whatever timeframe is asked
(ingest's spacing check judges them).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime

import polars as pl

from drl_trading.common.bars import conform
from drl_trading.common.domain import Symbol, Timeframe, utc


class InMemoryProvider:
    """``bars`` maps each symbol to its frame in the `common.bars` columns (cast on the way in).

    ``fetch`` of a symbol it holds no frame for raises `LookupError` at the call, as an exchange
    refuses a market it does not list.
    """

    name = "memory"

    def __init__(self, bars: Mapping[str, pl.DataFrame], chunk_rows: int = 10_000) -> None:
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        self._bars = {Symbol(s): conform(frame) for s, frame in bars.items()}
        self.chunk_rows = chunk_rows

    def fetch(
        self, symbol: Symbol, timeframe: Timeframe, start: datetime, end: datetime
    ) -> Iterator[pl.DataFrame]:
        frame = self._bars.get(Symbol(symbol))
        if frame is None:
            held = ", ".join(sorted(self._bars)) or "none"
            raise LookupError(f"no bars for symbol {str(symbol)!r} (symbols: {held})")
        time = pl.col("open_time")
        kept = frame.filter((time >= utc(start)) & (time < utc(end)))
        return kept.iter_slices(self.chunk_rows)
