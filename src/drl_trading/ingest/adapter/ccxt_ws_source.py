"""Live closed candles from an exchange's websocket stream through ccxt.pro, with REST gap fill.

`CcxtLiveSource` asks for new candles every poll interval; this source subscribes to the
exchange's candle stream instead (``watch_ohlcv``), so a candle reaches the session as soon as
the exchange pushes its successor rather than up to a poll interval later. ccxt's unified candle
has no "closed" flag, so a candle counts as closed once the stream shows a later one: Binance
pushes a candle's final values (``k.x`` true) just before the first update of the next.

Nothing is lost or handed out twice across disconnects. The stream is followed from ``start``:
on every (re)connect, once the first update shows the candle the exchange is building now, the
candles closed before it since the last one handed out are read from REST (`CcxtProvider.fetch`)
and handed out first; later candles come from the stream, each open time at most once and in
time order (a candle repeated after a reconnect, or one REST already gave, is dropped). A
dropped connection is retried with exponential backoff (``first_backoff_s`` doubling to
``max_backoff_s``). A stream silent for ``poll_interval`` seconds while a candle is
``close_delay`` past its close (a quiet market, an exchange that only pushes on trades) has its
closed candles read from REST the same way, so a candle never waits for a trade in the next one.

An exchange whose ccxt.pro class has no ``watchOHLCV`` (or that ccxt.pro lacks) is polled by
`CcxtLiveSource` instead, with the same arguments. The websocket client runs on an event loop
of its own in a daemon thread, started by ``bars``; ``close`` (any thread) stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import ccxt
import structlog

from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.bar_windows import BarWindows, bar_slots
from drl_trading.common.bars import BAR_SCHEMA
from drl_trading.common.calendar import CalendarBook
from drl_trading.common.domain import Bar, Symbol, Timeframe, from_micros, to_micros, utc
from drl_trading.common.errors import ExchangeRequestError
from drl_trading.common.ports import Clock
from drl_trading.ingest.adapter.ccxt_live_source import CcxtLiveSource
from drl_trading.ingest.adapter.ccxt_provider import CcxtProvider
from drl_trading.ingest.core.live import slot_at

log = structlog.get_logger(__name__)

ExchangeFactory = Callable[[], Any]
"""Builds the ccxt.pro exchange object (called by ``bars``); None: the exchange has none."""
T = TypeVar("T")


class _End:
    """The worker is done: the stream reached ``end`` or was closed."""


@dataclass
class _Follow:
    """One symbol's place in the stream."""

    next: datetime
    """Open time of the first candle not yet handed out."""
    latest: dict[int, list[Any]] = field(default_factory=dict)
    """Newest stream values of candles not yet handed out, by open time (ms)."""
    fresh: bool = True
    """No update seen since the last (re)connect: the next one triggers a gap fill."""
    connected: bool = False
    """An update has come through some connection already."""


