"""The subset of Binance's USD-M futures REST API (``/fapi``) that ccxt's ``binanceusdm`` calls,
as an aiohttp application over the fake's shared state (a `FuturesVenue` account).

It reuses the spot application's middleware (latency, 429/418, 5xx, held and dropped order
responses), its request signing checks and its market-data endpoints; what differs is the
shapes: futures exchangeInfo filters (``MARKET_LOT_SIZE``, ``MIN_NOTIONAL`` with ``notional``),
orders with ``avgPrice`` / ``cumQuote`` / ``reduceOnly`` / ``positionSide``, ``userTrades`` with
``realizedPnl``, the v3 account and positionRisk, leverage brackets, leverage and position mode.
Endpoints ccxt 4.5.90 calls per unified method: load_markets -> ``GET /fapi/v1/exchangeInfo``;
fetch_time -> ``/fapi/v1/time``; fetch_ohlcv -> ``/fapi/v1/klines``; fetch_ticker(s) ->
``/fapi/v1/ticker/24hr``; create/fetch/cancel_order -> ``/fapi/v1/order``; fetch_open_orders ->
``/fapi/v1/openOrders``; fetch_orders -> ``/fapi/v1/allOrders``; fetch_my_trades ->
``/fapi/v1/userTrades``; fetch_balance -> ``/fapi/v3/account``; fetch_positions ->
``/fapi/v1/leverageBracket`` (once) + ``/fapi/v3/positionRisk``; set_leverage -> ``POST
/fapi/v1/leverage``; fetch_position_mode -> ``/fapi/v1/positionSide/dual``.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from aiohttp import web

from drl_trading.testing.fake_exchange.binance_rest import (
    DELIVERY,
    HOLD_S,
    ExchangeState,
    _BinanceSpot,
    _decimal,
    _int,
    _random_client_id,
    _required,
    now_ms,
)
from drl_trading.testing.fake_exchange.futures_account import (
    MAX_LEVERAGE,
    FuturesVenue,
    margin_insufficient,
)
from drl_trading.testing.fake_exchange.markets import MarketSpec, dec, fmt
from drl_trading.testing.fake_exchange.matching import (
    ZERO,
    BinanceError,
    VenueFill,
    VenueOrder,
    filter_failure,
)

MAINTENANCE_MARGIN_RATE = "0.004"
"""Binance's first-bracket maintenance margin ratio for BTCUSDT (fraction of notional)."""


def build_futures_app(state: ExchangeState, closing: asyncio.Event) -> web.Application:
    """The ``/fapi`` application; ``state.venue`` must be a `FuturesVenue`."""
    if not isinstance(state.venue, FuturesVenue):
        raise TypeError("build_futures_app needs an ExchangeState over a FuturesVenue")
    api = _BinanceFutures(state, closing)
    app = web.Application(middlewares=[api.middleware])
    r = app.router
    r.add_get("/fapi/v1/ping", api.ping)
    r.add_get("/fapi/v1/time", api.server_time)
    r.add_get("/fapi/v1/exchangeInfo", api.exchange_info)
    r.add_get("/fapi/v1/klines", api.klines)
    r.add_get("/fapi/v1/ticker/24hr", api.ticker_24hr)
    r.add_get("/fapi/v1/ticker/price", api.ticker_price)
    r.add_get("/fapi/v2/ticker/price", api.ticker_price)
    r.add_get("/fapi/v1/ticker/bookTicker", api.book_ticker)
    r.add_post("/fapi/v1/order", api.new_order)
    r.add_get("/fapi/v1/order", api.query_order)
    r.add_delete("/fapi/v1/order", api.cancel_order)
    r.add_get("/fapi/v1/openOrders", api.open_orders)
    r.add_get("/fapi/v1/allOrders", api.all_orders)
    r.add_get("/fapi/v1/userTrades", api.user_trades)
    r.add_get("/fapi/v3/account", api.account)
    r.add_get("/fapi/v2/account", api.account)
    r.add_get("/fapi/v3/positionRisk", api.position_risk)
    r.add_get("/fapi/v2/positionRisk", api.position_risk)
    r.add_get("/fapi/v1/leverageBracket", api.leverage_bracket)
    r.add_post("/fapi/v1/leverage", api.set_leverage)
    r.add_get("/fapi/v1/positionSide/dual", api.position_mode)
    return app


