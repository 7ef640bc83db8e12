"""Which bars a session trades (`app.session_range`): a replay with no stored bars for a symbol
or range fails naming each symbol and what is stored; an account that already traded past the
session's start continues from its last bar, or is refused naming --fresh and --session."""

from __future__ import annotations

from datetime import datetime

import pytest

from drl_trading.app.session_range import (
    NoStoredBarsError,
    RangeAlreadyTradedError,
    SessionPlan,
    SessionStartError,
    plan_session,
    stream_start,
)
from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.domain import Symbol, Timeframe, parse_time
from tests.conftest import make_bars

BTC, ETH, XRP, SOL = (Symbol(s) for s in ("BTCUSDT", "ETHUSDT", "XRPUSDT", "SOLUSDT"))
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
