"""What the ccxt broker does differently on linear USD-margined perpetual swaps (e.g. Binance
USD-M, ``ccxt.binanceusdm``): which market a symbol means, the account's signed positions and
wallet as the exchange reports them, the ledger cash they stand for, and the one-way-mode check.

Equity semantics are the paper broker's, so the risk engine and the reports see no difference:
a futures account holds a wallet balance (deposits + realised PnL - fees - funding) and signed
positions (base units, a short negative) with entry prices; the ledger's cash is
``wallet - sum(amount * entry)``, so that ``cash + sum(amount * mark) = wallet + unrealised
PnL`` (the exchange's margin balance) and every fill moves cash by ``-signed qty * price - fee``
exactly as on spot or paper.

Funding payments move the wallet without a fill. The broker does not adopt them: between two
reconciliations the exchange's cash drifts from the ledger's by the funding paid or received, so
``execution.live`` reconciliation's cash tolerance must cover it (docs/live.md, "Futures").
Margin (leverage, liquidation) is the exchange's: the broker sends orders and books fills; an
order the margin does not cover is the exchange's refusal (``exchange_rejected: ...``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import ccxt
import structlog

from drl_trading.common.errors import ExchangeAccountError

if TYPE_CHECKING:
    from drl_trading.execution.adapter.ccxt_broker import CcxtBrokerSettings

log = structlog.get_logger(__name__)

MarketType = Literal["spot", "futures"]

DAY_MS = 86_400_000
TRADE_WINDOW_DAYS = 7
TRADE_HISTORY_DAYS = 180
HEDGE_MODE_REMEDY = (
    "switch the futures account to one-way mode (Binance: Futures > Preferences > Position "
    "Mode > One-way; API: POST /fapi/v1/positionSide/dual dualSidePosition=false) with no "
    "open positions or orders, then rerun"
)


@dataclass(frozen=True, slots=True)
class VenuePosition:
    """One position as the exchange reports it: ``quantity`` in base units (signed, a short
    negative), ``entry_price`` and ``unrealised`` PnL in the settle currency."""

    quantity: float
    entry_price: float
    unrealised: float = 0.0


def fits(market: Mapping[str, Any], market_type: MarketType, settle: str) -> bool:
    """Whether ``market`` is what a ``market_type`` broker trades: a spot market, or a linear
    perpetual swap settled in ``settle`` (the account currency)."""
    if market_type == "spot":
        return bool(market.get("spot", True))
    return (
        bool(market.get("swap")) and bool(market.get("linear")) and market.get("settle") == settle
    )


def kind(market: Mapping[str, Any]) -> str:
    """A market's kind in words, for refusals (``spot``, ``linear swap settled in USDT``...)."""
    if market.get("spot"):
        return "spot"
    shape = next((k for k in ("swap", "future", "option") if market.get(k)), "derivative")
    margin = "linear" if market.get("linear") else "inverse" if market.get("inverse") else ""
    settle = f" settled in {market.get('settle')}" if market.get("settle") else ""
    return f"{margin} {shape}{settle}".strip()


def wanted_kind(market_type: MarketType, settle: str) -> str:
    return "spot" if market_type == "spot" else f"linear swap settled in {settle}"


def preference(market: Mapping[str, Any], market_type: MarketType, settle: str) -> int:
    """Sort key among markets with the same id: the ones this broker trades first."""
    return 0 if fits(market, market_type, settle) else 1


def signed_positions(raw: Sequence[Mapping[str, Any]]) -> dict[str, VenuePosition]:
    """ccxt ``fetch_positions`` rows as ``{market symbol: VenuePosition}``: ``contracts x
    contractSize`` base units, negative for a short; rows of one market (hedge mode) summed."""
    out: dict[str, VenuePosition] = {}
    for row in raw:
        contracts = finite_number(row.get("contracts"), 0.0) * finite_number(
            row.get("contractSize"), 1.0
        )
        if not contracts:
            continue
        quantity = -abs(contracts) if row.get("side") == "short" else abs(contracts)
        entry = finite_number(row.get("entryPrice"), 0.0)
        upnl = finite_number(row.get("unrealizedPnl"), 0.0)
        symbol = str(row.get("symbol"))
        held = out.get(symbol)
        if held is not None:
            total = held.quantity + quantity
            cost = held.quantity * held.entry_price + quantity * entry
            entry = cost / total if total else 0.0
            quantity, upnl = total, held.unrealised + upnl
        out[symbol] = VenuePosition(quantity, entry, upnl)
    return out


