"""Which bars a paper (or live) session trades, decided before any work starts.

Two guards, both checked before the model is loaded or a service subscribed:

* **Stored bars.** A replay streams the stored bars of its symbols over its range, at their data
  timeframe (the finest stored there: `app.data_timeframe`); a symbol with none there would run
  the whole chain over nothing and report an empty success. So a replay in which any symbol has
  no stored bar fails, naming each such symbol, the range, and what is stored (every symbol's
  range, or none), with the `ingest` command that would fill it. A symbol stored over part of
  the range only is a notice, not an error; what a full range holds is counted in the market's
  bars (`bar_slots`: a weekend or an exchange holiday is not missing).
* **The account's clock.** A paper account is one portfolio moving forward in market time: its
  execution service takes a bar only if it is newer than the last it marked for the symbol
  (that is what makes redelivered bars harmless). A replay that starts before the account's
  last bar would stream bars the account never trades while the session measured them: a held
  position's price moves then appeared as "fees" (positive or negative) next to a 0.00% return.
  So a session on an account that already traded past its start *continues* from the
  account's last bar (the report says from when, and covers only the continuation), and a
  session whose whole range is behind the account is refused, naming ``--fresh`` (start the
  account over) and ``--session`` (trade another account).

Live sources have no stored range to check: they continue from the account's last bar like a
replay (an exchange's from its history first); an exchange's stream cannot run ahead of the wall
clock, so an account whose clock is ahead of it (it replayed or simulated later minutes) is
refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from drl_trading.common.bar_windows import BarWindows, bar_slots
from drl_trading.common.calendar import CalendarBook, MarketCalendar
from drl_trading.common.domain import Symbol, Timeframe, from_micros, to_micros
from drl_trading.common.ports import Coverage, MarketDataRepository

M1 = Timeframe.M1

SessionSource = Literal["replay", "synthetic-live", "ccxt-live"]


class SessionStartError(RuntimeError):
    """The session could not start: no such model, a model whose features do not match, no
    stored bars for a symbol or range, or a range the account has already traded."""


class NoStoredBarsError(SessionStartError):
    """A replay's symbols or range have no stored bars (of the data timeframe)."""

    def __init__(self, lacking: Sequence[Symbol], message: str) -> None:
        self.lacking = tuple(lacking)
        super().__init__(message)


class RangeAlreadyTradedError(SessionStartError):
    """The account's last bar is at or after the session's end: nothing is left to trade."""


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """Where the session's stream starts and why."""

    first_bar: datetime
    """Open time (UTC) of the first bar the session trades: the requested start, or the close
    of the account's last bar when it continues."""
    continued_from: datetime | None = None
    """The account's last bar close (UTC) when the session continues it, else None."""
    notices: list[str] = field(default_factory=list)
    """Lines for the operator (continuation, partly stored symbols)."""


def stamp(t: datetime) -> str:
    """A UTC time as the CLI's options take it: a date at midnight, else minutes."""
    return f"{t:%Y-%m-%d}" if (t.hour, t.minute, t.second) == (0, 0, 0) else f"{t:%Y-%m-%dT%H:%M}"


def span(start: datetime, end: datetime) -> str:
    """A half-open range ``start..end`` in `stamp`'s format."""
    return f"{stamp(start)}..{stamp(end)}"


def stored_summary(stored: Mapping[Symbol, Coverage], timeframe: Timeframe = M1) -> str:
    """Each stored symbol with its range (end exclusive, as ``--end``; bars of ``timeframe``),
    or ``none``."""
    if not stored:
        return "none"
    return ", ".join(
        f"{s} {span(c.first_open_time, c.last_open_time + timeframe.duration)}"
        for s, c in sorted(stored.items())
    )


def expected_bars(
    calendar: MarketCalendar | None, timeframe: Timeframe, start: datetime, end: datetime
) -> int:
    """How many bars of ``timeframe`` the market makes in ``[start, end)``: every step of it on
    24/7 (``calendar`` None or always open), else its calendar's slots."""
    if calendar is None or calendar.always_open:
        return int((end - start) / timeframe.duration)
    return int(bar_slots(calendar, timeframe, start, end).size)


def check_stored_bars(
    symbols: Sequence[Symbol],
    start: datetime,
    end: datetime,
    within: Mapping[Symbol, Coverage],
    stored: Mapping[Symbol, Coverage],
    *,
    timeframe: Timeframe = M1,
    calendars: CalendarBook | None = None,
) -> list[str]:
    """Raise `NoStoredBarsError` naming every symbol of ``symbols`` absent from ``within``
    (the ``timeframe`` coverage of ``[start, end)``), with what ``stored`` (all its coverage)
    holds; return a notice per symbol stored over part of the range only, counted in its
    market's bars (``calendars``; None: 24/7)."""
    tf = timeframe.value
    lacking = [s for s in symbols if s not in within]
    if lacking:
        names = ", ".join(str(s) for s in lacking)
        flag = "" if timeframe is M1 else f" --timeframe {tf}"
        raise NoStoredBarsError(
            lacking,
            f"no stored {tf} bars for {names} in {span(start, end)}; stored: "
            f"{stored_summary(stored, timeframe)}. Store them first (`drl-trading ingest "
            f"--source ccxt|file|synthetic -s {','.join(str(s) for s in lacking)}{flag} --start "
            f"{stamp(start)} --end {stamp(end)}`) or replay a stored range",
        )
    notices = []
    for s in symbols:
        c = within[s]
        calendar = None if calendars is None else calendars.for_symbol(s)
        expected = expected_bars(calendar, timeframe, start, end)
        if c.bars < expected:
            notices.append(
                f"{s}: {c.bars} of the {expected} {tf} bars of {span(start, end)} are stored "
                f"(first {stamp(c.first_open_time)}, last {stamp(c.last_open_time)}); the "
                "session trades those"
            )
    return notices