def futures_info_entry(spec: MarketSpec) -> dict[str, object]:
    """``spec`` as one element of ``GET /fapi/v1/exchangeInfo``'s ``symbols``: a PERPETUAL
    contract margined in its quote asset; ``orderTypes`` lists only LIMIT and MARKET (what the
    fake executes)."""
    return {
        "symbol": spec.symbol,
        "pair": spec.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": spec.base,
        "quoteAsset": spec.quote,
        "marginAsset": spec.quote,
        "pricePrecision": _places(spec.tick),
        "quantityPrecision": _places(spec.step),
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": fmt(spec.tick),
                "maxPrice": fmt(dec(spec.max_price)),
                "tickSize": fmt(spec.tick),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": fmt(dec(spec.min_qty)),
                "maxQty": fmt(dec(spec.max_qty)),
                "stepSize": fmt(spec.step),
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": fmt(dec(spec.min_qty)),
                "maxQty": fmt(dec(spec.max_qty)),
                "stepSize": fmt(spec.step),
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": fmt(dec(spec.min_notional))},
        ],
        "orderTypes": ["LIMIT", "MARKET"],
        "timeInForce": ["GTC"],
    }


class _BinanceFutures(_BinanceSpot):
    """The futures endpoints; middleware, signing and market data come from the spot class."""

    @property
    def _venue(self) -> FuturesVenue:
        venue = self._s.venue
        assert isinstance(venue, FuturesVenue)
        return venue

    async def exchange_info(self, request: web.Request) -> web.Response:
        with self._s.lock:
            specs = list(self._s.venue.markets.values())
        assets = sorted({s.quote for s in specs})
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": now_ms(),
                "futuresType": "U_MARGINED",
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": 2400,
                    },
                    {
                        "rateLimitType": "ORDERS",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": 1200,
                    },
                ],
                "exchangeFilters": [],
                "assets": [
                    {"asset": a, "marginAvailable": True, "autoAssetExchange": "0"} for a in assets
                ],
                "symbols": [futures_info_entry(s) for s in specs],
            }
        )

    async def new_order(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        symbol = _required(p, "symbol")
        client_order_id = p.get("newClientOrderId") or _random_client_id()
        position_side = p.get("positionSide", "BOTH")
        with self._s.lock:
            venue = self._venue
            rejection = self._s.faults.take_rejection()
            venue.market(symbol)
            if rejection == "insufficient_balance":
                raise margin_insufficient()
            if rejection == "min_notional":
                raise venue._notional_refusal(venue.market(symbol))
            if rejection == "lot_size":
                raise filter_failure("LOT_SIZE")
            if position_side != "BOTH" and not venue.dual_side:
                raise BinanceError(-4061, "Order's position side does not match user's setting.")
            quantity = _decimal(p, "quantity")
            if quantity is None:
                raise BinanceError(
                    -1102,
                    "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.",
                )
            order = venue.place(
                symbol=symbol,
                side=_required(p, "side"),
                type=_required(p, "type"),
                quantity=quantity,
                quote_quantity=None,
                price=_decimal(p, "price"),
                time_in_force=p.get("timeInForce"),
                client_order_id=client_order_id,
                now_ms=now_ms(),
                reduce_only=p.get("reduceOnly", "false").lower() == "true",
            )
            delivery = self._s.faults.take_delivery_fault()
            hold_s = self._s.faults.hold_s
            body = _order_json(order)
            body.pop("time")
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
            body = _order_json(order)
            body.pop("time")
            return web.json_response(body)

    async def open_orders(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        symbol = p.get("symbol")
        with self._s.lock:
            if symbol is not None:
                self._s.venue.market(symbol)
            orders = [o for o in self._s.venue.orders if o.is_open and symbol in (None, o.symbol)]
            return web.json_response([_order_json(o) for o in orders])

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
            forward = from_id is not None or start is not None
            orders = orders[:limit] if forward else orders[-limit:]
            return web.json_response([_order_json(o) for o in orders])

    async def user_trades(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        symbol = _required(p, "symbol")
        limit = min(_int(p, "limit") or 500, 1000)
        order_id, from_id = _int(p, "orderId"), _int(p, "fromId")
        start, end = _int(p, "startTime"), _int(p, "endTime")
        with self._s.lock:
            venue = self._venue
            venue.market(symbol)
            fills = [
                f
                for f in venue.fills
                if f.order.symbol == symbol
                and (order_id is None or f.order.order_id == order_id)
                and (from_id is None or f.trade_id >= from_id)
                and (start is None or f.time_ms >= start)
                and (end is None or f.time_ms <= end)
            ]
            fills = fills[:limit] if (from_id is not None or start is not None) else fills[-limit:]
            return web.json_response(
                [_trade_json(f, venue.realised.get(f.trade_id, ZERO)) for f in fills]
            )

    async def account(self, request: web.Request) -> web.Response:
        await self._signed(request)
        with self._s.lock:
            venue = self._venue
            now = now_ms()
            settle = sorted({s.quote for s in venue.markets.values()})
            assets = [_asset_json(venue, asset, now) for asset in settle]
            positions = [
                _position_json(venue, s, now, risk=False)
                for s in sorted(venue.markets)
                if venue.position(s)[0] != 0
            ]
        totals = {
            "totalInitialMargin": "initialMargin",
            "totalMaintMargin": "maintMargin",
            "totalWalletBalance": "walletBalance",
            "totalUnrealizedProfit": "unrealizedProfit",
            "totalMarginBalance": "marginBalance",
            "totalPositionInitialMargin": "positionInitialMargin",
            "totalOpenOrderInitialMargin": "openOrderInitialMargin",
            "totalCrossWalletBalance": "crossWalletBalance",
            "totalCrossUnPnl": "crossUnPnl",
            "availableBalance": "availableBalance",
            "maxWithdrawAmount": "maxWithdrawAmount",
        }
        body: dict[str, object] = {
            total: fmt(sum((Decimal(str(a[key])) for a in assets), ZERO))
            for total, key in totals.items()
        }
        body["assets"] = assets
        body["positions"] = positions
        return web.json_response(body)

    async def position_risk(self, request: web.Request) -> web.Response:
        """Binance's v3 answer: the symbols with a position (or ``symbol``'s, if given)."""
        p = await self._signed(request)
        wanted = p.get("symbol")
        with self._s.lock:
            venue = self._venue
            if wanted is not None:
                venue.market(wanted)
            now = now_ms()
            rows = [
                _position_json(venue, s, now, risk=True)
                for s in sorted(venue.markets)
                if (wanted is None and venue.position(s)[0] != 0) or s == wanted
            ]
        return web.json_response(rows)

    async def leverage_bracket(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        wanted = p.get("symbol")
        with self._s.lock:
            symbols = [s for s in sorted(self._s.venue.markets) if wanted in (None, s)]
        return web.json_response(
            [
                {
                    "symbol": s,
                    "notionalCoef": 1.0,
                    "brackets": [
                        {
                            "bracket": 1,
                            "initialLeverage": MAX_LEVERAGE,
                            "notionalCap": 50_000_000,
                            "notionalFloor": 0,
                            "maintMarginRatio": float(MAINTENANCE_MARGIN_RATE),
                            "cum": 0.0,
                        }
                    ],
                }
                for s in symbols
            ]
        )

    async def set_leverage(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        symbol = _required(p, "symbol")
        leverage = _int(p, "leverage")
        if leverage is None:
            raise BinanceError(
                -1102,
                "Mandatory parameter 'leverage' was not sent, was empty/null, or malformed.",
            )
        if not 1 <= leverage <= MAX_LEVERAGE:
            raise BinanceError(-4028, f"Leverage {leverage} is not valid")
        with self._s.lock:
            self._venue.market(symbol)
            self._venue.leverage[symbol] = leverage
        return web.json_response(
            {"leverage": leverage, "maxNotionalValue": "50000000", "symbol": symbol}
        )

    async def position_mode(self, request: web.Request) -> web.Response:
        await self._signed(request)
        with self._s.lock:
            return web.json_response({"dualSidePosition": self._venue.dual_side})


def _places(step: Decimal) -> int:
    """Decimal places of an increment (``0.001`` -> 3)."""
    exponent = step.normalize().as_tuple().exponent
    return max(-exponent, 0) if isinstance(exponent, int) else 0


def _order_json(o: VenueOrder) -> dict[str, object]:
    """``GET /fapi/v1/order``'s shape (the POST and DELETE answers drop ``time``)."""
    return {
        "orderId": o.order_id,
        "symbol": o.symbol,
        "status": o.status,
        "clientOrderId": o.client_order_id,
        "price": fmt(o.price or ZERO),
        "avgPrice": fmt(o.quote_executed / o.executed if o.executed else ZERO),
        "origQty": fmt(o.quantity),
        "executedQty": fmt(o.executed),
        "cumQty": fmt(o.executed),
        "cumQuote": fmt(o.quote_executed),
        "timeInForce": o.time_in_force or "GTC",
        "type": o.type,
        "reduceOnly": o.reduce_only,
        "closePosition": False,
        "side": o.side,
        "positionSide": "BOTH",
        "stopPrice": "0",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": o.type,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0,
        "time": o.created_ms,
        "updateTime": o.updated_ms,
    }


def _trade_json(f: VenueFill, realised: Decimal) -> dict[str, object]:
    return {
        "buyer": f.order.side == "BUY",
        "commission": fmt(f.commission),
        "commissionAsset": f.commission_asset,
        "id": f.trade_id,
        "maker": f.is_maker,
        "orderId": f.order.order_id,
        "price": fmt(f.price),
        "qty": fmt(f.quantity),
        "quoteQty": fmt(f.quote_quantity),
        "realizedPnl": fmt(realised),
        "side": f.order.side,
        "positionSide": "BOTH",
        "symbol": f.order.symbol,
        "time": f.time_ms,
    }


def _asset_json(venue: FuturesVenue, asset: str, now: int) -> dict[str, object]:
    symbols = [s for s, spec in venue.markets.items() if spec.quote == asset]
    wallet = venue.wallet(asset)
    upnl = sum((venue.unrealised(s) for s in symbols), ZERO)
    position_im = sum((venue.position_margin(s) for s in symbols), ZERO)
    order_im = sum((venue.order_margin(o) for o in venue.orders if o.symbol in symbols), ZERO)
    maint = sum(
        (abs(venue.position(s)[0]) * venue.mark(s) * Decimal(MAINTENANCE_MARGIN_RATE))
        for s in symbols
    )
    available = venue.available(asset)
    return {
        "asset": asset,
        "walletBalance": fmt(wallet),
        "unrealizedProfit": fmt(upnl),
        "marginBalance": fmt(wallet + upnl),
        "maintMargin": fmt(Decimal(maint)),
        "initialMargin": fmt(position_im + order_im),
        "positionInitialMargin": fmt(position_im),
        "openOrderInitialMargin": fmt(order_im),
        "crossWalletBalance": fmt(wallet),
        "crossUnPnl": fmt(upnl),
        "availableBalance": fmt(available),
        "maxWithdrawAmount": fmt(max(available, ZERO)),
        "updateTime": now,
    }


def _position_json(venue: FuturesVenue, symbol: str, now: int, *, risk: bool) -> dict[str, object]:
    """One position as ``/fapi/v3/positionRisk`` (``risk``) or ``/fapi/v3/account`` lists it."""
    amount, entry = venue.position(symbol)
    mark = venue.mark(symbol)
    notional = amount * mark
    im = venue.position_margin(symbol)
    order_im = sum((venue.order_margin(o) for o in venue.orders if o.symbol == symbol), ZERO)
    row: dict[str, object] = {
        "symbol": symbol,
        "positionSide": "BOTH",
        "positionAmt": fmt(amount),
        "unrealizedProfit": fmt(venue.unrealised(symbol)),
        "isolatedMargin": "0",
        "notional": fmt(notional),
        "isolatedWallet": "0",
        "initialMargin": fmt(im + order_im),
        "maintMargin": fmt(abs(notional) * Decimal(MAINTENANCE_MARGIN_RATE)),
        "updateTime": now,
    }
    if risk:
        row.pop("unrealizedProfit")
        row.update(
            {
                "entryPrice": fmt(entry),
                "breakEvenPrice": fmt(entry),
                "markPrice": fmt(mark),
                "unRealizedProfit": fmt(venue.unrealised(symbol)),
                "liquidationPrice": "0",
                "marginAsset": venue.market(symbol).quote,
                "positionInitialMargin": fmt(im),
                "openOrderInitialMargin": fmt(order_im),
                "adl": 0,
                "bidNotional": "0",
                "askNotional": "0",
            }
        )
    return row
