"""A local Binance spot exchange for tests: the REST subset ccxt's ``binance`` class calls, the
kline websocket stream of ccxt.pro's, its own price path and matching, and fault injection
(latency, lost responses, 429/418, 5xx, rejections, dropped websockets).

Drive it with the real client: ``ccxt.binance(fx.ccxt_config())``, or
``ccxt.pro.binance(fx.ccxt_pro_config())`` for the stream; ``FakeExchange(...,
market_type="usdm")`` serves Binance's USD-M futures (``/fapi``) to ``ccxt.binanceusdm``
instead. Markets: `MarketSpec`; the server, the account and the test-side controls:
`FakeExchange`; faults: `Faults`. Test support only: nothing under ``services`` or ``app``
imports it.
"""

from drl_trading.testing.fake_exchange.binance_rest import RequestRecord
from drl_trading.testing.fake_exchange.exchange import FakeExchange
from drl_trading.testing.fake_exchange.faults import Faults
from drl_trading.testing.fake_exchange.markets import BTCUSDT, BTCUSDT_PERP, MarketSpec
from drl_trading.testing.fake_exchange.matching import BinanceError, FakeFill, FakeOrder

__all__ = [
    "BTCUSDT",
    "BTCUSDT_PERP",
    "BinanceError",
    "FakeExchange",
    "FakeFill",
    "FakeOrder",
    "Faults",
    "MarketSpec",
    "RequestRecord",
]
