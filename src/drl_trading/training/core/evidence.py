"""The walk-forward evidence a champion gate judges: out-of-sample returns over folds and seeds.

Every fold's validation range lies after its training range and before the next fold's
validation (they touch, never overlap) and all of them before the test range, which no decision
here reads. Per seed, the folds' validation backtests are stitched in time order into one
out-of-sample return series, net of costs (the model's `SimulationTrace.step_returns`; several
symbols are one equal-weight portfolio, see `portfolio_returns`).

Conventions (numbers the gate and the report quote):

* The OOS Sharpe is the annualised Sharpe of the **seeds' mean return series**: at each step
  the mean of the seeds' returns, i.e. an equal split of capital over the seeds' models,
  rebalanced each step. A seed's step without capital (after its bankruptcy) counts as a 0
  return there. Its per-seed Sharpes (NaN steps dropped, as `metrics` does) give the spread.
* Confidence interval: `statistics.sharpe_confidence_interval` (stationary block bootstrap,
  1,000 resamples, seeded) of that mean series, at the gate's confidence.
* Baselines are the same bars and costs as the model: a baseline's OOS Sharpe is the
  bar-weighted mean over folds of its fold Sharpe (itself the mean over symbols), since the
  backtests keep the baselines' figures, not their step returns. The best baseline is the one
  with the highest such Sharpe over the whole OOS span (one rule chosen for all folds: picking
  the best per fold would be hindsight).
* PSR against 0 and against the best baseline's Sharpe; DSR with the trial count and the
  variance of the trials' annualised Sharpes (`Trials`; when fewer than two trial Sharpes are
  known, the sampling variance a skill-less Sharpe estimate has over these returns,
  ``periods_per_year / (n - 1)``).
* Max drawdown: the worst over seeds of each seed's stitched equity curve (fraction of peak).

A return series too short (< 8 steps) or constant (a model that never trades) has no Sharpe
distribution: its PSR and DSR are 0 and its interval is the point, so a gate refuses it; the
evidence says why in ``note``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from drl_trading.common.domain import TimeRange
from drl_trading.evaluation.backtest import BacktestResult
from drl_trading.evaluation.baselines import BUY_AND_HOLD
from drl_trading.evaluation.oos_series import OosSeries, TradeMarks
from drl_trading.evaluation.portfolio import portfolio_returns, portfolio_step_returns
from drl_trading.evaluation.statistics import (
    MIN_BOOTSTRAP_OBSERVATIONS,
    deflated_sharpe_ratio_of_returns,
    probabilistic_sharpe_ratio_of_returns,
    sharpe_confidence_interval,
    sharpe_ratio,
)

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "Evidence",
    "FoldFigures",
    "FoldOutcome",
    "Trials",
    "fold_outcome",
    "oos_sharpe",
    "portfolio_returns",
    "walk_forward_evidence",
]

BOOTSTRAP_RESAMPLES = 1000
"""Resamples of the confidence interval: a 90% bound rests on about 50 draws."""

Returns = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Trials:
    """How many trials were run for this model before this run, and their Sharpes.

    ``count``: trials (seeds x configurations) logged by earlier runs of this model.
    ``sharpes``: the annualised out-of-sample Sharpes those trials logged (one per seed where a
    run logged them, else the run's validation Sharpe)."""

    count: int = 0
    sharpes: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class FoldOutcome:
    """One fold's validation backtests, one per seed."""

    fold: int
    validation: TimeRange
    seed_returns: tuple[Returns, ...]
    """Per seed, the portfolio step returns of the fold's validation backtest (fraction)."""
    baseline_sharpes: Mapping[str, float]
    """Per baseline column, its Sharpe on these bars (mean over symbols); seed-independent."""
    times: npt.NDArray[np.datetime64] = field(
        default_factory=lambda: np.zeros(0, dtype="datetime64[us]")
    )
    """Close time (datetime64[us], UTC) of each step of ``seed_returns``; empty where not known
    (then the evidence keeps no `OosSeries` for the report)."""
    baseline_returns: Mapping[str, Returns] = field(default_factory=dict)
    """Per baseline column, its portfolio step returns over the same steps (fraction)."""
    marks: tuple[TradeMarks, ...] = ()
    """Per symbol, the configured seed's (seed index 0) path and fills, for trade markers."""


@dataclass(frozen=True, slots=True)
class FoldFigures:
    fold: int
    validation: TimeRange
    steps: int
    sharpe: float  # annualised, of the seeds' mean returns on this fold
    seed_sharpes: tuple[float, ...]
    best_baseline: str
    best_baseline_sharpe: float
    buy_and_hold_sharpe: float


@dataclass(frozen=True, slots=True)
class Evidence:
    """The out-of-sample statistics of one run (conventions in the module docstring)."""

    sharpe: float
    ci_lower: float
    ci_upper: float
    confidence: float
    psr: float  # probability that the true Sharpe exceeds 0
    psr_vs_best_baseline: float
    best_baseline: str
    best_baseline_sharpe: float
    buy_and_hold_sharpe: float
    dsr: float
    trials: int  # earlier runs' trials plus this run's seeds
    trial_sharpe_variance: float  # of annualised Sharpes
    trial_variance_source: str  # "<k> trial Sharpes" or "sampling variance"
    seed_sharpes: tuple[float, ...]
    max_drawdown: float  # fraction of peak equity
    steps: int
    periods_per_year: float
    folds: tuple[FoldFigures, ...]
    note: str | None = None
    series: OosSeries | None = field(default=None, compare=False, repr=False)
    """The stitched series the figures were measured on, for the evaluation report; None where
    the outcomes did not keep their step times. Not in `metrics` or `to_dict` (arrays)."""

    @property
    def trials_text(self) -> str:
        """``1 trial`` / ``12 trials``: how the verdict and the report count them."""
        return f"{self.trials} trial{'' if self.trials == 1 else 's'}"

    @property
    def seeds(self) -> int:
        return len(self.seed_sharpes)

    @property
    def seed_sharpe_std(self) -> float:
        """Standard deviation (ddof=1) of the per-seed Sharpes; 0.0 for one seed."""
        return float(np.std(self.seed_sharpes, ddof=1)) if self.seeds > 1 else 0.0

    def metrics(self) -> dict[str, float]:
        """The evidence as MLflow metrics (``evidence.*``); per-seed Sharpes are what later runs
        of this model read back as their trials (`training.core.trials`)."""
        out = {
            "evidence.sharpe": self.sharpe,
            "evidence.ci_lower": self.ci_lower,
            "evidence.ci_upper": self.ci_upper,
            "evidence.psr": self.psr,
            "evidence.psr_vs_best_baseline": self.psr_vs_best_baseline,
            "evidence.best_baseline_sharpe": self.best_baseline_sharpe,
            "evidence.buy_and_hold_sharpe": self.buy_and_hold_sharpe,
            "evidence.dsr": self.dsr,
            "evidence.trials": float(self.trials),
            "evidence.trial_sharpe_variance": self.trial_sharpe_variance,
            "evidence.seeds": float(self.seeds),
            "evidence.seed_sharpe_std": self.seed_sharpe_std,
            "evidence.max_drawdown": self.max_drawdown,
            "evidence.steps": float(self.steps),
        }
        out |= {f"evidence.seed{i}.sharpe": s for i, s in enumerate(self.seed_sharpes)}
        for f in self.folds:
            out[f"evidence.fold{f.fold}.sharpe"] = f.sharpe
            out[f"evidence.fold{f.fold}.best_baseline_sharpe"] = f.best_baseline_sharpe
        return out

    def to_dict(self) -> dict[str, object]:
        """JSON-safe, for the run's artifacts and the report."""
        return {
            "sharpe": self.sharpe,
            "confidence_interval": [self.ci_lower, self.ci_upper],
            "confidence": self.confidence,
            "psr": self.psr,
            "psr_vs_best_baseline": self.psr_vs_best_baseline,
            "best_baseline": {"name": self.best_baseline, "sharpe": self.best_baseline_sharpe},
            "buy_and_hold_sharpe": self.buy_and_hold_sharpe,
            "dsr": self.dsr,
            "trials": self.trials,
            "trial_sharpe_variance": self.trial_sharpe_variance,
            "trial_variance_source": self.trial_variance_source,
            "seed_sharpes": list(self.seed_sharpes),
            "seed_sharpe_std": self.seed_sharpe_std,
            "max_drawdown": self.max_drawdown,
            "steps": self.steps,
            "periods_per_year": self.periods_per_year,
            "note": self.note,
            "folds": [
                {
                    "fold": f.fold,
                    "validation": [f.validation.start.isoformat(), f.validation.end.isoformat()],
                    "steps": f.steps,
                    "sharpe": f.sharpe,
                    "seed_sharpes": list(f.seed_sharpes),
                    "best_baseline": {"name": f.best_baseline, "sharpe": f.best_baseline_sharpe},
                    "buy_and_hold_sharpe": f.buy_and_hold_sharpe,
                }
                for f in self.folds
            ],
        }


def fold_outcome(
    fold: int, validation: TimeRange, results: Sequence[BacktestResult]
) -> FoldOutcome:
    """The `FoldOutcome` of one fold's validation backtests (one per seed, same bars)."""
    if not results:
        raise ValueError(f"fold {fold}: no validation backtest to take evidence from")
    names = list(results[0].symbols[0].baselines) if results[0].symbols else []
    times, first = portfolio_step_returns(results[0])
    return FoldOutcome(
        fold=fold,
        validation=validation,
        seed_returns=(first, *(portfolio_returns(r) for r in results[1:])),
        baseline_sharpes={name: results[0].mean(name, "sharpe") for name in names},
        times=times,
        baseline_returns=_baseline_portfolio_returns(results[0], times),
        marks=tuple(
            TradeMarks.from_path(
                s.symbol, fold, s.trace.times, s.trace.open, s.trace.close, s.trace.units
            )
            for s in results[0].symbols
        ),
    )


def _baseline_portfolio_returns(
    result: BacktestResult, shared: npt.NDArray[np.datetime64]
) -> dict[str, Returns]:
    """Each baseline's returns as one equal-weight portfolio over the symbols, at the step close
    times ``shared`` the model's portfolio has (`portfolio_step_returns`' convention); a baseline
    whose returns a symbol did not keep is left out."""
    if not result.symbols:
        return {}
    out: dict[str, Returns] = {}
    for name in result.symbols[0].baselines:
        if any(name not in s.baseline_returns for s in result.symbols):
            continue
        columns = [
            np.asarray(s.baseline_returns[name], dtype=np.float64)[
                np.isin(s.trace.times[1:], shared)
            ]
            for s in result.symbols
        ]
        stacked = np.vstack(columns)
        with np.errstate(invalid="ignore"):
            out[name] = np.where(
                np.isnan(stacked).all(axis=0), np.nan, np.nanmean(np.nan_to_num(stacked), axis=0)
            )
    return out


def _series(outcomes: Sequence[FoldOutcome], seeds: int) -> OosSeries | None:
    """The outcomes stitched for the report: each fold cut to the steps every seed and the
    times have (they are the same bars, so normally all of them)."""
    if any(len(o.times) == 0 and len(o.seed_returns[0]) > 0 for o in outcomes):
        return None
    names = [
        n for n in outcomes[0].baseline_returns if all(n in o.baseline_returns for o in outcomes)
    ]
    times: list[npt.NDArray[np.datetime64]] = []
    per_seed: list[list[Returns]] = [[] for _ in range(seeds)]
    baselines: dict[str, list[Returns]] = {n: [] for n in names}
    starts: list[int] = []
    at = 0
    for o in outcomes:
        n = min(len(o.times), *(len(r) for r in o.seed_returns))
        starts.append(at)
        at += n
        times.append(o.times[:n])
        for s in range(seeds):
            per_seed[s].append(o.seed_returns[s][:n])
        for name in names:
            baselines[name].append(np.asarray(o.baseline_returns[name], dtype=np.float64)[:n])
    return OosSeries(
        times=np.concatenate(times).astype("datetime64[us]"),
        seed_returns=tuple(np.concatenate(parts) for parts in per_seed),
        baseline_returns={name: np.concatenate(parts) for name, parts in baselines.items()},
        fold_starts=tuple(starts),
        marks=tuple(m for o in outcomes for m in o.marks),
    )


def _mean_over_seeds(seed_returns: Sequence[Returns]) -> Returns:
    n = min(len(r) for r in seed_returns)
    stacked = np.vstack([np.nan_to_num(r[:n], nan=0.0) for r in seed_returns])
    mean: Returns = stacked.mean(axis=0)
    return mean


def _defined(r: Returns) -> Returns:
    out: Returns = r[np.isfinite(r)]
    return out


def _max_drawdown(r: Returns) -> float:
    if len(r) == 0:
        return 0.0
    equity = np.cumprod(1.0 + np.nan_to_num(r, nan=0.0))
    peak = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    return float(np.max(1.0 - equity / peak))


def oos_sharpe(outcomes: Sequence[FoldOutcome], periods_per_year: float) -> float:
    """The annualised out-of-sample Sharpe of ``outcomes`` stitched (the seeds' mean return
    series, the module's convention): `walk_forward_evidence`'s ``sharpe`` without the rest of
    the evidence, cheap enough to measure after every fold (a tuning trial's intermediate
    value)."""
    if not outcomes:
        raise ValueError("no folds to take a Sharpe from")
    seeds = len(outcomes[0].seed_returns)
    per_seed = [np.concatenate([o.seed_returns[s] for o in outcomes]) for s in range(seeds)]
    return sharpe_ratio(_mean_over_seeds(per_seed), periods_per_year)


def walk_forward_evidence(
    outcomes: Sequence[FoldOutcome],
    periods_per_year: float,
    past: Trials = Trials(),
    *,
    confidence: float = 0.90,
    seed: int = 0,
) -> Evidence:
    """Stitch ``outcomes`` (in fold order, each with the same number of seeds) and measure them.

    ``past``: trials earlier runs of this model ran; this run's seeds are added to the count and
    their per-seed Sharpes to the variance. ``confidence``: two-sided coverage of the interval
    (its lower bound is what the gate compares with the best baseline). ``seed`` seeds the
    bootstrap."""
    if not outcomes:
        raise ValueError("no folds to take evidence from")
    seeds = len(outcomes[0].seed_returns)
    if seeds == 0 or any(len(o.seed_returns) != seeds for o in outcomes):
        raise ValueError(
            "every fold needs the same number (>= 1) of seeds' backtests, got "
            f"{[len(o.seed_returns) for o in outcomes]}"
        )
    ppy = periods_per_year
    per_seed = [np.concatenate([o.seed_returns[s] for o in outcomes]) for s in range(seeds)]
    mean = _mean_over_seeds(per_seed)
    seed_sharpes = tuple(sharpe_ratio(_defined(r), ppy) for r in per_seed)
    steps = len(mean)

    folds = []
    weights = np.array([len(_mean_over_seeds(o.seed_returns)) for o in outcomes], dtype=float)
    for o in outcomes:
        fold_mean = _mean_over_seeds(o.seed_returns)
        best_name, best_sharpe = _best(o.baseline_sharpes)
        folds.append(
            FoldFigures(
                fold=o.fold,
                validation=o.validation,
                steps=len(fold_mean),
                sharpe=sharpe_ratio(fold_mean, ppy),
                seed_sharpes=tuple(sharpe_ratio(_defined(r), ppy) for r in o.seed_returns),
                best_baseline=best_name,
                best_baseline_sharpe=best_sharpe,
                buy_and_hold_sharpe=float(o.baseline_sharpes.get(BUY_AND_HOLD, math.nan)),
            )
        )
    names = list(outcomes[0].baseline_sharpes)
    w = weights / weights.sum() if weights.sum() > 0 else np.full(len(outcomes), 1 / len(outcomes))
    stitched = {
        name: float(np.dot(w, [o.baseline_sharpes.get(name, math.nan) for o in outcomes]))
        for name in names
    }
    best_name, best_sharpe = _best(stitched)

    trial_sharpes = [*past.sharpes, *seed_sharpes]
    if len(trial_sharpes) >= 2:
        variance = float(np.var(trial_sharpes, ddof=1))
        source = f"{len(trial_sharpes)} trial Sharpes"
    else:
        variance = ppy / max(steps - 1, 1)
        source = "sampling variance"
    trials = past.count + seeds

    sharpe = sharpe_ratio(mean, ppy)
    note = None
    lower = upper = sharpe
    psr = psr_base = dsr = 0.0
    if steps < MIN_BOOTSTRAP_OBSERVATIONS or not float(np.std(mean)) > 1e-14:
        note = (
            f"{steps} out-of-sample steps"
            + (" of constant returns" if steps >= MIN_BOOTSTRAP_OBSERVATIONS else "")
            + ": no Sharpe distribution, counted as no evidence of skill"
        )
    else:
        try:
            interval = sharpe_confidence_interval(
                mean, ppy, confidence=confidence, resamples=BOOTSTRAP_RESAMPLES, seed=seed
            )
            benchmark = best_sharpe if math.isfinite(best_sharpe) else 0.0
            psr = probabilistic_sharpe_ratio_of_returns(mean, 0.0, ppy)
            psr_base = probabilistic_sharpe_ratio_of_returns(mean, benchmark, ppy)
            dsr = deflated_sharpe_ratio_of_returns(mean, trials, variance, ppy)
            lower, upper = interval.lower, interval.upper
        except ValueError as exc:  # degenerate moments (a two-point return distribution)
            psr = psr_base = dsr = 0.0
            note = f"no Sharpe distribution ({exc}), counted as no evidence of skill"
    return Evidence(
        sharpe=sharpe,
        ci_lower=lower,
        ci_upper=upper,
        confidence=confidence,
        psr=psr,
        psr_vs_best_baseline=psr_base,
        best_baseline=best_name,
        best_baseline_sharpe=best_sharpe,
        buy_and_hold_sharpe=stitched.get(BUY_AND_HOLD, math.nan),
        dsr=dsr,
        trials=trials,
        trial_sharpe_variance=variance,
        trial_variance_source=source,
        seed_sharpes=seed_sharpes,
        max_drawdown=max(_max_drawdown(r) for r in per_seed),
        steps=steps,
        periods_per_year=ppy,
        folds=tuple(folds),
        note=note,
        series=_series(outcomes, seeds),
    )


def _best(sharpes: Mapping[str, float]) -> tuple[str, float]:
    """The baseline with the highest Sharpe (NaN ranks last; ties: the earlier column)."""
    if not sharpes:
        return "none", math.nan
    name = max(sharpes, key=lambda k: sharpes[k] if math.isfinite(sharpes[k]) else -math.inf)
    return name, float(sharpes[name])
