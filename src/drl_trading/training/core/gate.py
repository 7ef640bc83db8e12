"""The promotion gate: when a new model version may become `champion`.

Inference trades whatever holds the alias, so the gate is the last check before real orders. It
judges the walk-forward evidence (`drl_trading.training.core.evidence`): the out-of-sample
returns of every fold and seed, after costs. A Sharpe measured on a week of bars has a standard
error of several units, so beating zero is not enough: the deflated Sharpe must say the figure
is unlikely to be the luck of the trials run for this model, the lower end of its confidence
interval must clear the best simple baseline, the drawdown must stay within the limit and the
seeds must agree (their Sharpes' std within a few standard errors of the Sharpe itself). A
model that fails is registered (it can still be inspected and backtested) but does not replace
the champion.

Every check is reported, passed or failed, with its figures (`GateCheck`); the verdict text
lists the failed ones first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from drl_trading.evaluation.statistics import sharpe_standard_error
from drl_trading.training.core.config import GateSettings
from drl_trading.training.core.evidence import Evidence

__all__ = ["GateCheck", "GateDecision", "evaluate_gate", "seed_sharpe_standard_error"]

_NORMAL_SKEW = 0.0
_NORMAL_KURTOSIS = 3.0  # Pearson's


@dataclass(frozen=True, slots=True)
class GateCheck:
    """One check of the gate: its key (MLflow ``gate.<key>.*``), measured value, threshold."""

    key: str
    value: float
    threshold: float
    passed: bool
    text: str


@dataclass(frozen=True, slots=True)
class GateDecision:
    promote: bool
    reason: str
    checks: tuple[GateCheck, ...] = ()

    def metrics(self) -> dict[str, float]:
        """Each check's value, threshold and pass (1.0) or fail (0.0), as MLflow metrics."""
        out: dict[str, float] = {}
        for c in self.checks:
            out[f"gate.{c.key}.value"] = c.value
            out[f"gate.{c.key}.threshold"] = c.threshold
            out[f"gate.{c.key}.passed"] = float(c.passed)
        return out


def _cmp(passed: bool, strict: bool = True) -> str:
    if strict:
        return ">" if passed else "<="
    return ">=" if passed else "<"


def _above(value: float, threshold: float) -> bool:
    return math.isfinite(value) and value > threshold


def seed_sharpe_standard_error(evidence: Evidence) -> float:
    """Standard error of the annualised out-of-sample Sharpe over the evidence's steps, the unit
    of the seed-spread limit (``training.gate.max_seed_sharpe_spread``).

    The i.i.d. normal form (Lo 2002): ``sqrt((1 + SR**2 / 2) / (n - 1)) * sqrt(ppy)`` with SR the
    per-step Sharpe of the seeds' mean series (``evidence.sharpe / sqrt(ppy)``) and n its steps;
    it is `statistics.sharpe_standard_error` (Mertens 2002) at a normal distribution's skewness 0
    and kurtosis 3, since `Evidence` keeps the series' Sharpe and length, not its higher moments.
    NaN when it is not defined (fewer than 3 steps, a non-finite Sharpe)."""
    ppy = evidence.periods_per_year
    if not (math.isfinite(evidence.sharpe) and ppy > 0 and evidence.steps >= 3):
        return math.nan
    per_step = evidence.sharpe / math.sqrt(ppy)
    se = sharpe_standard_error(per_step, evidence.steps, _NORMAL_SKEW, _NORMAL_KURTOSIS)
    return se * math.sqrt(ppy)


