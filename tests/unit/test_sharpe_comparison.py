"""`compare_sharpe_ratios`: the paired bootstrap of a Sharpe difference on known cases."""

from __future__ import annotations

import numpy as np
import pytest

from drl_trading.evaluation.statistics import (
    compare_sharpe_ratios,
    sharpe_confidence_interval,
    sharpe_ratio,
)

PPY = 365.0 * 24 * 12  # 5m bars, 24/7


def _market(n: int = 1500, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.002, n)


def test_identical_series_differ_by_zero_and_the_interval_holds_zero() -> None:
    r = _market() + 0.0001
    c = compare_sharpe_ratios(r, r.copy(), PPY)
    assert c.difference == 0.0
    assert c.lower <= 0.0 <= c.upper
    assert c.probability_a_better == pytest.approx(0.5)  # every resample a tie
    assert not c.distinguishable
    assert c.verdict() == "not distinguishable at 90%"
    assert c.a == c.b


def test_a_shifted_up_copy_is_better_with_probability_one() -> None:
    r = _market()
    c = compare_sharpe_ratios(r + 0.0005, r, PPY)
    assert c.difference > 0
    assert c.probability_a_better == pytest.approx(1.0)
    assert c.lower > 0
    assert c.verdict("A", "B") == "A is better"
    swapped = compare_sharpe_ratios(r, r + 0.0005, PPY)
    assert swapped.probability_a_better == pytest.approx(0.0)
    assert swapped.verdict() == "B is better"


def test_each_side_is_its_own_sharpe_with_a_bootstrap_interval() -> None:
    m = _market()
    a, b = m + 0.0002, m - 0.0001
    c = compare_sharpe_ratios(a, b, PPY, confidence=0.95)
    assert c.a.sharpe == pytest.approx(sharpe_ratio(a, PPY))
    assert c.b.sharpe == pytest.approx(sharpe_ratio(b, PPY))
    assert c.difference == pytest.approx(c.a.sharpe - c.b.sharpe)
    assert c.a.lower < c.a.sharpe < c.a.upper and c.b.lower < c.b.sharpe < c.b.upper
    assert c.confidence == 0.95 and c.n == len(a) and c.paired
    # the same bootstrap as one series' own interval: widths agree to the resampling noise
    alone = sharpe_confidence_interval(a, PPY, confidence=0.95, block_length=c.a.block_length)
    assert c.a.upper - c.a.lower == pytest.approx(alone.upper - alone.lower, rel=0.2)


def test_pairing_keeps_the_correlation_and_narrows_the_interval() -> None:
    rng = np.random.default_rng(11)
    m = _market(2000)
    a = m + rng.normal(0.0001, 0.0003, len(m))  # the same market, a little idiosyncratic noise
    b = m + rng.normal(0.0, 0.0003, len(m))
    assert np.corrcoef(a, b)[0, 1] > 0.95
    paired = compare_sharpe_ratios(a, b, PPY, block_length=5)
    unpaired = compare_sharpe_ratios(a, b, PPY, block_length=5, paired=False)
    assert paired.difference == pytest.approx(unpaired.difference)
    assert (paired.upper - paired.lower) < 0.5 * (unpaired.upper - unpaired.lower)
    assert not unpaired.paired


def test_a_model_that_never_trades_has_the_point_interval_zero() -> None:
    r = _market(200) + 0.0003
    c = compare_sharpe_ratios(r, np.zeros(len(r)), PPY)
    assert (c.b.sharpe, c.b.lower, c.b.upper) == (0.0, 0.0, 0.0)
    assert c.difference == pytest.approx(c.a.sharpe)


def test_the_same_seed_gives_the_same_figures() -> None:
    m = _market(300)
    first = compare_sharpe_ratios(m + 0.0001, m * 1.1, PPY, seed=5)
    assert compare_sharpe_ratios(m + 0.0001, m * 1.1, PPY, seed=5) == first


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "message"),
    [
        (np.ones(10), np.ones(9), {}, r"10 and 9 returns: a paired comparison needs both"),
        (np.full(5, 0.1), np.full(5, 0.2), {}, r"5 return\(s\) given, at least 8"),
        (np.r_[np.ones(9), np.nan], np.ones(10), {}, r"non-finite"),
        (np.ones(10), np.ones(10), {"confidence": 1.0}, r"confidence must be a fraction"),
        (np.ones(10), np.ones(10), {"resamples": 10}, r"draw at least 100"),
        (np.ones(10), np.ones(10), {"block_length": 11}, r"must lie in \[1, 10\]"),
    ],
)
def test_bad_inputs_are_refused_by_name(
    a: np.ndarray, b: np.ndarray, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        compare_sharpe_ratios(a, b, PPY, **kwargs)  # type: ignore[arg-type]
