"""Order state and fills pushed by the exchange (ccxt.pro ``watch_my_trades`` / ``watch_orders``)
for `CcxtBroker`, so that it need not poll every open order over REST on every bar.

`CcxtOrderStream` runs a ccxt.pro client on an asyncio loop of its own, in a daemon thread, and
collects what the account's user data stream pushes: unified trades (each once by trade id,
with the order's exchange id in ``order`` and, where the exchange says it, our client order id
in ``clientOrderId``) and order updates (status changes: cancels, expiries, rejections). The
broker drains both from its own thread. A dropped connection is retried with exponential
backoff (``first_backoff_s`` doubling to ``max_backoff_s``, log line
``ccxt_order_stream.reconnect`` with the attempt); what the exchange pushed while the stream was
down is lost to it, and the health fields say so: ``connected`` is False during the outage and
``connected_since`` is the time of the last successful (re)subscription.

Protocol for the broker (the stream never replaces REST; it tells the broker when REST is not
needed). Keep, per open order, ``known_at``: a time at which the broker knew all of the order's
trades (its submit time at first; the start time of each REST poll of it after that).

- construct the stream with the broker (``CcxtOrderStream(lambda: pro_client_for(rest), ...)``)
  and ``start()`` it; ``close()`` it when the broker is closed.
- ``submit``: record ``known_at = clock.now()`` taken *before* sending the order (no trade of it
  can predate the send).
- ``on_bar``: first ``drain()`` and book every trade whose ``order`` (or ``clientOrderId``) is
  one of ours and whose ``id`` is not in the order's seen trades (the same dedupe as REST,
  so a trade seen both ways is booked once); apply ``order_updates()`` (an order ``canceled``,
  ``expired`` or ``rejected`` with its trades booked is done). Then, for every open order,
  ``covers(known_at)`` True: nothing more to do; False (the stream is down, or was down at some
  point since ``known_at``, or never came up): poll it over REST as today (``fetch_order``,
  ``fetch_my_trades``) and set ``known_at`` to the time taken before that poll. So after an
  outage every open order is polled exactly once, after the resubscription, and the stream
  covers it again from then on; an order the broker cannot match with a stream trade (placed
  by someone else) is the reconciliation's business, as today.
- ``restore`` / adopted orders: ``known_at`` is unknown: leave it None, which means "poll once".
- fatal stream errors (refused credentials, an exchange without ``watchMyTrades``) leave
  ``failure`` set and ``connected`` False for good: the broker polls as it does without a
  stream.

Time is the injected ``clock``'s (the broker's), read right after the exchange acknowledged the
subscription: on Binance spot, ccxt.pro's ``authenticate`` (the WebSocket API's
``userDataStream.subscribe.signature``) returns once it is acknowledged. On other exchanges the
subscription's acknowledgement is not observable through ccxt, so the stream counts as subscribed
at the first update it delivers (conservative: a quiet stream covers nothing and the broker keeps
polling). Credentials are never logged; ccxt errors are logged as one masked line.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import ccxt
import structlog

from drl_trading.common.adapter.system_clock import SystemClock
from drl_trading.common.domain import utc
from drl_trading.common.ports import Clock
from drl_trading.common.redaction import MASK, mask_secrets

log = structlog.get_logger(__name__)

ProClientFactory = Callable[[], Any]
"""Builds the ccxt.pro exchange object; called once, on the stream's thread."""
T = TypeVar("T")

SEEN_TRADES = 10_000
"""Trade ids remembered for the once-by-id rule (ccxt.pro caches 1000 trades by default)."""
_FATAL = (ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.NotSupported, ccxt.BadRequest)
_CLOSE_TIMEOUT_S = 10.0


