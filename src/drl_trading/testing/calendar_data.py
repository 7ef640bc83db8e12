"""Bar files of markets that close, as a user exports them: the inputs of the calendar tests.

An FX-like hourly file (Sunday evening to Friday evening, New York time) and a stock-like daily
file (one bar per exchange session, none on weekends and holidays) come from the synthetic
provider on that market's calendar and are written the way pandas writes a tz-aware frame (an
unnamed index column such as ``2024-01-02 00:00:00+00:00``), so the tests read what users have
and not a format made for them.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped]
import polars as pl

from drl_trading.common.calendar import CalendarBook, MarketCalendar
from drl_trading.common.domain import Symbol, Timeframe, utc
from drl_trading.ingest.adapter.synthetic_provider import SyntheticProvider


def calendar_bars(
    symbol: Symbol | str,
    calendar: MarketCalendar,
    timeframe: Timeframe,
    start: datetime,
    end: datetime,
    *,
    seed: int = 11,
) -> pl.DataFrame:
    """The synthetic bars of ``symbol`` on ``calendar`` keyed in ``[start, end)`` (UTC), only
    where its market is open: an FX week has no Saturday bar, an XNYS year about 251 daily
    bars."""
    sym = Symbol(symbol)
    provider = SyntheticProvider(seed=seed, calendars=CalendarBook(calendar, {sym: calendar}))
    chunks = list(provider.fetch(sym, timeframe, utc(start), utc(end)))
    return pl.concat(chunks) if chunks else pl.DataFrame()


def write_calendar_csv(
    path: Path,
    symbol: Symbol | str,
    calendar: MarketCalendar,
    timeframe: Timeframe,
    start: datetime,
    end: datetime,
    *,
    seed: int = 11,
) -> Path:
    """`calendar_bars` written to ``path`` by pandas' default ``to_csv`` with a UTC
    DatetimeIndex (the unnamed first column the file source reads as the open time); ``path``."""
    bars = calendar_bars(symbol, calendar, timeframe, start, end, seed=seed)
    index = pd.DatetimeIndex(bars["open_time"].to_pandas()).tz_convert("UTC").rename(None)
    frame = pd.DataFrame(
        {c: bars[c].to_numpy() for c in ("open", "high", "low", "close", "volume")}, index=index
    )
    frame.to_csv(path)
    return path
