"""The walk-forward evidence and the gate that judges it, on planted return series: a strong
edge over enough steps is promoted, white noise is refused by its deflated Sharpe, more trials
deflate the same figures, and seeds that disagree are refused; every check is named."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError

from drl_trading.common.domain import TimeRange
from drl_trading.evaluation.statistics import deflated_sharpe_ratio_of_returns, sharpe_ratio
from drl_trading.testing.tiny_training import PERMISSIVE_GATE
from drl_trading.training.core.config import GateSettings
from drl_trading.training.core.evidence import (
    FoldOutcome,
    Trials,
    walk_forward_evidence,
)
from drl_trading.training.core.gate import (
    GateDecision,
    evaluate_gate,
    seed_sharpe_standard_error,
)

PPY = 8760.0  # hourly bars of a 24/7 market
STEPS = 2000  # per fold
START = datetime(2024, 1, 1, tzinfo=UTC)
BASELINES = {"buy-and-hold": 0.3, "flat": 0.0, "momentum (20 bars)": 0.8}


def outcomes(
    mean: float, seeds: int = 1, folds: int = 2, std: float = 0.01, seed: int = 0, **kw: float
) -> list[FoldOutcome]:
    """``folds`` folds of ``seeds`` i.i.d. normal return series with per-step ``mean``;
    ``seed_mean_step``: added to the mean per seed index (seeds that disagree)."""
    rng = np.random.default_rng(seed)
    step = kw.get("seed_mean_step", 0.0)
    out = []
    for k in range(folds):
        lo = START + timedelta(hours=k * STEPS)
        returns = tuple(rng.normal(mean + s * step, std, STEPS) for s in range(seeds))
        out.append(FoldOutcome(k, TimeRange(lo, lo + timedelta(hours=STEPS)), returns, BASELINES))
    return out


STRONG = 0.003  # per-step Sharpe 0.3: annualised about 28
GATE = GateSettings()


def test_a_strong_planted_edge_passes_every_check() -> None:
    evidence = walk_forward_evidence(outcomes(STRONG, seeds=2), PPY, confidence=0.9)
    assert evidence.seeds == 2 and evidence.steps == 2 * STEPS
    assert evidence.sharpe > 20 and evidence.ci_lower > BASELINES["momentum (20 bars)"]
    assert evidence.best_baseline == "momentum (20 bars)"
    assert evidence.best_baseline_sharpe == pytest.approx(0.8)
    assert evidence.buy_and_hold_sharpe == pytest.approx(0.3)
    assert evidence.psr > 0.999 and evidence.dsr > 0.999
    assert [f.fold for f in evidence.folds] == [0, 1]
    decision = evaluate_gate(GATE, evidence)
    assert decision.promote, decision.reason
    keys = [c.key for c in decision.checks]
    assert keys == [
        "deflated_sharpe",
        "ci_above_best_baseline",
        "min_sharpe",
        "beat_buy_and_hold",
        "max_drawdown",
        "seed_sharpe_spread",
    ]
    assert "deflated Sharpe 1.00 >= 0.95 (2 trials)" in decision.reason
    assert "best baseline momentum (20 bars) 0.80" in decision.reason
    metrics = decision.metrics()
    assert metrics["gate.deflated_sharpe.passed"] == 1.0
    assert metrics["gate.deflated_sharpe.threshold"] == 0.95


def test_white_noise_fails_the_deflated_sharpe_and_names_its_figures() -> None:
    evidence = walk_forward_evidence(outcomes(0.0, seed=3), PPY, Trials(11, ()))
    decision = evaluate_gate(GATE, evidence)
    assert not decision.promote
    assert evidence.trials == 12
    dsr = next(c for c in decision.checks if c.key == "deflated_sharpe")
    assert not dsr.passed and dsr.value < 0.95
    assert decision.reason.startswith(f"deflated Sharpe {dsr.value:.2f} < 0.95 (12 trials)")
    assert decision.metrics()["gate.deflated_sharpe.passed"] == 0.0


def test_more_trials_deflate_the_same_returns() -> None:
    # a modest edge: per-step Sharpe 0.05 over 4,000 steps (annualised about 4.7)
    folds = outcomes(0.0005, seed=1)
    sharpes = tuple(np.random.default_rng(2).normal(0.0, 3.0, 50))  # the trials' spread
    few = walk_forward_evidence(folds, PPY, Trials(1, sharpes[:1]))
    many = walk_forward_evidence(folds, PPY, Trials(200, sharpes))
    assert few.sharpe == many.sharpe and few.psr == many.psr
    assert many.dsr < few.dsr
    assert many.trials == 201
    assert many.trial_variance_source == "51 trial Sharpes"
    returns = np.concatenate([o.seed_returns[0] for o in folds])
    expected = deflated_sharpe_ratio_of_returns(
        returns, 201, float(np.var([*sharpes, many.seed_sharpes[0]], ddof=1)), PPY
    )
    assert many.dsr == pytest.approx(expected)


def test_one_trial_sharpe_falls_back_to_the_sampling_variance() -> None:
    evidence = walk_forward_evidence(outcomes(0.001), PPY, Trials(3, ()))
    assert evidence.trial_variance_source == "sampling variance"
    assert evidence.trial_sharpe_variance == pytest.approx(PPY / (2 * STEPS - 1))


def test_seeds_that_disagree_fail_the_spread_check() -> None:
    evidence = walk_forward_evidence(outcomes(STRONG, seeds=3, seed_mean_step=0.002), PPY)
    assert evidence.seed_sharpe_std > 1.0
    per_seed = [
        sharpe_ratio(
            np.concatenate(
                [o.seed_returns[s] for o in outcomes(STRONG, 3, **{"seed_mean_step": 0.002})]
            ),
            PPY,
        )
        for s in range(3)
    ]
    assert evidence.seed_sharpes == pytest.approx(per_seed)
    decision = evaluate_gate(GATE, evidence)
    assert not decision.promote
    spread = next(c for c in decision.checks if c.key == "seed_sharpe_spread")
    se = seed_sharpe_standard_error(evidence)
    assert not spread.passed and spread.value == pytest.approx(evidence.seed_sharpe_std)
    assert spread.threshold == pytest.approx(2.0 * se)
    assert (
        f"seed Sharpe std {spread.value:.2f} > 2 x SE {se:.2f} = {2 * se:.2f} (3 seeds, "
        in decision.reason
    )
    # the mean series of three strong seeds passes everything else
    assert all(c.passed for c in decision.checks if c.key != "seed_sharpe_spread")


def test_the_seed_spread_limit_is_in_standard_errors_of_the_sharpe() -> None:
    """SE is Lo's i.i.d. form over the evidence's steps: sqrt((1 + SR^2/2) / (n - 1)) annualised;
    the same spread passes over a long series and fails over a short one."""
    evidence = walk_forward_evidence(outcomes(STRONG, seeds=2), PPY)
    per_step = evidence.sharpe / np.sqrt(PPY)
    expected = np.sqrt((1 + per_step**2 / 2) / (evidence.steps - 1)) * np.sqrt(PPY)
    assert seed_sharpe_standard_error(evidence) == pytest.approx(expected)
    # two seeds 5 annualised Sharpe units apart: std 3.54
    wide = replace(evidence, seed_sharpes=(20.0, 25.0))
    long_run = evaluate_gate(GATE, wide)  # SE about 1.5 over 4,000 steps: 2 SE < 3.54
    spread = next(c for c in long_run.checks if c.key == "seed_sharpe_spread")
    assert not spread.passed and spread.value == pytest.approx(5 / np.sqrt(2))
    short = replace(wide, steps=864)  # 36 days of 1h bars: SE about 3.2, 2 SE = 6.4 > 3.54
    spread = next(c for c in evaluate_gate(GATE, short).checks if c.key == "seed_sharpe_spread")
    assert spread.passed and spread.threshold > spread.value
    assert spread.text.endswith("(2 seeds, 20.00..25.00)")
    loose = GateSettings(max_seed_sharpe_spread=3.0)  # 3 SE over 4,000 steps: about 4.5
    assert next(c for c in evaluate_gate(loose, wide).checks if c.key == spread.key).passed


def test_one_seed_passes_the_spread_check_unmeasured() -> None:
    evidence = walk_forward_evidence(outcomes(STRONG), PPY)
    spread = next(c for c in evaluate_gate(GATE, evidence).checks if c.key == "seed_sharpe_spread")
    assert spread.passed and spread.value == 0.0
    assert "(1 seed: not measured, set training.seeds)" in spread.text


def test_the_old_absolute_seed_limit_is_refused_with_its_new_name() -> None:
    with pytest.raises(ValidationError, match="renamed to max_seed_sharpe_spread"):
        GateSettings.model_validate({"max_seed_sharpe_std": 1.0})


def test_a_constant_model_is_no_evidence_and_each_check_can_be_switched_off() -> None:
    flat = [FoldOutcome(o.fold, o.validation, (np.zeros(STEPS),), BASELINES) for o in outcomes(0.0)]
    evidence = walk_forward_evidence(flat, PPY)
    assert evidence.note is not None and "constant returns" in evidence.note
    assert evidence.dsr == 0.0 and evidence.ci_lower == evidence.ci_upper == 0.0
    refused = evaluate_gate(GATE, evidence)
    assert not refused.promote and evidence.note in refused.reason
    permissive = evaluate_gate(GateSettings.model_validate(PERMISSIVE_GATE), evidence)
    assert permissive.promote, permissive.reason
    assert [c.key for c in permissive.checks] == ["max_drawdown"]


def test_drawdown_is_the_worst_seed_and_the_champion_check_compares_sharpes() -> None:
    crash = np.full(STEPS, 0.0005)
    crash[100:110] = -0.1  # about 65% down in ten steps
    folds = [FoldOutcome(0, outcomes(0.0)[0].validation, (crash, np.full(STEPS, 0.0005)), {})]
    evidence = walk_forward_evidence(folds, PPY)
    assert evidence.max_drawdown == pytest.approx(1 - 0.9**10)
    gate = GateSettings(beat_champion=True)
    decision = evaluate_gate(gate, evidence, champion_sharpe=1e6)
    assert "max drawdown 65.1% > limit 50.0%" in decision.reason
    assert "champion's 1000000.00" in decision.reason
    assert decision.checks[-1].key == "beat_champion" and not decision.checks[-1].passed


def test_callers_of_the_old_decision_keep_working() -> None:
    decision = GateDecision(True, "first model")
    assert decision.checks == () and decision.metrics() == {}
