"""The promotion gate: when a new model version may become `champion`.

Inference trades whatever holds the alias, so the gate is the last check before real orders: a
model that cannot beat zero and buy-and-hold on data it never trained on, after costs, is
registered (it can still be inspected and backtested) but does not replace the champion.
"""

from __future__ import annotations

from dataclasses import dataclass

from drl_trading.evaluation.backtest import BacktestResult
from drl_trading.training.core.config import GateSettings


@dataclass(frozen=True, slots=True)
class GateDecision:
    promote: bool
    reason: str


def evaluate_gate(
    gate: GateSettings, validation: BacktestResult, champion_sharpe: float | None = None
) -> GateDecision:
    sharpe = validation.mean("model", "sharpe")
    bh = validation.mean("buy-and-hold", "sharpe")
    mdd = max(s.model.max_drawdown for s in validation.symbols)
    failures = []
    if not sharpe > gate.min_sharpe:
        failures.append(f"validation Sharpe {sharpe:.2f} <= minimum {gate.min_sharpe:.2f}")
    if gate.beat_buy_and_hold and not sharpe > bh:
        failures.append(f"validation Sharpe {sharpe:.2f} <= buy-and-hold {bh:.2f}")
    if mdd > gate.max_drawdown:
        failures.append(f"max drawdown {mdd:.1%} > limit {gate.max_drawdown:.1%}")
    if gate.beat_champion and champion_sharpe is not None and not sharpe > champion_sharpe:
        failures.append(f"validation Sharpe {sharpe:.2f} <= champion's {champion_sharpe:.2f}")
    if failures:
        return GateDecision(False, "; ".join(failures))
    return GateDecision(
        True,
        f"validation Sharpe {sharpe:.2f} > minimum {gate.min_sharpe:.2f}"
        + (f" and > buy-and-hold {bh:.2f}" if gate.beat_buy_and_hold else "")
        + f"; max drawdown {mdd:.1%} within {gate.max_drawdown:.1%}",
    )
