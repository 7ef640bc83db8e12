"""Two models side by side on the same bars: their figures and whether their Sharpes differ.

Each model's backtest becomes one return series (`portfolio.portfolio_step_returns`: several
symbols are an equal-weight portfolio), and the comparison keeps the step close times both
series have, so a model whose features start later (a longer look-back) is measured on the
bars the other has too. On those bars:

* Sharpe, its interval, the difference of Sharpes and P(A > B) come from one paired stationary
  block bootstrap (`statistics.compare_sharpe_ratios`): both series resampled at the same time
  indices, so their correlation (the same market under both) is kept.
* PSR against 0 (`statistics.probabilistic_sharpe_ratio_of_returns`); none for a series with
  no Sharpe distribution (a model that never trades).
* Sortino, volatility, total return, CAGR and max drawdown by `metrics`' definitions over the
  compounded series (equity 1.0 before the first compared step).
* Trades, exposure and the best baseline (highest equal-weight mean Sharpe over symbols, as the
  walk-forward evidence ranks them) come from each model's whole backtest.

A step without capital (after a bankruptcy) counts as a 0 return, as the walk-forward evidence
counts it: the account lost everything and earns nothing since.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from drl_trading.evaluation.annualisation import Annualisation
from drl_trading.evaluation.backtest import BacktestResult
from drl_trading.evaluation.metrics import cagr_of
from drl_trading.evaluation.portfolio import portfolio_step_returns
from drl_trading.evaluation.statistics import (
    SharpeComparison,
    SharpeInterval,
    compare_sharpe_ratios,
    probabilistic_sharpe_ratio_of_returns,
)

__all__ = ["ComparedModel", "Comparison", "compare_backtests", "shared_returns"]

_ONE_DAY = np.timedelta64(86_400_000_000, "us")
_ZERO = 1e-14
"""As in `metrics`: a downside deviation at or below this is rounding noise."""


@dataclass(frozen=True, slots=True)
class ComparedModel:
    """One side of the comparison. Fractions for returns, drawdown, volatility and exposure;
    Sharpe, Sortino and volatility annualised."""

    label: str  # "A" or "B"
    name: str  # the model's URI
    sharpe: float
    ci_lower: float
    ci_upper: float
    psr: float | None  # P(true Sharpe > 0); None without a Sharpe distribution
    sortino: float
    total_return: float
    cagr: float
    max_drawdown: float
    annual_volatility: float
    n_trades: int  # over all symbols of its backtest
    exposure: float  # share of steps holding units, mean over symbols
    best_baseline: str
    best_baseline_sharpe: float
    equity: npt.NDArray[np.float64]  # at each compared step's close, 1.0 before the first

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.name,
            "sharpe": self.sharpe,
            "sharpe_ci": [self.ci_lower, self.ci_upper],
            "psr": self.psr,
            "sortino": self.sortino,
            "total_return": self.total_return,
            "cagr": self.cagr,
            "max_drawdown": self.max_drawdown,
            "annual_volatility": self.annual_volatility,
            "n_trades": self.n_trades,
            "exposure": self.exposure,
            "best_baseline": {"name": self.best_baseline, "sharpe": self.best_baseline_sharpe},
        }
        return out


@dataclass(frozen=True, slots=True)
class Comparison:
    """Models A and B on the same steps (conventions in the module docstring)."""

    a: ComparedModel
    b: ComparedModel
    sharpe: SharpeComparison
    times: npt.NDArray[np.datetime64]  # (n,) datetime64[us], close time of each compared step
    periods_per_year: float
    annualisation: Annualisation
    """Of the compared span, from the first to the last compared step's close."""

    @property
    def steps(self) -> int:
        return len(self.times)

    def difference_line(self) -> str:
        """``A - B Sharpe 1.23 (90% CI -0.40..2.90), P(A > B) 0.87: not distinguishable at
        90%``."""
        s = self.sharpe
        return (
            f"A - B Sharpe {s.difference:.2f} ({s.confidence:.0%} CI {s.lower:.2f}..{s.upper:.2f})"
            f", P(A > B) {s.probability_a_better:.2f}: {s.verdict()}"
        )

    def rows(self) -> list[tuple[str, str, str]]:
        """The side-by-side table as text: (metric, A, B). Over a range shorter than
        `annualisation.MIN_ANNUALISED_DAYS` CAGR is omitted and the figures scaled to a year are
        marked with the days they come from."""
        ann = self.annualisation
        pct = "{:+.2%}".format

        def mark(label: str, field: str) -> str:
            if not ann.extrapolated(field):
                return label
            return f"{label.removesuffix(' (ann.)')} ({ann.note})"

        def both(fmt: Any, attr: str) -> tuple[str, str]:
            return _text(fmt, getattr(self.a, attr)), _text(fmt, getattr(self.b, attr))

        conf = f"{self.sharpe.confidence:.0%}"
        rows = [
            (mark("Sharpe", "sharpe"), *both("{:.2f}".format, "sharpe")),
            (f"Sharpe {conf} CI", _ci(self.a), _ci(self.b)),
            ("PSR vs 0", *both("{:.2f}".format, "psr")),
            (mark("Sortino", "sortino"), *both("{:.2f}".format, "sortino")),
            ("total return", *both(pct, "total_return")),
            (
                "CAGR",
                *(
                    (ann.omitted_text, ann.omitted_text)
                    if ann.omitted("cagr")
                    else both(pct, "cagr")
                ),
            ),
            ("max drawdown", *both("{:.2%}".format, "max_drawdown")),
            (
                mark("volatility (ann.)", "annual_volatility"),
                *both("{:.2%}".format, "annual_volatility"),
            ),
            ("trades", str(self.a.n_trades), str(self.b.n_trades)),
            ("exposure", *both("{:.1%}".format, "exposure")),
            ("best baseline", self.a.best_baseline, self.b.best_baseline),
            ("best baseline Sharpe", *both("{:.2f}".format, "best_baseline_sharpe")),
        ]
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: both sides' figures, the difference with its interval and probability,
        and what the figures were measured on."""
        s = self.sharpe
        return {
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "difference": {
                "sharpe": s.difference,
                "ci": [s.lower, s.upper],
                "confidence": s.confidence,
                "probability_a_better": s.probability_a_better,
                "distinguishable": s.distinguishable,
                "verdict": s.verdict(),
                "paired": s.paired,
                "block_length": s.a.block_length,
                "resamples": s.a.resamples,
            },
            "steps": self.steps,
            "start": str(self.times[0]) if self.steps else None,
            "end": str(self.times[-1]) if self.steps else None,
            "periods_per_year": self.periods_per_year,
            "annualisation": self.annualisation.to_dict(),
        }


def _text(fmt: Any, value: float | None) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text: str = fmt(value)
    return text


def _ci(side: ComparedModel) -> str:
    return f"{side.ci_lower:.2f}..{side.ci_upper:.2f}"


def shared_returns(
    a: BacktestResult, b: BacktestResult
) -> tuple[npt.NDArray[np.datetime64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Both backtests' portfolio step returns at the step close times they share (NaN after a
    bankruptcy becomes 0): times, A's returns, B's returns."""
    times_a, returns_a = portfolio_step_returns(a)
    times_b, returns_b = portfolio_step_returns(b)
    shared = np.intersect1d(times_a, times_b)
    ra = np.nan_to_num(returns_a[np.isin(times_a, shared)], nan=0.0)
    rb = np.nan_to_num(returns_b[np.isin(times_b, shared)], nan=0.0)
    return shared, ra, rb


