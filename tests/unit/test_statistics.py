"""Sharpe statistics against hand formulas, the 2014 DSR paper's example, and their properties."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy import stats as sps

from drl_trading.common.costs import CostModel
from drl_trading.evaluation.metrics import compute_metrics
from drl_trading.evaluation.statistics import (
    MIN_BOOTSTRAP_OBSERVATIONS,
    deflated_sharpe_ratio,
    deflated_sharpe_ratio_of_returns,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    probabilistic_sharpe_ratio_of_returns,
    return_moments,
    sharpe_confidence_interval,
    sharpe_ratio,
    sharpe_standard_error,
)
from drl_trading.evaluation.trace import simulate

PPY = 8760.0  # hourly bars, 24/7


def _ar1(phi: float, n: int, seed: int) -> np.ndarray:
    e = np.random.default_rng(seed).normal(size=n)
    y = np.empty(n)
    y[0] = e[0]
    for i in range(1, n):
        y[i] = phi * y[i - 1] + e[i]
    return y


def _standardised(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Rescale to an exact sample mean and std, so two series differ only in their dependence."""
    return (x - x.mean()) / x.std(ddof=1) * std + mean


# --------------------------------------------------------------------------- Sharpe


def test_sharpe_is_mean_over_sample_std_annualised() -> None:
    r = [0.01, -0.02, 0.03, 0.0]
    mean = 0.005
    std = math.sqrt(sum((x - mean) ** 2 for x in r) / 3)
    assert sharpe_ratio(r, 365.0) == pytest.approx(mean / std * math.sqrt(365.0), rel=1e-14)
    assert sharpe_ratio(r, 1.0) == pytest.approx(mean / std, rel=1e-14)


@pytest.mark.parametrize("path", ["random", "constant", "wiped out"])
def test_sharpe_equals_the_backtest_metrics_sharpe(path: str) -> None:
    n = 300
    rng = np.random.default_rng(3)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0002, 0.01, n)))
    position = 1.0
    if path == "constant":
        close = np.full(n, 100.0)
    elif path == "wiped out":
        close[150:] *= 4.0  # a short held through a quadrupling loses everything
        position = -1.0
    open_ = np.concatenate(([close[0]], close[:-1]))
    times = np.datetime64("2024-01-01T00:00", "us") + np.arange(n) * np.timedelta64(1, "h")
    costs = CostModel(0.0, 0.0) if path == "constant" else CostModel(10.0, 5.0)
    trace = simulate("TEST", times, open_, close, np.full(n - 1, position), costs)
    expected = compute_metrics(trace, PPY).sharpe
    r = trace.step_returns
    if path == "wiped out":
        with pytest.raises(ValueError, match="pass only its defined ones"):
            sharpe_ratio(r, PPY)
        r = r[np.isfinite(r)]
        assert r[-1] == -1.0 and expected < -1.0
    assert sharpe_ratio(r, PPY) == pytest.approx(expected, rel=1e-12, abs=0)
    if path == "constant":
        assert expected == 0.0


def test_sharpe_follows_metrics_on_too_few_or_flat_returns() -> None:
    assert sharpe_ratio([], PPY) == 0.0
    assert sharpe_ratio([0.01], PPY) == 0.0
    assert sharpe_ratio([0.001] * 10, PPY) == 0.0


# --------------------------------------------------------------------------- moments and PSR


def test_moments_match_scipy_biased_estimators_with_pearson_kurtosis() -> None:
    r = np.random.default_rng(0).standard_t(df=5, size=500) * 0.01 + 0.0005
    m = return_moments(r)
    assert m.n == 500
    assert m.sharpe == pytest.approx(r.mean() / r.std(ddof=1), rel=1e-12)
    assert m.skew == pytest.approx(sps.skew(r), rel=1e-10)
    assert m.kurtosis == pytest.approx(sps.kurtosis(r, fisher=False), rel=1e-10)


@pytest.mark.parametrize(
    ("sr", "benchmark", "n", "skew", "kurt"),
    [(0.1, 0.0, 500, 0.0, 3.0), (0.1, 0.05, 500, -0.5, 5.0), (-0.03, 0.02, 2000, 1.2, 9.0)],
)
def test_psr_is_the_2012_formula(
    sr: float, benchmark: float, n: int, skew: float, kurt: float
) -> None:
    se = math.sqrt((1 - skew * sr + (kurt - 1) / 4 * sr**2) / (n - 1))
    expected = float(sps.norm.cdf((sr - benchmark) / se))
    assert probabilistic_sharpe_ratio(sr, benchmark, n, skew, kurt) == pytest.approx(
        expected, rel=1e-12, abs=1e-15
    )
    assert sharpe_standard_error(sr, n, skew, kurt) == pytest.approx(se, rel=1e-14)


