"""Execution on a market calendar: the policy's ``bars_in_position`` counts market bars, as the
training environment counts the bars it steps (an FX weekend adds none, where 48 hours of wall
time once counted 48 hourly bars), and inference's read of the store waits for the last base
close at or before its clock (Friday's on a Sunday), not for a bar the market never made."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.adapter.fx_calendar import FxCalendar
from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.bar_windows import BarWindows, bar_slots
from drl_trading.common.calendar import CalendarBook
from drl_trading.common.domain import Action, Bar, Symbol, Timeframe, from_micros
from drl_trading.common.events import PredictionCompleted
from drl_trading.common.market_series import MarketSeries
from drl_trading.execution.adapter.inference_inputs import ExecutionPositions
from drl_trading.execution.adapter.memory_store import InMemoryExecutionStore
from drl_trading.execution.adapter.paper_broker import PaperBroker
from drl_trading.execution.adapter.store_positions import StorePositions
from drl_trading.execution.core.service import ExecutionService, bars_held
from drl_trading.strategy.api import RewardContext
from drl_trading.training.core.env import EnvConfig, TradingEnv
from tests.unit.test_execution_service import LIMITS, STRATEGY

EURUSD = Symbol("EURUSD")
H1 = Timeframe.H1
FX = FxCalendar()
BOOK = CalendarBook(AlwaysOpenCalendar(), {EURUSD: FX})
KEYS = [
    from_micros(int(k))
    for k in bar_slots(
        FX, H1, datetime(2024, 6, 7, 16, tzinfo=UTC), datetime(2024, 6, 10, 3, tzinfo=UTC)
    )
]
"""Friday 16:00..20:00 (the week's last bar closes at 21:00 UTC), then Sunday 21:00 on."""


def _env_counts(n: int) -> list[int]:
    """``bars_in_position`` at the close of bars 1..n-1 after going long at bar 0's close."""
    seen: list[int] = []

    def reward(ctx: RewardContext) -> float:
        seen.append(ctx.bars_in_position)
        return 0.0

    prices = np.full(n, 100.0)
    times = np.asarray([k.replace(tzinfo=None) for k in KEYS], dtype="datetime64[us]")
    series = MarketSeries("EURUSD", times, np.zeros((n, 1), np.float32), prices, prices)
    env = TradingEnv([series], reward, EnvConfig(window=1, episode_bars=None))
    env.reset(options={"start": 0})
    for _ in range(n - 1):
        env.step(2)  # long, held
    return seen


def test_the_weekend_is_no_bar_held() -> None:
    assert KEYS[4] == datetime(2024, 6, 7, 20, tzinfo=UTC)
    assert KEYS[5] == datetime(2024, 6, 9, 21, tzinfo=UTC)
    clock = ManualClock(KEYS[0])
    service = ExecutionService(
        PaperBroker(fee_bps=5, slippage_bps=2, initial_cash=10_000),
        InMemoryExecutionStore(),
        LIMITS,
        clock,
    )
    positions = ExecutionPositions(service, H1, BOOK)
    held: list[int] = []
    for i, key in enumerate(KEYS):
        bar = Bar(EURUSD, H1, key, 100.0, 100.0, 100.0, 100.0, 1.0)
        clock.set(bar.close_time)
        service.on_bar(bar)
        if i == 0:  # long on bar 0's close: filled at bar 1's open, as the env enters
            close = bar.close_time
            service.on_signal(
                PredictionCompleted(
                    symbol=EURUSD,
                    action=Action.LONG,
                    target_position=1.0,
                    confidence=0.9,
                    model_name="ppo",
                    model_version="1",
                    feature_time=close,
                    bar_close_time=close,
                ),
                STRATEGY,
            )
        else:
            held.append(positions.agent_position(EURUSD).bars_in_position)
    assert held == _env_counts(len(KEYS)) == list(range(1, len(KEYS)))
    # the 24/7 count, for the record: the weekend's 48 hours were 48 bars
    assert ExecutionPositions(service, H1).agent_position(EURUSD).bars_in_position == len(KEYS) + 47


def test_an_entry_inside_a_bar_counts_from_the_next_bar() -> None:
    windows = BarWindows(FX, H1)
    friday_20 = datetime(2024, 6, 7, 20, tzinfo=UTC)
    sunday_22 = datetime(2024, 6, 9, 22, tzinfo=UTC)
    # entered at the open of Friday's last bar: that bar and Sunday's first are held
    assert bars_held(friday_20, sunday_22, windows) == 2
    # entered mid-bar (a fill on a later 1m bar): the entry bar is not a whole one held
    assert bars_held(friday_20 + timedelta(minutes=30), sunday_22, windows) == 1
    assert (
        bars_held(friday_20 + timedelta(minutes=30), friday_20 + timedelta(hours=1), windows) == 0
    )
    # on 24/7 the closed form stands: hours elapsed
    always = BarWindows(AlwaysOpenCalendar(), H1)
    assert bars_held(friday_20, sunday_22, always) == bars_held(friday_20, sunday_22, H1.duration)
    assert bars_held(friday_20, sunday_22, always) == 50


def test_the_store_read_waits_for_fridays_close_on_a_sunday() -> None:
    store = InMemoryExecutionStore()
    clock = ManualClock(KEYS[0])
    service = ExecutionService(
        PaperBroker(fee_bps=5, slippage_bps=2, initial_cash=10_000), store, LIMITS, clock
    )
    last = Bar(EURUSD, H1, KEYS[4], 100.0, 100.0, 100.0, 101.0, 1.0)
    service.on_bar(last)  # the week's last bar, closed at 21:00 UTC
    clock.set(datetime(2024, 6, 9, 21, 30, tzinfo=UTC))  # Sunday, the first bar still open
    fx = StorePositions(store, H1, clock, wait=timedelta(0), calendars=BOOK)
    assert fx.price(EURUSD) == 101.0 and fx.late == 0
    always = StorePositions(store, H1, clock, wait=timedelta(0))
    assert always.price(EURUSD) == 101.0 and always.late == 1  # waited for Sunday 21:00
