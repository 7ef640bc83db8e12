"""Our `simulate` against vectorbt's ``Portfolio.from_orders`` + ``value()`` on the same targets.

The same synthetic 1m bars (200,000 by default) and the same ~2,022 target changes go through both,
under the same conventions (`drl_trading.common.costs`): a target decided at the close of bar i is
a fraction of the equity marked at that close (vectorbt: ``size_type="targetpercent"``,
``val_price`` = the previous close), fills at the open of bar i+1 (``price`` = open) with the
slippage against the trader (``slippage``, a fraction of the price) and a fee on the filled
notional (``fees``, a fraction); equity is cash plus units at each close. Targets that do not
change send no order (NaN size), as ours trade only on a change.

The two agree bit for bit while every buy is covered by cash. One convention differs: our model
(and the paper broker) finances a buy's fee and slippage, so a long target of 1.0 ends with cash
slightly below zero, while vectorbt caps such a buy at the available cash. The timed targets
therefore reach at most 0.9 long (and -1 short); a second check with full 1.0 longs reports the
difference that cap makes.

Timings alternate the candidates in each round after one untimed warm-up call of each (which
includes numba's compilation of vectorbt's simulator, ~13 s the first time, then a load from
numba's on-disk cache; excluded); the speed ratio is vectorbt's time over ours per round, median
with min..max. backtesting.py is not installed and is skipped.

    .venv/bin/python benchmarks/backtest_peers.py [--bars 200000] [--changes 2022] [--rounds 7]

vectorbt is the optional ``bench`` extra: ``pip install -c constraints.txt -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl

from drl_trading.common.costs import CostModel
from drl_trading.common.domain import Symbol, Timeframe, parse_time
from drl_trading.evaluation.trace import simulate
from drl_trading.ingest.adapter.synthetic_provider import SyntheticProvider

SYMBOL = Symbol("BENCHUSDT")
COSTS = CostModel(fee_bps=5.0, slippage_bps=2.0)
TIMED_LEVELS = (-1.0, -0.5, 0.0, 0.5, 0.9)  # longs covered by cash: identical conventions
FULL_LEVELS = (-1.0, -0.5, 0.0, 0.5, 1.0)  # 1.0 long: vectorbt caps the buy at the cash


def _targets(n: int, changes: int, levels: tuple[float, ...], seed: int) -> np.ndarray:
    """A held target per step, changing to a different level at ``changes`` random steps."""
    rng = np.random.default_rng(seed)
    at = np.concatenate(([0], np.sort(rng.choice(np.arange(1, n), changes - 1, replace=False))))
    choices = np.array(levels)
    held = [float(rng.choice(choices[choices != 0.0]))]
    for _ in range(changes - 1):
        held.append(float(rng.choice(choices[choices != held[-1]])))
    segment = np.searchsorted(at, np.arange(n), side="right") - 1
    targets: np.ndarray = np.array(held)[segment]
    return targets


def _vectorbt_runner(
    vbt: Any, open_: np.ndarray, close: np.ndarray, targets: np.ndarray
) -> Callable[[], np.ndarray]:
    """vectorbt's rows are bars: the decision of step i is an order in row i+1."""
    size = np.full(len(close), np.nan)
    change = np.flatnonzero(np.diff(targets, prepend=0.0) != 0.0)
    size[change + 1] = targets[change]
    val_price = np.concatenate(([close[0]], close[:-1]))  # the decision close

    def run() -> np.ndarray:
        portfolio = vbt.Portfolio.from_orders(
            close,
            size,
            size_type="targetpercent",
            direction="both",
            price=open_,
            val_price=val_price,
            fees=COSTS.fee_bps / 1e4,
            slippage=COSTS.slippage_bps / 1e4,
            init_cash=1.0,
        )
        return np.asarray(portfolio.value(), dtype=np.float64)

    return run


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x ({min(values):.2f}..{max(values):.2f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--bars", type=int, default=200_000)
    ap.add_argument("--changes", type=int, default=2_022)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    if importlib.util.find_spec("vectorbt") is None:
        print(
            "vectorbt is not installed; it is the optional benchmark extra:\n"
            "    pip install -c constraints.txt -e '.[bench]'",
            file=sys.stderr,
        )
        return 2
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # vectorbt's imports warn about deprecated pandas APIs
        vbt: Any = importlib.import_module("vectorbt")  # untyped
    print(f"import vectorbt: {time.perf_counter() - t0:.1f} s (once, not timed below)")

    n = args.bars  # bars 0..n, n steps
    start = parse_time("2022-01-01")
    provider = SyntheticProvider(seed=1, chunk_days=30)
    chunks = provider.fetch(SYMBOL, Timeframe.M1, start, start + timedelta(minutes=n + 1))
    bars = pl.concat(list(chunks)).head(n + 1)
    times = (bars["open_time"] + timedelta(minutes=1)).dt.replace_time_zone(None).to_numpy()
    open_, close = bars["open"].to_numpy(), bars["close"].to_numpy()
    targets = _targets(n, args.changes, TIMED_LEVELS, seed=7)
    changes = int(np.count_nonzero(np.diff(targets, prepend=0.0)))
    print(f"{n:,} 1m bars, {changes:,} target changes, targets in {TIMED_LEVELS}")
    print(f"fee {COSTS.fee_bps} bps, slippage {COSTS.slippage_bps} bps\n")

    def ours() -> np.ndarray:
        return simulate(SYMBOL, times, open_, close, targets, COSTS).equity

    theirs = _vectorbt_runner(vbt, open_, close, targets)
    t0 = time.perf_counter()
    theirs()
    warm_s = time.perf_counter() - t0
    print(f"vectorbt warm-up (numba compilation or its cache load, excluded): {warm_s:.1f} s")
    ours()
    ours_s: list[float] = []
    theirs_s: list[float] = []
    ratio: list[float] = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        equity = ours()
        t1 = time.perf_counter()
        value = theirs()
        t2 = time.perf_counter()
        ours_s.append(t1 - t0)
        theirs_s.append(t2 - t1)
        ratio.append((t2 - t1) / (t1 - t0))
    med = statistics.median
    print(f"simulate                        {1e3 * med(ours_s):8.2f} ms  ", end="")
    print(f"({1e3 * min(ours_s):.2f}..{1e3 * max(ours_s):.2f}, n={args.rounds})")
    print(f"vectorbt from_orders + value()  {1e3 * med(theirs_s):8.2f} ms  ", end="")
    print(f"({1e3 * min(theirs_s):.2f}..{1e3 * max(theirs_s):.2f}, n={args.rounds})")
    print(f"speed ratio, ours / vectorbt's: {_spread(ratio)}   (goal >= 1.5x)\n")

    gap = float(np.max(np.abs(equity - value) / value))
    same = "bit for bit" if np.array_equal(equity, value) else f"max relative gap {gap:.1e}"
    print(f"final equity: ours {equity[-1]:.15g}, vectorbt {value[-1]:.15g}; whole path: {same}")

    full = _targets(n, args.changes, FULL_LEVELS, seed=7)
    equity = simulate(SYMBOL, times, open_, close, full, COSTS).equity
    value = _vectorbt_runner(vbt, open_, close, full)()
    print(
        f"with 1.0 longs (vectorbt caps buys at the cash): final equity ours {equity[-1]:.15g}, "
        f"vectorbt {value[-1]:.15g}, relative gap {equity[-1] / value[-1] - 1:+.1e}"
    )
    print("backtesting.py: not installed, skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
