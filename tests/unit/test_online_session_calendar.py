"""What a paper session takes from the calendar and the stored bars before it streams: the data
timeframe (a replay's stored one; a live source's asked one) and where its catch-up starts,
counted in the market's bars (the day of base bars before a Monday's open is Friday's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drl_trading.app.online_session import SessionRequest, _session_timeframe, _warmup_from
from drl_trading.app.session_range import SessionStartError
from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.adapter.exchange_calendars_calendar import ExchangeCalendarsCalendar
from drl_trading.common.adapter.fx_calendar import FxCalendar
from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.domain import Symbol, Timeframe, TimeRange
from drl_trading.strategy.feature_set import default_feature_set
from tests.conftest import make_bars

EURUSD = Symbol("EURUSD")
MONDAY = datetime(2024, 6, 10, tzinfo=UTC)


def test_a_replay_streams_its_stored_timeframe_and_refuses_another() -> None:
    repo = InMemoryMarketData()
    repo.upsert_bars(EURUSD, Timeframe.H1, make_bars("2024-06-03", 48, step_minutes=60))
    rng = TimeRange(MONDAY - timedelta(days=7), MONDAY)
    replay = SessionRequest((EURUSD,), "replay", rng)
    assert _session_timeframe(replay, repo) is Timeframe.H1
    asked = SessionRequest((EURUSD,), "replay", rng, timeframe=Timeframe.M1)
    with pytest.raises(SessionStartError, match="are 1h, not 1m"):
        _session_timeframe(asked, repo)
    live = SessionRequest((EURUSD,), "synthetic-live", timeframe=Timeframe.H4)
    assert _session_timeframe(live, repo) is Timeframe.H4
    assert _session_timeframe(SessionRequest((EURUSD,), "ccxt-live"), repo) is Timeframe.M1


def test_the_catch_up_starts_a_day_of_market_bars_back() -> None:
    spec = default_feature_set()  # base 5m: a day is 288 bars
    always = AlwaysOpenCalendar()
    assert _warmup_from("replay", spec, always, MONDAY) == MONDAY - timedelta(days=1)
    assert _warmup_from("synthetic-live", spec, always, MONDAY) == MONDAY - spec.lookback()
    # FX opened on Sunday 21:00 UTC: 288 bars before Monday 00:00 reach into Friday
    fx_open = datetime(2024, 6, 9, 21, tzinfo=UTC)
    fx_from = _warmup_from("replay", spec, FxCalendar(), MONDAY)
    assert fx_from == datetime(2024, 6, 7, 21, tzinfo=UTC) - (
        timedelta(days=1) - (MONDAY - fx_open)
    )
    # XNYS trades 6.5 hours (78 bars) a day: 288 bars are Friday's, Thursday's, Wednesday's and
    # the last 54 of Tuesday's session (13:30-20:00 UTC)
    xnys_from = _warmup_from("replay", spec, ExchangeCalendarsCalendar("XNYS"), MONDAY)
    assert xnys_from == datetime(2024, 6, 4, 15, 30, tzinfo=UTC)
    assert _warmup_from("ccxt-live", spec, FxCalendar(), MONDAY) == spec.history_start(
        FxCalendar(), MONDAY
    )