class CcxtWsSource:
    def __init__(
        self,
        provider: CcxtProvider,
        symbols: Sequence[Symbol | str],
        clock: Clock,
        *,
        exchange: ExchangeFactory | None = None,
        ws_url: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        poll_interval: float = 2.0,
        close_delay: timedelta = timedelta(seconds=2),
        patience: timedelta = timedelta(minutes=3),
        first_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        timeframe: Timeframe = Timeframe.M1,
        calendars: CalendarBook | None = None,
    ) -> None:
        """``provider``: the REST side (symbols, gap fill, and the polling fallback).
        ``exchange``: builds the ccxt.pro client (default: ``ccxt.pro.<provider's exchange id>``
        with the provider's ``base_url`` and timeout, and ``ws_url`` replacing the scheme and
        host of its websocket URLs). ``start``, ``end``, ``poll_interval`` (seconds),
        ``close_delay``, ``patience``, ``timeframe`` and ``calendars`` mean what they mean for
        `CcxtLiveSource`; the backoffs are seconds."""
        self.symbols = tuple(sorted(dict.fromkeys(Symbol(s) for s in symbols)))
        if not self.symbols:
            raise ValueError("no symbol to stream")
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive, got {poll_interval}")
        if not 0 < first_backoff_s <= max_backoff_s:
            raise ValueError(
                f"backoffs must satisfy 0 < first_backoff_s <= max_backoff_s, got "
                f"{first_backoff_s} and {max_backoff_s}"
            )
        if ws_url is not None:
            _rebase("wss://host/ws", ws_url)  # a bad URL fails here, not on the stream's thread
        self._provider = provider
        self._clock = clock
        self._factory = exchange or (lambda: pro_exchange(provider, ws_url))
        self.timeframe = timeframe
        self._calendars = calendars
        book = calendars or CalendarBook(AlwaysOpenCalendar())
        self._windows = {s: BarWindows(book.for_symbol(s), timeframe) for s in self.symbols}
        self._start = utc(start) if start is not None else None
        at = self._start or utc(clock.now())
        self._follow = {s: _Follow(slot_at(self._windows[s], at)) for s in self.symbols}
        self.end = utc(end) if end is not None else None
        self.poll_interval = poll_interval
        self.close_delay = close_delay
        self.patience = patience
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self._closed = threading.Event()
        self._out: queue.Queue[Bar | _End | BaseException] = queue.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._polling: CcxtLiveSource | None = None
        self._rest: ThreadPoolExecutor | None = None
        self.mode: str | None = None
        """``"websocket"`` or ``"poll"`` (the fallback) once ``bars`` has started."""
        self.reconnects = 0
        """New connections updates came through after the first (summed over symbols)."""
        self.filled = 0
        """Candles read from REST (gap fills and quiet-stream reads)."""
        self.skipped_bars = 0
        """Bars neither the stream nor REST had, given up after ``patience``."""

    # the port

    def bars(self) -> Iterator[Bar]:
        if self._closed.is_set():
            return
        client = self._factory()
        if client is None or not (getattr(client, "has", None) or {}).get("watchOHLCV"):
            log.info("no websocket candles; polling", exchange=self._provider.exchange_id)
            self.mode = "poll"
            self._polling = self._poller()
            if self._closed.is_set():
                return
            yield from self._polling.bars()
            return
        self.mode = "websocket"
        worker = threading.Thread(
            target=asyncio.run, args=(self._run(client),), name="ccxt-ws", daemon=True
        )
        worker.start()
        try:
            while not self._closed.is_set():
                item = self._out.get()
                if isinstance(item, _End) or self._closed.is_set():
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.close()
            worker.join(timeout=10)

    def close(self) -> None:
        self._closed.set()
        self._out.put(_End())
        if self._polling is not None:
            self._polling.close()
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already finished
                loop.call_soon_threadsafe(stop.set)

    # the worker's event loop

    async def _run(self, client: Any) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._closed.is_set():
            self._stop.set()
        # the provider's ccxt client is synchronous and not thread-safe: one REST thread
        self._rest = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ccxt-ws-rest")
        try:
            stopper: asyncio.Task[Any] = asyncio.create_task(self._stop.wait())
            pending: set[asyncio.Task[Any]] = {
                asyncio.create_task(self._follow_symbol(client, s)) for s in self.symbols
            }
            while pending and not self._stop.is_set():
                done, pending = await asyncio.wait(
                    pending | {stopper}, return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(stopper)
                for task in done - {stopper}:
                    try:
                        task.result()  # a follower's fatal error ends the stream
                    except ccxt.BaseError as exc:  # a refused subscription (unknown market)
                        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                        raise ExchangeRequestError(
                            self._provider.exchange_id, reason or type(exc).__name__
                        ) from exc
            for task in [*pending, stopper]:
                task.cancel()
            await asyncio.gather(*pending, stopper, return_exceptions=True)
            self._out.put(_End())
        except BaseException as exc:  # handed to the consumer, who raises it
            self._out.put(exc)
        finally:
            self._rest.shutdown(wait=False, cancel_futures=True)
            await client.close()

    async def _rest_call(self, call: Callable[[], T]) -> T:
        assert self._rest is not None
        return await asyncio.get_running_loop().run_in_executor(self._rest, call)

    async def _follow_symbol(self, client: Any, symbol: Symbol) -> None:
        market = await self._rest_call(lambda: self._provider.resolve(symbol))
        follow = self._follow[symbol]
        attempt = 0
        watch: asyncio.Future[Any] | None = None
        try:
            while not self._done(follow):
                if watch is None:
                    watch = asyncio.ensure_future(client.watch_ohlcv(market, self.timeframe.value))
                finished, _ = await asyncio.wait({watch}, timeout=self.poll_interval)
                if not finished:
                    # updates that came while no watch was waiting wake nobody: read the cache
                    self._check_connection(client, symbol)
                    if not follow.fresh:
                        await self._take(symbol, _cached(client, market, self.timeframe))
                    # a silent stream: what has closed by the clock comes from REST
                    await self._fill(symbol, slot_at(self._windows[symbol], self._settled()))
                    continue
                done_watch, watch = watch, None
                try:
                    rows = done_watch.result()
                except ccxt.NetworkError as exc:
                    delay = min(self.max_backoff_s, self.first_backoff_s * 2**attempt)
                    attempt += 1
                    follow.fresh = True
                    log.warning(
                        "websocket lost; reconnecting",
                        symbol=str(symbol),
                        attempt=attempt,
                        delay_s=delay,
                        error=f"{type(exc).__name__}: {exc}",
                    )
                    await asyncio.sleep(delay)
                    continue
                attempt = 0
                self._check_connection(client, symbol)
                await self._take(symbol, _cached(client, market, self.timeframe) or rows)
        finally:
            if watch is not None:
                watch.cancel()

    def _check_connection(self, client: Any, symbol: Symbol) -> None:
        """A new connection (ccxt also reconnects when no watch waited) makes the next update
        a fresh start, with its gap fill."""
        follow = self._follow[symbol]
        if _new_connection(client, symbol):
            follow.fresh = True
            if follow.connected:
                self.reconnects += 1
            follow.connected = True

    async def _take(self, symbol: Symbol, rows: Sequence[Sequence[Any]]) -> None:
        """Hand out the candles an update shows closed: those before its newest candle."""
        if not rows:
            return
        follow = self._follow[symbol]
        newest = max(int(r[0]) for r in rows)
        keep_from = to_micros(follow.next) // 1000
        if follow.fresh:
            # after a (re)connect everything before the candle being built now comes from REST;
            # ccxt's cached values from before the drop may be stale
            follow.fresh = False
            follow.latest.clear()
            await self._fill(symbol, from_micros(newest * 1000))
            keep_from = newest
        for row in rows:
            if int(row[0]) >= keep_from:
                follow.latest[int(row[0])] = list(row)
        for open_ms in sorted(t for t in follow.latest if t < newest):
            self._emit(symbol, follow.latest.pop(open_ms))

    async def _fill(self, symbol: Symbol, until: datetime) -> None:
        """Hand out the candles REST has from the next one due up to ``until`` (exclusive).
        Bars it lacks there are asked for again at the next fill, and given up ``patience``
        after their close (no trades, or an outage: online ingest reports the gap)."""
        follow = self._follow[symbol]
        if self.end is not None:
            until = min(until, self.end)
        if follow.next >= until:
            return
        since = follow.next
        frames = await self._rest_call(
            lambda: list(self._provider.fetch(symbol, self.timeframe, since, until))
        )
        rows = {
            to_micros(utc(t)) // 1000: [to_micros(utc(t)) // 1000, o, h, lo, c, v]
            for frame in frames
            for t, o, h, lo, c, v in frame.select(list(BAR_SCHEMA)).iter_rows()
        }
        for open_ms in sorted(rows):
            self.filled += 1
            self._emit(symbol, rows[open_ms])
        log.debug("rest candles", symbol=str(symbol), since=since.isoformat(), candles=len(rows))
        windows = self._windows[symbol]
        waited = utc(self._clock.now()) - from_micros(windows.close(to_micros(follow.next)))
        if follow.next < until and waited >= self.patience:
            missing = int(bar_slots(windows.calendar, self.timeframe, follow.next, until).size)
            self.skipped_bars += missing
            log.warning(
                "exchange has no candle; moving on",
                symbol=str(symbol),
                since=follow.next.isoformat(),
                timeframe=self.timeframe.value,
                bars=missing,
            )
            follow.next = until
        cutoff = to_micros(follow.next) // 1000
        follow.latest = {t: r for t, r in follow.latest.items() if t >= cutoff}

    def _emit(self, symbol: Symbol, row: Sequence[Any]) -> None:
        follow = self._follow[symbol]
        open_time = from_micros(int(row[0]) * 1000)
        if open_time < follow.next or (self.end is not None and open_time >= self.end):
            return
        o, h, lo, c, v = (float(x) if x is not None else float("nan") for x in row[1:6])
        self._out.put(Bar(symbol, self.timeframe, open_time, o, h, lo, c, v))
        follow.next = from_micros(self._windows[symbol].next_slot(to_micros(open_time)))

    def _done(self, follow: _Follow) -> bool:
        return self._closed.is_set() or (self.end is not None and follow.next >= self.end)

    def _settled(self) -> datetime:
        """Candles keyed before the slot at this time have closed and settled."""
        return utc(self._clock.now()) - self.close_delay

    def _poller(self) -> CcxtLiveSource:
        return CcxtLiveSource(
            self._provider,
            self.symbols,
            self._clock,
            start=self._start,
            end=self.end,
            poll_interval=self.poll_interval,
            close_delay=self.close_delay,
            timeframe=self.timeframe,
            calendars=self._calendars,
        )


def _new_connection(client: Any, symbol: Symbol) -> bool:
    """Whether ``client`` holds a websocket connection that ``symbol``'s updates have not come
    through before. ccxt.pro drops a closed connection and opens a new one on the next watch,
    raising NetworkError only to a watch waiting at the time of the drop: a drop between two
    watches is seen only here, as a connection object without this symbol's mark."""
    fresh = False
    for connection in list((getattr(client, "clients", None) or {}).values()):
        seen: set[str] = connection.__dict__.setdefault("_drl_trading_symbols", set())
        if symbol not in seen:
            seen.add(str(symbol))
            fresh = True
    return fresh


def _cached(client: Any, market: str, timeframe: Timeframe) -> list[list[Any]]:
    """Every candle of ``market`` ccxt.pro holds (its ``ohlcvs`` cache, newest last): the
    ``watch_ohlcv`` result lists only the updates since the previous call."""
    by_timeframe = (getattr(client, "ohlcvs", None) or {}).get(market) or {}
    return [list(row) for row in by_timeframe.get(timeframe.value) or []]


def pro_exchange(provider: CcxtProvider, ws_url: str | None = None) -> Any | None:
    """The ccxt.pro client of ``provider``'s exchange with its settings (spot markets, timeout,
    ``base_url``), ``ws_url`` replacing its websocket URLs' scheme and host (a path in it goes
    in front of theirs); None for an exchange ccxt.pro lacks (the source then polls)."""
    import ccxt.pro

    exchange_id = provider.exchange_id
    if exchange_id not in ccxt.pro.exchanges:
        return None
    options: dict[str, Any] = {"defaultType": "spot"}
    if exchange_id == "binance":
        options.update(fetchMarkets={"types": ["spot"]}, fetchMargins=False)
    client = getattr(ccxt.pro, exchange_id)(
        {"enableRateLimit": True, "timeout": provider.timeout_ms, "options": options}
    )
    client.has["fetchCurrencies"] = False
    urls = dict(client.urls["api"])
    ws = urls.pop("ws", None)
    if provider.base_url:
        urls = _rebase(urls, provider.base_url)
    if ws is not None and ws_url:
        ws = _rebase(ws, ws_url)
    client.urls["api"] = {**urls, **({} if ws is None else {"ws": ws})}
    return client


def _rebase(urls: Any, base_url: str) -> Any:
    """``urls`` (a URL or a nested dict of them) with the scheme and host of ``base_url``, its
    path in front of each URL's own (as `CcxtProvider` does with ``base_url``)."""
    base = urlsplit(base_url.strip())
    if not base.scheme or not base.netloc:
        raise ValueError(
            f"ws_url {base_url!r} needs a scheme and a host, e.g. wss://stream.binance.com:9443"
        )
    if isinstance(urls, str):
        own = urlsplit(urls)
        path = base.path.rstrip("/") + own.path
        return urlunsplit((base.scheme, base.netloc, path, own.query, own.fragment))
    if isinstance(urls, dict):
        return {key: _rebase(value, base_url) for key, value in urls.items()}
    return urls