def test_psr_of_returns_converts_an_annualised_benchmark() -> None:
    r = np.random.default_rng(1).normal(0.0004, 0.01, 1000)
    m = return_moments(r)
    baseline_annual = 0.8
    expected = probabilistic_sharpe_ratio(
        m.sharpe, baseline_annual / math.sqrt(PPY), m.n, m.skew, m.kurtosis
    )
    assert probabilistic_sharpe_ratio_of_returns(r, baseline_annual, PPY) == expected
    against_zero = probabilistic_sharpe_ratio(m.sharpe, 0.0, m.n, m.skew, m.kurtosis)
    assert probabilistic_sharpe_ratio_of_returns(r) == against_zero


@settings(max_examples=200, deadline=None)
@given(
    sr=st.floats(-0.5, 0.5),
    step=st.floats(1e-4, 0.2),
    skew=st.floats(-1.5, 1.5),
    excess=st.floats(0.0, 10.0),
    n=st.integers(3, 100_000),
)
def test_psr_against_zero_rises_with_the_sharpe(
    sr: float, step: float, skew: float, excess: float, n: int
) -> None:
    # |skew * SR| < 2 here, the range return series occupy (past it the formula's variance
    # grows faster than the Sharpe)
    kurt = 1.0 + skew**2 + excess
    low = probabilistic_sharpe_ratio(sr, 0.0, n, skew, kurt)
    high = probabilistic_sharpe_ratio(min(sr + step, 0.5), 0.0, n, skew, kurt)
    assert high >= low


@settings(max_examples=200, deadline=None)
@given(
    sr=st.floats(-0.3, 0.3),
    benchmark=st.floats(-0.3, 0.3),
    skew=st.floats(-1.5, 1.5),
    excess=st.floats(0.0, 10.0),
    n=st.integers(3, 50_000),
    more=st.integers(1, 50_000),
)
def test_more_returns_make_the_psr_more_decisive(
    sr: float, benchmark: float, skew: float, excess: float, n: int, more: int
) -> None:
    kurt = 1.0 + skew**2 + excess
    short = probabilistic_sharpe_ratio(sr, benchmark, n, skew, kurt)
    long = probabilistic_sharpe_ratio(sr, benchmark, n + more, skew, kurt)
    if sr > benchmark:
        assert long >= short >= 0.5
    elif sr < benchmark:
        assert long <= short <= 0.5
    else:
        assert long == short == 0.5


def test_psr_falls_as_the_benchmark_rises() -> None:
    values = [probabilistic_sharpe_ratio(0.05, b, 1000, -0.4, 6.0) for b in (-0.05, 0, 0.05, 0.1)]
    assert values == sorted(values, reverse=True)
    assert values[2] == 0.5


# --------------------------------------------------------------------------- expected maximum, DSR


def _exact_expected_max(n: int) -> float:
    """E[max of n independent standard normals] by quadrature of n x phi(x) Phi(x)^(n-1)."""
    value, _ = integrate.quad(
        lambda x: n * x * sps.norm.pdf(x) * sps.norm.cdf(x) ** (n - 1), -12, 12, limit=200
    )
    return float(value)


def test_expected_max_sharpe_is_the_gumbel_formula() -> None:
    for n_trials, variance in [(2, 0.3), (10, 1.0), (100, 0.5), (5000, 0.02)]:
        gamma = np.euler_gamma
        expected = math.sqrt(variance) * (
            (1 - gamma) * sps.norm.ppf(1 - 1 / n_trials)
            + gamma * sps.norm.ppf(1 - 1 / (n_trials * math.e))
        )
        assert expected_max_sharpe(n_trials, variance) == pytest.approx(expected, rel=1e-12)
    assert expected_max_sharpe(1, 0.7) == 0.0
    assert expected_max_sharpe(50, 0.0) == 0.0


@pytest.mark.parametrize("n_trials", [10, 100, 1000])
def test_expected_max_sharpe_approximates_the_exact_maximum(n_trials: int) -> None:
    assert expected_max_sharpe(n_trials, 1.0) == pytest.approx(
        _exact_expected_max(n_trials), rel=0.03
    )


