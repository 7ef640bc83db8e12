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

A replay re-sends bars the store holds, and each is compared with its stored value so that the
counts stay exact: the stored values of a series are read a day at a time (`READ_AHEAD`), and
`flush` (after the bar's acknowledgement) reads the next day before the replay reaches it, so
after the first bar of a series no comparison reads the store on the path to the order.

A live bar comes as a `Bar` (`upsert_bar`) and is staged as a tuple: its frame is built with the
others of its series when they are written or read, after the acknowledgement, not for each bar
on the path to the order (a one-row polars frame and the checks on it cost ~0.1 ms).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from drl_trading.common.adapter.memory_market_data import split_by_change
from drl_trading.common.bars import BAR_SCHEMA, conform, empty_bars
from drl_trading.common.domain import Bar, Symbol, Timeframe, utc
from drl_trading.common.ports import Coverage, MarketDataRepository, UpsertResult

READ_AHEAD = timedelta(days=1)
"""How far past a bar the stored bars are read at once when one must be compared (1,440 1m
bars): a replay then reads once a day instead of once a bar."""


@dataclass(slots=True)
class _Window:
    """Stored (and since staged) bar values of one series in [start, end), by open time."""

    start: datetime
    end: datetime
    rows: dict[datetime, tuple[float, ...]]
    cursor: datetime
    """The latest open time compared in it: `flush` reads ahead once it passes the middle."""


_Row = tuple[datetime, float, float, float, float, float]
"""A staged bar in the bar schema's column order: open time (UTC), open, high, low, close,
volume."""


def _same(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Values equal exactly, NaN equal to NaN (as the stores' IS DISTINCT FROM)."""
    return all(x == y or (x != x and y != y) for x, y in zip(a, b, strict=True))


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
        self._staged_rows: dict[tuple[Symbol, Timeframe], list[_Row]] = {}
        """Bars staged by `upsert_bar`, after the frames of their series (`_materialize`)."""
        self._rows = 0
        self._since: float | None = None
        self._last: dict[tuple[Symbol, Timeframe], datetime | None] = {}
        self._window: dict[tuple[Symbol, Timeframe], _Window] = {}
        self.flushes = 0

    @property
    def staged_rows(self) -> int:
        return self._rows

    def upsert_bars(self, symbol: Symbol, timeframe: Timeframe, bars: pl.DataFrame) -> UpsertResult:
        """Stage a small write, counted against what is stored or staged, as the store counts.

        A live bar after the last bar known for its series is new without a look-up (that last
        open time is read from the store once per series, then kept up to date), so the hot path
        stays free of I/O; a row at or before it is compared with the staged row of its open time
        or else with the stored one (one range read). Rows equal to those are unchanged and not
        staged. The counts assume this process is the only writer of the series beyond the last
        bar it saw, which holds for the one ingest process of a deployment."""
        key = (symbol, timeframe)
        self._materialize()  # the bars staged before this write stay before it
        if bars.height >= self.max_rows:
            self._write_staged()
            result = self.inner.upsert_bars(symbol, timeframe, bars)
            self._advance(key, bars)
            self._window.pop(key, None)
            return result
        if bars.is_empty():
            return UpsertResult(0, 0)
        incoming = _distinct(bars)
        known = self._known_last(key)
        if known is None or incoming["open_time"].min() > known:  # type: ignore[operator]
            changed, result = incoming, UpsertResult(incoming.height, 0)
            self._note(key, incoming)
        elif incoming.height == 1:
            changed, result = self._compare_one(key, incoming)
        else:
            changed, result = split_by_change(incoming, self._current(key, incoming))
            self._window.pop(key, None)  # counted against the store: the window may be stale
        self._advance(key, incoming)
        if changed.is_empty():
            return result
        self._staged.setdefault(key, []).append(changed)
        self._staged_one(changed.height)
        return result

    def upsert_bar(self, bar: Bar) -> UpsertResult:
        """Stage one bar, counted as `upsert_bars` counts its one-row frame, in plain Python: a
        bar after the last one known for its series is new; one at or before it is compared
        with the read-ahead window (`_compare_values`); an unchanged one is not staged."""
        key = (bar.symbol, bar.timeframe)
        at = utc(bar.open_time)
        values = (
            float(bar.open),
            float(bar.high),
            float(bar.low),
            float(bar.close),
            float(bar.volume),
        )
        known = self._known_last(key)
        if known is None or at > known:
            result = UpsertResult(1, 0)
            self._note_row(key, at, values)
            self._last[key] = at
        else:
            result = self._compare_values(key, at, values)
            if result.unchanged:
                return result
        self._staged_rows.setdefault(key, []).append((at, *values))
        self._staged_one(1)
        return result

    def _staged_one(self, rows: int) -> None:
        """Count ``rows`` more staged and write everything once too many or too old."""
        self._rows += rows
        now = self._monotonic()
        if self._since is None:
            self._since = now
        if self._rows >= self.max_rows or now - self._since >= self.max_delay:
            self._write_staged()

    def _materialize(self) -> None:
        """The bars staged by `upsert_bar` as one frame per series, after its staged frames."""
        if not self._staged_rows:
            return
        rows, self._staged_rows = self._staged_rows, {}
        for key, series in rows.items():
            frame = pl.DataFrame(series, schema=BAR_SCHEMA, orient="row")
            self._staged.setdefault(key, []).append(frame)

    def _compare_one(
        self, key: tuple[Symbol, Timeframe], bar: pl.DataFrame
    ) -> tuple[pl.DataFrame, UpsertResult]:
        """One bar at or before the last known one (a replay re-writes stored bars; an exchange
        corrects one): compared in plain Python with the read-ahead window of the series, which
        is read once per `READ_AHEAD`, with the staged rows of its range laid over it."""
        row = bar.row(0)
        result = self._compare_values(key, row[0], row[1:])
        return (bar.clear() if result.unchanged else bar), result

    def _compare_values(
        self, key: tuple[Symbol, Timeframe], at: datetime, values: tuple[float, ...]
    ) -> UpsertResult:
        """The count of one bar at ``at`` (UTC) with ``values`` (open, high, low, close, volume)
        against the window of its series; the window then holds these values."""
        window = self._window.get(key)
        if window is None or not window.start <= at < window.end:
            self._materialize()
            until = at + READ_AHEAD
            rows = {r[0]: r[1:] for r in self.inner.read_bars(*key, at, until).iter_rows()}
            for frame in self._staged.get(key, []):  # staged rows are newer than stored ones
                for r in frame.iter_rows():
                    if at <= r[0] < until:
                        rows[r[0]] = r[1:]
            window = _Window(at, until, rows, at)
            self._window[key] = window
        window.cursor = max(window.cursor, at)
        current = window.rows.get(at)
        if current is not None and _same(current, values):
            return UpsertResult(0, 0, 1)
        window.rows[at] = values
        if current is None:
            return UpsertResult(1, 0)
        return UpsertResult(0, 1)

    def _note(self, key: tuple[Symbol, Timeframe], bars: pl.DataFrame) -> None:
        """New bars inside a read-ahead window join it (a later correction compares with them)."""
        if key in self._window:
            for r in bars.iter_rows():
                self._note_row(key, r[0], r[1:])

    def _note_row(
        self, key: tuple[Symbol, Timeframe], at: datetime, values: tuple[float, ...]
    ) -> None:
        """One new bar (open time ``at``, UTC) joins the read-ahead window when inside it."""
        window = self._window.get(key)
        if window is not None and window.start <= at < window.end:
            window.rows[at] = values

    def _known_last(self, key: tuple[Symbol, Timeframe]) -> datetime | None:
        """The last open time stored or staged for the series (the store is asked once)."""
        if key not in self._last:
            cov = self.inner.coverage(*key)
            self._last[key] = None if cov is None else cov.last_open_time
        return self._last[key]

    def _advance(self, key: tuple[Symbol, Timeframe], bars: pl.DataFrame) -> None:
        """Note the last open time of a write; a series not looked up yet stays unknown (the
        store may hold later bars)."""
        if key not in self._last or bars.is_empty():
            return
        last = utc(bars["open_time"].max())  # type: ignore[arg-type]
        known = self._last[key]
        self._last[key] = last if known is None else max(known, last)

    def _current(self, key: tuple[Symbol, Timeframe], incoming: pl.DataFrame) -> pl.DataFrame:
        """The bars of ``incoming``'s open times as they stand: staged, else stored."""
        times = incoming.select("open_time")
        self._materialize()
        frames = self._staged.get(key, [])
        staged = (
            pl.concat(frames, how="vertical_relaxed")
            .unique("open_time", keep="last", maintain_order=True)
            .join(times, on="open_time", how="semi")
            if frames
            else empty_bars()
        )
        todo = times.join(staged, on="open_time", how="anti")
        if todo.is_empty():
            return staged
        first: datetime = todo["open_time"].min()  # type: ignore[assignment]
        last: datetime = todo["open_time"].max()  # type: ignore[assignment]
        stored = self.inner.read_bars(*key, first, last + timedelta(microseconds=1))
        stored = stored.join(todo, on="open_time", how="semi")
        return pl.concat([stored, staged]) if not staged.is_empty() else stored

    def flush(self) -> UpsertResult:
        """Write everything staged: one upsert per (symbol, timeframe); a later row for the same
        open time replaces an earlier one, as consecutive upserts would. Then read the next day
        of every read-ahead window past its middle (`_read_ahead`)."""
        result = self._write_staged()
        self._read_ahead()
        return result

    def _read_ahead(self) -> None:
        """Extend each window whose comparisons passed its middle to a day past its cursor, with
        the stored rows (staged ones are written by now), dropping the rows before the cursor:
        the replay's next comparisons find their bars in memory instead of reading the store
        on the path to the order. Runs after the staged rows were written, off that path."""
        for key, window in list(self._window.items()):
            if window.end - window.cursor >= READ_AHEAD / 2:
                continue
            until = window.cursor + READ_AHEAD
            rows = {t: v for t, v in window.rows.items() if t >= window.cursor}
            for r in self.inner.read_bars(*key, window.end, until).iter_rows():
                rows[r[0]] = r[1:]
            self._window[key] = _Window(window.cursor, until, rows, window.cursor)

    def _write_staged(self) -> UpsertResult:
        self._materialize()
        if not self._staged:
            return UpsertResult(0, 0)
        staged, self._staged = self._staged, {}
        since, self._since = self._since, None
        self._rows = 0
        inserted = updated = unchanged = 0
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
                unchanged += result.unchanged
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
        return UpsertResult(inserted, updated, unchanged)

    def read_bars(
        self, symbol: Symbol, timeframe: Timeframe, start: datetime, end: datetime
    ) -> pl.DataFrame:
        self._write_staged()
        return self.inner.read_bars(symbol, timeframe, start, end)

    def coverage(self, symbol: Symbol, timeframe: Timeframe) -> Coverage | None:
        self._write_staged()
        return self.inner.coverage(symbol, timeframe)

    def coverages(
        self, timeframe: Timeframe, start: datetime | None = None, end: datetime | None = None
    ) -> dict[Symbol, Coverage]:
        self._write_staged()
        return self.inner.coverages(timeframe, start, end)

    def quarantine(
        self, symbol: Symbol, timeframe: Timeframe, rows: pl.DataFrame, batch_id: str
    ) -> int:
        return self.inner.quarantine(symbol, timeframe, rows, batch_id)

    def read_quarantine(self, symbol: Symbol | None = None) -> pl.DataFrame:
        return self.inner.read_quarantine(symbol)

    def close(self) -> None:
        try:
            self._write_staged()
        finally:
            self.inner.close()


_SCHEMA = pl.Schema(BAR_SCHEMA)


def _distinct(bars: pl.DataFrame) -> pl.DataFrame:
    """``bars`` in the bar schema, the last row of each open time; a live bar (one row in the
    schema already) as it is, since conforming costs ~0.1 ms."""
    if bars.height == 1 and bars.schema == _SCHEMA:
        return bars
    return conform(bars).unique("open_time", keep="last", maintain_order=True)
