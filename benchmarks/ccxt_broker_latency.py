"""Benchmark of the ccxt broker's order round trip against the local fake Binance exchange.

Each of N orders (default 200) is a limit buy far below the market, so it rests and nothing but
the order path is measured: ``CcxtBroker.submit`` -> ``OrderAck``, which is the pre-send checks
(markets and balance are cached after the first order), ccxt's request signing and the HTTP
round trip to the fake on 127.0.0.1, and its matching engine. After every 50 orders the broker
cancels them all (``cancel_all``, timed apart) so the book stays small. Prints p50/p90/p99/max
in milliseconds; the fake adds no latency of its own (``faults.latency_s`` = 0), so these are the
client-side and loopback costs, the floor under a real exchange's network time. It runs twice:
with ccxt's client-side rate limiter on (as the broker always runs; for Binance it spaces order
requests by their weight) and off, which leaves the broker's own cost, ccxt's and the loopback.

    .venv/bin/python benchmarks/ccxt_broker_latency.py [--orders 200]
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import time

import ccxt
import structlog

from drl_trading.common.domain import Order, Side, Symbol
from drl_trading.execution.adapter.ccxt_broker import CcxtBroker, CcxtBrokerSettings
from drl_trading.testing.fake_exchange import FakeExchange, MarketSpec

S = Symbol("BTCUSDT")
SPEC = MarketSpec(symbol="BTCUSDT", base="BTC", quote="USDT", min_notional=5.0)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(orders: int, rate_limited: bool) -> tuple[list[float], list[float]]:
    """Submit->ack and cancel_all wall times (ms) of ``orders`` resting limit orders."""
    with FakeExchange([SPEC], balances={"USDT": 1_000_000.0}, fee_bps=10.0) as fx:
        fx.trade("BTCUSDT", 40_000.0, liquidity=1.0)
        exchange = ccxt.binance(fx.ccxt_config())
        broker = CcxtBroker(exchange, CcxtBrokerSettings(symbols=(S,), cancel_after_s=None))
        exchange.enableRateLimit = rate_limited
        broker.positions()  # markets and balances loaded before timing
        submit_ms: list[float] = []
        cancel_ms: list[float] = []
        for i in range(orders):
            order = Order(f"bench-{i}", S, Side.BUY, 0.001, limit_price=30_000.0)
            start = time.perf_counter()
            ack = broker.submit(order)
            submit_ms.append((time.perf_counter() - start) * 1000)
            if not ack.accepted:
                raise SystemExit(f"order {i} refused: {ack.reason}")
            if (i + 1) % 50 == 0:
                start = time.perf_counter()
                broker.cancel_all()
                cancel_ms.append((time.perf_counter() - start) * 1000)
        broker.cancel_all()
    return submit_ms, cancel_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    print(f"ccxt {ccxt.__version__}, Python {platform.python_version()}, {platform.machine()}")
    for rate_limited in (True, False):
        submit_ms, cancel_ms = run(args.orders, rate_limited)
        label = "on" if rate_limited else "off"
        print(f"rate limiter {label}: submit -> ack over {len(submit_ms)} orders (ms)")
        quantiles = "  ".join(
            f"{name} {percentile(submit_ms, q):.2f}"
            for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
        )
        print(f"  {quantiles}  max {max(submit_ms):.2f}  mean {statistics.fmean(submit_ms):.2f}")
        if cancel_ms:
            print(f"  cancel_all of 50 orders: mean {statistics.fmean(cancel_ms):.1f} ms")


if __name__ == "__main__":
    main()
