"""Composition of the live broker: a ccxt exchange client from ``execution.live`` and the
credentials it names, its markets loaded and the traded symbols checked, and the `CcxtBroker`
on it (the execution service's broker and its reconciliation venue in ``drl-trading live``).

Credentials are read here and only here, from the environment variables or files the settings
name; they go to the ccxt client and nowhere else (no setting, log line or report holds them).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ccxt
import structlog

from drl_trading.common.domain import Symbol
from drl_trading.common.errors import (
    UsageError,
)
from drl_trading.common.ports import Clock
from drl_trading.execution.adapter.ccxt_broker import CcxtBroker, CcxtBrokerSettings
from drl_trading.execution.adapter.ccxt_order_stream import CcxtOrderStream, pro_client_for
from drl_trading.execution.core.config import LiveSettings

log = structlog.get_logger(__name__)

REAL_MONEY_FLAG = "--i-understand-this-trades-real-money"
"""The `live` flag that stands for ``execution.live.confirm_real_account: true``."""
FUTURES_CLASSES = {"binance": "binanceusdm"}
"""The ccxt class of each supported exchange's linear (USD-margined) perpetuals."""


class LiveAccountError(UsageError):
    """The live account cannot be used as configured (credentials missing, a real account not
    confirmed, a symbol the exchange does not list); nothing was sent."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """An API key and secret, as read; ``repr`` never shows them."""

    api_key: str
    secret: str

    def __repr__(self) -> str:
        return "Credentials(api_key=***, secret=***)"


def broker_settings(live: LiveSettings, symbols: Sequence[Symbol]) -> CcxtBrokerSettings:
    """The broker's frozen settings from ``execution.live`` and the traded ``symbols``."""
    return CcxtBrokerSettings(
        client_id_prefix=live.client_id_prefix,
        quote_currency=live.quote_currency,
        symbols=tuple(str(s) for s in symbols),
        cancel_after_s=live.cancel_after_s,
        max_attempts=live.max_attempts,
        first_backoff_s=live.first_backoff_s,
        max_backoff_s=max(live.max_backoff_s, live.first_backoff_s),
        market_type=live.market,
        leverage=live.leverage,
    )


def check_account(live: LiveSettings) -> None:
    """Refuse a real (non-sandbox) account that ``confirm_real_account`` does not confirm."""
    if not live.sandbox and not live.confirm_real_account:
        raise LiveAccountError(
            f"execution.live.sandbox is false: this session would trade real money on "
            f"{live.exchange}; confirm it with execution.live.confirm_real_account: true or "
            f"{REAL_MONEY_FLAG}, or trade the test network (--sandbox)"
        )


def read_credentials(live: LiveSettings, environ: Mapping[str, str] | None = None) -> Credentials:
    """The key and secret from ``api_key_file``/``secret_file`` where set, else from the
    environment variables ``api_key_env``/``secret_env``; a missing one is refused with where
    it was looked for."""
    env = os.environ if environ is None else environ
    api_key = _read("API key", live.api_key_file, live.api_key_env, "api_key", env)
    secret = _read("API secret", live.secret_file, live.secret_env, "secret", env)
    return Credentials(api_key, secret)


def _read(what: str, path: Path | None, variable: str, key: str, env: Mapping[str, str]) -> str:
    if path is not None:
        try:
            value = path.expanduser().read_text().strip()
        except OSError as exc:
            raise LiveAccountError(
                f"the {what} file {path} (execution.live.{key}_file) cannot be read: "
                f"{exc.strerror or exc}"
            ) from None
        if not value:
            raise LiveAccountError(f"the {what} file {path} (execution.live.{key}_file) is empty")
        return value
    value = env.get(variable, "").strip()
    if not value:
        raise LiveAccountError(
            f"no {what}: set the environment variable {variable} (execution.live.{key}_env) "
            f"or name a file with execution.live.{key}_file"
        )
    return value


