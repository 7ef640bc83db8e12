"""Historical bars from a crypto exchange's public REST API, through ccxt.

ccxt speaks to about a hundred exchanges with one interface, so this provider only does what
ingest needs on top of it: it turns the user's symbol (``BTCUSDT``, ``BTC/USDT``, any case) into
the exchange's market, pages through ``fetch_ohlcv`` from ``start`` to ``end`` in the timeframe
asked (ccxt names timeframes as `Timeframe` does: ``1m``, ``1h``, ``1d``), retries the
transient failures every long download meets (timeouts, 429s, 5xx) and yields each page in the
schema of `common.bars`. Like every provider it never sorts, deduplicates, drops or repairs bars:
judging them is ingest's job (`ingest.core.validation`), so a missing value reaches it as NaN.

``base_url`` replaces the host of every API URL of the exchange, so that the provider can be
pointed at a mirror, a recording proxy or the local fake server of the integration tests without
patching ccxt. The exchange client is built on the first ``fetch``: constructing the provider
(for instance while parsing a command line) needs neither ccxt's markets nor the network.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

import ccxt
import polars as pl
import structlog

from drl_trading.common.bars import VALUE_COLUMNS, conform
from drl_trading.common.domain import Symbol, Timeframe, from_micros, to_micros
from drl_trading.common.errors import ExchangeRequestError, ExchangeUnreachableError

log = structlog.get_logger(__name__)

FIRST_BACKOFF_S = 0.5
# RateLimitExceeded and ExchangeNotAvailable are NetworkErrors in ccxt 4; they are named anyway so
# that a ccxt release that moves them does not silently stop their retries. DDoSProtection (what
# ccxt's binance raises for HTTP 429 and 418) and RequestTimeout are NetworkErrors too.
_RETRYABLE: tuple[type[BaseException], ...] = (
    ccxt.NetworkError,
    ccxt.RateLimitExceeded,
    ccxt.ExchangeNotAvailable,
)


class CcxtProvider:
    """``fetch`` yields one frame per page of ``page_limit`` bars (or what the exchange caps to).

    ``exchange`` injects a ready ccxt exchange object, used as it is (``base_url`` and the rate
    limit then do not apply); ``sleep`` is what waits between retries, for tests to replace.
    """

    name = "ccxt"

    def __init__(
        self,
        *,
        exchange_id: str = "binance",
        base_url: str | None = None,
        page_limit: int = 1000,
        rate_limit_ms: int | None = None,
        timeout_ms: int = 10_000,
        max_retries: int = 3,
        exchange: Any | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if page_limit < 1:
            raise ValueError(f"page_limit must be >= 1, got {page_limit}")
        if rate_limit_ms is not None and rate_limit_ms < 0:
            raise ValueError(f"rate_limit_ms must be >= 0, got {rate_limit_ms}")
        if timeout_ms < 1:
            raise ValueError(f"timeout_ms must be >= 1, got {timeout_ms}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.exchange_id = exchange_id.strip().lower()
        self.base_url = base_url
        self._base = _parse_base_url(base_url) if base_url else None
        self.page_limit = page_limit
        self.rate_limit_ms = rate_limit_ms
        self.timeout_ms = timeout_ms
        self.max_retries = max_retries
        self._sleep = sleep
        self._exchange: Any | None = exchange
        self._markets_loaded = False
        self._resolved: dict[str, str] = {}

    def fetch(
        self, symbol: Symbol, timeframe: Timeframe, start: datetime, end: datetime
    ) -> Iterator[pl.DataFrame]:
        start_us, end_us = to_micros(start), to_micros(end)
        if end_us <= start_us:
            return
        exchange = self._ready_exchange()
        timeframes = getattr(exchange, "timeframes", None)
        if timeframes and timeframe.value not in timeframes:
            raise NotImplementedError(
                f"{self._label(exchange)} has no {timeframe} candles; "
                f"its timeframes are {sorted(timeframes)}"
            )
        market = self.resolve(symbol)
        step_ms = timeframe.micros // 1000
        # Whole milliseconds inside [start, end): for an integer t, t >= ceil(x) iff t >= x.
        start_ms, end_ms = -(-start_us // 1000), -(-end_us // 1000)
        since, pages, rows = start_ms, 0, 0
        while since < end_ms:
            page: Sequence[Sequence[Any]] = self._call(
                "fetch_ohlcv", exchange.fetch_ohlcv, market, timeframe.value, since, self.page_limit
            )
            pages += 1
            if not page:
                log.debug("ccxt.page_empty", symbol=market, since=_iso(since), pages=pages)
                break
            times = [_open_time_ms(row, market) for row in page]
            kept = [(t, row) for t, row in zip(times, page, strict=True) if start_ms <= t < end_ms]
            last = max(times)
            log.debug(
                "ccxt.page",
                symbol=market,
                since=_iso(since),
                last=_iso(last),
                received=len(page),
                kept=len(kept),
            )
            if kept:
                rows += len(kept)
                yield _to_frame(kept, market)
            following = last + step_ms
            if following <= since:
                log.debug("ccxt.no_progress", symbol=market, since=_iso(since), last=_iso(last))
                break
            since = following
        log.debug("ccxt.fetch_done", symbol=market, pages=pages, rows=rows)

    def resolve(self, symbol: str) -> str:
        """The ccxt unified symbol for ``symbol``, matched on market symbol or id, any case.

        A '/' is optional (``btcusdt`` finds ``BTC/USDT``). Loads the markets on first use; raises
        `LookupError` for an unknown symbol.
        """
        key = str(symbol).strip()
        if key in self._resolved:
            return self._resolved[key]
        exchange = self._ready_exchange()
        markets: dict[str, Any] = exchange.markets or {}
        wanted = _squash(key)
        matches = [
            m
            for m in markets.values()
            if wanted in (_squash(str(m.get("symbol", ""))), _squash(str(m.get("id", ""))))
        ]
        if not matches:
            available = sorted(markets)
            shown = ", ".join(available[:8]) + (", ..." if len(available) > 8 else "")
            raise LookupError(
                f"symbol {key!r} is not a market of {self._label(exchange)} "
                f"({len(available)} markets loaded: {shown or 'none'})"
            )
        # An exact unified symbol wins, then a spot market (a perpetual shares the spot id).
        matches.sort(
            key=lambda m: (str(m.get("symbol", "")).upper() != key.upper(), not m.get("spot"))
        )
        unified = str(matches[0]["symbol"])
        self._resolved[key] = unified
        log.debug("ccxt.resolved", symbol=key, market=unified)
        return unified

    def _ready_exchange(self) -> Any:
        """The exchange object, created and with its markets loaded."""
        if self._exchange is None:
            self._exchange = self._create_exchange()
        exchange = self._exchange
        if not self._markets_loaded:
            has = getattr(exchange, "has", None) or {}
            if not has.get("fetchOHLCV"):
                raise NotImplementedError(
                    f"{self._label(exchange)} offers no OHLCV history through ccxt "
                    "(has['fetchOHLCV'] is false); choose another exchange"
                )
            self._call("load_markets", exchange.load_markets)
            self._markets_loaded = True
            log.debug("ccxt.markets_loaded", exchange=self._label(exchange))
        return exchange

    def _create_exchange(self) -> Any:
        if self.exchange_id not in ccxt.exchanges:
            raise ValueError(
                f"unknown ccxt exchange id {self.exchange_id!r}; ccxt.exchanges lists the valid "
                "ids (e.g. binance, kraken, coinbase)"
            )
        options: dict[str, Any] = {"defaultType": "spot"}
        if self.exchange_id == "binance":
            # Spot markets only: the default also loads the USDⓈ-M and COIN-M futures hosts.
            options["fetchMarkets"] = {"types": ["spot"]}
            options["fetchMargins"] = False
        config: dict[str, Any] = {
            "enableRateLimit": True,
            "timeout": self.timeout_ms,
            "options": options,
        }
        if self.rate_limit_ms is not None:
            config["rateLimit"] = self.rate_limit_ms
        exchange = getattr(ccxt, self.exchange_id)(config)
        # Currencies are not needed for candles, and some exchanges want API keys to list them.
        exchange.has["fetchCurrencies"] = False
        if self._base is not None:
            exchange.urls["api"] = _rebase(exchange.urls["api"], self._base)
        log.debug(
            "ccxt.exchange_created",
            exchange=self.exchange_id,
            base_url=self.base_url,
            rate_limit_ms=exchange.rateLimit,
        )
        return exchange

    def _call(self, what: str, method: Callable[..., Any], *args: Any) -> Any:
        """``method(*args)``, retried with exponential backoff on transient ccxt errors; past
        the retries `ExchangeUnreachableError`, and `ExchangeRequestError` for a request the
        exchange refused (both name the exchange; the ccxt error is their cause)."""
        attempt = 0
        while True:
            try:
                return method(*args)
            except _RETRYABLE as exc:
                if attempt >= self.max_retries:
                    raise ExchangeUnreachableError(
                        self.exchange_id, self._url_of(exc), _root_reason(exc)
                    ) from exc
                delay = FIRST_BACKOFF_S * 2**attempt
                attempt += 1
                log.warning(
                    "ccxt.retry",
                    call=what,
                    attempt=attempt,
                    max_retries=self.max_retries,
                    delay_s=delay,
                    error=f"{type(exc).__name__}: {exc}",
                )
                self._sleep(delay)
            except ccxt.ExchangeError as exc:
                raise ExchangeRequestError(self.exchange_id, _first_line(str(exc))) from exc

    def _url_of(self, exc: BaseException) -> str:
        """The URL ccxt names in its error (``binance GET https://... ``), else the base."""
        found = _URL_RE.search(str(exc))
        if found:
            return found.group(0)
        return self.base_url or f"the {self.exchange_id} API"

    def _label(self, exchange: Any) -> str:
        return str(getattr(exchange, "id", None) or self.exchange_id)


_URL_RE = re.compile(r"https?://[^\s'\"]+")
_CONNECTION_PREFIX_RE = re.compile(r"^\w*Connection(Pool)?\([^)]*\):\s*")


def _first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _root_reason(exc: BaseException) -> str:
    """The innermost cause of a chained network error (DNS failure, refused connection,
    timeout), without the connection object's repr: what the user can act on."""
    seen: set[int] = set()
    inner: BaseException = exc
    while id(inner) not in seen:
        seen.add(id(inner))
        nxt = inner.__cause__ or inner.__context__ or getattr(inner, "reason", None)
        if not isinstance(nxt, BaseException):
            break
        inner = nxt
    text = _first_line(str(inner)) or type(inner).__name__
    return _CONNECTION_PREFIX_RE.sub("", text)


def _parse_base_url(base_url: str) -> SplitResult:
    parts = urlsplit(base_url.strip())
    if not parts.scheme or not parts.netloc:
        raise ValueError(
            f"base_url {base_url!r} needs a scheme and a host, e.g. http://127.0.0.1:8080"
        )
    return parts


def _rebase(urls: Any, base: SplitResult) -> Any:
    """``urls`` (a URL or a nested dict of them) with scheme and host taken from ``base``.

    A path in ``base`` is put in front of each URL's own path.
    """
    if isinstance(urls, str):
        own = urlsplit(urls)
        path = base.path.rstrip("/") + own.path
        return urlunsplit((base.scheme, base.netloc, path, own.query, own.fragment))
    if isinstance(urls, dict):
        return {key: _rebase(value, base) for key, value in urls.items()}
    return urls


def _squash(text: str) -> str:
    return text.upper().replace("/", "")


def _iso(ms: int) -> str:
    return from_micros(ms * 1000).isoformat()


def _open_time_ms(row: Sequence[Any], market: str) -> int:
    stamp = row[0] if row else None
    if stamp is None:
        raise ValueError(f"{market}: exchange returned a candle without an open time: {row!r}")
    return int(stamp)


def _number(value: Any, market: str, open_ms: int, column: str) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{market} {_iso(open_ms)}: {column} is not a number: {value!r}") from None


def _to_frame(kept: Sequence[tuple[int, Sequence[Any]]], market: str) -> pl.DataFrame:
    columns: dict[str, list[float]] = {name: [] for name in VALUE_COLUMNS}
    for t, row in kept:
        for i, name in enumerate(VALUE_COLUMNS, start=1):
            columns[name].append(_number(row[i] if i < len(row) else None, market, t, name))
    times = pl.Series("open_time", [t for t, _ in kept], dtype=pl.Int64)
    frame = pl.DataFrame(
        {
            "open_time": times.cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"),
            **{name: pl.Series(name, values, dtype=pl.Float64) for name, values in columns.items()},
        }
    )
    return conform(frame)