def plan_session(
    symbols: Sequence[Symbol],
    source: SessionSource,
    start: datetime,
    end: datetime | None,
    *,
    account: str,
    account_time: datetime | None,
    bars: MarketDataRepository | None = None,
    now: datetime | None = None,
    timeframe: Timeframe = M1,
    calendars: CalendarBook | None = None,
) -> SessionPlan:
    """Where a session over ``[start, end)`` (``end`` None: open-ended live) on ``account``
    starts, given the account's last bar close ``account_time`` (None: never traded). A replay
    (``bars`` required) checks its stored bars of ``timeframe`` (the data timeframe) first,
    counting a full range in each symbol's market bars (``calendars``; None: 24/7). ``now``:
    the wall clock (UTC; default the system's), which an exchange's live stream cannot run
    ahead of. Raises `NoStoredBarsError`, `RangeAlreadyTradedError`, or `SessionStartError` for
    an account ahead of the exchange."""
    notices: list[str] = []
    stored: Mapping[Symbol, Coverage] = {}
    replay: tuple[MarketDataRepository, datetime] | None = None
    if source == "replay":
        if bars is None or end is None:
            raise ValueError("a replay's plan needs the stored bars and an end")
        replay = (bars, end)
        stored = bars.coverages(timeframe)
        within = bars.coverages(timeframe, start, end)
        notices = check_stored_bars(
            symbols, start, end, within, stored, timeframe=timeframe, calendars=calendars
        )
    if account_time is None or account_time <= start:
        return SessionPlan(start, None, notices)
    remedy = (
        "pass --fresh to start the account over (its portfolio and records are deleted), or "
        "--session NAME to trade another account"
    )
    wall = now if now is not None else datetime.now(UTC)
    if source == "ccxt-live" and account_time > wall:
        raise SessionStartError(
            f"paper account {account!r} is already at {stamp(account_time)} UTC (its last bar), "
            f"ahead of the exchange's clock ({stamp(M1.floor(wall))} UTC now): {remedy}"
        )
    if end is not None and account_time >= end:
        raise RangeAlreadyTradedError(
            f"paper account {account!r} already traded {span(start, end)}: its last bar closed "
            f"at {stamp(account_time)} UTC, at or after --end. To trade this range again {remedy};"
            f" to continue the account give an --end after {stamp(account_time)}"
        )
    if replay is not None:
        repo, end = replay
        after = repo.coverages(timeframe, account_time, end)
        if not any(s in after for s in symbols):
            raise RangeAlreadyTradedError(
                f"paper account {account!r} already traded the stored bars of {span(start, end)}"
                f": its last bar closed at {stamp(account_time)} UTC and no bar of "
                f"{', '.join(str(s) for s in symbols)} is stored after it before --end "
                f"(stored: {stored_summary(stored, timeframe)}). To trade this range again {remedy}"
            )
        try:
            notices = check_stored_bars(
                symbols, account_time, end, after, stored, timeframe=timeframe, calendars=calendars
            )
        except NoStoredBarsError as exc:
            raise NoStoredBarsError(
                exc.lacking,
                f"paper account {account!r} continues from {stamp(account_time)} UTC (its last "
                f"bar), and {exc}; or {remedy}",
            ) from None
    notices.insert(
        0,
        f"paper account {account!r} continues from {stamp(account_time)} UTC, the close of its "
        f"last bar (requested start {stamp(start)}): the report covers the continuation; "
        "--fresh starts the account over, --session NAME trades another account",
    )
    return SessionPlan(account_time, account_time, notices)


def window_start(t: datetime, base: Timeframe, calendar: MarketCalendar | None = None) -> datetime:
    """Where the base bar holding ``t`` first trades: ``t`` floored to the base timeframe on
    24/7 (``calendar`` None or always open); on a market calendar the window's first open (the
    FX daily bar labelled D opens at 21:00 or 22:00 UTC on D-1), or ``t`` itself while the
    market is closed (the next bar is a whole one)."""
    if calendar is None or calendar.always_open:
        return base.floor(t)
    windows = BarWindows(calendar, base)
    key = windows.key(to_micros(t))
    return t if key is None else from_micros(windows.first_open(key))


def stream_start(
    plan: SessionPlan, base: Timeframe, calendar: MarketCalendar | None = None
) -> datetime:
    """Where the bar stream starts: the plan's first bar, or the start of its base window
    (`window_start` on the symbols' ``calendar``; None: 24/7) when the session continues an
    account mid-window, so the first base bar it decides on is complete (the account skips the
    bars it already marked)."""
    if plan.continued_from is None:
        return plan.first_bar
    return window_start(plan.first_bar, base, calendar)
