"""Measures the synthetic market's planted edge: the oracle rule's Sharpe per edge and timeframe.

For each edge timeframe and edge ``φ`` the synthetic provider makes the bars of that timeframe
for several seeds and symbols (24/7, ``--years`` each) and the oracle rule of
`drl_trading.ingest.adapter.synthetic_edge` (hold the sign of the previous bar's return) is
applied to each range of 60 days. Printed per row: the oracle's annualised Sharpe before costs,
the mean over the ranges and its spread; what `planted_sharpe` states; the efficiency ``a``
measured (per-bar Sharpe over φ, paired against edge 0 on the same shocks) beside the one
`EFFICIENCY` holds; the Sharpe over all the bars pooled (several volatility regimes: less); the
rule's mean |return| per bar in bps, its turnover (units of equity traded per bar) and its Sharpe
after ``--cost-bps`` per unit traded (fee plus slippage: 7 bps, the default costs). Last, the
time to fetch 60 days of 1m bars of one symbol at edge 0 and at an edge.

    .venv/bin/python benchmarks/synthetic_edge.py [--years 2] [--timeframes 1m,5m,...]
"""

from __future__ import annotations

import argparse
import math
import statistics
from datetime import UTC, datetime

import numpy as np
import polars as pl

from drl_trading.common.domain import Symbol, Timeframe
from drl_trading.ingest.adapter.synthetic_edge import (
    EFFICIENCY,
    bars_per_day,
    oracle_returns,
    planted_sharpe,
)
from drl_trading.ingest.adapter.synthetic_provider import SyntheticProvider
from timing import timed

SERIES = [(seed, sym) for seed in (1, 2, 3, 4) for sym in ("BTCUSDT", "ETHUSDT")]
WINDOW_DAYS = 60
"""The span the stated Sharpe is for: what the quickstart ingests (and the unit test measures)."""


def closes(edge: float, timeframe: Timeframe, seed: int, symbol: str, years: int) -> np.ndarray:
    provider = SyntheticProvider(seed=seed, chunk_days=92, edge=edge, edge_timeframe=timeframe)
    start, end = datetime(2024 - years, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)
    bars = pl.concat(list(provider.fetch(Symbol(symbol), timeframe, start, end)))
    return bars["close"].to_numpy()


def window_sharpes(returns: np.ndarray, window: int) -> list[float]:
    """Per-bar Sharpe of each whole ``window`` of ``returns``."""
    return [
        float(w.mean() / w.std(ddof=1))
        for w in (returns[i : i + window] for i in range(0, returns.size - window + 1, window))
    ]


def measure(timeframe: Timeframe, edges: list[float], years: int, cost_bps: float) -> None:
    per_year = 365.0 * bars_per_day(timeframe)
    window = WINDOW_DAYS * bars_per_day(timeframe)
    null_sr = 0.0
    for edge in [0.0, *edges]:
        gross: list[float] = []
        net: list[float] = []
        pooled, traded = [], []
        for seed, symbol in SERIES:
            c = closes(edge, timeframe, seed, symbol, years)
            r = oracle_returns(c)
            position = np.sign(np.diff(np.log(c)))[:-1]
            t = np.abs(np.diff(position, prepend=0.0))
            gross += window_sharpes(r, window)
            net += window_sharpes(r - t * cost_bps / 1e4, window)
            pooled.append(r)
            traded.append(t)
        sr = statistics.fmean(gross)
        if edge == 0.0:
            null_sr = sr
        paired = sr - null_sr  # against edge 0 on the same shocks: less noise
        a = paired / math.sqrt(1 + paired * paired) / edge if edge else float("nan")
        table = EFFICIENCY[timeframe][0] + EFFICIENCY[timeframe][1] * edge
        r_all = np.concatenate(pooled)
        long_sr = float(r_all.mean() / r_all.std(ddof=1))
        root = math.sqrt(per_year)
        print(
            f"{timeframe!s:>4} edge {edge:4.2f}  Sharpe {sr * root:7.2f} "
            f"(sd {statistics.pstdev(gross) * root:5.2f})  stated "
            f"{planted_sharpe(edge, timeframe):7.2f}  a {a:6.3f} (table {table:.3f})  "
            f"pooled {long_sr * root:7.2f}  "
            f"|r| {np.abs(r_all).mean() * 1e4:6.1f} bps  turnover "
            f"{np.concatenate(traded).mean():.2f}  net {statistics.fmean(net) * root:7.2f}  "
            f"({len(gross)} windows)",
            flush=True,
        )


def fetch_time(edge: float, repeat: int) -> list[float]:
    def run() -> int:
        provider = SyntheticProvider(seed=7, edge=edge)
        start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)
        return sum(f.height for f in provider.fetch(Symbol("BTCUSDT"), Timeframe.M1, start, end))

    return timed(run, repeat)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=2)
    parser.add_argument("--timeframes", default="1m,5m,15m,30m,1h,4h")
    parser.add_argument("--edges", default="0.1,0.3")
    parser.add_argument("--cost-bps", type=float, default=7.0)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    edges = [float(e) for e in args.edges.split(",")]
    for tf in args.timeframes.split(","):
        measure(Timeframe(tf), edges, args.years, args.cost_bps)
    base = fetch_time(0.0, args.repeat)
    planted = fetch_time(0.2, args.repeat)
    ratio = statistics.median(planted) / statistics.median(base)
    print(
        f"fetch 60 days of 1m: edge 0 {statistics.median(base):.3f} s, edge 0.2 (1h) "
        f"{statistics.median(planted):.3f} s, ratio {ratio:.2f}"
    )


if __name__ == "__main__":
    main()
