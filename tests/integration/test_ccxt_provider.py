"""`CcxtProvider` against a local HTTP server that plays Binance spot's public REST API.

The real ccxt binance client does the talking (URL building, market parsing, error mapping), so
these tests catch what a mocked exchange object would hide: which endpoints ccxt calls, how it
pages, and which exceptions it raises for HTTP 429 and 503. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import ccxt
import polars as pl
import pytest

from drl_trading.common.bars import BAR_SCHEMA
from drl_trading.common.domain import Symbol, Timeframe
from drl_trading.common.errors import ExchangeUnreachableError
from drl_trading.ingest.adapter.ccxt_provider import CcxtProvider

pytestmark = pytest.mark.integration

DATA_START = datetime(2024, 1, 1, tzinfo=UTC)
DATA_START_MS = int(DATA_START.timestamp() * 1000)
N_BARS = 150  # 00:00 .. 02:29
SERVER_MAX_LIMIT = 50  # below the provider's page_limit, to force several pages
MINUTE_MS = 60_000
BTC = Symbol("BTCUSDT")
INTERVALS_MS = {"1m": MINUTE_MS, "1h": 60 * MINUTE_MS}
"""The kline intervals the fake serves (ccxt names them as `Timeframe` does)."""


def t(minutes: int) -> datetime:
    return DATA_START + timedelta(minutes=minutes)


def bar(i: int) -> tuple[float, float, float, float, float]:
    """Open, high, low, close and volume of bar ``i``; bar 7's high is below its open on purpose."""
    open_ = 100.0 + i
    high = open_ - 5.0 if i == 7 else open_ + 0.5
    return open_, high, open_ - 0.5, open_ + 0.25, 10.0 + i % 7


def expected(first: int, last: int) -> pl.DataFrame:
    rows = [(t(i), *bar(i)) for i in range(first, last)]
    return pl.DataFrame(rows, schema=BAR_SCHEMA, orient="row")


def _symbol_info(symbol: str, base: str, quote: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01000000",
                "maxPrice": "1000000.00000000",
                "tickSize": "0.01000000",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00001000",
                "maxQty": "9000.00000000",
                "stepSize": "0.00001000",
            },
            {"filterType": "NOTIONAL", "minNotional": "5.00000000", "maxNotional": "9000000.0"},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
    }


EXCHANGE_INFO = {
    "timezone": "UTC",
    "serverTime": DATA_START_MS,
    "rateLimits": [],
    "exchangeFilters": [],
    "symbols": [
        _symbol_info("BTCUSDT", "BTC", "USDT"),
        _symbol_info("ETHUSDT", "ETH", "USDT"),
    ],
}


