"""The positions a model is compared against: buy-and-hold, flat and a random agent.

Each is a position array fed to the same `simulate` and the same costs as the model, so the
comparison differs in the decisions only.

The random agent runs over several seeds, combined into one row by `random_baseline` on their
*mean equity curve*: the account that gives each seed an equal share of its capital. Its total
return is the mean of the seeds' total returns, and CAGR, volatility, Sharpe, Sortino, drawdown,
Calmar and fees are all measured on that one curve, so the row agrees with itself (CAGR compounds
its total return over its range, Calmar is its CAGR over its drawdown). Averaging the seeds'
annualised ratios instead does not: over a few days CAGR is convex enough that seeds at -11% and
+10% average to a CAGR in the millions of percent next to a negative total return. The mean curve
was chosen over each metric's median because a median row mixes seeds (its Calmar is not its
CAGR over its drawdown) and, with an even number of seeds, is not any seed's figure at all. The
curve is smoother than one seed's (its volatility and drawdown are a diversified account's).
Trade figures (trades, win rate, profit factor, holding, turnover, exposure) describe one
agent's behaviour and are not annualised: they are the mean per seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from drl_trading.evaluation.metrics import PerformanceMetrics, compute_metrics
from drl_trading.evaluation.trace import SimulationTrace

PER_SEED_FIELDS: tuple[str, ...] = (
    "n_trades",
    "win_rate",
    "profit_factor",
    "avg_holding_bars",
    "turnover",
    "turnover_per_day",
    "exposure",
)
"""The random baseline's figures that are the mean per seed rather than the mean curve's."""


def random_baseline_name(seeds: int) -> str:
    """The random baseline's column name (the JSON report's key, kept since its first version)."""
    return f"random ({seeds} seeds, mean)"


def buy_and_hold_positions(n: int) -> np.ndarray:
    return np.ones(n, dtype=np.float64)


def flat_positions(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.float64)


def random_positions(
    n: int, seed: int, discrete: bool = True, mean_hold: float = 20.0
) -> np.ndarray:
    """A random agent that trades like a plausible policy rather than flipping every bar, so the
    model is compared against random *timing* at a realistic cost, not against a fee bonfire.

    It holds each choice for a geometric number of bars with mean ``mean_hold`` (at least one).
    Discrete: the first position is uniform over {-1, 0, 1} and each new choice is uniform over
    the two *other* values, so every switch is a real trade, runs of equal positions have mean
    length ``mean_hold`` and the long-run share of each value stays one third. Continuous:
    each segment draws uniformly from [-1, 1]. Same ``seed``, same positions.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    if mean_hold < 1:
        raise ValueError(f"mean_hold must be at least 1 bar, got {mean_hold}")
    rng = np.random.default_rng(seed)
    p = 1.0 / mean_hold
    lengths = rng.geometric(p, size=int(n * p) + 16)
    while lengths.sum() < n:
        lengths = np.concatenate((lengths, rng.geometric(p, size=len(lengths))))
    k = int(np.searchsorted(np.cumsum(lengths), n)) + 1  # segments needed to cover n bars
    lengths = lengths[:k]
    if discrete:
        steps = np.concatenate(([rng.integers(0, 3)], rng.integers(1, 3, size=k - 1)))
        values = (np.cumsum(steps) % 3).astype(np.float64) - 1.0
    else:
        values = rng.uniform(-1.0, 1.0, size=k)
    return np.repeat(values, lengths)[:n].astype(np.float64)


def mean_curve(traces: list[SimulationTrace]) -> SimulationTrace:
    """The traces of one symbol's bars (same times, same initial equity) as one account that
    holds an equal share of each: equity, units, costs and fees are the means per step.

    Raises ValueError for no traces or traces over different bars or starting equity."""
    if not traces:
        raise ValueError("mean_curve needs at least one trace")
    first = traces[0]
    for t in traces[1:]:
        if not np.array_equal(t.times, first.times) or t.equity[0] != first.equity[0]:
            raise ValueError(
                f"{first.symbol}: traces to average must share their bars and initial equity"
            )

    def mean(attr: str) -> np.ndarray:
        return np.asarray(np.mean([getattr(t, attr) for t in traces], axis=0), dtype=np.float64)

    return SimulationTrace(
        symbol=first.symbol,
        times=first.times,
        open=first.open,
        close=first.close,
        equity=mean("equity"),
        position=mean("position"),
        units=mean("units"),
        cost=mean("cost"),
        fees=mean("fees"),
        costs=first.costs,
    )


def aggregate_seeds(
    traces: list[SimulationTrace], periods_per_year: float
) -> tuple[PerformanceMetrics, SimulationTrace]:
    """One row for several random seeds: the figures of their `mean_curve`, with the trade
    figures (`PER_SEED_FIELDS`) the mean per seed over its finite values. Returns the row and
    the curve it was measured on."""
    curve = mean_curve(traces)
    row = compute_metrics(curve, periods_per_year, trades=[])
    seeds = [compute_metrics(t, periods_per_year) for t in traces]

    def per_seed(name: str) -> float:
        values = [float(getattr(m, name)) for m in seeds]
        finite = [v for v in values if math.isfinite(v)]
        return float(np.mean(finite)) if finite else values[0]

    aggregated = replace(
        row,
        n_trades=round(per_seed("n_trades")),
        win_rate=per_seed("win_rate"),
        profit_factor=per_seed("profit_factor"),
        avg_holding_bars=per_seed("avg_holding_bars"),
        turnover=per_seed("turnover"),
        turnover_per_day=per_seed("turnover_per_day"),
        exposure=per_seed("exposure"),
    )
    return aggregated, curve


def random_baseline(
    simulate_positions: Callable[[np.ndarray], SimulationTrace],
    n: int,
    seeds: int,
    periods_per_year: float,
) -> tuple[PerformanceMetrics, SimulationTrace]:
    """`random_positions` for seeds 0 .. ``seeds - 1`` over ``n`` steps, each simulated by
    ``simulate_positions`` (the model's bars and costs), combined by `aggregate_seeds`."""
    if seeds < 1:
        raise ValueError(f"the random baseline needs at least one seed, got {seeds}")
    traces = [simulate_positions(random_positions(n, seed)) for seed in range(seeds)]
    return aggregate_seeds(traces, periods_per_year)
