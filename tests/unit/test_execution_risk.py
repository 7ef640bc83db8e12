"""Risk engine: each rule's accept and reject case, and the trading-state transitions."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from drl_trading.common.domain import Action, Symbol, parse_time
from drl_trading.common.events import PredictionCompleted
from drl_trading.execution.core.config import ExecutionSettings
from drl_trading.execution.core.records import RecordKind, TradingState
from drl_trading.execution.core.risk import (
    BookView,
    ExecutionLimits,
    RiskEngine,
    initial_risk_state,
)
from drl_trading.strategy.api import BaseStrategy, RiskParameters

S = Symbol("BTCUSDT")
T = parse_time("2024-01-01T10:00")
NOW = T + timedelta(seconds=5)
BOOK = BookView(equity=10_000, price=100, position=0.0)


class Strict(BaseStrategy):
    def __init__(self, **params: object) -> None:
        self._risk = RiskParameters(**params)  # type: ignore[arg-type]

    def risk_parameters(self) -> RiskParameters:
        return self._risk


def signal(target: float, confidence: float = 0.9, bar_close: datetime = T) -> PredictionCompleted:
    action = Action.LONG if target > 0 else Action.SHORT if target < 0 else Action.FLAT
    return PredictionCompleted(
        symbol=S,
        action=action,
        target_position=target,
        confidence=confidence,
        model_name="m",
        model_version="3",
        feature_time=bar_close,
        bar_close_time=bar_close,
    )


def engine(state: TradingState = TradingState.ACTIVE, **limits: object) -> RiskEngine:
    base = ExecutionLimits(max_signal_age=timedelta(seconds=60), min_order_notional=10)
    risk = RiskEngine(replace(base, **limits), initial_risk_state(10_000, T))  # type: ignore[arg-type]
    if state is TradingState.HALTED:
        risk.kill("test", T)
    elif state is TradingState.REDUCING:
        risk.observe(9_000, T)  # 10 % down on the day
    assert risk.state.state is state
    return risk


def test_accepted_signal_orders_the_difference_at_the_mark() -> None:
    d = engine().evaluate(signal(0.5), BaseStrategy(), BOOK, NOW)
    assert (d.outcome, d.rule, d.quantity, d.adjustments) == (RecordKind.ORDER, "accepted", 50, ())
    d = engine().evaluate(signal(-0.2), BaseStrategy(), replace(BOOK, position=30), NOW)
    assert d.quantity == pytest.approx(-50)


def test_halted_rejects_everything() -> None:
    d = engine(TradingState.HALTED).evaluate(signal(0.0), BaseStrategy(), BOOK, NOW)
    assert (d.outcome, d.rule) == (RecordKind.REJECTION, "halted")
    assert "kill switch: test" in d.reason


def test_strategy_rules_reject_low_confidence_and_shorts_and_clip_the_position() -> None:
    strategy = Strict(min_confidence=0.6, allow_short=False, max_position=0.5)
    low = engine().evaluate(signal(0.5, confidence=0.5), strategy, BOOK, NOW)
    assert (low.outcome, low.rule) == (RecordKind.REJECTION, "strategy")
    assert "confidence" in low.reason
    short = engine().evaluate(signal(-0.5), strategy, BOOK, NOW)
    assert (short.outcome, short.rule) == (RecordKind.REJECTION, "strategy")
    big = engine().evaluate(signal(0.8), strategy, BOOK, NOW)
    assert (big.outcome, big.target_position, big.quantity) == (RecordKind.ORDER, 0.5, 50)
    assert big.adjustments[0].startswith("strategy:")


def test_operator_overrides_only_tighten_the_strategy() -> None:
    risk = engine(min_confidence=0.95, allow_short=False, max_position=0.3)
    assert risk.evaluate(signal(0.5, 0.9), BaseStrategy(), BOOK, NOW).rule == "strategy"
    assert risk.evaluate(signal(-0.5, 0.99), BaseStrategy(), BOOK, NOW).rule == "strategy"
    d = risk.evaluate(signal(0.5, 0.99), BaseStrategy(), BOOK, NOW)
    assert (d.target_position, d.quantity) == pytest.approx((0.3, 30))
    assert d.adjustments[0].startswith("max_position")


def test_stale_signals_are_dropped() -> None:
    fresh = engine().evaluate(signal(0.5), BaseStrategy(), BOOK, T + timedelta(seconds=59))
    assert fresh.outcome is RecordKind.ORDER
    stale = engine().evaluate(signal(0.5), BaseStrategy(), BOOK, T + timedelta(seconds=61))
    assert (stale.outcome, stale.rule) == (RecordKind.REJECTION, "signal_age")
    assert "61 s old" in stale.reason


def test_no_mark_price_means_no_order() -> None:
    d = engine().evaluate(signal(0.5), BaseStrategy(), replace(BOOK, price=None), NOW)
    assert (d.outcome, d.rule) == (RecordKind.REJECTION, "no_mark")


def test_gross_exposure_clips_the_target_to_the_room_left() -> None:
    risk = engine(max_total_exposure=1.0)
    within = risk.evaluate(signal(0.5), BaseStrategy(), replace(BOOK, other_exposure=5_000), NOW)
    assert (within.quantity, within.adjustments) == (50, ())
    clipped = risk.evaluate(signal(-0.5), BaseStrategy(), replace(BOOK, other_exposure=7_000), NOW)
    assert clipped.target_position == pytest.approx(-0.3)
    assert clipped.quantity == pytest.approx(-30)
    assert clipped.adjustments[0].startswith("gross_exposure")


def test_an_unchanged_target_is_not_rebalanced() -> None:
    drifted = replace(BOOK, position=45, last_target=0.5)  # price moved since the order
    skip = engine().evaluate(signal(0.5), BaseStrategy(), drifted, NOW)
    assert (skip.outcome, skip.rule) == (RecordKind.SKIP, "unchanged_target")
    moved = engine().evaluate(signal(0.6), BaseStrategy(), drifted, NOW)
    assert moved.quantity == pytest.approx(15)


def test_max_order_notional_clips_the_order() -> None:
    d = engine(max_order_notional=2_000).evaluate(signal(-0.5), BaseStrategy(), BOOK, NOW)
    assert (d.outcome, d.quantity, d.target_position) == (RecordKind.ORDER, -20, -0.5)
    assert d.adjustments[0].startswith("max_order_notional")
    small = engine(max_order_notional=6_000).evaluate(signal(0.5), BaseStrategy(), BOOK, NOW)
    assert (small.quantity, small.adjustments) == (50, ())


def test_reducing_allows_only_orders_that_shrink_the_position() -> None:
    risk = engine(TradingState.REDUCING)
    long50 = replace(BOOK, position=50)
    reduce = risk.evaluate(signal(0.2), BaseStrategy(), long50, NOW)
    assert reduce.outcome is RecordKind.ORDER and reduce.quantity == pytest.approx(-30)
    grow = risk.evaluate(signal(0.8), BaseStrategy(), long50, NOW)
    assert (grow.outcome, grow.rule) == (RecordKind.REJECTION, "reducing_only")
    flip = risk.evaluate(signal(-0.5), BaseStrategy(), long50, NOW)
    assert (flip.outcome, flip.quantity) == (RecordKind.ORDER, -50)
    assert flip.adjustments == ("reducing_only: order clipped to flat",)
    opening = risk.evaluate(signal(-0.1), BaseStrategy(), BOOK, NOW)
    assert (opening.outcome, opening.rule) == (RecordKind.REJECTION, "reducing_only")


def test_dust_orders_are_skipped() -> None:
    dust = engine().evaluate(signal(0.0005), BaseStrategy(), BOOK, NOW)  # 5 quote < 10
    assert (dust.outcome, dust.rule) == (RecordKind.SKIP, "min_notional")
    enough = engine().evaluate(signal(0.0011), BaseStrategy(), BOOK, NOW)
    assert enough.outcome is RecordKind.ORDER


def test_daily_loss_reduces_until_the_next_utc_day_then_drawdown_halts() -> None:
    risk = engine(max_daily_loss=0.05, max_drawdown=0.25)
    day1 = parse_time("2024-01-01T00:01")
    assert risk.observe(10_000, day1) is None
    assert risk.observe(9_600, day1 + timedelta(hours=1)) is None  # 4 % loss: still active
    change = risk.observe(9_400, day1 + timedelta(hours=2))
    assert change is not None and change.current is TradingState.REDUCING
    assert "daily loss 6.00%" in change.reason
    assert risk.observe(9_900, day1 + timedelta(hours=3)) is None  # recovery does not lift it
    rolled = risk.observe(9_800, parse_time("2024-01-02T00:01"))
    assert rolled is not None and rolled.current is TradingState.ACTIVE
    assert risk.state.day_start_equity == 9_900  # the last equity of the previous day
    halted = risk.observe(7_400, parse_time("2024-01-02T05:00"))  # 26 % below the 10k peak
    assert halted is not None and halted.current is TradingState.HALTED
    assert "drawdown 26.00%" in halted.reason
    assert risk.observe(9_000, parse_time("2024-01-03T00:01")) is None  # no day roll out of HALT
    assert risk.state.state is TradingState.HALTED


def test_drawdown_halts_even_from_reducing() -> None:
    risk = engine(TradingState.REDUCING, max_drawdown=0.2)
    change = risk.observe(7_900, T + timedelta(hours=1))
    assert change is not None
    assert (change.previous, change.current) == (TradingState.REDUCING, TradingState.HALTED)


def test_kill_and_resume() -> None:
    risk = engine()
    change = risk.kill("operator", NOW)
    assert change is not None and change.current is TradingState.HALTED
    assert risk.state.reason == "kill switch: operator" and risk.state.since == NOW
    assert risk.kill("again", NOW) is None
    back = risk.resume(NOW + timedelta(minutes=1))
    assert back is not None and back.current is TradingState.ACTIVE
    assert risk.resume(NOW) is None


def test_resume_restarts_the_peak_but_keeps_a_breached_day_reducing() -> None:
    risk = engine(max_drawdown=0.25, max_daily_loss=0.05)
    risk.observe(7_000, T)  # 30 % down: halted
    assert risk.state.state is TradingState.HALTED
    change = risk.resume(NOW)
    assert change is not None and change.current is TradingState.REDUCING
    assert risk.state.peak_equity == 7_000
    rolled = risk.observe(7_000, T + timedelta(days=1))  # next day: active again
    assert rolled is not None and rolled.current is TradingState.ACTIVE


def test_settings_resolve_limits_from_the_strategy_and_overrides() -> None:
    params = RiskParameters(max_daily_loss=0.03, max_drawdown=0.1)
    limits = ExecutionSettings(max_signal_age_s=30).limits(params)
    assert (limits.max_daily_loss, limits.max_drawdown) == (0.03, 0.1)
    assert limits.max_signal_age == timedelta(seconds=30)
    override = ExecutionSettings(max_drawdown=0.2, max_position=0.5).limits(params)
    assert (override.max_drawdown, override.max_position) == (0.2, 0.5)
    defaults = ExecutionSettings()
    assert (defaults.initial_cash, defaults.fee_bps, defaults.slippage_bps) == (10_000, 5, 2)