class FakeBinance:
    """State shared by the handler threads: what was asked, and the failures still to serve."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[str] = []
        self.unexpected: list[str] = []
        self.klines_failures: list[int] = []  # HTTP statuses for the next klines requests
        self.url = ""

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if urlsplit(r).path == path)

    def klines(self, query: dict[str, str]) -> tuple[int, Any]:
        """`N_BARS` bars of 1m or of 1h from `DATA_START` (bar ``i`` has values ``bar(i)``)."""
        step_ms = INTERVALS_MS.get(query.get("interval", ""))
        if step_ms is None:
            return 400, {"code": -1120, "msg": "Invalid interval."}
        if query.get("symbol") not in ("BTCUSDT", "ETHUSDT"):
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        if query["symbol"] != "BTCUSDT":
            return 200, []
        limit = min(int(query.get("limit", 500)), SERVER_MAX_LIMIT)
        first = 0
        if "startTime" in query:
            first = max(0, -(-(int(query["startTime"]) - DATA_START_MS) // step_ms))
        last = N_BARS - 1
        if "endTime" in query:
            last = min(last, (int(query["endTime"]) - DATA_START_MS) // step_ms)
        rows = []
        for i in range(first, min(last + 1, first + limit)):
            open_ms = DATA_START_MS + i * step_ms
            o, h, low, c, v = bar(i)
            close_ms = open_ms + step_ms - 1
            prices = [str(o), str(h), str(low), str(c), str(v)]
            rows.append([open_ms, *prices, close_ms, str(v * c), 42, "0", "0", "0"])
        return 200, rows


def _handler(state: FakeBinance) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            with state.lock:
                state.requests.append(self.path)
                failure = (
                    state.klines_failures.pop(0)
                    if parts.path == "/api/v3/klines" and state.klines_failures
                    else None
                )
            if failure == 429:
                self._reply(
                    429, {"code": -1003, "msg": "Too many requests; IP banned until later."}
                )
            elif failure is not None:
                self._reply(failure, "<html><body>Service Unavailable</body></html>")
            elif parts.path == "/api/v3/exchangeInfo":
                self._reply(200, EXCHANGE_INFO)
            elif parts.path == "/api/v3/klines":
                self._reply(*state.klines(query))
            else:
                with state.lock:
                    state.unexpected.append(self.path)
                print(f"fake binance: unexpected request {self.path}")
                self._reply(404, {"code": -1, "msg": f"no route {parts.path}"})

        def _reply(self, status: int, payload: Any) -> None:
            text = payload if isinstance(payload, str) else json.dumps(payload)
            body = text.encode()
            self.send_response(status)
            kind = "text/html" if isinstance(payload, str) else "application/json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def server() -> Iterator[FakeBinance]:
    state = FakeBinance()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
    assert state.unexpected == [], (
        f"ccxt asked for paths the fake does not serve: {state.unexpected}"
    )


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_provider(server: FakeBinance, **kwargs: Any) -> CcxtProvider:
    kwargs.setdefault("sleep", Sleeps())
    return CcxtProvider(base_url=server.url, rate_limit_ms=1, timeout_ms=5_000, **kwargs)


def collect(provider: CcxtProvider, symbol: Symbol, start: datetime, end: datetime) -> pl.DataFrame:
    frames = list(provider.fetch(symbol, Timeframe.M1, start, end))
    for frame in frames:
        assert frame.schema == pl.Schema(BAR_SCHEMA)
    return pl.concat(frames) if frames else pl.DataFrame(schema=BAR_SCHEMA)


def test_fetches_a_range_over_several_pages(server: FakeBinance) -> None:
    provider = make_provider(server)
    frames = list(provider.fetch(BTC, Timeframe.M1, t(0), t(120)))
    got = pl.concat(frames)

    assert len(frames) >= 3
    assert got.schema["open_time"] == pl.Datetime("us", "UTC")
    assert got.height == 120
    assert got["open_time"].diff().drop_nulls().unique().to_list() == [timedelta(minutes=1)]
    # Values exactly as served, bar 7's impossible high included: the provider repairs nothing.
    assert got.equals(expected(0, 120))
    assert server.count("/api/v3/klines") >= 3
    assert server.count("/api/v3/exchangeInfo") == 1


def test_range_past_the_available_data_stops_with_what_exists(server: FakeBinance) -> None:
    provider = make_provider(server)
    got = collect(provider, BTC, t(60), t(240))

    assert got.equals(expected(60, N_BARS))
    # 60..109, 110..149, then one empty page ends the loop.
    assert server.count("/api/v3/klines") == 3


def test_range_entirely_after_the_data_yields_nothing(server: FakeBinance) -> None:
    provider = make_provider(server)
    assert list(provider.fetch(BTC, Timeframe.M1, t(N_BARS + 10), t(N_BARS + 100))) == []
    assert server.count("/api/v3/klines") == 1


def test_unaligned_bounds_keep_the_half_open_range(server: FakeBinance) -> None:
    provider = make_provider(server)
    got = collect(provider, BTC, t(10) + timedelta(seconds=30), t(20) + timedelta(milliseconds=1))
    assert got.equals(expected(11, 21))


def test_unknown_symbol_is_a_lookup_error(server: FakeBinance) -> None:
    provider = make_provider(server)
    with pytest.raises(LookupError, match="DOGEUSDT") as info:
        list(provider.fetch(Symbol("DOGEUSDT"), Timeframe.M1, t(0), t(10)))
    assert "BTC/USDT" in str(info.value)
    assert server.count("/api/v3/klines") == 0


@pytest.mark.parametrize("status", [429, 503])
def test_transient_http_errors_are_retried(server: FakeBinance, status: int) -> None:
    sleeps = Sleeps()
    provider = make_provider(server, sleep=sleeps)
    server.klines_failures = [status]

    got = collect(provider, BTC, t(0), t(120))

    assert got.equals(expected(0, 120))
    assert sleeps == [0.5]
    assert server.count("/api/v3/klines") == 4


def test_retries_back_off_exponentially_then_give_up(server: FakeBinance) -> None:
    sleeps = Sleeps()
    provider = make_provider(server, sleep=sleeps, max_retries=2)
    server.klines_failures = [503, 503, 503]

    with pytest.raises(ExchangeUnreachableError, match="cannot reach exchange binance") as info:
        list(provider.fetch(BTC, Timeframe.M1, t(0), t(10)))
    assert isinstance(info.value.__cause__, ccxt.ExchangeNotAvailable)
    assert sleeps == [0.5, 1.0]
    assert server.count("/api/v3/klines") == 3


def test_symbol_spellings_resolve_to_one_market(server: FakeBinance) -> None:
    provider = make_provider(server)
    for spelling in ("BTC/USDT", "btcusdt", "btc/usdt", "BTCUSDT"):
        assert provider.resolve(spelling) == "BTC/USDT"

    slash = collect(provider, Symbol("BTC/USDT"), t(0), t(30))
    plain = collect(provider, Symbol("btcusdt"), t(0), t(30))
    assert slash.equals(plain)
    assert slash.equals(expected(0, 30))


def test_unknown_exchange_id_names_it() -> None:
    provider = CcxtProvider(exchange_id="no-such-exchange")
    with pytest.raises(ValueError, match=r"no-such-exchange.*ccxt\.exchanges"):
        list(provider.fetch(BTC, Timeframe.M1, t(0), t(10)))


def test_base_url_replaces_every_api_host() -> None:
    provider = CcxtProvider(base_url="http://127.0.0.1:9/")
    exchange = provider._create_exchange()
    urls: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, str):
            urls.append(node)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)

    walk(exchange.urls["api"])
    assert urls
    assert all(u.startswith("http://127.0.0.1:9/") for u in urls)
    assert exchange.urls["api"]["public"] == "http://127.0.0.1:9/api/v3"
    assert exchange.options["fetchMarkets"]["types"] == ["spot"]
    assert exchange.has["fetchCurrencies"] is False


def test_bars_of_the_timeframe_asked_are_paged_by_its_step(server: FakeBinance) -> None:
    provider = make_provider(server)
    hour = timedelta(hours=1)
    frames = list(provider.fetch(BTC, Timeframe.H1, DATA_START, DATA_START + N_BARS * hour))
    got = pl.concat(frames)
    assert len(frames) == 3  # pages of SERVER_MAX_LIMIT hours, each following the last by 1h
    assert got["open_time"].to_list() == [DATA_START + i * hour for i in range(N_BARS)]
    assert got["close"].to_list() == [bar(i)[3] for i in range(N_BARS)]
    assert all("interval=1h" in r for r in server.requests if "klines" in r)


def test_a_timeframe_the_exchange_lacks_is_refused_before_any_request(
    server: FakeBinance,
) -> None:
    provider = make_provider(server)
    exchange = provider._ready_exchange()
    exchange.timeframes = {"1m": "1m", "1h": "1h"}
    with pytest.raises(NotImplementedError, match="has no 4h candles"):
        list(provider.fetch(BTC, Timeframe.H4, DATA_START, DATA_START + timedelta(days=1)))
    assert server.count("/api/v3/klines") == 0