def build_exchange(live: LiveSettings, credentials: Credentials) -> Any:
    """The sync ccxt client of ``live.exchange`` with the credentials: its spot markets only,
    or on ``market: futures`` its USD-M linear perpetuals (`FUTURES_CLASSES`, e.g.
    ``ccxt.binanceusdm``); no currency or margin calls, which test networks lack; the test
    network when ``sandbox``, and every REST URL on ``api_url``'s host when set (paths kept)."""
    check_account(live)
    futures = live.market == "futures"
    cls = getattr(ccxt, FUTURES_CLASSES[live.exchange] if futures else live.exchange)
    config: dict[str, Any] = {
        "apiKey": credentials.api_key,
        "secret": credentials.secret,
        "enableRateLimit": True,
        "timeout": live.timeout_ms,
        "options": {
            "defaultType": "swap" if futures else "spot",
            "fetchMarkets": {"types": ["linear" if futures else "spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
        },
    }
    if futures and live.api_url is not None:
        # ccxt tells Binance's futures error codes (-2019 margin, -2022 reduce-only) by the
        # fapi host; on another host they must be the general ones
        config["exceptions"] = {"exact": dict(cls().exceptions["linear"]["exact"])}
    exchange = cls(config)
    if live.sandbox:
        exchange.set_sandbox_mode(True)
    if live.api_url is not None:
        exchange.urls["api"] = _rebased(exchange.urls["api"], live.api_url)
    return exchange


def _rebased(urls: Any, base: str) -> Any:
    """``urls`` (a ccxt ``urls['api']`` tree) with every URL's scheme and host those of
    ``base``, its path prefixed by ``base``'s path."""
    root = base.rstrip("/")
    if isinstance(urls, dict):
        return {k: _rebased(v, base) for k, v in urls.items()}
    if isinstance(urls, str):
        return root + urlsplit(urls).path
    return urls


def build_live_broker(live: LiveSettings, symbols: Sequence[Symbol], clock: Clock) -> CcxtBroker:
    """The `CcxtBroker` of ``live`` for ``symbols``: credentials read, the exchange's markets
    loaded (each symbol must be one of them) and the account's balance read once, so a wrong
    key, an unreachable exchange or an unknown symbol stops the session before it starts."""
    check_account(live)
    exchange = build_exchange(live, read_credentials(live))
    stream = _order_stream(live, exchange, clock)
    broker = CcxtBroker(exchange, broker_settings(live, symbols), clock=clock, order_stream=stream)
    try:
        _check_broker(broker, exchange, live, symbols)
    except BaseException:
        broker.close()
        raise
    if stream is not None:  # once the account answered: a refused key fails with one line first
        stream.start()
    return broker


def _check_broker(
    broker: CcxtBroker, exchange: Any, live: LiveSettings, symbols: Sequence[Symbol]
) -> None:
    name = f"{live.exchange}{' (sandbox)' if live.sandbox else ''}"
    broker.load_markets()
    listed = {str(m.get("id", "")).upper(): m for m in (exchange.markets or {}).values()}
    listed |= {str(m.get("symbol", "")).replace("/", ""): m for m in listed.values()}
    for symbol in symbols:
        if str(symbol).replace("/", "") not in listed:
            close = difflib.get_close_matches(str(symbol), sorted(listed), n=3)
            hint = f" (closest: {', '.join(close)})" if close else ""
            raise LiveAccountError(
                f"{name} lists no {live.market} market {symbol}{hint}: check --symbols"
            )
    _ = broker.cash  # reads the balance: refused credentials fail here, with one line


def _order_stream(live: LiveSettings, exchange: Any, clock: Clock) -> CcxtOrderStream | None:
    """The user-data stream (not started) the broker books pushed fills from (spot,
    ``order_stream``); None
    polls every open order over REST. Futures poll: the local fake exchange the project tests
    against serves no futures user-data stream, so that path is not proven here."""
    if not live.order_stream or live.market != "spot":
        return None
    ws_url = live.ws_url
    if ws_url is None and live.api_url is not None:
        parts = urlsplit(live.api_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        ws_url = f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    first = max(live.first_backoff_s, 0.1)
    return CcxtOrderStream(
        lambda: pro_client_for(exchange, ws_url),
        clock=clock,
        first_backoff_s=first,
        max_backoff_s=max(live.max_backoff_s, first),
    )


def _first_line(exc: BaseException) -> str:
    from drl_trading.common.redaction import mask_secrets

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return mask_secrets(text.split("?")[0])[:300]