class CcxtOrderStream:
    """The account's trades and order updates from a ccxt.pro client (see the module doc)."""

    def __init__(
        self,
        client: ProClientFactory,
        *,
        clock: Clock | None = None,
        first_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        watch_orders: bool = True,
    ) -> None:
        """``client`` builds the ccxt.pro client (e.g. ``lambda: pro_client_for(rest)``);
        ``clock`` dates ``connected_since`` (use the broker's); backoffs are seconds;
        ``watch_orders`` False watches trades only (no cancel/expiry updates)."""
        if not 0 < first_backoff_s <= max_backoff_s:
            raise ValueError(
                f"backoffs must satisfy 0 < first_backoff_s <= max_backoff_s, got "
                f"{first_backoff_s} and {max_backoff_s}"
            )
        self._factory = client
        self._clock = clock or SystemClock()
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self._watch_orders = watch_orders
        self._lock = threading.Lock()
        self._trades: list[dict[str, Any]] = []
        self._updates: dict[str, dict[str, Any]] = {}
        self._seen: set[str] = set()
        self._seen_order: collections.deque[str] = collections.deque()
        self._order_states: dict[str, tuple[Any, ...]] = {}
        self._connected = False
        self._connected_since: datetime | None = None
        self._outages = 0
        self._failure: str | None = None
        self._secrets: tuple[str, ...] = ()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._dropped: asyncio.Event | None = None
        self.loop_errors: list[str] = []
        """What the stream's event loop reported to its exception handler (an unretrieved
        future's error, an unclosed session): none in a clean run."""

    # lifecycle

    def start(self) -> CcxtOrderStream:
        if self._thread is not None:
            raise RuntimeError("CcxtOrderStream is already started")
        if self._closed.is_set():
            raise RuntimeError("CcxtOrderStream is closed; make a new one")
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._run(),), name="ccxt-order-stream", daemon=True
        )
        self._thread.start()
        return self

    def __enter__(self) -> CcxtOrderStream:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the thread and close the client (its sessions and sockets); idempotent."""
        self._closed.set()
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already finished
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=_CLOSE_TIMEOUT_S)
        with self._lock:
            self._connected = False

    # what the broker reads (any thread)

    def drain(self) -> list[dict[str, Any]]:
        """The trades pushed since the last call, oldest first, each once by trade id: ccxt's
        unified trade (``id``, ``order``, ``symbol``, ``side``, ``price``, ``amount``, ``fee``,
        ``timestamp``...) plus ``clientOrderId`` where the exchange sent it."""
        with self._lock:
            trades, self._trades = self._trades, []
        return trades

    def order_updates(self) -> list[dict[str, Any]]:
        """The orders whose state changed since the last call (ccxt's unified order, latest
        state each: ``id``, ``clientOrderId``, ``status``, ``filled``...), in update order."""
        with self._lock:
            updates, self._updates = list(self._updates.values()), {}
        return updates

    @property
    def connected(self) -> bool:
        """Subscribed now (the exchange's acknowledgement seen, no drop since)."""
        with self._lock:
            return self._connected

    @property
    def connected_since(self) -> datetime | None:
        """When the current (or, while down, the last) subscription was acknowledged."""
        with self._lock:
            return self._connected_since

    @property
    def outages(self) -> int:
        """Subscriptions lost so far (each drop counts once)."""
        with self._lock:
            return self._outages

    @property
    def failure(self) -> str | None:
        """Why the stream gave up for good (one line), else None."""
        with self._lock:
            return self._failure

    def covers(self, known_at: datetime | None) -> bool:
        """Whether every trade after ``known_at`` reaches `drain`: the stream is subscribed and
        has been continuously since ``known_at`` or earlier. None (unknown) is never covered."""
        if known_at is None:
            return False
        with self._lock:
            since = self._connected_since
            return self._connected and since is not None and since <= utc(known_at)

    # the worker's event loop

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._loop_error)
        self._stop = asyncio.Event()
        self._loop = loop
        if self._closed.is_set():
            return
        try:
            client = self._factory()
        except Exception as exc:  # a bad configuration: the broker polls
            self._give_up(f"{type(exc).__name__}: {exc}")
            return
        self._secrets = tuple(
            str(s) for s in (getattr(client, "apiKey", None), getattr(client, "secret", None)) if s
        )
        self._watch_connections(client)
        try:
            await self._follow(client)
        finally:
            with self._lock:
                self._connected = False
            await client.close()

    def _watch_connections(self, client: Any) -> None:
        """Hear of every closed or failed connection of ``client``: ccxt.pro rejects only the
        watches waiting on a connection when it drops, and a drop between the subscription and
        the watches would go unseen (a later watch silently opens an unsubscribed connection)."""
        on_close, on_error = client.on_close, client.on_error

        def closed(connection: Any, code: Any) -> None:
            on_close(connection, code)
            self._connection_lost()

        def failed(connection: Any, error: Any) -> None:
            on_error(connection, error)
            self._connection_lost()

        client.on_close, client.on_error = closed, failed

    def _connection_lost(self) -> None:
        if self._dropped is not None:
            self._dropped.set()

    async def _follow(self, client: Any) -> None:
        has = getattr(client, "has", None) or {}
        if not has.get("watchMyTrades"):
            self._give_up(
                f"{getattr(client, 'id', 'the exchange')} has no watchMyTrades in ccxt.pro"
            )
            return
        attempt = 0
        while not self._closed.is_set():
            try:
                await self._session(client)
                return  # stopped
            except Exception as raised:  # every failure is logged, then retried or given up
                exc = _ccxt_error(raised)
                if isinstance(exc, _FATAL):
                    self._give_up(self._scrub(exc))
                    return
                self._lost()
                attempt += 1
                delay = min(self.max_backoff_s, self.first_backoff_s * 2 ** (attempt - 1))
                log.warning(
                    "ccxt_order_stream.reconnect",
                    exchange=getattr(client, "id", None),
                    attempt=attempt,
                    delay_s=delay,
                    error=self._scrub(exc),
                )
                if await self._until_stopped(asyncio.sleep(delay)) is _STOPPED:
                    return

    async def _session(self, client: Any) -> None:
        """One subscription: acknowledged, then watched until it drops (raises) or the stream is
        stopped (returns)."""
        acknowledged = callable(
            getattr(client, "ensure_user_data_stream_ws_subscribe_signature", None)
        )
        self._dropped = dropped = asyncio.Event()
        if acknowledged and await self._until_stopped(client.authenticate()) is _STOPPED:
            return
        if acknowledged:
            self._subscribed(client)
        watchers = [asyncio.ensure_future(self._watch(client, "trades", acknowledged))]
        if self._watch_orders and (client.has or {}).get("watchOrders"):
            watchers.append(asyncio.ensure_future(self._watch(client, "orders", acknowledged)))
        assert self._stop is not None
        stopper = asyncio.ensure_future(self._stop.wait())
        drop = asyncio.ensure_future(dropped.wait())
        try:
            done, _ = await asyncio.wait(
                [*watchers, stopper, drop], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in [*watchers, stopper, drop]:
                task.cancel()
            await asyncio.gather(*watchers, stopper, drop, return_exceptions=True)
        for task in done:
            if task in watchers:
                task.result()  # a watcher only ends by raising
        if drop in done and stopper not in done:
            raise ccxt.NetworkError("the user data connection closed")

    async def _watch(self, client: Any, what: str, acknowledged: bool) -> None:
        while True:
            if what == "trades":
                trades = await client.watch_my_trades()
                self._take_trades([*trades, *(getattr(client, "myTrades", None) or [])])
            else:
                self._take_orders(await client.watch_orders())
            if not acknowledged and not self.connected:
                self._subscribed(client)

    async def _until_stopped(self, work: Coroutine[Any, Any, T]) -> T | object:
        """``work``'s result, or `_STOPPED` (``work`` cancelled) once the stream is closed."""
        assert self._stop is not None
        task = asyncio.ensure_future(work)
        stopper = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, stopper, return_exceptions=True)
            return _STOPPED
        await asyncio.gather(stopper, return_exceptions=True)
        return task.result()

    # state changes (the worker thread)

    def _subscribed(self, client: Any) -> None:
        now = utc(self._clock.now())
        with self._lock:
            again = self._connected_since is not None
            self._connected, self._connected_since = True, now
        log.info(
            "ccxt_order_stream.subscribed",
            exchange=getattr(client, "id", None),
            resubscribed=again,
            at=now.isoformat(),
        )

    def _lost(self) -> None:
        with self._lock:
            if self._connected:
                self._outages += 1
            self._connected = False

    def _give_up(self, reason: str) -> None:
        with self._lock:
            self._failure = reason
            self._connected = False
        log.error("ccxt_order_stream.failed", error=reason)

    def _take_trades(self, trades: Iterable[Mapping[str, Any]]) -> None:
        fresh: list[dict[str, Any]] = []
        for trade in trades:
            trade_id = trade.get("id")
            if trade_id is None or str(trade_id) in self._seen:
                continue
            self._remember(str(trade_id))
            unified = dict(trade)
            info = trade.get("info") or {}
            client_id = unified.get("clientOrderId") or (
                info.get("c") if isinstance(info, Mapping) else None
            )
            unified["clientOrderId"] = str(client_id) if client_id else None
            fresh.append(unified)
        if fresh:
            fresh.sort(key=lambda t: (t.get("timestamp") or 0, str(t.get("id"))))
            with self._lock:
                self._trades.extend(fresh)

    def _remember(self, trade_id: str) -> None:
        self._seen.add(trade_id)
        self._seen_order.append(trade_id)
        if len(self._seen_order) > SEEN_TRADES:
            self._seen.discard(self._seen_order.popleft())

    def _take_orders(self, orders: Iterable[Mapping[str, Any]]) -> None:
        changed: list[dict[str, Any]] = []
        for order in orders:
            order_id = order.get("id")
            if order_id is None:
                continue
            state = (order.get("status"), order.get("filled"), order.get("lastUpdateTimestamp"))
            if self._order_states.get(str(order_id)) == state:
                continue
            self._order_states[str(order_id)] = state
            changed.append(dict(order))
        if changed:
            with self._lock:
                for order in changed:
                    self._updates.pop(str(order["id"]), None)  # latest last
                    self._updates[str(order["id"])] = order

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message") or "")
        exception = context.get("exception")
        if exception is not None:
            message = f"{message}: {type(exception).__name__}: {exception}"
        line = self._scrub_text(message)
        self.loop_errors.append(line)
        log.warning("ccxt_order_stream.loop_error", error=line)

    def _scrub(self, exc: BaseException) -> str:
        text = str(exc).strip()
        return self._scrub_text(text.splitlines()[0] if text else type(exc).__name__)

    def _scrub_text(self, text: str) -> str:
        """One line without query strings (signed requests carry a signature there) and with
        the client's key and secret masked wherever they appear."""
        text = re.sub(r"((?:https?|wss?)://[^\s?'\"]+)\?[^\s'\"]*", r"\1", text)
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        text = mask_secrets(text)
        return text if len(text) <= 300 else text[:299] + "…"


