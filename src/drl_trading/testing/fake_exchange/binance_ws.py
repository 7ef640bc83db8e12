"""The fake exchange's kline websocket: Binance spot's market stream as ccxt.pro's ``binance``
subscribes to it (``watch_ohlcv``), with dropped connections as a fault.

A client connects to ``/stream/ws/<n>`` (ccxt appends a stream index to ``urls['api']['ws']``;
the path holds ``/stream`` because ccxt.pro tells spot from futures streams by it), sends
``{"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m"], "id": 1}`` and is answered
``{"result": null, "id": 1}``. Every trade print then pushes a ``kline`` event of the candle it
extends (``k.x`` false); the first print of a later candle first pushes the previous candle's
final values with ``k.x`` true, as Binance does when a minute rolls. The fake has no timers: a
candle closes on the stream when the fake's clock (the trade prints' ``at``) passes it.

Shared state (the kline book, the faults) is read under the exchange lock; the subscriber set
belongs to the server's event loop, reached from the test thread through ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from drl_trading.testing.fake_exchange.binance_rest import ExchangeState, now_ms
from drl_trading.testing.fake_exchange.klines import INTERVAL_MS

WS_PATH = "/stream/ws"


@dataclass(eq=False)
class _Subscriber:
    ws: web.WebSocketResponse
    request: web.Request
    streams: set[str] = field(default_factory=set)
    outbox: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)

    def abort(self) -> None:
        """Close the TCP connection without a close frame: what a network failure looks like."""
        if self.request.transport is not None:
            self.request.transport.abort()

    async def pump(self) -> None:
        """Send the outbox in order (replies and events share it, as on one Binance socket)."""
        while not self.ws.closed:
            message = await self.outbox.get()
            try:
                await self.ws.send_json(message)
            except (ConnectionError, RuntimeError):
                return


class KlineStreams:
    """The websocket endpoint and its subscribers; `push_trade` is called under the lock."""

    def __init__(self, state: ExchangeState) -> None:
        self._s = state
        self._subscribers: set[_Subscriber] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._open: dict[tuple[str, str], int] = {}  # (symbol, interval) -> open candle (ms)
        self.connections = 0
        """Websocket connections accepted so far (a reconnect counts again)."""

    def register(self, app: web.Application) -> None:
        app.router.add_get(WS_PATH + "/{stream}", self._handle)
        app.router.add_get(WS_PATH, self._handle)

    # server loop side

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self._loop = asyncio.get_running_loop()
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        subscriber = _Subscriber(ws, request)
        self._subscribers.add(subscriber)
        with self._s.lock:
            self.connections += 1
        pump = asyncio.create_task(subscriber.pump())
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    subscriber.outbox.put_nowait(self._answer(subscriber, msg.data))
        finally:
            self._subscribers.discard(subscriber)
            pump.cancel()
        return ws

    @staticmethod
    def _answer(subscriber: _Subscriber, text: str) -> dict[str, Any]:
        """Binance's reply to a SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS request."""
        try:
            body = json.loads(text)
            method, params, request_id = body["method"], list(body.get("params", [])), body["id"]
        except (ValueError, KeyError, TypeError):
            return {"error": {"code": 2, "msg": "Invalid request"}}
        if method == "SUBSCRIBE":
            subscriber.streams.update(str(p) for p in params)
        elif method == "UNSUBSCRIBE":
            subscriber.streams.difference_update(str(p) for p in params)
        elif method != "LIST_SUBSCRIPTIONS":
            return {"error": {"code": 1, "msg": f"unknown method {method}"}, "id": request_id}
        result = sorted(subscriber.streams) if method == "LIST_SUBSCRIPTIONS" else None
        return {"result": result, "id": request_id}

    def _deliver(self, stream: str, events: list[dict[str, Any]]) -> None:
        """Queue ``events`` to the listeners of ``stream``; a pending ``drop_websocket`` fault
        aborts that many of them instead (the events are lost to them, as in an outage)."""
        listening = [s for s in self._subscribers if stream in s.streams]
        with self._s.lock:
            drops = min(self._s.faults.drop_websocket, len(listening))
            self._s.faults.drop_websocket -= drops
        for subscriber in listening[:drops]:
            self._subscribers.discard(subscriber)
            subscriber.abort()
        for subscriber in listening[drops:]:
            for event in events:
                subscriber.outbox.put_nowait(event)

    async def _abort_all(self) -> None:
        for subscriber in list(self._subscribers):
            self._subscribers.discard(subscriber)
            subscriber.abort()

    # test thread side

    def push_trade(self, symbol: str, time_ms: int) -> None:
        """Push the candles a trade print of ``symbol`` at ``time_ms`` changed, on every interval
        (call under the exchange lock, after the print is in the kline book)."""
        for interval, interval_ms in INTERVAL_MS.items():
            opened = time_ms - time_ms % interval_ms
            key = (symbol, interval)
            previous = self._open.get(key)
            events = []
            if previous is not None and previous < opened:
                events.append(self._event(symbol, interval, interval_ms, previous, closed=True))
            if previous is None or previous <= opened:
                self._open[key] = opened
            # a late print into a candle already closed on the stream repeats it, closed
            late = opened < self._open[key]
            events.append(self._event(symbol, interval, interval_ms, opened, closed=late))
            if self._loop is not None:
                stream = f"{symbol.lower()}@kline_{interval}"
                self._loop.call_soon_threadsafe(self._deliver, stream, events)

    def drop_all(self, timeout_s: float = 10.0) -> None:
        """Abort every subscriber connection now (not under the exchange lock)."""
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._abort_all(), self._loop).result(timeout_s)

    def subscribers(self, timeout_s: float = 10.0) -> int:
        """Open connections subscribed to at least one stream (from the test thread)."""
        if self._loop is None:
            return 0
        return asyncio.run_coroutine_threadsafe(self._count(), self._loop).result(timeout_s)

    async def _count(self) -> int:
        return sum(1 for s in self._subscribers if s.streams)

    async def close(self) -> None:
        """Abort every connection: the server is stopping."""
        await self._abort_all()

    def _event(
        self, symbol: str, interval: str, interval_ms: int, open_ms: int, *, closed: bool
    ) -> dict[str, Any]:
        rows = self._s.klines.query(symbol, interval_ms, open_ms, open_ms, 1)
        _, o, h, low, c, v, close_ms, q, n, *_ = rows[0]
        return {
            "e": "kline",
            "E": now_ms(),
            "s": symbol,
            "k": {
                "t": open_ms,
                "T": close_ms,
                "s": symbol,
                "i": interval,
                "f": 0,
                "L": 0,
                "o": o,
                "c": c,
                "h": h,
                "l": low,
                "v": v,
                "n": n,
                "x": closed,
                "q": q,
                "V": "0.00000000",
                "Q": "0.00000000",
                "B": "0",
            },
        }


__all__ = ["WS_PATH", "KlineStreams"]
