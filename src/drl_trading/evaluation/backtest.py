"""Backtests: a policy and its baselines over the same bars, costs and accounting.

Everything is simulated by `simulate` from positions with the shared cost model
(`drl_trading.common.costs`) that the training environment and the paper broker also follow.
With a strategy, its signal check is applied to every decision as execution applies it live (a
rejected signal keeps the position), so the backtest trades what a paper session would. The
baselines answer "is the model worth anything": buy-and-hold (the market), always flat (zero,
the cost of doing nothing), and a random agent over several seeds (what trading at random
costs with these fees; its seeds are combined on their mean equity curve, see `baselines`),
then two one-line rules on the closes, time-series momentum and a moving-average cross, long or
short where the model may short and long or flat where it may not (what the agent must beat to
have learned more than a textbook rule; their timing is the model's, see `baselines`). The
columns keep that order: the market, doing nothing, chance, then the rules. `best_baseline` is
the one a gate compares the model with.

A symbol's bars can have holes (missing data); each run of consecutive bars is a series, and a
symbol is backtested on its longest one (the others are reported as skipped).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drl_trading.common.costs import CostModel
from drl_trading.common.market_series import MarketSeries
from drl_trading.evaluation.annualisation import annualisation
from drl_trading.evaluation.baselines import (
    BUY_AND_HOLD,
    RuleLookbacks,
    metric_key,
    run_baselines,
)
from drl_trading.evaluation.metrics import (
    PerformanceMetrics,
    Trade,
    compute_metrics,
    extract_trades,
)
from drl_trading.evaluation.report import StrategyResult, SymbolSection
from drl_trading.evaluation.trace import SimulationTrace, simulate
from drl_trading.policy.predictor import Predictor
from drl_trading.policy.run import run_policy
from drl_trading.strategy.api import Strategy
from drl_trading.strategy.signals import signal_rules

LOGGED_METRICS: tuple[str, ...] = ("sharpe", "total_return", "max_drawdown", "n_trades", "sortino")
"""The baselines' figures logged to MLflow (`BacktestResult.baseline_metrics`)."""


@dataclass(frozen=True)
class SymbolBacktest:
    symbol: str
    model: PerformanceMetrics
    trace: SimulationTrace
    trades: list[Trade]
    baselines: dict[str, PerformanceMetrics]
    baseline_traces: dict[str, SimulationTrace]
    skipped_bars: int
    mean_confidence: float | None
    """Mean confidence of the model's decisions; None where not known (a paper session)."""
    rejected_signals: int = 0
    baseline_returns: dict[str, np.ndarray] = field(default_factory=dict)
    """Every baseline's step returns (fraction, net of costs; the random agent's are its seeds'
    mean curve's), aligned with ``trace.step_returns``: what the evaluation report stitches over
    the folds. Returns, not traces, so that a long backtest keeps one array per baseline."""

    def section(self) -> SymbolSection:
        return SymbolSection(
            symbol=self.symbol,
            model=StrategyResult("model", self.model, self.trace),
            baselines=[
                StrategyResult(name, m, self.baseline_traces.get(name))
                for name, m in self.baselines.items()
            ],
            trades=self.trades,
        )


