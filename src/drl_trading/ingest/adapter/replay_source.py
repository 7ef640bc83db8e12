"""Stored 1m history played back as a live stream, for paper trading and rehearsals.

Several symbols are merged in time order (open time, then symbol), the order in which an exchange
would have closed them, and read one time window at a time so that replaying years never holds
more than a window of bars in memory. With a ``speed`` the replay is paced so that one market
minute lasts ``60 / speed`` seconds; without one it runs as fast as the consumer takes bars.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from drl_trading.common.bars import BAR_SCHEMA, TIME_DTYPE, VALUE_COLUMNS
from drl_trading.common.domain import Bar, Symbol, Timeframe, TimeRange, utc
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
        window: timedelta = timedelta(days=1),
        sleep: Callable[[float], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``sleep`` defaults to a wait that ``close`` interrupts, so a slow replay stops at once;
        tests inject their own with ``monotonic`` to check the pacing without waiting."""
        self.symbols = tuple(dict.fromkeys(Symbol(s) for s in symbols))
        if not self.symbols:
            raise ValueError("no symbol to replay")
        if window <= timedelta(0):
            raise ValueError(f"window must be positive: {window}")
        self.range = TimeRange(start, end)
        self._window = window
        self._closed = threading.Event()
        self._pacer = Pacer(speed, sleep or self._interruptible_sleep, monotonic)
        self._repo: MarketDataRepository | None = None
        self._frame: pl.LazyFrame | None = None
        if isinstance(data, pl.DataFrame | pl.LazyFrame | str | Path):
            self._frame = self._prepare(data.lazy() if isinstance(data, pl.DataFrame) else data)
        else:
            self._repo = data

    def bars(self) -> Iterator[Bar]:
        names = {str(s): s for s in self.symbols}
        t = self.range.start
        while t < self.range.end and not self._closed.is_set():
            upto = min(t + self._window, self.range.end)
            chunk = self._read(t, upto)
            for open_time, sym, o, h, low, c, v in chunk.select(_COLUMNS).iter_rows():
                if self._closed.is_set():
                    return
                self._pacer.wait_for(open_time)
                if self._closed.is_set():
                    return
                yield Bar(names[sym], Timeframe.M1, open_time, o, h, low, c, v)
            t = upto

    def close(self) -> None:
        self._closed.set()

    def _interruptible_sleep(self, seconds: float) -> None:
        self._closed.wait(seconds)

    def _read(self, start: datetime, end: datetime) -> pl.DataFrame:
        if self._repo is not None:
            parts = [
                self._repo.read_bars(s, Timeframe.M1, start, end).with_columns(
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
