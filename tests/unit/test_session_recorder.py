"""The session recorder measures what the account did, also across sessions on one account: a
replay of bars the account already took makes no points (they once showed a held position's
price moves as "fees", positive or negative, next to a 0.00% return), and a session that
continues the account starts where the previous one ended, so split sessions add up to one."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.costs import CostModel
from drl_trading.common.domain import Action, Bar, Symbol, Timeframe, parse_time
from drl_trading.common.events import PredictionCompleted
from drl_trading.common.market_series import MarketSeries
from drl_trading.evaluation.backtest import backtest
from drl_trading.evaluation.baselines import RuleLookbacks, random_baseline_name, rule_positions
from drl_trading.evaluation.trace import SimulationTrace
from drl_trading.execution.adapter.paper_broker import PaperBroker
from drl_trading.execution.adapter.sqlite_store import SQLiteExecutionStore
from drl_trading.execution.core.records import RecordKind
from drl_trading.execution.core.risk import ExecutionLimits
from drl_trading.execution.core.service import ExecutionService
from drl_trading.execution.core.session_recorder import SessionRecorder
from drl_trading.policy.numpy_policy import NumpyPolicy
from drl_trading.policy.package import ModelManifest, ObsNormalization
from drl_trading.policy.predictor import Predictor
from drl_trading.strategy.api import BaseStrategy

S = Symbol("BTCUSDT")
T0 = parse_time("2024-01-01T00:00")
BASE = Timeframe.M5
COSTS = CostModel(fee_bps=5, slippage_bps=2, min_order_notional=10)
LIMITS = ExecutionLimits(
    max_signal_age=timedelta(seconds=120),
    min_order_notional=10,
    max_daily_loss=1.0,
    max_drawdown=1.0,
)
TARGETS = (0.8, 0.8, -0.5, 0.0, 0.6, 1.0, -1.0, 0.3)
"""The target decided at each base close, in turn (a position is held across sessions)."""


def bar(i: int) -> Bar:
    o = 100.0 + 5.0 * math.sin(i / 7.0)
    c = 100.0 + 5.0 * math.sin((i + 1) / 7.0)
    return Bar(S, Timeframe.M1, T0 + timedelta(minutes=i), o, max(o, c), min(o, c), c, 1.0)


class Session:
    """One session on the account in ``path``: a service loaded from the store, its recorder."""

    def __init__(self, path: Path) -> None:
        self.clock = ManualClock(T0)
        self.store = SQLiteExecutionStore(path)
        broker = PaperBroker(COSTS.fee_bps, COSTS.slippage_bps, initial_cash=10_000)
        self.service = ExecutionService(broker, self.store, LIMITS, self.clock)
        self.recorder = SessionRecorder(self.service, [S], BASE, COSTS, 10_000)
        self.records_before = len(self.store.records_since(T0 - timedelta(days=1)))
        if self.service.market_time() is not None:
            self.recorder.start_from_account()

    def stream(self, first: int, last: int) -> None:
        """Bars ``first..last-1`` through execution as the online chain orders them: the bar,
        then at a base close the signal decided on it, then the recorder."""
        for i in range(first, last):
            b = bar(i)
            self.recorder.on_bar(b)
            self.clock.set(b.close_time)
            self.service.on_bar(b)
            closes = (i + 1) // 5
            if (i + 1) % 5 == 0:
                target = TARGETS[closes % len(TARGETS)]
                event = PredictionCompleted(
                    event_id=f"sig{closes:06d}",
                    symbol=S,
                    action=Action.LONG if target > 0 else Action.FLAT,
                    target_position=target,
                    confidence=0.9,
                    model_name="ppo",
                    model_version="1",
                    feature_time=b.close_time,
                    bar_close_time=b.close_time,
                )
                self.service.on_signal(event, BaseStrategy())
            self.recorder.after_processing()

    def end(self) -> SimulationTrace:
        self.recorder.finish()
        trace = self.recorder.traces()[S]
        self.store.close()
        return trace

    def fill_fees(self) -> float:
        records = self.store.records_since(T0 - timedelta(days=1))[self.records_before :]
        return sum(r.fee for r in records if r.kind is RecordKind.FILL)


def test_a_replay_behind_the_account_makes_no_points(tmp_path: Path) -> None:
    first = Session(tmp_path / "a.sqlite")
    first.stream(0, 63)
    assert first.service.positions()[S].quantity != 0.0  # a position is held at the end
    first.end()
    again = Session(tmp_path / "a.sqlite")
    again.stream(0, 63)  # the same bars: the account takes none of them
    assert again.recorder.points == 1  # its starting point only
    assert again.recorder.traces() == {}


def test_split_sessions_add_up_to_one_and_their_figures_agree(tmp_path: Path) -> None:
    whole = Session(tmp_path / "whole.sqlite")
    whole.stream(0, 120)
    one = whole.end()

    first = Session(tmp_path / "split.sqlite")
    first.stream(0, 63)  # stops inside a base bar, holding a position and an open order
    a = first.end()
    second = Session(tmp_path / "split.sqlite")
    # a continuation re-streams its base bar from its start (00:60): the account skips 60..62
    second.stream(60, 120)
    fees = second.fill_fees()
    b = second.end()

    assert a.times[-1] == b.times[0] == np.datetime64("2024-01-01T01:03")
    assert a.units[-1] != 0.0  # the second session starts holding a position
    assert b.equity[0] == pytest.approx(a.equity[-1], rel=1e-12)
    assert b.equity[-1] == pytest.approx(one.equity[-1], rel=1e-12)
    for trace in (a, b, one):
        assert (trace.cost >= 0.0).all()
        assert (trace.fees >= 0.0).all()
        assert (trace.cost >= trace.fees - 1e-9).all()  # fees, plus slippage
    assert float(b.fees.sum()) == pytest.approx(fees, rel=1e-9)
    assert fees > 0.0
    # the split costs what the whole run costs
    assert float(a.cost.sum() + b.cost.sum()) == pytest.approx(float(one.cost.sum()), rel=1e-9)
    assert np.isclose(float(a.fees.sum() + b.fees.sum()), float(one.fees.sum()), rtol=1e-9)


def _predictor(allow_short: bool) -> Predictor:
    """A model for `backtest` (its own column is not compared: only the baselines are)."""
    manifest = ModelManifest(
        algorithm="PPO",
        policy="MlpPolicy",
        action_mode="discrete",
        window=1,
        feature_columns=["f0"],
        feature_set={},
        feature_set_version="test",
        feature_view="test",
        base_timeframe=BASE.value,
        strategy={"name": "test", "version": "1"},
        max_position=1.0,
        allow_short=allow_short,
        fee_bps=COSTS.fee_bps,
        slippage_bps=COSTS.slippage_bps,
    )
    head = (np.ones((3, manifest.obs_size)), np.zeros(3), None)
    return Predictor(
        manifest,
        ObsNormalization.identity(manifest.obs_size),
        fast=NumpyPolicy("logits", [], head),
        load_model=lambda: None,
    )


@pytest.mark.parametrize("allow_short", [True, False])
def test_a_session_has_the_backtest_baselines_on_the_same_bars(
    tmp_path: Path, allow_short: bool
) -> None:
    """The session report's baseline columns are the backtest's, rules included, with the same
    lookbacks: on the bars the session saw, every baseline figure is the backtest's."""
    session = Session(tmp_path / "a.sqlite")
    session.stream(0, 300)  # 60 base closes
    trace = session.end()
    lookbacks = RuleLookbacks(momentum=4, sma_fast=2, sma_slow=8)
    ppy = 365 * 288.0
    paper = session.recorder.result(
        ppy, random_seeds=3, lookbacks=lookbacks, allow_short={S: allow_short}
    )
    series = MarketSeries(
        str(S), trace.times, np.zeros((len(trace.times), 1), np.float32), trace.open, trace.close
    )
    fast = backtest(
        _predictor(allow_short),
        [series],
        costs=COSTS,
        periods_per_year=ppy,
        random_seeds=3,
        initial_equity=float(trace.equity[0]),
        lookbacks=lookbacks,
    )
    (live,), (vectorised,) = paper.symbols, fast.symbols
    names = [
        "buy-and-hold",
        "flat",
        random_baseline_name(3),
        lookbacks.momentum_name,
        lookbacks.sma_cross_name,
    ]
    assert list(live.baselines) == list(vectorised.baselines) == names
    assert live.baselines == vectorised.baselines
    for name in names:
        np.testing.assert_array_equal(
            live.baseline_returns[name], vectorised.baseline_returns[name]
        )
    momentum = live.baselines[lookbacks.momentum_name]
    assert momentum.n_trades > 0 and momentum.fees_paid > 0  # the rules trade these bars
    # the rules go short on these bars only where allowed
    rules = rule_positions(trace.close, lookbacks, allow_short)
    assert all((p < 0).any() == allow_short for p in rules.values())
    assert paper.baseline_metrics() == fast.baseline_metrics()
