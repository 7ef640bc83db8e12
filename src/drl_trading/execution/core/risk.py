"""The risk engine between a signal and the broker, and the trading state it keeps.

Per signal, the rules run in this order and the first refusal wins, so a rejection always names
one rule:

1. ``halted``: nothing trades while HALTED (drawdown breach or kill switch).
2. ``strategy``: the strategy's own `validate_signal` (minimum confidence, no shorts, clip to its
   max position), then the operator's overrides of those three (they can only tighten, because the
   strategy has already applied its own).
3. ``signal_age``: a signal whose bar closed more than ``max_signal_age`` ago is dropped: the price
   it was computed on is gone.
4. ``no_mark``: no price for the symbol yet, or no equity, so no size can be computed.
5. ``gross_exposure``: the target is clipped so that the gross exposure of all symbols stays within
   ``max_total_exposure`` (a fraction of equity). Clipping, not rejecting, keeps the direction the
   model asked for. With per-symbol capital the limit applies to the symbol's own share, so the
   shares add up to within it when each is decided (price drift afterwards is not rebalanced).
6. ``unchanged_target``: a target equal to the last one reached is skipped. The position is not
   rebalanced as prices drift, so a model repeating "long 0.5" does not trade every bar.
7. ``max_order_notional``: an order above it is clipped to it (the position moves towards the
   target in steps, one per signal) rather than rejected, which could leave a position stuck
   far from its target forever.
8. ``reducing_only``: while REDUCING, an order that grows |position| is rejected and one that would
   cross zero is clipped to flat.
9. ``min_notional``: an order below ``min_order_notional`` (or of no units at all) is skipped as
   dust; the target counts as reached.

Between signals `observe` sees each new equity mark: a loss since the UTC day's start beyond
``max_daily_loss`` moves ACTIVE to REDUCING until the next UTC day; a fall from the equity peak
beyond ``max_drawdown`` moves to HALTED until a manual `resume`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from drl_trading.common.costs import TARGET_TOLERANCE
from drl_trading.common.domain import Signal, utc
from drl_trading.common.events import PredictionCompleted
from drl_trading.execution.core.records import RecordKind, RiskDecision, RiskState, TradingState
from drl_trading.strategy.api import Strategy


@dataclass(frozen=True, slots=True)
class ExecutionLimits:
    """Limits in force, resolved at start from settings and the strategy's `RiskParameters`.

    Fractions are of current equity; notionals are in the quote currency. ``None`` in the three
    strategy overrides means "the strategy's own value".
    """

    max_signal_age: timedelta = timedelta(seconds=120)
    max_total_exposure: float = 1.0
    max_order_notional: float | None = None
    min_order_notional: float = 10.0
    max_daily_loss: float = 0.05
    max_drawdown: float = 0.25
    max_position: float | None = None
    min_confidence: float | None = None
    allow_short: bool | None = None


@dataclass(frozen=True, slots=True)
class BookView:
    """What the engine must know of the book to size one signal's order.

    ``position`` is the signed quantity of the signal's symbol including open orders (so that two
    signals before a fill do not both order the difference); ``other_exposure`` is the gross
    notional of every other symbol at its mark.
    """

    equity: float
    price: float | None
    position: float
    other_exposure: float = 0.0
    last_target: float | None = None
    own_capital: bool = False
    """``equity`` is the symbol's own share of the account (per-symbol capital): the exposure
    limit then applies to that share, which keeps the sum within it at every decision."""


@dataclass(frozen=True, slots=True)
class StateChange:
    previous: TradingState
    current: TradingState
    reason: str


def initial_risk_state(equity: float, now: datetime) -> RiskState:
    return RiskState(
        state=TradingState.ACTIVE,
        reason="started",
        since=utc(now),
        peak_equity=equity,
        day_start_equity=equity,
        last_equity=equity,
    )


def to_signal(event: PredictionCompleted) -> Signal:
    return Signal(
        symbol=event.symbol,
        action=event.action,
        target_position=event.target_position,
        confidence=event.confidence,
        model_uri=f"models:/{event.model_name}/{event.model_version}",
        feature_time=event.feature_time,
    )


def _reject(rule: str, reason: str, target: float, notes: list[str]) -> RiskDecision:
    return RiskDecision(RecordKind.REJECTION, rule, reason, target, 0.0, tuple(notes))


def _skip(rule: str, reason: str, target: float, notes: list[str]) -> RiskDecision:
    return RiskDecision(RecordKind.SKIP, rule, reason, target, 0.0, tuple(notes))


class RiskEngine:
    def __init__(self, limits: ExecutionLimits, state: RiskState) -> None:
        self.limits = limits
        self._state = state

    @property
    def state(self) -> RiskState:
        return self._state

    def evaluate(
        self,
        event: PredictionCompleted,
        strategy: Strategy,
        book: BookView,
        now: datetime,
    ) -> RiskDecision:
        lim = self.limits
        notes: list[str] = []
        requested = event.target_position
        if self._state.state is TradingState.HALTED:
            return _reject("halted", f"trading halted: {self._state.reason}", requested, notes)

        check = strategy.validate_signal(to_signal(event))
        if not check.approved:
            return _reject("strategy", check.reason, requested, notes)
        target = check.target_position
        if check.reason:
            notes.append(f"strategy: {check.reason}")
        if lim.min_confidence is not None and event.confidence < lim.min_confidence:
            reason = f"confidence {event.confidence:.3f} below minimum {lim.min_confidence:.3f}"
            return _reject("strategy", reason, requested, notes)
        if lim.allow_short is False and target < 0:
            return _reject("strategy", "short positions are not allowed", requested, notes)
        if lim.max_position is not None and abs(target) > lim.max_position:
            target = math.copysign(lim.max_position, target)
            notes.append(f"max_position: target clipped to {target:+.4f}")

        age = utc(now) - utc(event.bar_close_time)
        if age > lim.max_signal_age:
            reason = (
                f"signal is {age.total_seconds():.0f} s old, limit "
                f"{lim.max_signal_age.total_seconds():.0f} s"
            )
            return _reject("signal_age", reason, target, notes)

        price = book.price
        if price is None or not price > 0 or not book.equity > 0:
            reason = f"no mark price ({price}) or no equity ({book.equity:.2f}) to size the order"
            return _reject("no_mark", reason, target, notes)

        if book.own_capital:
            room = lim.max_total_exposure
        else:
            room = max(0.0, lim.max_total_exposure * book.equity - book.other_exposure)
            room /= book.equity
        if abs(target) > room + TARGET_TOLERANCE:
            target = math.copysign(room, target)
            notes.append(f"gross_exposure: target clipped to {target:+.4f}")

        if book.last_target is not None and abs(target - book.last_target) <= TARGET_TOLERANCE:
            reason = f"target {target:+.4f} unchanged; positions are not rebalanced on drift"
            return _skip("unchanged_target", reason, target, notes)

        quantity = target * book.equity / price - book.position
        if lim.max_order_notional is not None and abs(quantity) * price > lim.max_order_notional:
            quantity = math.copysign(lim.max_order_notional / price, quantity)
            notes.append(f"max_order_notional: order clipped to {lim.max_order_notional:.2f}")

        if self._state.state is TradingState.REDUCING:
            held = book.position
            after = held + quantity
            if held == 0.0 or (quantity > 0) == (held > 0):
                reason = f"only reducing orders while reducing ({self._state.reason})"
                return _reject("reducing_only", reason, target, notes)
            if after != 0.0 and (after > 0) != (held > 0):
                quantity = -held
                notes.append("reducing_only: order clipped to flat")

        notional = abs(quantity) * price
        if quantity == 0.0 or notional < lim.min_order_notional:
            reason = f"order notional {notional:.2f} below minimum {lim.min_order_notional:.2f}"
            return _skip("min_notional", reason, target, notes)
        return RiskDecision(RecordKind.ORDER, "accepted", "", target, quantity, tuple(notes))

    def observe(self, equity: float, at: datetime) -> StateChange | None:
        """Take a new equity mark at ``at`` (a bar's close time) and apply the state transitions.

        The day's starting equity is the last equity marked before the day's first mark, i.e. the
        equity at the UTC midnight as far as bars tell.
        """
        previous = self._state.state
        s = self._state
        day = utc(at).date()
        if s.day is None or day > s.day:
            s = replace(s, day=day, day_start_equity=s.last_equity)
            if s.state is TradingState.REDUCING:
                s = replace(s, state=TradingState.ACTIVE, reason="new UTC day", since=utc(at))
        self._state = replace(s, last_equity=equity, peak_equity=max(s.peak_equity, equity))
        self._apply_limits(at)
        return self._change_from(previous)

    def kill(self, reason: str, at: datetime) -> StateChange | None:
        return self.halt(f"kill switch: {reason}", at)

    def halt(self, reason: str, at: datetime) -> StateChange | None:
        """HALTED for ``reason`` until a manual `resume` (kill switch, reconciliation mismatch)."""
        previous = self._state.state
        if previous is not TradingState.HALTED:
            self._move(TradingState.HALTED, reason, at)
        return self._change_from(previous)

    def resume(self, at: datetime) -> StateChange | None:
        """Back to ACTIVE; the drawdown peak restarts from the current equity (otherwise the next
        mark would halt again), but a daily loss already beyond its limit still means REDUCING."""
        previous = self._state.state
        if previous is TradingState.ACTIVE:
            return None
        self._state = replace(self._state, peak_equity=self._state.last_equity)
        self._move(TradingState.ACTIVE, "manual resume", at)
        self._apply_limits(at)
        return self._change_from(previous)

    def drawdown(self) -> float:
        s = self._state
        return 1 - s.last_equity / s.peak_equity if s.peak_equity > 0 else 0.0

    def daily_loss(self) -> float:
        s = self._state
        return 1 - s.last_equity / s.day_start_equity if s.day_start_equity > 0 else 0.0

    def _apply_limits(self, at: datetime) -> None:
        state = self._state.state
        drawdown, daily = self.drawdown(), self.daily_loss()
        if state is not TradingState.HALTED and drawdown > self.limits.max_drawdown:
            reason = f"drawdown {drawdown:.2%} beyond limit {self.limits.max_drawdown:.2%}"
            self._move(TradingState.HALTED, reason, at)
        elif state is TradingState.ACTIVE and daily > self.limits.max_daily_loss:
            reason = f"daily loss {daily:.2%} beyond limit {self.limits.max_daily_loss:.2%}"
            self._move(TradingState.REDUCING, reason, at)

    def _move(self, to: TradingState, reason: str, at: datetime) -> None:
        self._state = replace(self._state, state=to, reason=reason, since=utc(at))

    def _change_from(self, previous: TradingState) -> StateChange | None:
        current = self._state.state
        if current is previous:
            return None
        return StateChange(previous, current, self._state.reason)
