"""Clocks: the wall clock for services, a settable one for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from drl_trading.common.domain import utc


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told, so tests control time."""

    def __init__(self, start: datetime) -> None:
        self._now = utc(start)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, when: datetime) -> None:
        self._now = utc(when)