def wallet_balance(
    balance: Mapping[str, Any], asset: str, positions: Mapping[str, VenuePosition]
) -> float:
    """The wallet balance of ``asset`` (settle currency): Binance's ``walletBalance`` where the
    raw answer has it, else ccxt's total (the margin balance) less the unrealised PnL."""
    info = balance.get("info")
    assets = info.get("assets") if isinstance(info, Mapping) else None
    for entry in assets if isinstance(assets, list) else []:
        if isinstance(entry, Mapping) and entry.get("asset") == asset:
            wallet = finite_number(entry.get("walletBalance"), math.nan)
            if math.isfinite(wallet):
                return wallet
    total = finite_number((balance.get("total") or {}).get(asset), 0.0)
    return total - sum(p.unrealised for p in positions.values())


def ledger_cash(wallet: float, positions: Mapping[str, VenuePosition]) -> float:
    """The paper-broker cash of a futures account: ``wallet - sum(amount * entry)``."""
    return wallet - sum(p.quantity * p.entry_price for p in positions.values())


def trade_windows(since_ms: int, now_ms: int, futures: bool) -> list[tuple[int, dict[str, int]]]:
    """``(since, params)`` of the ``fetch_my_trades`` calls that cover ``since_ms`` to now: one
    call on spot; on futures one per 7 days (Binance answers ``userTrades`` for at most 7 days
    per call, and ccxt narrows an older ``since`` to its first week), from at most
    `TRADE_HISTORY_DAYS` back (what Binance keeps)."""
    if not futures:
        return [(since_ms, {})]
    start = max(since_ms, now_ms - TRADE_HISTORY_DAYS * DAY_MS)
    windows: list[tuple[int, dict[str, int]]] = []
    while True:
        until = start + TRADE_WINDOW_DAYS * DAY_MS - 1
        windows.append((start, {"until": until}))
        if until >= now_ms:
            return windows
        start = until + 1


def is_hedge_mode(answer: Mapping[str, Any]) -> bool:
    """ccxt ``fetch_position_mode``'s answer: True for hedge (dual side) mode."""
    return bool(answer.get("hedged"))


def prepare_account(
    exchange: Any,
    call: Callable[..., Any],
    name: str,
    markets: Sequence[Mapping[str, Any]],
    settings: CcxtBrokerSettings,
    scrub: Callable[[BaseException], str],
) -> None:
    """Refuse a hedge-mode account (the ledger holds one signed position per symbol) and set
    ``settings.leverage`` on each of ``markets`` that is a linear swap, when it names one;
    ``call`` is the broker's retrying call, ``scrub`` its message cleaner. Refusals are
    `ExchangeAccountError` with what to change."""
    if is_hedge_mode(dict(call("fetch_position_mode", exchange.fetch_position_mode) or {})):
        raise ExchangeAccountError(
            name,
            "the futures account is in hedge mode (dual side positions); the broker trades "
            "one-way mode only",
            HEDGE_MODE_REMEDY,
        )
    leverage = settings.leverage
    if leverage is None:
        return
    for market in markets:
        if not fits(market, "futures", settings.quote_currency):
            continue
        try:
            call("set_leverage", exchange.set_leverage, leverage, market["symbol"])
        except ccxt.ExchangeError as exc:
            raise ExchangeAccountError(
                name,
                f"set_leverage {leverage} on {market['symbol']}: {scrub(exc)}",
                "choose a leverage the symbol allows (execution.live.leverage) and rerun",
            ) from exc
        log.info("ccxt_broker.leverage", market=market["symbol"], leverage=leverage)


def finite_number(value: Any, default: float) -> float:
    """``value`` as a float, or ``default`` where ccxt gave None, text or a non-finite number
    (venues leave fields out or send "" as often as numbers)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default
