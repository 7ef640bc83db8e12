"""The fake exchange's user data stream: Binance spot's ``executionReport`` events, as ccxt.pro's
``binance`` receives them for ``watch_orders`` / ``watch_my_trades``.

ccxt.pro 4.5.90 authenticates spot user data through the WebSocket API, not a listenKey: it
connects to ``urls['api']['ws']['ws-api']['spot']`` (served here at ``/ws-api/v3``, and at
``/stream/ws-api/v3`` for a client whose websocket URLs were rebased onto ``.../stream``), sends
``{"id": "<n>", "method": "userDataStream.subscribe.signature", "params": {"apiKey",
"timestamp", "signature"[, "recvWindow"]}}`` signed with HMAC-SHA256 over the sorted parameters,
and is answered ``{"id": "<n>", "status": 200, "result": {"subscriptionId": 0}}``. Events then
come wrapped as ``{"subscriptionId": 0, "event": {"e": "executionReport", ...}}``.

The older listenKey flow is served as well (ccxt uses it for other market types, other clients
for spot): ``POST /api/v3/userDataStream`` (API key header only) issues a 60-character key,
``PUT`` keeps it alive and ``DELETE`` closes it (``-1125`` for an unknown key); a websocket on
``/ws/<listenKey>`` (or ``/stream/ws/<listenKey>``) receives the bare events. Keys never expire
here: the fake has no timers.

One ``executionReport`` per order state change, built from the matching engine's ``on_report``
hook under the exchange lock: ``NEW`` on accept, ``TRADE`` per fill (last quantity, price,
commission and the trade id that ``GET /api/v3/myTrades`` lists), ``CANCELED`` (``c`` is then a
fresh id and ``C`` the order's own, as on Binance) and ``EXPIRED``. Binance refuses an invalid
order in the REST answer without a report, and so does the fake (it has no engine-side
``REJECTED``). A pending ``drop_websocket`` fault aborts the user connections a report reaches
(the report is lost to them), like the kline stream's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import secrets
import string
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from drl_trading.testing.fake_exchange.binance_rest import (
    DEFAULT_RECV_WINDOW_MS,
    MAX_RECV_WINDOW_MS,
    ExchangeState,
    now_ms,
)
from drl_trading.testing.fake_exchange.markets import fmt
from drl_trading.testing.fake_exchange.matching import BinanceError, VenueFill, VenueOrder

WS_API_PATHS = ("/ws-api/v3", "/stream/ws-api/v3")
"""Where the WebSocket API (``userDataStream.subscribe.signature``) is served."""
LISTEN_KEY_LENGTH = 60
_LISTEN_KEY_ROUTE = f"{{listen_key:[A-Za-z0-9]{{{LISTEN_KEY_LENGTH}}}}}"
_ZERO = Decimal(0)


@dataclass(eq=False)
class _UserConnection:
    """One websocket: subscribed once it holds a subscription id (WebSocket API) or was opened
    on a listen key; ``wrap`` says whether events go out in the WebSocket API's envelope."""

    ws: web.WebSocketResponse
    request: web.Request
    subscription_id: int | None = None
    wrap: bool = True
    outbox: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)

    @property
    def subscribed(self) -> bool:
        return self.subscription_id is not None

    def abort(self) -> None:
        """Close the TCP connection without a close frame: what a network failure looks like."""
        if self.request.transport is not None:
            self.request.transport.abort()

    async def pump(self) -> None:
        while not self.ws.closed:
            message = await self.outbox.get()
            try:
                await self.ws.send_json(message)
            except (ConnectionError, RuntimeError):
                return


