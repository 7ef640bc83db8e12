"""Stored history played back as a live stream, for paper trading and rehearsals.

The bars of one timeframe (the data timeframe, 1m by default) are replayed. Several symbols are
merged in time order (open time, then symbol), the order in which an exchange would have closed
them, and read one time window at a time so that replaying years never holds more than a window
of bars in memory. With a ``speed`` the replay is paced so that one minute of open market lasts
``60 / speed`` seconds, each bar handed out at its calendar close (`Pacer`): a replay does not
sleep through an FX weekend or an exchange's night. Without one it runs as fast as the consumer
takes bars.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from drl_trading.common.bar_windows import BarWindows
from drl_trading.common.bars import BAR_SCHEMA, TIME_DTYPE, VALUE_COLUMNS
from drl_trading.common.calendar import CalendarBook
from drl_trading.common.domain import Bar, Symbol, Timeframe, TimeRange, from_micros, to_micros, utc
from drl_trading.common.ports import MarketDataRepository
from drl_trading.ingest.core.live import Pacer

ReplayData = MarketDataRepository | pl.DataFrame | pl.LazyFrame | str | Path
"""A market-data repository, or bars with a ``symbol`` column as a frame or a Parquet/CSV file
(the ``symbol`` column may be left out when a single symbol is replayed)."""

_COLUMNS = ["open_time", "symbol", *VALUE_COLUMNS]


class ReplaySource:
    def __init__(
        self,
        data: ReplayData,
        symbols: Sequence[Symbol | str],
        start: datetime,
        end: datetime,
        *,
        speed: float | None = None,
        window: timedelta | None = None,
        sleep: Callable[[float], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        timeframe: Timeframe = Timeframe.M1,
        calendars: CalendarBook | None = None,
    ) -> None:
        """``sleep`` defaults to a wait that ``close`` interrupts, so a slow replay stops at once;
        tests inject their own with ``monotonic`` to check the pacing without waiting.
        ``timeframe``: the stored bars replayed (the data timeframe). ``calendars``: the
        symbols' market calendar, which paces the replay over open time (None: 24/7); a paced
        replay needs its symbols on one calendar (`MixedCalendarsError` otherwise).
        ``window``: the span read at a time (default 1,440 bars: a day of 1m bars)."""
        self.symbols = tuple(dict.fromkeys(Symbol(s) for s in symbols))
        if not self.symbols:
            raise ValueError("no symbol to replay")
        window = window if window is not None else timeframe.duration * 1440
        if window <= timedelta(0):
            raise ValueError(f"window must be positive: {window}")
        self.range = TimeRange(start, end)
        self.timeframe = timeframe
        self._window = window
        self._closed = threading.Event()
        calendar = None
        if calendars is not None and speed is not None:
            calendar = calendars.for_symbols(self.symbols)
        self._windows: BarWindows | None = None  # paced by close where the market closes
        if calendar is not None and not calendar.always_open:
            self._windows = BarWindows(calendar, timeframe)
        self._pacer = Pacer(speed, sleep or self._interruptible_sleep, monotonic, calendar)
        self._repo: MarketDataRepository | None = None
        self._frame: pl.LazyFrame | None = None
        if isinstance(data, pl.DataFrame | pl.LazyFrame | str | Path):
            self._frame = self._prepare(data.lazy() if isinstance(data, pl.DataFrame) else data)
        else:
            self._repo = data

    def bars(self) -> Iterator[Bar]:
        names = {str(s): s for s in self.symbols}
        tf = self.timeframe
        t = self.range.start
        while t < self.range.end and not self._closed.is_set():
            upto = min(t + self._window, self.range.end)
            chunk = self._read(t, upto)
            for open_time, sym, o, h, low, c, v in chunk.select(_COLUMNS).iter_rows():
                if self._closed.is_set():
                    return
                self._pacer.wait_for(self._due(open_time))
                if self._closed.is_set():
                    return
                yield Bar(names[sym], tf, open_time, o, h, low, c, v)
            t = upto

    def close(self) -> None:
        self._closed.set()

    def _interruptible_sleep(self, seconds: float) -> None:
        self._closed.wait(seconds)

    def _due(self, open_time: datetime) -> datetime:
        """When a paced bar is handed out, in market time: its open on a 24/7 market (the
        schedule is the same as by close), its calendar close on one that closes (an XLON 1h
        bar keyed 15:00 at 15:30), so that the next day's first bar follows one bar later."""
        if self._windows is None:
            return open_time
        try:
            return from_micros(self._windows.close(to_micros(open_time)))
        except ValueError:  # not a bar of the market: online ingest quarantines it; due now
            return open_time

    def _read(self, start: datetime, end: datetime) -> pl.DataFrame:
        if self._repo is not None:
            parts = [
                self._repo.read_bars(s, self.timeframe, start, end).with_columns(
                    pl.lit(str(s)).alias("symbol")
                )
                for s in self.symbols
            ]
            frame = pl.concat(parts)
        else:
            assert self._frame is not None
            frame = self._frame.filter(
                (pl.col("open_time") >= utc(start)) & (pl.col("open_time") < utc(end))
            ).collect()
        return frame.sort(["open_time", "symbol"])

    def _prepare(self, data: pl.LazyFrame | str | Path) -> pl.LazyFrame:
        if isinstance(data, str | Path):
            path = Path(data)
            suffix = path.suffix.lower()
            if suffix in (".parquet", ".pq"):
                lf = pl.scan_parquet(path)
            elif suffix == ".csv":
                lf = pl.scan_csv(path, try_parse_dates=True)
            else:
                raise ValueError(
                    f"cannot replay {path}: use a .parquet/.pq or .csv file, or ingest it first "
                    "(the file provider reads more layouts) and replay the store"
                )
        else:
            lf = data
        schema = lf.collect_schema()
        missing = [c for c in BAR_SCHEMA if c not in schema]
        if missing:
            raise KeyError(f"replay data lacks columns {missing}; has {list(schema)}")
        if "symbol" not in schema:
            if len(self.symbols) != 1:
                raise ValueError(
                    "replay data without a 'symbol' column can only replay one symbol; "
                    f"{len(self.symbols)} asked for"
                )
            lf = lf.with_columns(pl.lit(str(self.symbols[0])).alias("symbol"))
        time_col = pl.col("open_time")
        src = schema["open_time"]
        if isinstance(src, pl.Datetime) and src.time_zone is None:
            time_col = time_col.dt.replace_time_zone("UTC")
        wanted = [str(s) for s in self.symbols]
        return (
            lf.with_columns(
                time_col.cast(TIME_DTYPE).alias("open_time"),
                pl.col("symbol").cast(pl.String).str.strip_chars().str.to_uppercase(),
                *(pl.col(c).cast(pl.Float64) for c in VALUE_COLUMNS),
            )
            .filter(pl.col("symbol").is_in(wanted))
            .select(_COLUMNS)
        )
