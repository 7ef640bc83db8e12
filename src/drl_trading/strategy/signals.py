"""A strategy's signal check in the form the vectorised backtest applies bar by bar.

Live, the execution service asks `Strategy.validate_signal` about every prediction; a rejected
signal leaves the position where it was. The backtest must do the same to trade what execution
would trade, and it must do it fast: for a strategy that keeps `BaseStrategy`'s check the rules
are three numbers (minimum confidence, shorts allowed, maximum position) applied inline; a
strategy with its own check is asked for every decision, exactly as execution asks it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from drl_trading.common.domain import Action, Signal, Symbol
from drl_trading.strategy.api import BaseStrategy, Strategy

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SignalRules:
    min_confidence: float = 0.0
    allow_short: bool = True
    max_position: float = 1.0
    custom: Callable[[float, float], float | None] | None = None
    """A strategy's own check: (target, confidence) -> approved target, None when rejected."""

    @property
    def needs_confidence(self) -> bool:
        """Whether a decision's confidence can change its outcome."""
        return self.custom is not None or self.min_confidence > 0.0

    def apply(self, target: float, confidence: float) -> float | None:
        """The approved target, or None when execution would reject the signal."""
        if self.custom is not None:
            return self.custom(target, confidence)
        if not math.isfinite(target) or not math.isfinite(confidence):
            return None
        if confidence < self.min_confidence:
            return None
        if target < 0 and not self.allow_short:
            return None
        return max(-self.max_position, min(self.max_position, target))


def _action(target: float) -> Action:
    return Action.LONG if target > 0 else Action.SHORT if target < 0 else Action.FLAT


def signal_rules(strategy: Strategy, symbol: Symbol | str) -> SignalRules:
    """The rules ``strategy`` applies to ``symbol``'s signals."""
    if type(strategy).validate_signal is BaseStrategy.validate_signal:
        risk = strategy.risk_parameters()
        return SignalRules(risk.min_confidence, risk.allow_short, risk.max_position)
    sym = Symbol(str(symbol))

    def check(target: float, confidence: float) -> float | None:
        signal = Signal(sym, _action(target), target, confidence, "models:/backtest", _EPOCH)
        verdict = strategy.validate_signal(signal)
        return verdict.target_position if verdict.approved else None

    return SignalRules(custom=check)