def test_reproduces_the_2014_paper_example() -> None:
    """Bailey & López de Prado (2014), numerical example: annualised SR 2.5 over T = 1250 daily
    returns (250 a year), skew -3, kurtosis 10, N = 100 trials whose annualised Sharpes have
    variance 0.5. The paper gives SR0 = 0.1132 per day and DSR = 0.9004."""
    days = 250.0
    sr0_annual = expected_max_sharpe(100, 0.5)
    assert sr0_annual / math.sqrt(days) == pytest.approx(0.1132, abs=5e-5)
    assert sr0_annual == pytest.approx(1.7894, abs=5e-5)
    dsr = deflated_sharpe_ratio(2.5 / math.sqrt(days), 1250, -3.0, 10.0, 100, 0.5 / days)
    assert dsr == pytest.approx(0.9004, abs=5e-5)


def test_one_trial_deflates_nothing() -> None:
    args = (0.04, 800, -0.7, 7.0)
    assert deflated_sharpe_ratio(*args, 1, 0.9) == probabilistic_sharpe_ratio(
        0.04, 0.0, 800, -0.7, 7.0
    )


@settings(max_examples=200, deadline=None)
@given(
    sr=st.floats(-0.3, 0.3),
    skew=st.floats(-1.5, 1.5),
    excess=st.floats(0.0, 10.0),
    n=st.integers(3, 50_000),
    n_trials=st.integers(2, 10_000),
    variance=st.floats(1e-6, 0.01),
)
def test_deflated_is_below_the_psr_against_zero(
    sr: float, skew: float, excess: float, n: int, n_trials: int, variance: float
) -> None:
    kurt = 1.0 + skew**2 + excess
    dsr = deflated_sharpe_ratio(sr, n, skew, kurt, n_trials, variance)
    assert dsr <= probabilistic_sharpe_ratio(sr, 0.0, n, skew, kurt)
    assert dsr >= deflated_sharpe_ratio(sr, n, skew, kurt, n_trials + 1, variance)


def test_strict_deflation_and_the_annualised_variance_of_returns() -> None:
    r = np.random.default_rng(5).normal(0.0006, 0.01, 2000)
    m = return_moments(r)
    annual_variance = 0.6
    expected = deflated_sharpe_ratio(m.sharpe, m.n, m.skew, m.kurtosis, 30, annual_variance / PPY)
    assert deflated_sharpe_ratio_of_returns(r, 30, annual_variance, PPY) == expected
    assert expected < probabilistic_sharpe_ratio_of_returns(r)


# --------------------------------------------------------------------------- bootstrap interval


def test_interval_holds_the_point_estimate_and_its_settings() -> None:
    for seed in range(4):
        r = np.random.default_rng(seed).normal(0.0002, 0.01, 600)
        ci = sharpe_confidence_interval(r, PPY, resamples=300, seed=seed)
        assert ci.sharpe == sharpe_ratio(r, PPY)
        assert ci.lower < ci.sharpe < ci.upper
        assert (ci.confidence, ci.resamples, ci.bootstrap) == (0.95, 300, "stationary")
        assert ci.block_length >= 1


def test_iid_interval_matches_the_analytic_standard_error() -> None:
    r = np.random.default_rng(11).normal(0.0005, 0.01, 3000)
    ci = sharpe_confidence_interval(r, PPY, resamples=2000, seed=1)
    m = return_moments(r)
    se_annual = sharpe_standard_error(m.sharpe, m.n, m.skew, m.kurtosis) * math.sqrt(PPY)
    assert ci.upper - ci.lower == pytest.approx(2 * 1.959964 * se_annual, rel=0.15)


@pytest.mark.parametrize("bootstrap", ["stationary", "circular"])
def test_autocorrelation_widens_the_interval_at_equal_variance(bootstrap: str) -> None:
    n = 3000
    noise = _standardised(np.random.default_rng(2).normal(size=n), 0.0005, 0.01)
    trending = _standardised(_ar1(0.5, n, seed=2), 0.0005, 0.01)
    assert sharpe_ratio(noise, PPY) == pytest.approx(sharpe_ratio(trending, PPY), rel=1e-12)
    iid = sharpe_confidence_interval(noise, PPY, resamples=500, seed=0, bootstrap=bootstrap)  # type: ignore[arg-type]
    ar = sharpe_confidence_interval(trending, PPY, resamples=500, seed=0, bootstrap=bootstrap)  # type: ignore[arg-type]
    # AR(1) with phi 0.5 inflates the Sharpe's variance by (1 + phi) / (1 - phi) = 3
    assert ar.upper - ar.lower > 1.3 * (iid.upper - iid.lower)
    assert ar.block_length > iid.block_length


