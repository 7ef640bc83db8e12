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

Two one-line rules ask whether the model beats what a textbook trader gets from the closes alone
(`rule_positions`): time-series momentum (long when the close is above the close ``momentum``
bars earlier) and a simple-moving-average cross (long when the ``sma_fast``-bar mean is above the
``sma_slow``-bar mean). Lookbacks are counted in bars of the series' base timeframe; the defaults
(20, 10/50) are the usual textbook choices. Both are decided at each bar's close from the closes up
to that bar and held over the next bar, exactly like the model's positions (the target decided at
bar i's close fills at bar i+1's open); they start flat until their lookback is filled. On the
other side of the signal they go short where the model may (``allow_short``), else flat, so they
play in the model's action space; when long or short they are fully invested (±1, like
buy-and-hold), not scaled to the model's ``max_position``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

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


BUY_AND_HOLD = "buy-and-hold"
FLAT = "flat"

_SMA_TIE = 1e-12
"""Relative gap under which the two means count as equal (flat): a constant stretch of closes
must not flip the cross on the rounding of two means of the same numbers."""


@dataclass(frozen=True)
class RuleLookbacks:
    """The simple rules' lookbacks, in bars of the base timeframe."""

    momentum: int = 20
    sma_fast: int = 10
    sma_slow: int = 50

    def __post_init__(self) -> None:
        for name in ("momentum", "sma_fast", "sma_slow"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"the {name} lookback must be at least 1 bar, got {getattr(self, name)}"
                )
        if self.sma_fast >= self.sma_slow:
            raise ValueError(
                f"the fast moving average ({self.sma_fast} bars) must be shorter than the slow one "
                f"({self.sma_slow} bars)"
            )

    @property
    def momentum_name(self) -> str:
        """The momentum rule's column name (its JSON key)."""
        return f"momentum ({self.momentum} bars)"

    @property
    def sma_cross_name(self) -> str:
        """The moving-average cross's column name (its JSON key)."""
        return f"SMA cross ({self.sma_fast}/{self.sma_slow} bars)"


def metric_key(name: str) -> str:
    """A baseline's name as an MLflow metric key part: its label without the parenthesised
    parameters, lower case, spaces as dashes (``random (5 seeds, mean)`` -> ``random``,
    ``SMA cross (10/50 bars)`` -> ``sma-cross``); MLflow refuses parentheses and commas."""
    return name.split(" (", 1)[0].strip().lower().replace(" ", "-")


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


def _signal_positions(up: np.ndarray, down: np.ndarray, allow_short: bool) -> np.ndarray:
    return np.where(up, 1.0, np.where(down, -1.0 if allow_short else 0.0, 0.0))


def momentum_positions(close: np.ndarray, lookback: int, allow_short: bool) -> np.ndarray:
    """Time-series momentum over the closes of bars 0..n: the position decided at bar t's close
    (t = 0..n-1, as `run_policy` decides) is long when ``close[t] > close[t - lookback]``, short
    (``allow_short``) or flat when it is below, flat when equal or before bar ``lookback``."""
    if lookback < 1:
        raise ValueError(f"the momentum lookback must be at least 1 bar, got {lookback}")
    c = np.asarray(close, dtype=np.float64)
    n = max(len(c) - 1, 0)
    positions = np.zeros(n, dtype=np.float64)
    if n > lookback:
        now, then = c[lookback:n], c[: n - lookback]
        positions[lookback:] = _signal_positions(now > then, now < then, allow_short)
    return positions


def sma_cross_positions(close: np.ndarray, fast: int, slow: int, allow_short: bool) -> np.ndarray:
    """A simple-moving-average cross over the closes of bars 0..n: the position decided at bar
    t's close (t = 0..n-1) is long when the mean of the last ``fast`` closes (bar t included) is
    above the mean of the last ``slow``, short (``allow_short``) or flat when below, flat when
    they agree to a relative 1e-12 or before bar ``slow - 1``. Each mean is summed over its own
    window, so no bar after t (and no rounding drift of a running sum) reaches it."""
    RuleLookbacks(sma_fast=fast, sma_slow=slow)  # validates the pair
    c = np.asarray(close, dtype=np.float64)
    n = max(len(c) - 1, 0)
    positions = np.zeros(n, dtype=np.float64)
    if n >= slow:
        decided = c[:n]
        fast_ma = np.lib.stride_tricks.sliding_window_view(decided, fast).mean(axis=1)[
            slow - fast :
        ]
        slow_ma = np.lib.stride_tricks.sliding_window_view(decided, slow).mean(axis=1)
        gap = fast_ma - slow_ma
        tie = _SMA_TIE * np.abs(slow_ma)
        positions[slow - 1 :] = _signal_positions(gap > tie, gap < -tie, allow_short)
    return positions


def rule_positions(
    close: np.ndarray, lookbacks: RuleLookbacks, allow_short: bool
) -> dict[str, np.ndarray]:
    """The simple rules' positions over the closes of bars 0..n (n each, decided at bars
    0..n-1), by column name: momentum, then the moving-average cross."""
    return {
        lookbacks.momentum_name: momentum_positions(close, lookbacks.momentum, allow_short),
        lookbacks.sma_cross_name: sma_cross_positions(
            close, lookbacks.sma_fast, lookbacks.sma_slow, allow_short
        ),
    }


@dataclass(frozen=True)
class BaselineRun:
    """Every baseline of one symbol's bars, in the report's column order (buy-and-hold, flat,
    random, then the rules): each column's metrics and step returns (fraction per step), and
    buy-and-hold's trace (the market, drawn beside the model)."""

    metrics: dict[str, PerformanceMetrics]
    returns: dict[str, np.ndarray]
    buy_and_hold: SimulationTrace


def run_baselines(
    simulate_positions: Callable[[np.ndarray], SimulationTrace],
    close: np.ndarray,
    periods_per_year: float,
    random_seeds: int,
    lookbacks: RuleLookbacks,
    allow_short: bool,
) -> BaselineRun:
    """All baselines over the bars of ``close`` (n + 1 closes, n steps), each simulated by
    ``simulate_positions`` (the model's bars, costs and starting equity): what a backtest and a
    paper session report alike. ``allow_short``: whether the rules may go short."""
    n = len(close) - 1
    bh = simulate_positions(buy_and_hold_positions(n))
    flat = simulate_positions(flat_positions(n))
    rand, rand_curve = random_baseline(simulate_positions, n, random_seeds, periods_per_year)
    random_name = random_baseline_name(random_seeds)
    metrics = {
        BUY_AND_HOLD: compute_metrics(bh, periods_per_year),
        FLAT: compute_metrics(flat, periods_per_year),
        random_name: rand,
    }
    returns = {
        BUY_AND_HOLD: bh.step_returns,
        FLAT: flat.step_returns,
        random_name: rand_curve.step_returns,
    }
    for name, positions in rule_positions(close, lookbacks, allow_short).items():
        rule = simulate_positions(positions)
        metrics[name] = compute_metrics(rule, periods_per_year)
        returns[name] = rule.step_returns
    return BaselineRun(metrics, returns, bh)
