"""What the fake exchange lists: one spot market's identity and its Binance filters.

Quantities and prices are kept as `Decimal` inside the fake because Binance's filters are exact
("evenly divisible by the step"), which binary floats cannot check; floats only appear at the
Python API's edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

EIGHT_PLACES = Decimal("0.00000001")


def dec(value: float | int | str | Decimal) -> Decimal:
    """A float as the decimal a person typed (``0.1`` -> ``Decimal("0.1")``), not its binary."""
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def fmt(value: Decimal) -> str:
    """Binance's wire format for amounts: a string with eight decimals."""
    return f"{value.quantize(EIGHT_PLACES):f}"


def floor_to(value: Decimal, step: Decimal) -> Decimal:
    """The largest multiple of ``step`` not above ``value`` (``step`` > 0)."""
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def is_multiple(value: Decimal, step: Decimal) -> bool:
    return value % step == 0


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """One market of the fake exchange (spot, or a linear perpetual on a usdm fake).

    ``symbol`` is Binance's id (``BTCUSDT``); ``tick_size`` is the price increment (quote units),
    ``step_size`` and ``min_qty`` the quantity increment and minimum (base units), and
    ``min_notional`` the smallest price x quantity accepted (quote units), as in Binance's
    PRICE_FILTER, LOT_SIZE and NOTIONAL filters.
    """

    symbol: str
    base: str
    quote: str
    tick_size: float = 0.01
    step_size: float = 0.00001
    min_qty: float = 0.00001
    min_notional: float = 5.0
    max_qty: float = 9000.0
    max_price: float = 1_000_000.0

    def __post_init__(self) -> None:
        for name in ("tick_size", "step_size", "min_qty", "max_qty", "max_price"):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"MarketSpec {self.symbol}: {name} must be > 0, got {getattr(self, name)}"
                )
        if self.min_notional < 0:
            raise ValueError(
                f"MarketSpec {self.symbol}: min_notional must be >= 0, got {self.min_notional}"
            )
        if not is_multiple(dec(self.min_qty), dec(self.step_size)):
            raise ValueError(
                f"MarketSpec {self.symbol}: min_qty {self.min_qty} is not a multiple of "
                f"step_size {self.step_size}"
            )

    @property
    def tick(self) -> Decimal:
        return dec(self.tick_size)

    @property
    def step(self) -> Decimal:
        return dec(self.step_size)

    def exchange_info_entry(self) -> dict[str, object]:
        """This market as one element of ``GET /api/v3/exchangeInfo``'s ``symbols`` list.

        ``orderTypes`` lists only what the fake executes (LIMIT, MARKET), so ccxt refuses the rest
        (e.g. post-only, stop orders) before sending anything.
        """
        return {
            "symbol": self.symbol,
            "status": "TRADING",
            "baseAsset": self.base,
            "baseAssetPrecision": 8,
            "quoteAsset": self.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "MARKET"],
            "icebergAllowed": False,
            "ocoAllowed": False,
            "otoAllowed": False,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": fmt(self.tick),
                    "maxPrice": fmt(dec(self.max_price)),
                    "tickSize": fmt(self.tick),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": fmt(dec(self.min_qty)),
                    "maxQty": fmt(dec(self.max_qty)),
                    "stepSize": fmt(self.step),
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": fmt(dec(self.min_notional)),
                    "applyMinToMarket": True,
                    "maxNotional": "9000000.00000000",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": [
                "NONE",
                "EXPIRE_TAKER",
                "EXPIRE_MAKER",
                "EXPIRE_BOTH",
            ],
        }


BTCUSDT = MarketSpec("BTCUSDT", "BTC", "USDT")
"""Binance's BTCUSDT as the tests use it: the defaults (0.01 tick, 0.00001 step and minimum,
5 USDT minimum notional)."""

BTCUSDT_PERP = MarketSpec(
    "BTCUSDT", "BTC", "USDT", tick_size=0.1, step_size=0.001, min_qty=0.001, max_qty=1000.0
)
"""Binance's BTCUSDT USD-M perpetual (``BTC/USDT:USDT`` in ccxt) for a ``market_type="usdm"``
fake: 0.1 tick, 0.001 step and minimum, 1000 BTC maximum; the minimum notional is 5 USDT (most
USD-M symbols' value, where BTCUSDT's own is 100) so that small test accounts can trade it."""