@dataclass(frozen=True)
class BacktestResult:
    symbols: list[SymbolBacktest]
    bars: int
    seconds: float
    costs: CostModel | None = None
    """The cost model every strategy of the backtest paid; None where not known."""
    costs_overridden: bool = False
    """True when ``costs`` replace the model's own (a cost stress test)."""
    annualisation: str | None = None
    """How annualised figures were annualised, e.g. ``6,288 1h bars a year (market calendar
    fx)``; None where not said."""

    @property
    def costs_text(self) -> str | None:
        """The costs as tables and reports state them; None where not known."""
        if self.costs is None:
            return None
        line = f"costs: fee {self.costs.fee_bps:g} bps, slippage {self.costs.slippage_bps:g} bps"
        return line + (" (overridden)" if self.costs_overridden else "")

    @property
    def bars_per_second(self) -> float:
        return self.bars / self.seconds if self.seconds > 0 else float("inf")

    def mean(self, name: str, attr: str) -> float:
        """Equal-weight mean of one metric over symbols (``name`` "model" or a baseline)."""
        values = [
            getattr(s.model if name == "model" else s.baselines[name], attr) for s in self.symbols
        ]
        return float(np.mean(values)) if values else 0.0

    def baseline_metrics(self, per_symbol: bool = False) -> dict[str, float]:
        """Every baseline's `LOGGED_METRICS` as MLflow metrics: ``<baseline>.<metric>`` (the
        equal-weight mean over symbols) or, ``per_symbol``, ``<symbol>.<baseline>.<metric>``;
        ``<baseline>`` is `metric_key` of its column name (``buy-and-hold``, ``random``, ...)."""
        names = list(self.symbols[0].baselines) if self.symbols else []
        if not per_symbol:
            return {
                f"{metric_key(name)}.{attr}": self.mean(name, attr)
                for name in names
                for attr in LOGGED_METRICS
            }
        return {
            f"{s.symbol}.{metric_key(name)}.{attr}": float(getattr(m, attr))
            for s in self.symbols
            for name, m in s.baselines.items()
            for attr in LOGGED_METRICS
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe. Per symbol, ``annualisation`` says whether the range is too short for its
        annualised figures (`drl_trading.evaluation.annualisation`); the figures stay raw.
        ``costs`` (fee and slippage in bps, ``overridden``) appears where the costs are known."""
        out: dict[str, Any] = {
            "bars": self.bars,
            "seconds": round(self.seconds, 4),
            "symbols": {
                s.symbol: {
                    "model": s.model.to_dict(),
                    "baselines": {k: v.to_dict() for k, v in s.baselines.items()},
                    "annualisation": annualisation(s.model).to_dict(),
                    "skipped_bars": s.skipped_bars,
                    "mean_confidence": s.mean_confidence,
                    "rejected_signals": s.rejected_signals,
                }
                for s in self.symbols
            },
        }
        if self.costs is not None:
            out["costs"] = {
                "fee_bps": self.costs.fee_bps,
                "slippage_bps": self.costs.slippage_bps,
                "overridden": self.costs_overridden,
            }
        return out


@dataclass(frozen=True)
class BestBaseline:
    """The baseline of one symbol with the highest Sharpe."""

    symbol: str
    name: str
    metrics: PerformanceMetrics

    @property
    def sharpe(self) -> float:
        return self.metrics.sharpe


def best_baseline(result: BacktestResult) -> dict[str, BestBaseline]:
    """Per symbol, the baseline with the highest Sharpe (the random agent's row is its seeds'
    mean curve): the bar a model has to clear to have learned more than the market, doing
    nothing, chance or a one-line rule. A NaN Sharpe (a wiped-out curve) ranks below every
    number; ties go to the earlier column (buy-and-hold first)."""

    def rank(item: tuple[str, PerformanceMetrics]) -> float:
        sharpe = float(item[1].sharpe)
        return sharpe if not np.isnan(sharpe) else -np.inf

    out: dict[str, BestBaseline] = {}
    for s in result.symbols:
        if not s.baselines:
            raise ValueError(f"{s.symbol}: the backtest has no baselines to compare with")
        name, metrics = max(s.baselines.items(), key=rank)
        out[s.symbol] = BestBaseline(s.symbol, name, metrics)
    return out


def longest_per_symbol(series: list[MarketSeries]) -> dict[str, tuple[MarketSeries, int]]:
    by_symbol: dict[str, list[MarketSeries]] = {}
    for s in series:
        by_symbol.setdefault(s.symbol, []).append(s)
    out = {}
    for sym, parts in by_symbol.items():
        best = max(parts, key=len)
        out[sym] = (best, sum(len(p) for p in parts) - len(best))
    return out


def backtest(
    predictor: Predictor,
    series: list[MarketSeries],
    *,
    costs: CostModel,
    periods_per_year: float,
    random_seeds: int = 5,
    strategy: Strategy | None = None,
    initial_equity: float = 1.0,
    costs_overridden: bool = False,
    annualisation: str | None = None,
    lookbacks: RuleLookbacks = RuleLookbacks(),
) -> BacktestResult:
    """``initial_equity`` matters only with a minimum order notional (dust is in currency).
    ``costs_overridden``: ``costs`` are not the model's own (recorded in the result).
    ``annualisation``: how ``periods_per_year`` came about, for the report.
    ``lookbacks``: the simple rules' lookbacks in base bars; the rules go short only where the
    model's package and the strategy's signal rules both allow shorts."""
    started = time.perf_counter()
    out: list[SymbolBacktest] = []
    bars = 0
    for symbol, (s, skipped) in longest_per_symbol(series).items():
        rules = signal_rules(strategy, symbol) if strategy is not None else None
        run = run_policy(predictor, s, rules=rules)
        allow_short = predictor.manifest.allow_short and (rules is None or rules.allow_short)
        bars += len(s)

        def sim(
            positions: np.ndarray, s: MarketSeries = s, symbol: str = symbol
        ) -> SimulationTrace:
            return simulate(symbol, s.times, s.open, s.close, positions, costs, initial_equity)

        trace = sim(run.positions)
        base = run_baselines(sim, s.close, periods_per_year, random_seeds, lookbacks, allow_short)
        decided = run.confidence[predictor.manifest.window - 1 :]
        out.append(
            SymbolBacktest(
                symbol=symbol,
                model=compute_metrics(trace, periods_per_year),
                trace=trace,
                trades=extract_trades(trace),
                baselines=base.metrics,
                baseline_traces={BUY_AND_HOLD: base.buy_and_hold},
                skipped_bars=skipped,
                mean_confidence=float(decided.mean()) if len(decided) else 0.0,
                rejected_signals=run.rejected,
                baseline_returns=base.returns,
            )
        )
    return BacktestResult(
        out, bars, time.perf_counter() - started, costs, costs_overridden, annualisation
    )