def _seed_spread_check(k: float, e: Evidence) -> GateCheck:
    """``std(seed Sharpes, ddof=1) <= k x SE`` (`seed_sharpe_standard_error`); one seed has no
    spread to measure and passes."""
    std = e.seed_sharpe_std
    se = seed_sharpe_standard_error(e)
    limit = k * se
    if e.seeds < 2:
        ok = True
        spread = "1 seed: not measured, set training.seeds"
    else:
        ok = math.isfinite(limit) and std <= limit
        spread = f"{e.seeds} seeds, {min(e.seed_sharpes):.2f}..{max(e.seed_sharpes):.2f}"
    if not math.isfinite(se):
        spread += f"; no standard error over {e.steps} steps"
    return GateCheck(
        "seed_sharpe_spread",
        std,
        limit,
        ok,
        f"seed Sharpe std {std:.2f} {'<=' if ok else '>'} {k:g} x SE {se:.2f} = {limit:.2f} "
        f"({spread})",
    )


def evaluate_gate(
    gate: GateSettings, evidence: Evidence, champion_sharpe: float | None = None
) -> GateDecision:
    """Every enabled check of ``gate`` on ``evidence``; promote only if all pass.
    ``champion_sharpe``: the current champion's validation Sharpe (with ``beat_champion``)."""
    e = evidence
    sharpe = e.sharpe
    checks: list[GateCheck] = []
    if gate.min_deflated_sharpe is not None:
        ok = e.dsr >= gate.min_deflated_sharpe
        checks.append(
            GateCheck(
                "deflated_sharpe",
                e.dsr,
                gate.min_deflated_sharpe,
                ok,
                f"deflated Sharpe {e.dsr:.2f} {_cmp(ok, strict=False)} "
                f"{gate.min_deflated_sharpe:.2f} ({e.trials_text})",
            )
        )
    if gate.ci_above_best_baseline:
        ok = _above(e.ci_lower, e.best_baseline_sharpe)
        checks.append(
            GateCheck(
                "ci_above_best_baseline",
                e.ci_lower,
                e.best_baseline_sharpe,
                ok,
                f"Sharpe {e.confidence:.0%} CI lower bound {e.ci_lower:.2f} {_cmp(ok)} best "
                f"baseline {e.best_baseline} {e.best_baseline_sharpe:.2f} "
                f"(CI {e.ci_lower:.2f}..{e.ci_upper:.2f})",
            )
        )
    if gate.min_sharpe is not None:
        ok = _above(sharpe, gate.min_sharpe)
        checks.append(
            GateCheck(
                "min_sharpe",
                sharpe,
                gate.min_sharpe,
                ok,
                f"out-of-sample Sharpe {sharpe:.2f} {_cmp(ok)} minimum {gate.min_sharpe:.2f}",
            )
        )
    if gate.beat_buy_and_hold:
        ok = _above(sharpe, e.buy_and_hold_sharpe)
        checks.append(
            GateCheck(
                "beat_buy_and_hold",
                sharpe,
                e.buy_and_hold_sharpe,
                ok,
                f"out-of-sample Sharpe {sharpe:.2f} {_cmp(ok)} buy-and-hold "
                f"{e.buy_and_hold_sharpe:.2f}",
            )
        )
    ok = e.max_drawdown <= gate.max_drawdown
    checks.append(
        GateCheck(
            "max_drawdown",
            e.max_drawdown,
            gate.max_drawdown,
            ok,
            f"max drawdown {e.max_drawdown:.1%} {'<=' if ok else '>'} "
            f"limit {gate.max_drawdown:.1%}",
        )
    )
    if gate.max_seed_sharpe_spread is not None:
        checks.append(_seed_spread_check(gate.max_seed_sharpe_spread, e))
    if gate.beat_champion and champion_sharpe is not None:
        ok = _above(sharpe, champion_sharpe)
        checks.append(
            GateCheck(
                "beat_champion",
                sharpe,
                champion_sharpe,
                ok,
                f"out-of-sample Sharpe {sharpe:.2f} {_cmp(ok)} champion's {champion_sharpe:.2f}",
            )
        )
    failed = [c.text for c in checks if not c.passed]
    passed = [c.text for c in checks if c.passed]
    promote = not failed
    if e.note is not None and not promote:
        failed.append(e.note)
    return GateDecision(promote, "; ".join(failed + passed), tuple(checks))
