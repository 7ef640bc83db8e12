"""`FakeExchange`: the Binance-spot fake served on 127.0.0.1 from a thread with its own event loop.

Tests drive it from their own thread (trade prints, faults, balance changes behind the client's
back) while the real ccxt client talks to it over HTTP; one lock guards the shared state.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

from aiohttp import web

from drl_trading.testing.fake_exchange.binance_futures import build_futures_app
from drl_trading.testing.fake_exchange.binance_rest import (
    ExchangeState,
    RequestRecord,
    build_app,
    now_ms,
)
from drl_trading.testing.fake_exchange.binance_user_ws import WS_API_PATHS, UserDataStreams
from drl_trading.testing.fake_exchange.binance_ws import WS_PATH, KlineStreams
from drl_trading.testing.fake_exchange.faults import Faults
from drl_trading.testing.fake_exchange.futures_account import FuturesVenue
from drl_trading.testing.fake_exchange.klines import BarsInput, KlineBook, to_ms
from drl_trading.testing.fake_exchange.markets import MarketSpec, dec
from drl_trading.testing.fake_exchange.matching import FakeFill, FakeOrder, Venue

START_TIMEOUT_S = 10.0


class FakeExchange:
    """A local Binance spot venue with one account, its own price path and injectable faults.

    ``balances`` are the account's free amounts per asset at start; ``fee_bps`` is the commission
    on every fill's notional (basis points), charged in the quote asset. Use as a context manager
    (or `start` / `stop`).

    ``market_type="usdm"`` makes it Binance's USD-M futures venue instead (``/fapi``, for
    ``ccxt.binanceusdm``): the markets are linear perpetuals settled in their quote asset,
    ``balances[quote]`` is the wallet balance, and the account is one-way, cross margin (see
    `FuturesVenue`); `positions`, `set_position`, `set_leverage` and `set_hedge_mode` act on it.
    """

    def __init__(
        self,
        markets: Sequence[MarketSpec],
        balances: Mapping[str, float] | None = None,
        fee_bps: float = 10.0,
        *,
        api_key: str = "fake-api-key",
        secret: str = "fake-api-secret",
        market_type: Literal["spot", "usdm"] = "spot",
    ) -> None:
        if market_type not in ("spot", "usdm"):
            raise ValueError(f"market_type must be 'spot' or 'usdm', got {market_type!r}")
        if not markets:
            raise ValueError("FakeExchange needs at least one MarketSpec")
        by_symbol = {m.symbol: m for m in markets}
        if len(by_symbol) != len(markets):
            raise ValueError(f"duplicate symbols in {[m.symbol for m in markets]}")
        self.market_type = market_type
        venue_type = FuturesVenue if market_type == "usdm" else Venue
        venue = venue_type(markets=by_symbol, fee_rate=dec(fee_bps) / 10_000)
        for spec in markets:
            venue.account(spec.base)
            venue.account(spec.quote)
        for asset, amount in (balances or {}).items():
            venue.account(asset)[0] = dec(amount)
        self._state = ExchangeState(
            venue=venue, klines=KlineBook(), faults=Faults(), api_key=api_key, secret=secret
        )
        self._streams = KlineStreams(self._state)
        self._user_streams = UserDataStreams(self._state)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self._port: int | None = None

    # lifecycle

    def __enter__(self) -> FakeExchange:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> FakeExchange:
        if self._loop is not None:
            raise RuntimeError("FakeExchange is already running")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="fake-exchange", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), loop).result(timeout=START_TIMEOUT_S)
        return self

    async def _serve(self) -> None:
        self._closing = asyncio.Event()
        build = build_futures_app if self.market_type == "usdm" else build_app
        app = build(self._state, self._closing)
        self._user_streams.register(app)  # before the klines: /stream/ws/<listenKey>
        self._streams.register(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def _shutdown(self) -> None:
        assert self._closing is not None
        assert self._runner is not None
        self._closing.set()
        await self._streams.close()
        await self._user_streams.close()
        await self._runner.cleanup()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=START_TIMEOUT_S)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=START_TIMEOUT_S)
            loop.close()
            self._loop = self._thread = None

    # client side

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError(
                "FakeExchange is not running: use it as a context manager or call start()"
            )
        return f"http://127.0.0.1:{self._port}"

    def ccxt_config(self, **overrides: Any) -> dict[str, Any]:
        """Constructor arguments for ``ccxt.binance(...)`` (``ccxt.binanceusdm(...)`` on a
        ``usdm`` fake) that talk to this fake only.

        Every API base URL of the ccxt class is pointed here (unknown paths answer 404, so
        nothing leaves the machine), and the options keep ``load_markets`` on this fake's
        exchangeInfo (``/api/v3`` spot or ``/fapi/v1`` linear markets only, no ``sapi``
        currency or margin-pair calls).
        """
        import ccxt

        futures = self.market_type == "usdm"
        api_urls = (ccxt.binanceusdm() if futures else ccxt.binance()).urls["api"]
        config: dict[str, Any] = {
            "apiKey": self._state.api_key,
            "secret": self._state.secret,
            "enableRateLimit": True,
            "urls": {
                "api": {
                    name: self.url + urlsplit(str(base)).path for name, base in api_urls.items()
                }
            },
            "options": {
                "fetchMarkets": {"types": ["linear" if futures else "spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
                "adjustForTimeDifference": False,
            },
        }
        if futures:
            # ccxt picks Binance's futures error codes (-2019 margin, -2022 reduce-only, -4164
            # notional) by the URL's host, fapi.binance.com; on 127.0.0.1 they must be general
            linear = ccxt.binanceusdm().exceptions["linear"]
            config["exceptions"] = {"exact": dict(linear["exact"])}
        config.update(overrides)
        return config

    def ccxt_pro_config(self, **overrides: Any) -> dict[str, Any]:
        """`ccxt_config` for ``ccxt.pro.binance(...)``: the websocket URLs of every market type
        point at this fake's kline stream too (spot is the one it serves), the spot WebSocket
        API (user data: ``watch_orders``, ``watch_my_trades``) at its ``/ws-api/v3``."""
        import ccxt.pro

        config = self.ccxt_config()
        ws_urls = ccxt.pro.binance().urls["api"]["ws"]
        ws_base = "ws" + self.url.removeprefix("http") + WS_PATH
        config["urls"]["api"]["ws"] = {
            name: ws_base if isinstance(url, str) else {kind: ws_base for kind in url}
            for name, url in ws_urls.items()
        }
        ws_api = dict(config["urls"]["api"]["ws"]["ws-api"])
        ws_api["spot"] = "ws" + self.url.removeprefix("http") + WS_API_PATHS[0]
        config["urls"]["api"]["ws"]["ws-api"] = ws_api
        config.update(overrides)
        return config

    # the venue, from the test's side

    @property
    def faults(self) -> Faults:
        return self._state.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        with self._state.lock:
            self._state.faults = faults

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request served so far, in order, as ``(method, path, status)``."""
        with self._state.lock:
            return list(self._state.log)

    def trade(
        self, symbol: str, price: float, liquidity: float = 1.0, at: datetime | int | None = None
    ) -> list[FakeFill]:
        """One trade print of ``liquidity`` base units at ``price`` (``at``: UTC datetime or epoch
        ms, default now): fills what it reaches, sets the last price, extends the 1m kline
        and pushes it to the kline websocket's subscribers."""
        time_ms = now_ms() if at is None else to_ms(at)
        with self._state.lock:
            made = self._state.venue.trade(symbol, dec(price), dec(liquidity), time_ms)
            self._state.klines.record_trade(symbol, float(price), float(liquidity), time_ms)
            self._streams.push_trade(symbol, time_ms)
            return [f.snapshot() for f in made]

    @property
    def websocket_connections(self) -> int:
        """Websocket connections the kline stream accepted so far (each reconnect counts)."""
        with self._state.lock:
            return self._streams.connections

    def kline_subscribers(self) -> int:
        """Open websocket connections subscribed to a kline stream now."""
        return self._streams.subscribers()

    def drop_websockets(self) -> None:
        """Abort every open websocket connection now (kline and user data streams), without a
        close frame (a network cut)."""
        self._streams.drop_all()
        self._user_streams.drop_all()

    @property
    def user_stream_subscribers(self) -> int:
        """Open websocket connections subscribed to the user data stream now."""
        return self._user_streams.subscribers()

    @property
    def user_stream_subscriptions(self) -> int:
        """User data subscriptions accepted so far (each resubscription counts)."""
        with self._state.lock:
            return self._user_streams.subscriptions

    def set_bars(self, symbol: str, bars: BarsInput) -> None:
        """Replace ``symbol``'s 1m kline history (see `KlineBook.set_bars`); the last close becomes
        the reference price for notional checks until the first trade print."""
        with self._state.lock:
            self._state.venue.market(symbol)
            self._state.klines.set_bars(symbol, bars)
            rows = self._state.klines.query(symbol, 60_000, None, None, 1)
            if rows and symbol not in self._state.venue.last_price:
                self._state.venue.last_price[symbol] = dec(str(rows[-1][4]))

    def orders(self) -> list[FakeOrder]:
        """Every order the exchange accepted (ours and foreign), in acceptance order."""
        with self._state.lock:
            return [o.snapshot() for o in self._state.venue.orders]

    def fills(self) -> list[FakeFill]:
        with self._state.lock:
            return [f.snapshot() for f in self._state.venue.fills]

    def balances(self) -> dict[str, tuple[float, float]]:
        """``{asset: (free, locked)}``."""
        with self._state.lock:
            return {
                asset: (float(free), float(locked))
                for asset, (free, locked) in self._state.venue.balances.items()
            }

    def set_balance(self, asset: str, free: float) -> None:
        """Change the account behind the client's back (a deposit, a withdrawal, a manual trade)."""
        with self._state.lock:
            self._state.venue.account(asset)[0] = dec(free)

    def fill_on_arrival(self, price_of: Callable[[FakeOrder], float | None] | None) -> None:
        """Fill each MARKET order as it is accepted, inside its POST (before the response): a
        trade print of its quantity at ``price_of(order)`` (None: the order rests; a buy the free
        quote cannot pay in full fills what it pays, the rest expires). So a client
        that polls right after sending finds it filled, whatever the threads' timing: a replay
        fills at the price of the bar its order was sent for. ``None`` turns it off; replacing
        `faults` does too (it is their ``on_accept`` hook)."""
        if price_of is None:
            with self._state.lock:
                self._state.faults.on_accept = None
            return

        def fill_last() -> None:  # under the lock, in the order POST
            order = self._state.venue.orders[-1]
            if order.type != "MARKET" or not order.is_open:
                return
            price = price_of(order.snapshot())
            if price is None:
                return
            spec = self._state.venue.market(order.symbol)
            size = order.quantity if order.quantity > 0 else dec(1e12) * spec.step
            time_ms = now_ms()
            self._state.venue.trade(order.symbol, dec(price), size, time_ms)
            self._state.klines.record_trade(order.symbol, float(price), float(size), time_ms)
            if order.is_open:  # more than the free quote pays for: the rest expires
                self._state.venue.trade(order.symbol, dec(price), size, time_ms)

        with self._state.lock:
            self._state.faults.on_accept = fill_last

    def place_foreign_order(
        self,
        symbol: str,
        side: str,
        quantity: float,
        price: float | None = None,
        *,
        client_order_id: str | None = None,
    ) -> FakeOrder:
        """An order on the account that the service did not send (a person on the website):
        LIMIT GTC if ``price`` is given, else MARKET; client id ``web_...`` unless given.
        Raises `BinanceError` where Binance would refuse it."""
        with self._state.lock:
            order = self._state.venue.place(
                symbol=symbol,
                side=side.upper(),
                type="MARKET" if price is None else "LIMIT",
                quantity=dec(quantity),
                quote_quantity=None,
                price=None if price is None else dec(price),
                time_in_force=None if price is None else "GTC",
                client_order_id=client_order_id or f"web_{secrets.token_hex(10)}",
                now_ms=now_ms(),
                foreign=True,
            )
            return order.snapshot()

    # the futures account (a ``market_type="usdm"`` fake)

    def _futures(self) -> FuturesVenue:
        venue = self._state.venue
        if not isinstance(venue, FuturesVenue):
            raise RuntimeError(
                "this FakeExchange is spot: positions, leverage and position mode need "
                'FakeExchange(..., market_type="usdm")'
            )
        return venue

    @property
    def positions(self) -> dict[str, tuple[float, float]]:
        """``{symbol: (amount, entry_price)}`` of the open positions (signed base units, a short
        negative; quote per base)."""
        with self._state.lock:
            venue = self._futures()
            return {
                s: (float(amount), float(entry))
                for s, (amount, entry) in sorted(venue.positions.items())
                if amount != 0
            }

    def set_position(self, symbol: str, amount: float, entry_price: float) -> None:
        """Change a position behind the client's back (a manual trade on the website, a
        liquidation): the wallet is left as it is."""
        with self._state.lock:
            venue = self._futures()
            venue.market(symbol)
            venue.positions[symbol] = [dec(amount), dec(entry_price) if amount else dec(0)]

    def leverage(self, symbol: str) -> int:
        """``symbol``'s leverage (1 until set by the client or `set_leverage`)."""
        with self._state.lock:
            return self._futures().leverage_of(symbol)

    def set_leverage(self, symbol: str, leverage: int) -> None:
        with self._state.lock:
            venue = self._futures()
            venue.market(symbol)
            venue.leverage[symbol] = leverage

    def set_hedge_mode(self, dual_side: bool) -> None:
        """Switch the account to hedge mode (``dualSidePosition`` true) or back to one-way; the
        fake trades one-way only (in hedge mode every order is refused with -4061)."""
        with self._state.lock:
            self._futures().dual_side = dual_side