_STOPPED = object()


def _ccxt_error(exc: BaseException) -> BaseException:
    """The ccxt error behind ``exc``: ccxt.pro 4.5.90 sometimes raises a KeyError while it
    handles a refused subscription (binance's ``ensure_user_data_stream_ws_subscribe_signature``
    deletes a subscription the error handler already removed), the refusal being its context."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ccxt.BaseError):
            found: BaseException = seen
            return found
        seen = seen.__cause__ or seen.__context__
    return exc


def pro_client_for(rest: Any, ws_url: str | None = None) -> Any:
    """The ccxt.pro twin of the synchronous ccxt client ``rest``: same exchange, credentials,
    options, timeout and REST URLs; ``ws_url`` (``wss://host[:port][/path]``) replaces the
    scheme and host of its websocket URLs (its path goes in front of theirs). Raises
    `ccxt.NotSupported` for an exchange ccxt.pro lacks (the broker then polls without a stream).
    """
    import ccxt.pro

    exchange_id = str(rest.id)
    if exchange_id not in ccxt.pro.exchanges:
        raise ccxt.NotSupported(f"ccxt.pro has no {exchange_id} (no order stream)")
    config: dict[str, Any] = {
        "enableRateLimit": bool(getattr(rest, "enableRateLimit", True)),
        "timeout": rest.timeout,
        "options": dict(rest.options or {}),
    }
    for name in ("apiKey", "secret", "password", "uid", "privateKey", "walletAddress"):
        value = getattr(rest, name, None)
        if value:
            config[name] = value
    client = getattr(ccxt.pro, exchange_id)(config)
    if getattr(rest, "isSandboxModeEnabled", False):
        client.set_sandbox_mode(True)  # the test network's streams, before any URL is read
    client.has["fetchCurrencies"] = rest.has.get("fetchCurrencies")
    ws = client.urls["api"].get("ws")
    if ws is not None and ws_url:
        ws = _rebase(ws, ws_url)
    rest_urls = {k: v for k, v in (rest.urls.get("api") or {}).items() if k != "ws"}
    client.urls["api"] = {**rest_urls, **({} if ws is None else {"ws": ws})}
    return client


def _rebase(urls: Any, base_url: str) -> Any:
    base = urlsplit(base_url.strip())
    if not base.scheme or not base.netloc:
        raise ValueError(f"ws_url {base_url!r} needs a scheme and a host, e.g. wss://host:9443")
    if isinstance(urls, str):
        own = urlsplit(urls)
        path = base.path.rstrip("/") + own.path
        return urlunsplit((base.scheme, base.netloc, path, own.query, own.fragment))
    if isinstance(urls, dict):
        return {key: _rebase(value, base_url) for key, value in urls.items()}
    return urls


__all__ = ["CcxtOrderStream", "ProClientFactory", "pro_client_for"]
