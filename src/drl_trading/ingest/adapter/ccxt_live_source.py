"""Live closed candles from an exchange through ccxt's REST API, by polling.

Every ``poll_interval`` the source asks `CcxtProvider.fetch` (pagination, retries and symbol
resolution included) for the candles of its timeframe (1m by default; ccxt names timeframes as
`Timeframe` does: ``1m``, ``1h``, ``1d``) that have closed since the last one it handed out, and
yields them in time order, symbols interleaved, as the live-source port expects. A candle counts
as closed once ``close_delay`` has passed after its close time: exchanges publish the final
values of a candle a moment after it ends, and a candle read before that could still change.

Each symbol's market calendar (a `CalendarBook`; none: 24/7) says which candles to expect: after
a candle the source expects the market's next bar (`BarWindows.next_slot`), so it neither asks
for nor waits for candles while the market is closed (a weekend, a night), and a candle closes at
its calendar close (an XLON 1h candle keyed 15:00 at 15:30). A bar the market makes that the
exchange has no candle for (no trades, or an outage) is waited for ``patience`` after its close
and then given up: the stream moves on and online ingest reports the gap. After a restart,
ingest's gap fill covers everything before ``start``.

Polling works with every exchange ccxt supports; where ccxt.pro has the exchange's candle
stream, `CcxtWsSource` (``ccxt_ws_source.py``) follows it instead, cutting the delay from the
poll interval to the exchange's push, and falls back to this source elsewhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta

import structlog

from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.bar_windows import BarWindows, bar_slots
from drl_trading.common.bars import BAR_SCHEMA
from drl_trading.common.calendar import CalendarBook
from drl_trading.common.domain import Bar, Symbol, Timeframe, from_micros, to_micros, utc
from drl_trading.common.ports import Clock
from drl_trading.ingest.core.live import slot_at
from drl_trading.ingest.core.ports import HistoricalDataProvider

log = structlog.get_logger(__name__)


class CcxtLiveSource:
    def __init__(
        self,
        provider: HistoricalDataProvider,
        symbols: Sequence[Symbol | str],
        clock: Clock,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        poll_interval: float = 2.0,
        close_delay: timedelta = timedelta(seconds=2),
        patience: timedelta = timedelta(minutes=3),
        sleep: Callable[[float], None] | None = None,
        timeframe: Timeframe = Timeframe.M1,
        calendars: CalendarBook | None = None,
    ) -> None:
        """``provider`` is a `CcxtProvider` (any historical provider polls the same way).
        Without ``start`` the stream begins with the bar that closes next on ``clock`` (the next
        open one while the market is closed); ``end`` (exclusive, open time) ends it, for
        bounded runs and tests. ``timeframe``: the candles polled; ``calendars``: each symbol's
        market calendar (None: 24/7)."""
        self.symbols = tuple(sorted(dict.fromkeys(Symbol(s) for s in symbols)))
        if not self.symbols:
            raise ValueError("no symbol to stream")
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive, got {poll_interval}")
        self._provider = provider
        self._clock = clock
        self.timeframe = timeframe
        book = calendars or CalendarBook(AlwaysOpenCalendar())
        self._windows = {s: BarWindows(book.for_symbol(s), timeframe) for s in self.symbols}
        at = utc(start) if start is not None else utc(clock.now())
        self._next: dict[Symbol, datetime] = {
            s: slot_at(self._windows[s], at) for s in self.symbols
        }
        self.end = utc(end) if end is not None else None
        self.poll_interval = poll_interval
        self.close_delay = close_delay
        self.patience = patience
        self._closed = threading.Event()
        self._sleep = sleep or self._interruptible_sleep
        self.polls = 0
        self.skipped_bars = 0
        """Bars the market made that the exchange had no candle for, given up after
        ``patience`` (a closure is not counted)."""

    def bars(self) -> Iterator[Bar]:
        while not self._closed.is_set():
            if self.end is not None and all(t >= self.end for t in self._next.values()):
                return
            batch = self._poll()
            for bar in batch:
                if self._closed.is_set():
                    return
                yield bar
            if not batch:
                self._sleep(self.poll_interval)

    def close(self) -> None:
        self._closed.set()

    def _poll(self) -> list[Bar]:
        """Closed candles of every symbol since its last one, in (open time, symbol) order."""
        self.polls += 1
        now = utc(self._clock.now())
        out: list[Bar] = []
        for symbol in self.symbols:
            windows = self._windows[symbol]
            # open times strictly before this one belong to candles closed close_delay ago
            closed_before = slot_at(windows, now - self.close_delay)
            if self.end is not None:
                closed_before = min(closed_before, self.end)
            since = self._next[symbol]
            if since >= closed_before:
                continue
            got = self._fetch(symbol, since, closed_before)
            if got:
                out.extend(got)
                last = to_micros(got[-1].open_time)
                self._next[symbol] = from_micros(windows.next_slot(last))
                continue
            since_close = from_micros(windows.close(to_micros(since)))
            if now - since_close >= self.patience:
                missing = self._bars_in(windows, since, closed_before)
                self.skipped_bars += missing
                log.warning(
                    "exchange has no candle; moving on",
                    symbol=str(symbol),
                    since=since.isoformat(),
                    timeframe=self.timeframe.value,
                    bars=missing,
                )
                self._next[symbol] = closed_before
        out.sort(key=lambda b: (b.open_time, b.symbol))
        return out

    def _bars_in(self, windows: BarWindows, start: datetime, end: datetime) -> int:
        """Bars the market makes keyed in ``[start, end)``."""
        if windows.calendar.always_open:
            return (end - start) // self.timeframe.duration
        return int(bar_slots(windows.calendar, self.timeframe, start, end).size)

    def _fetch(self, symbol: Symbol, start: datetime, end: datetime) -> list[Bar]:
        tf = self.timeframe
        bars: list[Bar] = []
        for frame in self._provider.fetch(symbol, tf, start, end):
            for t, o, h, lo, c, v in frame.select(list(BAR_SCHEMA)).iter_rows():
                bars.append(Bar(symbol, tf, utc(t), o, h, lo, c, v))
        # a provider never sorts or drops: keep the newest reading of each bar, in time order
        unique = {b.open_time: b for b in bars}
        return [unique[t] for t in sorted(unique)]

    def _interruptible_sleep(self, seconds: float) -> None:
        self._closed.wait(seconds)