class UserDataStreams:
    """The user data endpoints and their connections; installs itself as the engine's
    ``on_report`` hook (which runs under the exchange lock, on whichever thread matched)."""

    def __init__(self, state: ExchangeState) -> None:
        self._s = state
        self._connections: set[_UserConnection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listen_keys: set[str] = set()
        self._next_subscription = 0
        self.subscriptions = 0
        """User data subscriptions accepted so far (each reconnect counts again)."""
        state.venue.on_report = self._on_report

    def register(self, app: web.Application) -> None:
        """Add the routes; call before `KlineStreams.register` (``/stream/ws/<listenKey>`` must
        win over the kline stream's ``/stream/ws/<n>``)."""
        for path in WS_API_PATHS:
            app.router.add_get(path, self._ws_api)
        app.router.add_get("/ws/" + _LISTEN_KEY_ROUTE, self._listen_key_ws)
        app.router.add_get("/stream/ws/" + _LISTEN_KEY_ROUTE, self._listen_key_ws)
        app.router.add_post("/api/v3/userDataStream", self._new_listen_key)
        app.router.add_put("/api/v3/userDataStream", self._keep_alive)
        app.router.add_delete("/api/v3/userDataStream", self._close_listen_key)

    # server loop side: the WebSocket API

    async def _ws_api(self, request: web.Request) -> web.StreamResponse:
        connection = await self._open(request, wrap=True)
        pump = asyncio.create_task(connection.pump())
        try:
            async for msg in connection.ws:
                if msg.type is WSMsgType.TEXT:
                    connection.outbox.put_nowait(self._answer(connection, msg.data))
        finally:
            self._connections.discard(connection)
            pump.cancel()
        return connection.ws

    async def _open(self, request: web.Request, *, wrap: bool) -> _UserConnection:
        self._loop = asyncio.get_running_loop()
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        connection = _UserConnection(ws, request, wrap=wrap)
        self._connections.add(connection)
        return connection

    def _answer(self, connection: _UserConnection, text: str) -> dict[str, Any]:
        """The WebSocket API's reply to one request (``status`` 200, else Binance's error)."""
        try:
            body = json.loads(text)
            method, request_id = str(body["method"]), body.get("id")
            params = dict(body.get("params") or {})
        except (ValueError, KeyError, TypeError, AttributeError):
            return _ws_error(None, 400, -1000, "Invalid request.")
        try:
            result: dict[str, Any]
            if method == "userDataStream.subscribe.signature":
                self._check_signature(params)
                if connection.subscription_id is None:
                    connection.subscription_id = self._next_subscription
                    self._next_subscription += 1
                    with self._s.lock:
                        self.subscriptions += 1
                result = {"subscriptionId": connection.subscription_id}
            elif method == "userDataStream.unsubscribe":
                connection.subscription_id = None
                result = {}
            elif method == "ping":
                result = {}
            else:
                return _ws_error(request_id, 400, -1100, f"Unknown method '{method}'.")
        except BinanceError as refusal:
            return _ws_error(request_id, refusal.status, refusal.code, refusal.msg)
        return {"id": request_id, "status": 200, "result": result, "rateLimits": []}

    def _check_signature(self, params: dict[str, Any]) -> None:
        """Key, timestamp window and HMAC of the sorted ``key=value`` pairs, as Binance checks a
        WebSocket API request signed with an HMAC key."""
        key = str(params.get("apiKey") or "")
        if not key or not hmac.compare_digest(key, self._s.api_key):
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        signature = str(params.pop("signature", ""))
        try:
            timestamp = int(params["timestamp"])
            recv_window = int(params.get("recvWindow") or DEFAULT_RECV_WINDOW_MS)
        except (KeyError, TypeError, ValueError):
            raise BinanceError(
                -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
            ) from None
        if recv_window > MAX_RECV_WINDOW_MS:
            raise BinanceError(-1131, "recvWindow must be less than 60000")
        server = now_ms()
        if timestamp >= server + 1000 or server - timestamp > recv_window:
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")
        payload = "&".join(f"{k}={_wire(params[k])}" for k in sorted(params))
        expected = hmac.new(self._s.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not signature or not hmac.compare_digest(expected, signature.lower()):
            raise BinanceError(-1022, "Signature for this request is not valid.")

    # server loop side: the listenKey flow

    async def _listen_key_ws(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["listen_key"] not in self._listen_keys:
            raise web.HTTPNotFound()
        connection = await self._open(request, wrap=False)
        connection.subscription_id = -1
        with self._s.lock:
            self.subscriptions += 1
        pump = asyncio.create_task(connection.pump())
        try:
            async for _ in connection.ws:  # the stream takes no requests
                pass
        finally:
            self._connections.discard(connection)
            pump.cancel()
        return connection.ws

    async def _new_listen_key(self, request: web.Request) -> web.Response:
        self._check_key(request)
        alphabet = string.ascii_letters + string.digits
        key = "".join(secrets.choice(alphabet) for _ in range(LISTEN_KEY_LENGTH))
        self._listen_keys.add(key)
        return web.json_response({"listenKey": key})

    async def _keep_alive(self, request: web.Request) -> web.Response:
        self._known_key(request, await _form(request))
        return web.json_response({})

    async def _close_listen_key(self, request: web.Request) -> web.Response:
        key = self._known_key(request, await _form(request))
        self._listen_keys.discard(key)
        for connection in [c for c in self._connections if not c.wrap]:
            if connection.request.match_info.get("listen_key") == key:
                self._connections.discard(connection)
                await connection.ws.close()
        return web.json_response({})

    def _check_key(self, request: web.Request) -> None:
        key = request.headers.get("X-MBX-APIKEY")
        if not key:
            raise BinanceError(-2014, "API-key format invalid.", status=401)
        if not hmac.compare_digest(key, self._s.api_key):
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", status=401)

    def _known_key(self, request: web.Request, form: dict[str, str]) -> str:
        self._check_key(request)
        key = request.query.get("listenKey") or form.get("listenKey") or ""
        if key not in self._listen_keys:
            raise BinanceError(-1125, "This listenKey does not exist.")
        return key

    # delivery

    def _on_report(self, order: VenueOrder, execution: str, fill: VenueFill | None) -> None:
        """The engine's hook (under the exchange lock): queue the report to the server loop."""
        if self._loop is None:
            return
        report = execution_report(order, execution, fill)
        delay_s = self._s.faults.user_stream_delay_s
        with contextlib.suppress(RuntimeError):  # the server loop has stopped
            self._loop.call_soon_threadsafe(self._deliver_after, delay_s, report)

    def _deliver_after(self, delay_s: float, report: dict[str, Any]) -> None:
        """On the server loop: `_deliver` now, or after ``delay_s`` seconds (a lagging push)."""
        if delay_s > 0 and self._loop is not None:
            self._loop.call_later(delay_s, self._deliver, report)
        else:
            self._deliver(report)

    def _deliver(self, report: dict[str, Any]) -> None:
        """Queue ``report`` to every subscribed connection; a pending ``drop_websocket`` fault
        aborts that many of them instead (the report is lost to them, as in an outage)."""
        listening = [c for c in self._connections if c.subscribed]
        with self._s.lock:
            drops = min(self._s.faults.drop_websocket, len(listening))
            self._s.faults.drop_websocket -= drops
        for connection in listening[:drops]:
            self._connections.discard(connection)
            connection.abort()
        for connection in listening[drops:]:
            if connection.wrap:
                connection.outbox.put_nowait(
                    {"subscriptionId": connection.subscription_id, "event": report}
                )
            else:
                connection.outbox.put_nowait(report)

    async def _abort_all(self) -> None:
        for connection in list(self._connections):
            self._connections.discard(connection)
            connection.abort()

    async def _count(self) -> int:
        return sum(1 for c in self._connections if c.subscribed)

    # test thread side

    def drop_all(self, timeout_s: float = 10.0) -> None:
        """Abort every user data connection now (not under the exchange lock)."""
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._abort_all(), self._loop).result(timeout_s)

    def subscribers(self, timeout_s: float = 10.0) -> int:
        """Open connections subscribed to the user data stream (from the test thread)."""
        if self._loop is None:
            return 0
        return asyncio.run_coroutine_threadsafe(self._count(), self._loop).result(timeout_s)

    async def close(self) -> None:
        """Abort every connection: the server is stopping."""
        await self._abort_all()


def execution_report(order: VenueOrder, execution: str, fill: VenueFill | None) -> dict[str, Any]:
    """Binance spot's ``executionReport`` of ``order`` after a change of type ``execution``
    (NEW, TRADE with its ``fill``, CANCELED, EXPIRED); amounts in base units, prices in quote."""
    canceled = execution == "CANCELED"
    last_qty = fill.quantity if fill is not None else _ZERO
    last_price = fill.price if fill is not None else _ZERO
    at = fill.time_ms if fill is not None else order.updated_ms
    return {
        "e": "executionReport",
        "E": now_ms(),
        "s": order.symbol,
        "c": _cancel_id() if canceled else order.client_order_id,
        "S": order.side,
        "o": order.type,
        "f": order.time_in_force or "GTC",
        "q": fmt(order.quantity),
        "p": fmt(order.price or _ZERO),
        "P": fmt(_ZERO),
        "F": fmt(_ZERO),
        "g": -1,
        "C": order.client_order_id if canceled else "",
        "x": execution,
        "X": order.status,
        "r": "NONE",
        "i": order.order_id,
        "l": fmt(last_qty),
        "z": fmt(order.executed),
        "L": fmt(last_price),
        "n": fmt(fill.commission) if fill is not None else "0",
        "N": fill.commission_asset if fill is not None else None,
        "T": at,
        "t": fill.trade_id if fill is not None else -1,
        "v": 0,
        "I": at,
        "w": order.is_open and order.type == "LIMIT",
        "m": fill.is_maker if fill is not None else False,
        "M": fill is not None,
        "O": order.created_ms,
        "Z": fmt(order.quote_executed),
        "Y": fmt(last_qty * last_price),
        "Q": fmt(order.quote_quantity or _ZERO),
        "W": order.created_ms,
        "V": "EXPIRE_MAKER",
    }


def _cancel_id() -> str:
    return "x" + secrets.token_hex(10)


def _wire(value: Any) -> str:
    """A parameter as the client put it in the signed string (booleans as JSON spells them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _ws_error(request_id: Any, status: int, code: int, msg: str) -> dict[str, Any]:
    return {"id": request_id, "status": status, "error": {"code": code, "msg": msg}}


async def _form(request: web.Request) -> dict[str, str]:
    if not request.can_read_body:
        return {}
    return {k: str(v) for k, v in (await request.post()).items()}


__all__ = ["LISTEN_KEY_LENGTH", "WS_API_PATHS", "UserDataStreams", "execution_report"]
