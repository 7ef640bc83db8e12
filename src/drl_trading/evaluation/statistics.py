"""How much a Sharpe ratio can be trusted: its bootstrap interval, PSR and deflated Sharpe.

A Sharpe ratio measured on a finite, autocorrelated, fat-tailed return series is an estimate;
picking the best of many trials inflates it further. These pure functions (numpy in, floats out,
no I/O) put numbers on both, for the walk-forward protocol, the champion gate and the report.

Conventions (r: the n per-period returns net of costs, ppy: periods per year, see
`drl_trading.evaluation.metrics.periods_per_year`):

* Sharpe ``SR = mean(r) / std(r, ddof=1)``, risk-free rate 0, exactly as `metrics` defines it;
  `sharpe_ratio` annualises it by ``sqrt(ppy)``. The PSR and DSR formulas take the
  *per-period* (non-annualised) SR: divide an annualised one by ``sqrt(ppy)``; the
  ``..._of_returns`` conveniences do that conversion for their annualised arguments.
* Skewness ``g3 = m3 / m2**1.5`` and kurtosis ``g4 = m4 / m2**2`` from the biased central
  moments ``mk = mean((r - mean(r))**k)`` (scipy.stats' defaults). Kurtosis is **Pearson's**:
  a normal distribution has 3 (excess kurtosis + 3). Every distribution has g4 >= 1 + g3**2;
  a smaller value is refused, since it usually means excess kurtosis was passed.
* Probabilistic Sharpe ratio (Bailey & López de Prado 2012, "The Sharpe ratio efficient
  frontier"): the probability that the true SR exceeds a benchmark SR*, given the estimate's
  sampling error under non-normal returns::

      PSR(SR*) = Phi((SR - SR*) * sqrt(n - 1) / sqrt(1 - g3 * SR + (g4 - 1) / 4 * SR**2))

  The benchmark is taken as known (a threshold), not as a second estimate.
* Deflated Sharpe ratio (Bailey & López de Prado 2014, "The deflated Sharpe ratio: correcting
  for selection bias, backtest overfitting and non-normality"): the PSR against the Sharpe
  the best of N skill-less trials is expected to reach, with V the variance of the trials'
  SR estimates (Gumbel approximation of the maximum of N normals; gamma is the
  Euler-Mascheroni constant)::

      SR0 = sqrt(V) * ((1 - gamma) * Phi^-1(1 - 1/N) + gamma * Phi^-1(1 - 1/(N e)))
      DSR = PSR(SR0)

  One trial has nothing to deflate: SR0 = 0 and the DSR is the PSR against 0.
* Confidence interval: the percentile interval of the annualised Sharpe over block-bootstrap
  resamples of the returns (arch's stationary bootstrap of Politis & Romano 1994 by default,
  or its circular block bootstrap), the block length chosen by Politis & White (2004, with
  Patton, Politis & White's 2009 correction) unless given. Resampling blocks keeps the
  autocorrelation that an i.i.d. bootstrap would destroy, so a trending or mean-reverting
  return series gets the wider interval it deserves. Seeded: the same inputs give the same
  interval.
* Comparing two Sharpes on the same periods (`compare_sharpe_ratios`): a paired stationary
  bootstrap, the same time indices of both series per resample, so their correlation is kept;
  the percentile interval of ``SR_a - SR_b`` and the share of resamples with ``SR_a > SR_b``.

Inputs are refused with a ValueError that names the problem: non-finite returns (a bankrupt
trace's returns are NaN after its last -1: drop them, as `metrics` does), fewer than
`MIN_OBSERVATIONS` returns, and returns with a numerically zero std (a flat strategy has no
Sharpe distribution to speak of). `sharpe_ratio` alone follows `metrics` there and gives 0.0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "EULER_MASCHERONI",
    "MIN_BOOTSTRAP_OBSERVATIONS",
    "MIN_OBSERVATIONS",
    "BootstrapKind",
    "ReturnMoments",
    "SharpeComparison",
    "SharpeInterval",
    "compare_sharpe_ratios",
    "deflated_sharpe_ratio",
    "deflated_sharpe_ratio_of_returns",
    "expected_max_sharpe",
    "probabilistic_sharpe_ratio",
    "probabilistic_sharpe_ratio_of_returns",
    "return_moments",
    "sharpe_confidence_interval",
    "sharpe_ratio",
    "sharpe_standard_error",
]

EULER_MASCHERONI = 0.5772156649015329
"""gamma, the limit of H_n - ln(n); weights the two quantiles of the expected maximum."""
MIN_OBSERVATIONS = 3
"""Returns needed for a skewness (and so a PSR or DSR): two points are always symmetric."""
MIN_BOOTSTRAP_OBSERVATIONS = 8
"""Returns needed for the bootstrap interval: the automatic block-length rule (arch's
`optimal_block_length`) cannot estimate the autocorrelations from fewer."""
MIN_RESAMPLES = 100
"""Fewer resamples leave a 95% percentile bound resting on two or three draws."""

_ZERO_STD = 1e-14
"""As in `metrics`: a per-period std at or below this is rounding noise, not risk."""
_KURTOSIS_SLACK = 1e-9
"""Relative rounding allowed below the bound kurtosis >= 1 + skew**2."""
_NORMAL = NormalDist()

BootstrapKind = Literal["stationary", "circular"]


@dataclass(frozen=True, slots=True)
class ReturnMoments:
    """What the PSR and DSR need from a return series; conventions in the module docstring."""

    sharpe: float  # per period (not annualised): mean / std(ddof=1)
    n: int  # number of returns
    skew: float  # biased sample skewness, m3 / m2**1.5
    kurtosis: float  # biased sample Pearson kurtosis, m4 / m2**2 (normal: 3)


@dataclass(frozen=True, slots=True)
class SharpeInterval:
    """A two-sided bootstrap confidence interval of an annualised Sharpe ratio."""

    sharpe: float  # annualised point estimate on the returns themselves
    lower: float  # annualised, the (1 - confidence) / 2 quantile of the resampled Sharpes
    upper: float  # annualised, the (1 + confidence) / 2 quantile
    confidence: float  # two-sided coverage, a fraction (0.95)
    block_length: int  # periods: mean block length (stationary) or block length (circular)
    resamples: int  # bootstrap resamples drawn
    bootstrap: BootstrapKind  # which block bootstrap drew them


def _finite_returns(returns: npt.ArrayLike) -> npt.NDArray[np.float64]:
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(
            f"returns must be one-dimensional (one return per period), got shape {r.shape}"
        )
    bad = ~np.isfinite(r)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"returns hold {int(bad.sum())} non-finite value(s) (the first at index {first}: "
            f"{r[first]}); statistics need finite returns: after a bankruptcy a trace's "
            "returns are NaN (no capital), so pass only its defined ones, "
            "r[np.isfinite(r)], which is what the backtest metrics measure"
        )
    return r


def _per_period_sharpe(r: npt.NDArray[np.float64]) -> float:
    if len(r) < 2:
        return 0.0
    std = float(r.std(ddof=1))
    return float(r.mean()) / std if std > _ZERO_STD else 0.0


def _varying_returns(returns: npt.ArrayLike, minimum: int) -> npt.NDArray[np.float64]:
    r = _finite_returns(returns)
    if len(r) < minimum:
        raise ValueError(
            f"{len(r)} return(s) given, at least {minimum} are needed: "
            "evaluate over a longer out-of-sample range"
        )
    std = float(r.std(ddof=1))
    if not std > _ZERO_STD:
        raise ValueError(
            f"the {len(r)} returns are constant (std {std:.3g}): a strategy that never moves "
            "has no Sharpe ratio distribution; treat it as showing no skill"
        )
    return r


def _check_n(n: int, what: str = "n") -> None:
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise ValueError(f"{what} must be an integer count, got {n!r}")
    if n < MIN_OBSERVATIONS:
        raise ValueError(f"{what} = {n}: at least {MIN_OBSERVATIONS} returns are needed")


def _check_finite(**values: float) -> None:
    for name, value in values.items():
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")


def sharpe_ratio(returns: npt.ArrayLike, periods_per_year: float) -> float:
    """Annualised Sharpe ratio ``mean / std(ddof=1) * sqrt(periods_per_year)``, risk-free 0.

    The same number `metrics.compute_metrics` reports as ``sharpe`` for these step returns,
    0.0 included (fewer than two returns, or a std at or below 1e-14). Pass
    ``periods_per_year=1`` for the per-period Sharpe. Non-finite returns raise ValueError:
    `metrics` skips the NaN returns of steps without capital (after a bankruptcy), these
    functions want them dropped explicitly, so that a NaN from a bug is not dropped silently.
    """
    _check_finite(periods_per_year=periods_per_year)
    if periods_per_year <= 0:
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year}")
    return _per_period_sharpe(_finite_returns(returns)) * math.sqrt(periods_per_year)


def return_moments(returns: npt.ArrayLike) -> ReturnMoments:
    """Per-period Sharpe, count, skewness and Pearson kurtosis of a return series.

    Raises ValueError for non-finite values, fewer than `MIN_OBSERVATIONS` returns, or
    constant returns.
    """
    r = _varying_returns(returns, MIN_OBSERVATIONS)
    centred = r - r.mean()
    m2 = float(np.mean(centred**2))
    m3 = float(np.mean(centred**3))
    m4 = float(np.mean(centred**4))
    return ReturnMoments(
        sharpe=_per_period_sharpe(r),
        n=len(r),
        skew=m3 / m2**1.5,
        kurtosis=m4 / m2**2,
    )


def sharpe_standard_error(sr: float, n: int, skew: float, kurtosis: float) -> float:
    """Standard error of a per-period Sharpe estimate under non-normal returns (Mertens 2002,
    as used by the PSR): ``sqrt((1 - g3 * SR + (g4 - 1) / 4 * SR**2) / (n - 1))``, per period.

    ``kurtosis`` is Pearson's (normal: 3).
    """
    _check_n(n)
    _check_finite(sr=sr, skew=skew, kurtosis=kurtosis)
    bound = 1.0 + skew**2
    if kurtosis < bound - _KURTOSIS_SLACK * bound:
        raise ValueError(
            f"kurtosis {kurtosis:.6g} is below 1 + skew**2 = {bound:.6g}, which no "
            "distribution has: pass Pearson's kurtosis (a normal distribution has 3; "
            "excess kurtosis + 3)"
        )
    spread = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr**2
    if not spread > 0:
        raise ValueError(
            f"the Sharpe estimate's variance is not positive ({spread:.3g}) for SR {sr:.6g}, "
            f"skew {skew:.6g}, kurtosis {kurtosis:.6g}: the moments describe a degenerate "
            "two-point distribution; check the inputs"
        )
    return math.sqrt(spread / (n - 1))


def probabilistic_sharpe_ratio(
    sr: float, sr_benchmark: float, n: int, skew: float, kurtosis: float
) -> float:
    """Probability that the true per-period Sharpe exceeds ``sr_benchmark`` (Bailey & López de
    Prado 2012), given the per-period estimate ``sr`` over ``n`` returns with sample ``skew``
    and Pearson ``kurtosis`` (normal: 3). Both Sharpes are per period, not annualised.
    """
    _check_finite(sr_benchmark=sr_benchmark)
    se = sharpe_standard_error(sr, n, skew, kurtosis)
    return _NORMAL.cdf((sr - sr_benchmark) / se)


def probabilistic_sharpe_ratio_of_returns(
    returns: npt.ArrayLike, benchmark_sharpe: float = 0.0, periods_per_year: float = 1.0
) -> float:
    """PSR of a return series against ``benchmark_sharpe``, annualised with
    ``periods_per_year`` (the default 1 means per period): pass a baseline's annualised
    `metrics` Sharpe and the same periods per year to test against that baseline."""
    _check_finite(benchmark_sharpe=benchmark_sharpe, periods_per_year=periods_per_year)
    if periods_per_year <= 0:
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year}")
    m = return_moments(returns)
    benchmark = benchmark_sharpe / math.sqrt(periods_per_year)
    return probabilistic_sharpe_ratio(m.sharpe, benchmark, m.n, m.skew, m.kurtosis)


def expected_max_sharpe(n_trials: int, variance_of_trial_sharpes: float) -> float:
    """Sharpe the best of ``n_trials`` skill-less trials is expected to show (Bailey & López de
    Prado 2014; Gumbel approximation of the maximum of N normals, within about 2% of the exact
    expectation from N = 10 on). In the units of the Sharpes whose variance is given
    (per-period variance: per-period answer). 0.0 for a single trial.
    """
    if isinstance(n_trials, bool) or not isinstance(n_trials, int | np.integer):
        raise ValueError(f"n_trials must be an integer count, got {n_trials!r}")
    if n_trials < 1:
        raise ValueError(f"n_trials = {n_trials}: count at least the trial being judged")
    _check_finite(variance_of_trial_sharpes=variance_of_trial_sharpes)
    if variance_of_trial_sharpes < 0:
        raise ValueError(f"variance_of_trial_sharpes must be >= 0, got {variance_of_trial_sharpes}")
    if n_trials == 1:
        return 0.0
    n = float(n_trials)
    spread = (1.0 - EULER_MASCHERONI) * _NORMAL.inv_cdf(1.0 - 1.0 / n)
    spread += EULER_MASCHERONI * _NORMAL.inv_cdf(1.0 - 1.0 / (n * math.e))
    return math.sqrt(variance_of_trial_sharpes) * spread


def deflated_sharpe_ratio(
    sr: float,
    n: int,
    skew: float,
    kurtosis: float,
    n_trials: int,
    trial_sharpes_variance: float,
) -> float:
    """Probability that the per-period Sharpe ``sr`` is not the luck of the best of
    ``n_trials`` (Bailey & López de Prado 2014): the PSR against `expected_max_sharpe`.
    ``trial_sharpes_variance`` is the variance of the trials' per-period Sharpe estimates;
    ``kurtosis`` is Pearson's (normal: 3). One trial gives the PSR against 0.
    """
    benchmark = expected_max_sharpe(n_trials, trial_sharpes_variance)
    return probabilistic_sharpe_ratio(sr, benchmark, n, skew, kurtosis)


def deflated_sharpe_ratio_of_returns(
    returns: npt.ArrayLike,
    n_trials: int,
    trial_sharpes_variance: float,
    periods_per_year: float = 1.0,
) -> float:
    """DSR of the selected trial's return series. ``trial_sharpes_variance`` is the variance
    of the trials' Sharpes annualised with ``periods_per_year`` (the default 1 means per
    period); an annualised Sharpe's variance is ``periods_per_year`` times the per-period one.
    """
    _check_finite(periods_per_year=periods_per_year)
    if periods_per_year <= 0:
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year}")
    m = return_moments(returns)
    variance = trial_sharpes_variance / periods_per_year
    return deflated_sharpe_ratio(m.sharpe, m.n, m.skew, m.kurtosis, n_trials, variance)


def _check_bootstrap(confidence: float, periods_per_year: float, resamples: int) -> None:
    """The arguments every bootstrap here takes, or a ValueError naming the wrong one."""
    _check_finite(confidence=confidence, periods_per_year=periods_per_year)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be a fraction in (0, 1), got {confidence}")
    if periods_per_year <= 0:
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year}")
    if isinstance(resamples, bool) or not isinstance(resamples, int | np.integer):
        raise ValueError(f"resamples must be an integer count, got {resamples!r}")
    if resamples < MIN_RESAMPLES:
        raise ValueError(f"resamples = {resamples}: draw at least {MIN_RESAMPLES}")


def _block_length(given: int | None, n: int, chosen: Callable[[], float]) -> int:
    """The bootstrap's (mean) block length in periods: ``given``, checked to lie in [1, n], or,
    None, ``chosen()`` (a Politis & White choice, computed only then) rounded up into [1, n]."""
    if given is None:
        return min(max(1, math.ceil(chosen())), n)
    if isinstance(given, bool) or not isinstance(given, int | np.integer):
        raise ValueError(f"block_length must be an integer number of periods, got {given!r}")
    if not 1 <= given <= n:
        raise ValueError(f"block_length = {given}: it must lie in [1, {n}] periods")
    return int(given)


def sharpe_confidence_interval(
    returns: npt.ArrayLike,
    periods_per_year: float,
    *,
    confidence: float = 0.95,
    resamples: int = 1000,
    block_length: int | None = None,
    bootstrap: BootstrapKind = "stationary",
    seed: int | np.random.Generator = 0,
) -> SharpeInterval:
    """Block-bootstrap percentile interval of the annualised Sharpe (see the module docstring).

    ``block_length`` in periods (mean length for the stationary bootstrap); None picks it
    from the data's autocorrelation (Politis & White), rounded up and kept within [1, n].
    ``seed`` makes the resampling reproducible; a Generator passed in is advanced.
    About one second for 100,000 returns and 1,000 resamples.
    """
    from arch.bootstrap import CircularBlockBootstrap, StationaryBootstrap, optimal_block_length

    if bootstrap not in ("stationary", "circular"):
        raise ValueError(f"bootstrap must be 'stationary' or 'circular', got {bootstrap!r}")
    _check_bootstrap(confidence, periods_per_year, resamples)
    r = _varying_returns(returns, MIN_BOOTSTRAP_OBSERVATIONS)
    n = len(r)
    block = _block_length(
        block_length, n, lambda: float(optimal_block_length(r)[bootstrap].iloc[0])
    )

    rng = np.random.default_rng(seed) if not isinstance(seed, np.random.Generator) else seed
    kind = StationaryBootstrap if bootstrap == "stationary" else CircularBlockBootstrap
    sampler = kind(block, r, seed=rng)

    def statistic(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.array([_per_period_sharpe(x)])

    bounds = sampler.conf_int(statistic, reps=resamples, method="percentile", size=confidence)
    scale = math.sqrt(periods_per_year)
    return SharpeInterval(
        sharpe=_per_period_sharpe(r) * scale,
        lower=float(bounds[0, 0]) * scale,
        upper=float(bounds[1, 0]) * scale,
        confidence=confidence,
        block_length=block,
        resamples=resamples,
        bootstrap=bootstrap,
    )


@dataclass(frozen=True, slots=True)
class SharpeComparison:
    """Two models' annualised Sharpes on the same periods and the bootstrap of their difference.

    ``a`` and ``b`` are each series' interval drawn from the same resamples as the difference
    (a constant series, a model that never trades, has the point interval 0..0).
    """

    a: SharpeInterval
    b: SharpeInterval
    difference: float  # annualised, a.sharpe - b.sharpe on the returns themselves
    lower: float  # annualised, the (1 - confidence) / 2 quantile of the resampled differences
    upper: float  # annualised, the (1 + confidence) / 2 quantile
    probability_a_better: float  # share of resamples with SR_a > SR_b (ties count one half)
    confidence: float  # two-sided coverage, a fraction (0.90)
    n: int  # periods compared
    paired: bool  # True: both series resampled at the same time indices

    @property
    def distinguishable(self) -> bool:
        """Whether the interval of the difference leaves out 0."""
        return not self.lower <= 0.0 <= self.upper

    def verdict(self, name_a: str = "A", name_b: str = "B") -> str:
        """``A is better``, ``B is better`` or ``not distinguishable at 90%``."""
        if not self.distinguishable:
            return f"not distinguishable at {self.confidence:.0%}"
        return f"{name_a if self.lower > 0 else name_b} is better"


def compare_sharpe_ratios(
    returns_a: npt.ArrayLike,
    returns_b: npt.ArrayLike,
    periods_per_year: float,
    *,
    confidence: float = 0.90,
    resamples: int = 1000,
    block_length: int | None = None,
    paired: bool = True,
    seed: int | np.random.Generator = 0,
) -> SharpeComparison:
    """Stationary block bootstrap of ``SR(a) - SR(b)`` for two return series over the same
    periods (index i of both is the same bar), with each Sharpe's own interval.

    ``paired`` (the default) resamples the same time indices of both series (arch's
    `StationaryBootstrap` over both arrays), so their correlation is kept: two models that
    trade the same market move together, and their difference is far better determined than
    either Sharpe. ``paired=False`` resamples each independently, the right reading only for
    series from unrelated periods; on correlated series its interval is wider.

    ``block_length`` in periods (mean length); None takes the longer of the two series'
    Politis & White choices (a constant series has none), within [1, n].
    ``probability_a_better``: the share of resamples where A's Sharpe exceeds B's, a tie
    counting one half (two identical series give 0.5). Percentile intervals, as
    `sharpe_confidence_interval`; seeded.

    Raises ValueError for series of different lengths, non-finite values (convert a bankrupt
    account's NaN returns first) or fewer than `MIN_BOOTSTRAP_OBSERVATIONS` periods. One (or
    both) series may be constant.
    """
    from arch.bootstrap import StationaryBootstrap, optimal_block_length

    _check_bootstrap(confidence, periods_per_year, resamples)
    a, b = _finite_returns(returns_a), _finite_returns(returns_b)
    if len(a) != len(b):
        raise ValueError(
            f"the series have {len(a)} and {len(b)} returns: a paired comparison needs both "
            "over the same periods (keep the bars both have)"
        )
    n = len(a)
    if n < MIN_BOOTSTRAP_OBSERVATIONS:
        raise ValueError(
            f"{n} return(s) given, at least {MIN_BOOTSTRAP_OBSERVATIONS} are needed: "
            "compare over a longer range"
        )

    def longer_choice() -> float:
        varying = [x for x in (a, b) if float(x.std(ddof=1)) > _ZERO_STD]
        chosen = [float(optimal_block_length(x)["stationary"].iloc[0]) for x in varying]
        return max((c for c in chosen if math.isfinite(c)), default=1.0)

    block = _block_length(block_length, n, longer_choice)

    rng = np.random.default_rng(seed) if not isinstance(seed, np.random.Generator) else seed

    def sharpe_of(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.array([_per_period_sharpe(x)])

    def both(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.array([_per_period_sharpe(x), _per_period_sharpe(y)])

    if paired:
        drawn = StationaryBootstrap(block, a, b, seed=rng).apply(both, reps=resamples)
    else:
        first = StationaryBootstrap(block, a, seed=rng).apply(sharpe_of, reps=resamples)
        second = StationaryBootstrap(block, b, seed=rng).apply(sharpe_of, reps=resamples)
        drawn = np.column_stack([first[:, 0], second[:, 0]])
    scale = math.sqrt(periods_per_year)
    drawn = np.asarray(drawn, dtype=np.float64) * scale
    diff = drawn[:, 0] - drawn[:, 1]
    tail = (1.0 - confidence) / 2.0
    quantiles = [100.0 * tail, 100.0 * (1.0 - tail)]

    def interval(x: npt.NDArray[np.float64], column: npt.NDArray[np.float64]) -> SharpeInterval:
        lower, upper = np.percentile(column, quantiles)
        return SharpeInterval(
            sharpe=_per_period_sharpe(x) * scale,
            lower=float(lower),
            upper=float(upper),
            confidence=confidence,
            block_length=block,
            resamples=resamples,
            bootstrap="stationary",
        )

    sa, sb = interval(a, drawn[:, 0]), interval(b, drawn[:, 1])
    lower, upper = np.percentile(diff, quantiles)
    better = float(np.mean(diff > 0.0) + 0.5 * np.mean(diff == 0.0))
    return SharpeComparison(
        a=sa,
        b=sb,
        difference=sa.sharpe - sb.sharpe,
        lower=float(lower),
        upper=float(upper),
        probability_a_better=better,
        confidence=confidence,
        n=n,
        paired=paired,
    )
