"""Ports the ingest service owns."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Protocol

import polars as pl

from drl_trading.common.domain import Symbol


class HistoricalDataProvider(Protocol):
    """A source of historical 1m OHLCV bars.

    ``fetch`` yields frames in the schema of `common.bars` (possibly with bad rows: validation is
    ingest's job, not the provider's) covering ``[start, end)`` in time order, in chunks small
    enough to hold in memory and to report progress on.
    """

    name: str

    def fetch(self, symbol: Symbol, start: datetime, end: datetime) -> Iterator[pl.DataFrame]: ...