def _best_baseline(result: BacktestResult) -> tuple[str, float]:
    names = list(result.symbols[0].baselines) if result.symbols else []
    if not names:
        return "-", math.nan

    def rank(name: str) -> float:
        sharpe = result.mean(name, "sharpe")
        return sharpe if not math.isnan(sharpe) else -math.inf

    best = max(names, key=rank)
    return best, result.mean(best, "sharpe")


def _side(
    label: str,
    name: str,
    result: BacktestResult,
    returns: npt.NDArray[np.float64],
    interval: SharpeInterval,
    ppy: float,
) -> ComparedModel:
    equity = np.concatenate(([1.0], np.cumprod(1.0 + returns)))
    peak = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(peak > 0, 1.0 - equity / peak, 0.0)
    n = len(returns)
    std = float(returns.std(ddof=1)) if n >= 2 else 0.0
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2))) if n else 0.0
    scale = math.sqrt(ppy)
    try:
        psr: float | None = probabilistic_sharpe_ratio_of_returns(returns)
    except ValueError:  # constant returns: no Sharpe distribution
        psr = None
    best, best_sharpe = _best_baseline(result)
    return ComparedModel(
        label=label,
        name=name,
        sharpe=interval.sharpe,
        ci_lower=interval.lower,
        ci_upper=interval.upper,
        psr=psr,
        sortino=float(returns.mean()) / downside * scale if downside > _ZERO else 0.0,
        total_return=float(equity[-1] - 1.0),
        cagr=cagr_of(float(equity[-1]), n, ppy),
        max_drawdown=max(float(depth.max()), 0.0),
        annual_volatility=std * scale,
        n_trades=sum(s.model.n_trades for s in result.symbols),
        exposure=result.mean("model", "exposure"),
        best_baseline=best,
        best_baseline_sharpe=best_sharpe,
        equity=equity[1:],
    )


def compare_backtests(
    a: BacktestResult,
    b: BacktestResult,
    names: tuple[str, str],
    periods_per_year: float,
    *,
    confidence: float = 0.90,
    resamples: int = 1000,
    seed: int = 0,
) -> Comparison:
    """Compare backtest ``a`` of model ``names[0]`` with ``b`` of ``names[1]``, both annualised
    with ``periods_per_year``, on the steps both have. ValueError when they share fewer steps
    than the bootstrap needs (`statistics.MIN_BOOTSTRAP_OBSERVATIONS`)."""
    times, ra, rb = shared_returns(a, b)
    stats = compare_sharpe_ratios(
        ra, rb, periods_per_year, confidence=confidence, resamples=resamples, seed=seed
    )
    span = float((times[-1] - times[0]) / _ONE_DAY) if len(times) else 0.0
    return Comparison(
        a=_side("A", names[0], a, ra, stats.a, periods_per_year),
        b=_side("B", names[1], b, rb, stats.b, periods_per_year),
        sharpe=stats,
        times=times,
        periods_per_year=periods_per_year,
        annualisation=Annualisation(span_days=max(span, 0.0)),
    )
