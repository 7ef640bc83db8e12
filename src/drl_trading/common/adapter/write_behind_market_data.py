"""Write-behind in front of a market-data repository: small live writes batched off the hot path.

A live bar is one row, and an embedded store pays ~1.2 ms per upsert statement whatever its size
(DuckDB), which alone would take a quarter of the 5 ms bar-close → order budget. This wrapper
stages small writes in memory and writes them as one upsert per (symbol, timeframe) when the
process is idle (`flush`), when the oldest staged row is older than ``max_delay`` or when
``max_rows`` are staged. Large writes (a history backfill) go straight through, after the staged
rows, so order is kept.

What it guarantees: every read (`read_bars`, `coverage`, quarantine reads) flushes first, so this
process always reads its own writes; `close` flushes. What it trades: a crash loses at most the
staged rows (by default under a second of bars), which the next start recovers, because online
ingest fills the gap from the last *stored* bar through the provider and resampled bars are
recomputed from 1m bars. Upserts are idempotent, so a row written twice is harmless.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

import polars as pl

from drl_trading.common.domain import Symbol, Timeframe
from drl_trading.common.ports import Coverage, MarketDataRepository, UpsertResult


class WriteBehindMarketData:
    def __init__(
        self,
        inner: MarketDataRepository,
        *,
        max_rows: int = 5_000,
        max_delay: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.max_rows = max_rows
        self.max_delay = max_delay
        self._monotonic = monotonic
        self._staged: dict[tuple[Symbol, Timeframe], list[pl.DataFrame]] = {}
        self._rows = 0
        self._since: float | None = None
        self.flushes = 0

    @property
    def staged_rows(self) -> int:
        return self._rows

    def upsert_bars(self, symbol: Symbol, timeframe: Timeframe, bars: pl.DataFrame) -> UpsertResult:
        """Staged rows count as inserted: the store's own insert/update split is only known at
        the flush."""
        if bars.height >= self.max_rows:
            self.flush()
            return self.inner.upsert_bars(symbol, timeframe, bars)
        if bars.is_empty():
            return UpsertResult(0, 0)
        self._staged.setdefault((symbol, timeframe), []).append(bars)
        self._rows += bars.height
        now = self._monotonic()
        if self._since is None:
            self._since = now
        if self._rows >= self.max_rows or now - self._since >= self.max_delay:
            self.flush()
        return UpsertResult(bars.height, 0)

    def flush(self) -> UpsertResult:
        """Write everything staged: one upsert per (symbol, timeframe); a later row for the same
        open time replaces an earlier one, as consecutive upserts would."""
        if not self._staged:
            return UpsertResult(0, 0)
        staged, self._staged = self._staged, {}
        since, self._since = self._since, None
        self._rows = 0
        inserted = updated = 0
        pending = list(staged.items())
        try:
            while pending:
                (symbol, timeframe), frames = pending[0]
                frame = pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]
                if len(frames) > 1:
                    frame = frame.unique("open_time", keep="last", maintain_order=True).sort(
                        "open_time"
                    )
                result = self.inner.upsert_bars(symbol, timeframe, frame)
                pending.pop(0)
                inserted += result.inserted
                updated += result.updated
        except BaseException:
            # the database is away (a restart): what was not written stays staged, ahead of
            # what arrives meanwhile, and the next flush writes it; nothing is dropped
            merged = dict(pending)
            for key, frames in self._staged.items():
                merged[key] = merged.get(key, []) + frames
            self._staged = merged
            self._rows = sum(f.height for fs in self._staged.values() for f in fs)
            self._since = since
            raise
        self.flushes += 1
        return UpsertResult(inserted, updated)

    def read_bars(
        self, symbol: Symbol, timeframe: Timeframe, start: datetime, end: datetime
    ) -> pl.DataFrame:
        self.flush()
        return self.inner.read_bars(symbol, timeframe, start, end)

    def coverage(self, symbol: Symbol, timeframe: Timeframe) -> Coverage | None:
        self.flush()
        return self.inner.coverage(symbol, timeframe)

    def quarantine(
        self, symbol: Symbol, timeframe: Timeframe, rows: pl.DataFrame, batch_id: str
    ) -> int:
        return self.inner.quarantine(symbol, timeframe, rows, batch_id)

    def read_quarantine(self, symbol: Symbol | None = None) -> pl.DataFrame:
        return self.inner.read_quarantine(symbol)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.inner.close()
