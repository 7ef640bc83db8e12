"""The subset of Binance's spot REST API (``/api/v3``) that ccxt's ``binance`` class calls, as an
aiohttp application over the fake's shared state.

Shapes follow Binance's documented responses field for field where ccxt 4.5 reads them; errors are
Binance's ``{"code", "msg"}`` bodies so ccxt raises the same exception classes it would against
the real venue. Private endpoints check ``X-MBX-APIKEY``, the HMAC-SHA256 signature of the query
string (or form body), ``timestamp`` and ``recvWindow`` (milliseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from aiohttp import web

from drl_trading.testing.fake_exchange.faults import Faults
from drl_trading.testing.fake_exchange.klines import INTERVAL_MS, MINUTE_MS, KlineBook
from drl_trading.testing.fake_exchange.markets import dec, fmt
from drl_trading.testing.fake_exchange.matching import (
    BinanceError,
    Venue,
    VenueFill,
    VenueOrder,
    filter_failure,
    insufficient_balance,
)

Params = dict[str, str]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_RECV_WINDOW_MS = 60_000
DEFAULT_RECV_WINDOW_MS = 5_000
DELIVERY = web.RequestKey("delivery", str)
HOLD_S = web.RequestKey("hold_s", float)


class RequestRecord(NamedTuple):
    """One request the fake answered: ``status`` is what it sent (or, for a held or dropped order
    response, what it would have sent)."""

    method: str
    path: str
    status: int


@dataclass(slots=True)
class ExchangeState:
    """Everything the server thread and the test thread share; touch it only under ``lock``."""

    venue: Venue
    klines: KlineBook
    faults: Faults
    api_key: str
    secret: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    log: list[RequestRecord] = field(default_factory=list)


def now_ms() -> int:
    return int(time.time() * 1000)


def build_app(state: ExchangeState, closing: asyncio.Event) -> web.Application:
    """The aiohttp application; ``closing`` releases held responses when the server stops."""
    api = _BinanceSpot(state, closing)
    app = web.Application(middlewares=[api.middleware])
    r = app.router
    r.add_get("/api/v3/ping", api.ping)
    r.add_get("/api/v3/time", api.server_time)
    r.add_get("/api/v3/exchangeInfo", api.exchange_info)
    r.add_get("/api/v3/klines", api.klines)
    r.add_get("/api/v3/ticker/24hr", api.ticker_24hr)
    r.add_get("/api/v3/ticker/price", api.ticker_price)
    r.add_get("/api/v3/ticker/bookTicker", api.book_ticker)
    r.add_post("/api/v3/order", api.new_order)
    r.add_get("/api/v3/order", api.query_order)
    r.add_delete("/api/v3/order", api.cancel_order)
    r.add_get("/api/v3/openOrders", api.open_orders)
    r.add_delete("/api/v3/openOrders", api.cancel_open_orders)
    r.add_get("/api/v3/allOrders", api.all_orders)
    r.add_get("/api/v3/myTrades", api.my_trades)
    r.add_get("/api/v3/account", api.account)
    return app


class _BinanceSpot:
    def __init__(self, state: ExchangeState, closing: asyncio.Event) -> None:
        self._s = state
        self._closing = closing

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Latency and gateway faults, then the endpoint; Binance errors become JSON bodies."""
        with self._s.lock:
            fault = self._s.faults.take_gateway_fault()
            latency = self._s.faults.latency_s
            retry_after = self._s.faults.retry_after_s
            server_status = self._s.faults.server_error_status
        if latency > 0:
            await asyncio.sleep(latency)
        response: web.StreamResponse
        if fault is not None:
            response = _gateway_response(fault, retry_after, server_status)
        else:
            try:
                response = await handler(request)
            except BinanceError as rejection:
                response = web.json_response(
                    {"code": rejection.code, "msg": rejection.msg}, status=rejection.status
                )
            except web.HTTPException as http_error:
                self._record(request, http_error.status)
                raise
        self._record(request, response.status)
        delivery = request.get(DELIVERY)
        if delivery == "hold":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout=request[HOLD_S])
        elif delivery == "drop" and request.transport is not None:
            request.transport.close()
        return response

    def _record(self, request: web.Request, status: int) -> None:
        with self._s.lock:
            self._s.log.append(RequestRecord(request.method, request.path, status))

    # public endpoints

    async def ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def server_time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": now_ms()})

    async def exchange_info(self, request: web.Request) -> web.Response:
        with self._s.lock:
            specs = list(self._s.venue.markets.values())
        wanted = request.query.get("symbol")
        if wanted is not None:
            specs = [s for s in specs if s.symbol == wanted]
            if not specs:
                raise BinanceError(-1121, "Invalid symbol.")
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": now_ms(),
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": 6000,
                    },
                    {
                        "rateLimitType": "ORDERS",
                        "interval": "SECOND",
                        "intervalNum": 10,
                        "limit": 100,
                    },
                    {
                        "rateLimitType": "ORDERS",
                        "interval": "DAY",
                        "intervalNum": 1,
                        "limit": 200000,
                    },
                ],
                "exchangeFilters": [],
                "symbols": [s.exchange_info_entry() for s in specs],
            }
        )

    async def klines(self, request: web.Request) -> web.Response:
        q = request.query
        symbol = _required(q, "symbol")
        interval = _required(q, "interval")
        if interval not in INTERVAL_MS:
            raise BinanceError(-1120, "Invalid interval.")
        limit = min(_int(q, "limit") or 500, 1000)
        with self._s.lock:
            self._s.venue.market(symbol)
            rows = self._s.klines.query(
                symbol, INTERVAL_MS[interval], _int(q, "startTime"), _int(q, "endTime"), limit
            )
        return web.json_response(rows)

    async def ticker_24hr(self, request: web.Request) -> web.Response:
        return self._tickers(request, self._ticker_24hr)

    async def ticker_price(self, request: web.Request) -> web.Response:
        return self._tickers(
            request, lambda symbol: {"symbol": symbol, "price": fmt(self._last(symbol))}
        )

    async def book_ticker(self, request: web.Request) -> web.Response:
        def book(symbol: str) -> dict[str, object]:
            last = fmt(self._last(symbol))
            return {
                "symbol": symbol,
                "bidPrice": last,
                "bidQty": "1.00000000",
                "askPrice": last,
                "askQty": "1.00000000",
            }

        return self._tickers(request, book)

    def _tickers(
        self, request: web.Request, one: Callable[[str], dict[str, object]]
    ) -> web.Response:
        symbol = request.query.get("symbol")
        with self._s.lock:
            if symbol is not None:
                self._s.venue.market(symbol)
                return web.json_response(one(symbol))
            return web.json_response([one(s) for s in self._s.venue.markets])

    def _last(self, symbol: str) -> Decimal:
        price = self._s.venue.last_price.get(symbol)
        return price if price is not None else Decimal(0)

    def _ticker_24hr(self, symbol: str) -> dict[str, object]:
        now = now_ms()
        start = now - 1440 * MINUTE_MS
        bars = self._s.klines.window(symbol, start - start % MINUTE_MS)
        last = self._last(symbol)
        open_ = dec(bars[0].open) if bars else last
        high = dec(max((b.high for b in bars), default=float(last)))
        low = dec(min((b.low for b in bars), default=float(last)))
        volume = dec(sum(b.volume for b in bars))
        quote_volume = dec(sum(b.quote_volume for b in bars))
        change = last - open_
        return {
            "symbol": symbol,
            "priceChange": fmt(change),
            "priceChangePercent": fmt(change / open_ * 100 if open_ else Decimal(0)),
            "weightedAvgPrice": fmt(quote_volume / volume if volume else last),
            "prevClosePrice": fmt(open_),
            "lastPrice": fmt(last),
            "lastQty": "0.00000000",
            "bidPrice": fmt(last),
            "bidQty": "1.00000000",
            "askPrice": fmt(last),
            "askQty": "1.00000000",
            "openPrice": fmt(open_),
            "highPrice": fmt(high),
            "lowPrice": fmt(low),
            "volume": fmt(volume),
            "quoteVolume": fmt(quote_volume),
            "openTime": start,
            "closeTime": now,
            "firstId": -1,
            "lastId": -1,
            "count": sum(b.trades for b in bars),
        }

    # private endpoints

    async def _signed(self, request: web.Request) -> Params:
        """Check key, timestamp window and signature like Binance; the request's parameters."""
        body = await request.text() if request.can_read_body else ""
        params: Params = dict(request.query)
        if body:
            params.update((await request.post()).items())  # type: ignore[arg-type]
        key = request.headers.get("X-MBX-APIKEY")
        if not key:
            raise BinanceError(-2014, "API-key format invalid.", status=401)
        if not hmac.compare_digest(key, self._s.api_key):
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", status=401)
        timestamp = _int(params, "timestamp")
        if timestamp is None:
            raise _mandatory("timestamp")
        recv_window = _int(params, "recvWindow") or DEFAULT_RECV_WINDOW_MS
        if recv_window > MAX_RECV_WINDOW_MS:
            raise BinanceError(-1131, "recvWindow must be less than 60000")
        server = now_ms()
        if timestamp >= server + 1000:
            raise BinanceError(
                -1021, "Timestamp for this request was 1000ms ahead of the server's time."
            )
        if server - timestamp > recv_window:
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")
        signed, signature = _split_signature(request.rel_url.raw_query_string, body)
        if signature is None:
            raise _mandatory("signature")
        expected = hmac.new(self._s.secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        return params

    async def new_order(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        symbol = _required(p, "symbol")
        client_order_id = p.get("newClientOrderId") or _random_client_id()
        with self._s.lock:
            rejection = self._s.faults.take_rejection()
            spec = self._s.venue.market(symbol)
            if rejection == "insufficient_balance":
                raise insufficient_balance()
            if rejection == "min_notional":
                raise filter_failure("NOTIONAL")
            if rejection == "lot_size":
                raise filter_failure("LOT_SIZE")
            order = self._s.venue.place(
                symbol=spec.symbol,
                side=_required(p, "side"),
                type=_required(p, "type"),
                quantity=_decimal(p, "quantity"),
                quote_quantity=_decimal(p, "quoteOrderQty"),
                price=_decimal(p, "price"),
                time_in_force=p.get("timeInForce"),
                client_order_id=client_order_id,
                now_ms=now_ms(),
            )
            delivery = self._s.faults.take_delivery_fault()
            hold_s = self._s.faults.hold_s
            body = _placed_json(order, p.get("newOrderRespType", "FULL"))
        if delivery is not None:
            request[DELIVERY] = delivery
            request[HOLD_S] = hold_s
        return web.json_response(body)

    async def query_order(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        with self._s.lock:
            order = self._lookup(p)
            if order is None:
                raise BinanceError(-2013, "Order does not exist.")
            return web.json_response(_order_json(order))

    async def cancel_order(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        with self._s.lock:
            order = self._lookup(p)
            if order is None:
                raise BinanceError(-2011, "Unknown order sent.")
            self._s.venue.cancel(order, now_ms())
            return web.json_response(_cancel_json(order, p.get("newClientOrderId")))

    async def open_orders(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        symbol = p.get("symbol")
        with self._s.lock:
            if symbol is not None:
                self._s.venue.market(symbol)
            orders = [o for o in self._s.venue.orders if o.is_open and symbol in (None, o.symbol)]
            return web.json_response([_order_json(o) for o in orders])

    async def cancel_open_orders(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        symbol = _required(p, "symbol")
        with self._s.lock:
            self._s.venue.market(symbol)
            orders = [o for o in self._s.venue.orders if o.is_open and o.symbol == symbol]
            if not orders:
                raise BinanceError(-2011, "Unknown order sent.")
            for order in orders:
                self._s.venue.cancel(order, now_ms())
            return web.json_response([_cancel_json(o, None) for o in orders])

    async def all_orders(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        symbol = _required(p, "symbol")
        limit = min(_int(p, "limit") or 500, 1000)
        from_id, start, end = _int(p, "orderId"), _int(p, "startTime"), _int(p, "endTime")
        with self._s.lock:
            self._s.venue.market(symbol)
            orders = [
                o
                for o in self._s.venue.orders
                if o.symbol == symbol
                and (from_id is None or o.order_id >= from_id)
                and (start is None or o.created_ms >= start)
                and (end is None or o.created_ms <= end)
            ]
            orders = (
                orders[:limit] if (from_id is not None or start is not None) else orders[-limit:]
            )
            return web.json_response([_order_json(o) for o in orders])

    async def my_trades(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        symbol = _required(p, "symbol")
        limit = min(_int(p, "limit") or 500, 1000)
        order_id, from_id = _int(p, "orderId"), _int(p, "fromId")
        start, end = _int(p, "startTime"), _int(p, "endTime")
        with self._s.lock:
            self._s.venue.market(symbol)
            fills = [
                f
                for f in self._s.venue.fills
                if f.order.symbol == symbol
                and (order_id is None or f.order.order_id == order_id)
                and (from_id is None or f.trade_id >= from_id)
                and (start is None or f.time_ms >= start)
                and (end is None or f.time_ms <= end)
            ]
            fills = fills[:limit] if (from_id is not None or start is not None) else fills[-limit:]
            return web.json_response([_trade_json(f) for f in fills])

    async def account(self, request: web.Request) -> web.Response:
        await self._signed(request)
        with self._s.lock:
            rate = self._s.venue.fee_rate
            balances = [
                {"asset": asset, "free": fmt(free), "locked": fmt(locked)}
                for asset, (free, locked) in sorted(self._s.venue.balances.items())
            ]
        bps = int(rate * 10_000)
        return web.json_response(
            {
                "makerCommission": bps,
                "takerCommission": bps,
                "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {
                    "maker": fmt(rate),
                    "taker": fmt(rate),
                    "buyer": fmt(Decimal(0)),
                    "seller": fmt(Decimal(0)),
                },
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": now_ms(),
                "accountType": "SPOT",
                "balances": balances,
                "permissions": ["SPOT"],
                "uid": 1,
            }
        )

    def _lookup(self, p: Params) -> VenueOrder | None:
        symbol = _required(p, "symbol")
        self._s.venue.market(symbol)
        order_id = _int(p, "orderId")
        client_order_id = p.get("origClientOrderId")
        if order_id is None and not client_order_id:
            raise BinanceError(
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        return self._s.venue.find(symbol, order_id, client_order_id)


def _gateway_response(fault: str, retry_after_s: int, server_status: int) -> web.Response:
    if fault == "ban":
        until = now_ms() + retry_after_s * 1000
        body = {"code": -1003, "msg": f"Way too many requests; IP(127.0.0.1) banned until {until}."}
        return web.json_response(body, status=418, headers={"Retry-After": str(retry_after_s)})
    if fault == "rate_limit":
        body = {
            "code": -1003,
            "msg": "Too much request weight used; current limit is 6000 request weight "
            "per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
        }
        return web.json_response(body, status=429, headers={"Retry-After": str(retry_after_s)})
    return web.Response(text="Service Unavailable", status=server_status, content_type="text/html")


def _split_signature(raw_query: str, body: str) -> tuple[str, str | None]:
    """Binance signs query string + body with the ``signature`` parameter taken out."""
    signature: str | None = None
    kept: list[str] = []
    for part in (raw_query, body):
        pairs = [pair for pair in part.split("&") if pair]
        signature = next(
            (pair.split("=", 1)[1] for pair in pairs if pair.startswith("signature=")), signature
        )
        kept.append("&".join(pair for pair in pairs if not pair.startswith("signature=")))
    return "".join(kept), signature


def _order_json(o: VenueOrder) -> dict[str, object]:
    """``GET /api/v3/order``'s shape (also each element of ``openOrders`` and ``allOrders``)."""
    return {
        "symbol": o.symbol,
        "orderId": o.order_id,
        "orderListId": -1,
        "clientOrderId": o.client_order_id,
        "price": fmt(o.price or Decimal(0)),
        "origQty": fmt(o.quantity),
        "executedQty": fmt(o.executed),
        "cummulativeQuoteQty": fmt(o.quote_executed),
        "status": o.status,
        "timeInForce": o.time_in_force or "GTC",
        "type": o.type,
        "side": o.side,
        "stopPrice": "0.00000000",
        "icebergQty": "0.00000000",
        "time": o.created_ms,
        "updateTime": o.updated_ms,
        "isWorking": True,
        "workingTime": o.created_ms,
        "origQuoteOrderQty": fmt(o.quote_quantity or Decimal(0)),
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def _placed_json(o: VenueOrder, response_type: str) -> dict[str, object]:
    """``POST /api/v3/order``'s ACK / RESULT / FULL shapes; fills are always empty because the
    fake matches only on the next trade print."""
    ack: dict[str, object] = {
        "symbol": o.symbol,
        "orderId": o.order_id,
        "orderListId": -1,
        "clientOrderId": o.client_order_id,
        "transactTime": o.created_ms,
    }
    if response_type == "ACK":
        return ack
    full = _order_json(o)
    for key in ("time", "updateTime", "isWorking", "stopPrice", "icebergQty"):
        full.pop(key)
    result = {**ack, **full}
    if response_type == "FULL":
        result["fills"] = []
    return result


def _cancel_json(o: VenueOrder, cancel_client_id: str | None) -> dict[str, object]:
    """``DELETE /api/v3/order``'s shape: as on Binance, ``clientOrderId`` is the *cancel*
    request's id and the order's own is ``origClientOrderId``."""
    body = _order_json(o)
    for key in (
        "time",
        "updateTime",
        "isWorking",
        "stopPrice",
        "icebergQty",
        "workingTime",
        "origQuoteOrderQty",
    ):
        body.pop(key)
    body["origClientOrderId"] = o.client_order_id
    body["clientOrderId"] = cancel_client_id or _random_client_id()
    body["transactTime"] = o.updated_ms
    return body


def _trade_json(f: VenueFill) -> dict[str, object]:
    return {
        "symbol": f.order.symbol,
        "id": f.trade_id,
        "orderId": f.order.order_id,
        "orderListId": -1,
        "price": fmt(f.price),
        "qty": fmt(f.quantity),
        "quoteQty": fmt(f.quote_quantity),
        "commission": fmt(f.commission),
        "commissionAsset": f.commission_asset,
        "time": f.time_ms,
        "isBuyer": f.order.side == "BUY",
        "isMaker": f.is_maker,
        "isBestMatch": True,
    }


def _random_client_id() -> str:
    return secrets.token_urlsafe(16)[:22].replace("-", "x").replace("_", "y")


def _mandatory(name: str) -> BinanceError:
    return BinanceError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise _mandatory(name)
    return value


def _int(params: Mapping[str, str], name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise BinanceError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
        ) from None


def _decimal(params: Mapping[str, str], name: str) -> Decimal | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite() or number < 0:
        raise BinanceError(
            -1100,
            f"Illegal characters found in parameter '{name}'; "
            "legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
        )
    return number