def test_interval_is_reproducible_from_its_seed() -> None:
    r = _ar1(0.3, 800, seed=4) * 0.01 + 0.001
    first = sharpe_confidence_interval(r, PPY, resamples=200, seed=7)
    assert sharpe_confidence_interval(r, PPY, resamples=200, seed=7) == first
    assert sharpe_confidence_interval(r, PPY, resamples=200, seed=8) != first
    from_generator = sharpe_confidence_interval(
        r, PPY, resamples=200, seed=np.random.default_rng(7)
    )
    assert from_generator == first


def test_a_given_block_length_is_used() -> None:
    r = np.random.default_rng(6).normal(0.0, 0.01, 400)
    ci = sharpe_confidence_interval(r, PPY, resamples=200, block_length=20, bootstrap="circular")
    assert (ci.block_length, ci.bootstrap) == (20, "circular")


def test_the_statistics_module_imports_arch_only_when_bootstrapping() -> None:
    code = (
        "import sys\n"
        "import drl_trading.evaluation.statistics as s\n"
        "s.deflated_sharpe_ratio_of_returns([0.01, -0.02, 0.015, 0.0], 10, 0.5)\n"
        "print('arch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_returns_are_refused_everywhere(bad: float) -> None:
    r = [0.01, -0.02, bad, 0.03, 0.0, 0.01, -0.01, 0.02, 0.0]
    calls = [
        lambda: sharpe_ratio(r, PPY),
        lambda: return_moments(r),
        lambda: probabilistic_sharpe_ratio_of_returns(r),
        lambda: deflated_sharpe_ratio_of_returns(r, 5, 0.1),
        lambda: sharpe_confidence_interval(r, PPY),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"1 non-finite value\(s\) \(the first at index 2"):
            call()


def test_constant_returns_are_refused_by_the_distribution_statistics() -> None:
    r = np.full(50, 0.001)
    for call in (
        lambda: return_moments(r),
        lambda: probabilistic_sharpe_ratio_of_returns(r),
        lambda: deflated_sharpe_ratio_of_returns(r, 5, 0.1),
        lambda: sharpe_confidence_interval(r, PPY),
    ):
        with pytest.raises(ValueError, match="the 50 returns are constant"):
            call()


def test_too_few_returns_are_refused() -> None:
    with pytest.raises(ValueError, match="2 return\\(s\\) given, at least 3"):
        return_moments([0.01, -0.01])
    with pytest.raises(ValueError, match="n = 2: at least 3"):
        probabilistic_sharpe_ratio(0.1, 0.0, 2, 0.0, 3.0)
    short = np.random.default_rng(0).normal(size=MIN_BOOTSTRAP_OBSERVATIONS - 1)
    with pytest.raises(ValueError, match=f"at least {MIN_BOOTSTRAP_OBSERVATIONS} are needed"):
        sharpe_confidence_interval(short, PPY)


def test_excess_kurtosis_is_recognised_and_refused() -> None:
    with pytest.raises(ValueError, match="pass Pearson's kurtosis"):
        probabilistic_sharpe_ratio(0.1, 0.0, 500, 0.0, 0.0)  # a normal's excess kurtosis
    with pytest.raises(ValueError, match="below 1 \\+ skew\\*\\*2"):
        deflated_sharpe_ratio(0.1, 500, 2.0, 4.0, 10, 0.01)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: expected_max_sharpe(0, 0.1), "n_trials = 0"),
        (lambda: expected_max_sharpe(10, -0.1), "variance_of_trial_sharpes must be >= 0"),
        (lambda: expected_max_sharpe(2.5, 0.1), "n_trials must be an integer"),  # type: ignore[arg-type]
        (
            lambda: probabilistic_sharpe_ratio(math.nan, 0.0, 10, 0.0, 3.0),
            "sr must be a finite number",
        ),
        (lambda: sharpe_ratio([0.1, 0.2], 0.0), "periods_per_year must be positive"),
        (lambda: sharpe_ratio(np.zeros((3, 2)), PPY), "one-dimensional"),
    ],
)
def test_invalid_arguments_name_the_problem(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_invalid_bootstrap_settings_name_the_problem() -> None:
    r = np.random.default_rng(0).normal(size=100)
    with pytest.raises(ValueError, match="confidence must be a fraction"):
        sharpe_confidence_interval(r, PPY, confidence=95)
    with pytest.raises(ValueError, match="resamples = 10: draw at least 100"):
        sharpe_confidence_interval(r, PPY, resamples=10)
    with pytest.raises(ValueError, match="block_length = 101: it must lie in \\[1, 100\\]"):
        sharpe_confidence_interval(r, PPY, block_length=101)
    with pytest.raises(ValueError, match="bootstrap must be 'stationary' or 'circular'"):
        sharpe_confidence_interval(r, PPY, bootstrap="iid")  # type: ignore[arg-type]
