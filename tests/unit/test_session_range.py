"""Which bars a session trades (`app.session_range`): a replay with no stored bars for a symbol
or range fails naming each symbol and what is stored; an account that already traded past the
session's start continues from its last bar, or is refused naming --fresh and --session."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest

from drl_trading.app.session_range import (
    NoStoredBarsError,
    RangeAlreadyTradedError,
    SessionPlan,
    SessionStartError,
    plan_session,
    stream_start,
)
from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.adapter.exchange_calendars_calendar import ExchangeCalendarsCalendar
from drl_trading.common.adapter.fx_calendar import FxCalendar
from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.bar_windows import bar_slots
from drl_trading.common.calendar import CalendarBook, MarketCalendar
from drl_trading.common.domain import Symbol, Timeframe, parse_time
from tests.conftest import make_bars

BTC, ETH, XRP, SOL = (Symbol(s) for s in ("BTCUSDT", "ETHUSDT", "XRPUSDT", "SOLUSDT"))
AAPL = Symbol("AAPL")
DAY = 1440


def t(s: str) -> datetime:
    return parse_time(s)


@pytest.fixture
def bars() -> InMemoryMarketData:
    """BTCUSDT on 2024-01-01..2024-01-03, ETHUSDT on 2024-01-02 only."""
    repo = InMemoryMarketData()
    repo.upsert_bars(BTC, Timeframe.M1, make_bars("2024-01-01", 2 * DAY))
    repo.upsert_bars(ETH, Timeframe.M1, make_bars("2024-01-02", DAY))
    return repo


def replay(
    repo: InMemoryMarketData,
    symbols: tuple[Symbol, ...],
    start: str,
    end: str,
    account_time: str | None = None,
) -> SessionPlan:
    return plan_session(
        symbols,
        "replay",
        t(start),
        t(end),
        account="rr",
        account_time=None if account_time is None else t(account_time),
        bars=repo,
    )


def test_a_symbol_without_stored_bars_is_named_with_what_is_stored(
    bars: InMemoryMarketData,
) -> None:
    with pytest.raises(NoStoredBarsError) as caught:
        replay(bars, (XRP, BTC, SOL), "2024-01-02", "2024-01-03")
    assert caught.value.lacking == (XRP, SOL)
    message = str(caught.value)
    assert "no stored 1m bars for XRPUSDT, SOLUSDT in 2024-01-02..2024-01-03" in message
    assert "stored: BTCUSDT 2024-01-01..2024-01-03, ETHUSDT 2024-01-02..2024-01-03" in message
    assert "drl-trading ingest" in message and "-s XRPUSDT,SOLUSDT" in message


def test_a_range_without_stored_bars_fails_for_every_symbol(bars: InMemoryMarketData) -> None:
    with pytest.raises(NoStoredBarsError) as caught:
        replay(bars, (BTC, ETH), "2024-02-21T06:00", "2024-03-01")
    assert caught.value.lacking == (BTC, ETH)
    assert "in 2024-02-21T06:00..2024-03-01" in str(caught.value)


def test_an_empty_store_says_none() -> None:
    with pytest.raises(NoStoredBarsError, match=r"stored: none\. Store them first"):
        replay(InMemoryMarketData(), (BTC,), "2024-01-01", "2024-01-02")


def test_a_partly_stored_symbol_is_a_notice(bars: InMemoryMarketData) -> None:
    plan = replay(bars, (BTC, ETH), "2024-01-01T12:00", "2024-01-02T12:00")
    assert plan == SessionPlan(t("2024-01-01T12:00"), None, plan.notices)
    assert len(plan.notices) == 1
    assert plan.notices[0].startswith("ETHUSDT: 720 of the 1440 1m bars")


def test_a_new_account_or_one_behind_the_start_starts_at_the_start(
    bars: InMemoryMarketData,
) -> None:
    assert replay(bars, (BTC,), "2024-01-02", "2024-01-03") == SessionPlan(t("2024-01-02"))
    behind = replay(bars, (BTC,), "2024-01-02", "2024-01-03", account_time="2024-01-02")
    assert behind == SessionPlan(t("2024-01-02"))


def test_an_account_inside_the_range_continues_from_its_last_bar(
    bars: InMemoryMarketData,
) -> None:
    plan = replay(bars, (BTC,), "2024-01-02", "2024-01-03", account_time="2024-01-02T05:03")
    assert (plan.first_bar, plan.continued_from) == (t("2024-01-02T05:03"),) * 2
    assert "continues from 2024-01-02T05:03 UTC" in plan.notices[0]
    assert "--fresh" in plan.notices[0] and "--session" in plan.notices[0]
    # the stream starts on the base grid so that its first base bar is complete
    assert stream_start(plan, Timeframe.M5) == t("2024-01-02T05:00")
    assert stream_start(SessionPlan(t("2024-01-02T05:03")), Timeframe.M5) == t("2024-01-02T05:03")


@pytest.mark.parametrize("account_time", ["2024-01-03", "2024-01-04T10:00"])
def test_a_range_the_account_already_traded_is_refused(
    bars: InMemoryMarketData, account_time: str
) -> None:
    with pytest.raises(RangeAlreadyTradedError) as caught:
        replay(bars, (BTC,), "2024-01-02", "2024-01-03", account_time=account_time)
    message = str(caught.value)
    assert "paper account 'rr' already traded 2024-01-02..2024-01-03" in message
    assert "--fresh" in message and "--session NAME" in message


def test_an_account_past_the_last_stored_bar_of_the_range_is_refused(
    bars: InMemoryMarketData,
) -> None:
    # ETHUSDT is stored on 2024-01-02 only: after 2024-01-02T23:00 nothing of it is left before
    # the 2024-01-04 end
    with pytest.raises(RangeAlreadyTradedError, match="no bar of ETHUSDT is stored after it"):
        replay(bars, (ETH,), "2024-01-02", "2024-01-04", account_time="2024-01-03")


def test_a_continuation_names_the_symbols_without_bars_after_the_account(
    bars: InMemoryMarketData,
) -> None:
    bars.upsert_bars(BTC, Timeframe.M1, make_bars("2024-01-03", DAY))  # BTCUSDT goes on
    with pytest.raises(NoStoredBarsError) as caught:
        replay(bars, (BTC, ETH), "2024-01-02", "2024-01-04", account_time="2024-01-03")
    assert caught.value.lacking == (ETH,)
    assert "continues from 2024-01-03 UTC" in str(caught.value)
    assert "--fresh" in str(caught.value)


def test_live_sources_continue_or_refuse_by_their_clock() -> None:
    synthetic = plan_session(
        (BTC,), "synthetic-live", t("2024-01-02"), None, account="x", account_time=t("2024-01-05")
    )
    assert synthetic.continued_from == t("2024-01-05")
    now = t("2024-01-06T12:00:30")

    def ccxt(start: str, account_time: str) -> SessionPlan:
        return plan_session(
            (BTC,), "ccxt-live", t(start), None, account="x", account_time=t(account_time), now=now
        )

    assert ccxt("2024-01-06T12:00", "2024-01-01") == SessionPlan(t("2024-01-06T12:00"))
    # a --start before the account's last bar: from there, as the exchange's history has it
    assert ccxt("2024-01-02", "2024-01-05").continued_from == t("2024-01-05")
    with pytest.raises(SessionStartError, match=r"ahead of the exchange's clock \(2024-01-06T12"):
        ccxt("2024-01-06T12:00", "2024-01-07")


# -- market calendars -----------------------------------------------------------------------------


def _sessions_only(frame: pl.DataFrame, calendar: MarketCalendar, tf: Timeframe) -> pl.DataFrame:
    """The rows of ``frame`` at bars the market makes (its slots)."""
    keys = bar_slots(calendar, tf, frame["open_time"].min(), frame["open_time"].max() + tf.duration)
    return frame.filter(pl.col("open_time").dt.epoch("us").is_in(keys.tolist()))


def test_a_holiday_and_weekends_are_not_missing_bars_on_xnys() -> None:
    xnys = ExchangeCalendarsCalendar("XNYS")
    book = CalendarBook(AlwaysOpenCalendar(), {AAPL: xnys})
    daily = _sessions_only(make_bars("2024-06-24", 21, step_minutes=DAY), xnys, Timeframe.D1)
    assert daily.height == 14  # three weeks less weekends and Independence Day

    def plan(frame: pl.DataFrame, symbol_calendars: CalendarBook | None) -> SessionPlan:
        repo = InMemoryMarketData()
        repo.upsert_bars(AAPL, Timeframe.D1, frame)
        return plan_session(
            (AAPL,),
            "replay",
            t("2024-06-24"),
            t("2024-07-15"),
            account="rr",
            account_time=None,
            bars=repo,
            timeframe=Timeframe.D1,
            calendars=symbol_calendars,
        )

    assert plan(daily, book).notices == []
    # counted on a 24/7 clock the same bars would be "14 of the 21"
    notice = plan(daily, None).notices[0]
    assert notice.startswith("AAPL: 14 of the 21 1d bars of 2024-06-24..2024-07-15")
    # a session really missing is said, counted in sessions
    lacking = daily.filter(pl.col("open_time") != t("2024-07-08"))
    assert plan(lacking, book).notices[0].startswith("AAPL: 13 of the 14 1d bars")


def test_no_stored_bars_names_the_data_timeframe() -> None:
    with pytest.raises(NoStoredBarsError) as caught:
        plan_session(
            (AAPL,),
            "replay",
            t("2024-07-01"),
            t("2024-07-15"),
            account="rr",
            account_time=None,
            bars=InMemoryMarketData(),
            timeframe=Timeframe.H1,
        )
    message = str(caught.value)
    assert "no stored 1h bars for AAPL" in message and "--timeframe 1h" in message


def test_a_continued_stream_starts_where_the_market_opens_its_window() -> None:
    xnys = ExchangeCalendarsCalendar("XNYS")
    # XNYS opens at 13:30 UTC in summer: the hourly window keyed 13:00 first trades then
    continued = SessionPlan(t("2024-07-03T13:45"), t("2024-07-03T13:45"))
    assert stream_start(continued, Timeframe.H1, xnys) == t("2024-07-03T13:30")
    assert stream_start(continued, Timeframe.H1) == t("2024-07-03T13:00")
    # the FX daily bar labelled 2024-07-04 opens on the 3rd at 21:00 UTC (17:00 New York)
    fx_day = SessionPlan(t("2024-07-04T10:00"), t("2024-07-04T10:00"))
    assert stream_start(fx_day, Timeframe.D1, FxCalendar()) == t("2024-07-03T21:00")
    # continuing while the market is closed: the next bar is a whole one
    night = SessionPlan(t("2024-07-03T22:00"), t("2024-07-03T22:00"))
    assert stream_start(night, Timeframe.H1, xnys) == t("2024-07-03T22:00")
