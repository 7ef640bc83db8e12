"""Ports the ingest service owns."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Protocol, runtime_checkable

import polars as pl

from drl_trading.common.domain import Symbol, Timeframe

SOURCE_ROW = "source_row"
"""The column `RowNumberedProvider.fetch_numbered` adds to the bar columns (Int64)."""


class HistoricalDataProvider(Protocol):
    """A source of historical OHLCV bars of one timeframe.

    ``fetch`` yields frames in the schema of `common.bars` (possibly with bad rows: validation is
    ingest's job, not the provider's) covering ``[start, end)`` in time order, in chunks small
    enough to hold in memory and to report progress on. ``timeframe`` is the bars asked for: a
    source that makes bars of any timeframe (an exchange, the synthetic market) yields bars of
    it; a source holding bars as they are (a file, frames in memory) yields what it holds, and
    ingest's spacing check (`drl_trading.ingest.core.spacing`) refuses bars that are not of the
    timeframe declared.
    """

    name: str

    def fetch(
        self, symbol: Symbol, timeframe: Timeframe, start: datetime, end: datetime
    ) -> Iterator[pl.DataFrame]: ...


@runtime_checkable
class RowNumberedProvider(HistoricalDataProvider, Protocol):
    """A provider whose source has rows of its own, such as a file.

    ``fetch_numbered`` yields what ``fetch`` yields plus a `SOURCE_ROW` column: each bar's data
    row in the source (1-based, header excluded), the number the provider's own errors use, so
    that validation names a bad row as the provider would. Ingest numbers the rows of any other
    provider by their position among the rows fetched for the symbol (1-based).
    """

    def fetch_numbered(
        self, symbol: Symbol, timeframe: Timeframe, start: datetime, end: datetime
    ) -> Iterator[pl.DataFrame]: ...

    def source_of(self, symbol: Symbol) -> str:
        """Where ``symbol``'s rows come from, for messages (``file bars.csv``)."""
        ...
