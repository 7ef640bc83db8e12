"""Live closed 1m candles from an exchange through ccxt's REST API, by polling.

Every ``poll_interval`` the source asks `CcxtProvider.fetch` (pagination, retries and symbol
resolution included) for the candles that have closed since the last one it handed out, and
yields them in time order, symbols interleaved, as the live-source port expects. A candle counts
as closed once ``close_delay`` has passed after its close time: exchanges publish the final
values of a minute a moment after it ends, and a candle read before that could still change.

A minute the exchange has no candle for (no trades, or an outage) is waited for ``patience``
after its close and then given up: the stream moves on and online ingest reports the gap. After
a restart, ingest's gap fill covers everything before ``start``.

Websocket streams (ccxt.pro ``watch_ohlcv``) would cut the delay from the poll interval to the
exchange's push; they are not used yet: polling works with every exchange ccxt supports and
with the local fake exchange the tests run against.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta

import structlog

from drl_trading.common.bars import BAR_SCHEMA
from drl_trading.common.domain import Bar, Symbol, Timeframe, utc
from drl_trading.common.ports import Clock
from drl_trading.ingest.adapter.ccxt_provider import CcxtProvider

log = structlog.get_logger(__name__)

M1 = Timeframe.M1


class CcxtLiveSource:
    def __init__(
        self,
        provider: CcxtProvider,
        symbols: Sequence[Symbol | str],
        clock: Clock,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        poll_interval: float = 2.0,
        close_delay: timedelta = timedelta(seconds=2),
        patience: timedelta = timedelta(minutes=3),
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        """Without ``start`` the stream begins with the minute that closes next on ``clock``;
        ``end`` (exclusive, open time) ends it, for bounded runs and tests."""
        self.symbols = tuple(sorted(dict.fromkeys(Symbol(s) for s in symbols)))
        if not self.symbols:
            raise ValueError("no symbol to stream")
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive, got {poll_interval}")
        self._provider = provider
        self._clock = clock
        first = M1.floor(utc(start)) if start is not None else M1.floor(clock.now())
        self._next: dict[Symbol, datetime] = dict.fromkeys(self.symbols, first)
        self.end = utc(end) if end is not None else None
        self.poll_interval = poll_interval
        self.close_delay = close_delay
        self.patience = patience
        self._closed = threading.Event()
        self._sleep = sleep or self._interruptible_sleep
        self.polls = 0
        self.skipped_minutes = 0

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
        # open times strictly before this minute belong to candles closed at least close_delay ago
        closed_before = M1.floor(now - self.close_delay)
        if self.end is not None:
            closed_before = min(closed_before, self.end)
        out: list[Bar] = []
        for symbol in self.symbols:
            since = self._next[symbol]
            if since >= closed_before:
                continue
            got = self._fetch(symbol, since, closed_before)
            if got:
                out.extend(got)
                self._next[symbol] = got[-1].open_time + M1.duration
            elif now - (since + M1.duration) >= self.patience:
                missing = (closed_before - since) // M1.duration
                self.skipped_minutes += missing
                log.warning(
                    "exchange has no candle; moving on",
                    symbol=str(symbol),
                    since=since.isoformat(),
                    minutes=missing,
                )
                self._next[symbol] = closed_before
        out.sort(key=lambda b: (b.open_time, b.symbol))
        return out

    def _fetch(self, symbol: Symbol, start: datetime, end: datetime) -> list[Bar]:
        bars: list[Bar] = []
        for frame in self._provider.fetch(symbol, M1, start, end):
            for t, o, h, lo, c, v in frame.select(list(BAR_SCHEMA)).iter_rows():
                bars.append(Bar(symbol, M1, utc(t), o, h, lo, c, v))
        # a provider never sorts or drops: keep the newest reading of each minute, in time order
        unique = {b.open_time: b for b in bars}
        return [unique[t] for t in sorted(unique)]

    def _interruptible_sleep(self, seconds: float) -> None:
        self._closed.wait(seconds)
