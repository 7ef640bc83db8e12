"""Contract of the clock port, over the wall clock and the manual clock tests drive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from drl_trading.common.adapter.system_clock import ManualClock, SystemClock
from drl_trading.common.ports import Clock

T0 = datetime(2024, 1, 1, 12, 30, tzinfo=UTC)


@pytest.fixture(params=["system", "manual"])
def clock(request: pytest.FixtureRequest) -> Clock:
    return SystemClock() if request.param == "system" else ManualClock(T0)


def test_now_is_an_aware_utc_datetime(clock: Clock) -> None:
    now = clock.now()
    assert isinstance(now, datetime)
    assert now.utcoffset() == timedelta(0)


def test_now_never_goes_back_on_its_own(clock: Clock) -> None:
    readings = [clock.now() for _ in range(200)]
    assert readings == sorted(readings)


def test_the_system_clock_reads_the_wall_clock() -> None:
    before = datetime.now(UTC)
    now = SystemClock().now()
    assert before <= now <= datetime.now(UTC)


def test_a_manual_clock_starts_where_told_in_utc() -> None:
    assert ManualClock(T0).now() == T0
    naive = ManualClock(datetime(2024, 1, 1, 12, 30))  # naive times are UTC
    assert naive.now() == T0 and naive.now().utcoffset() == timedelta(0)
    east = ManualClock(datetime(2024, 1, 1, 14, 30, tzinfo=timezone(timedelta(hours=2))))
    assert east.now() == T0 and east.now().utcoffset() == timedelta(0)


def test_a_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(T0)
    assert clock.now() == clock.now() == T0
    clock.advance(timedelta(minutes=5, seconds=2))
    assert clock.now() == T0 + timedelta(minutes=5, seconds=2)
    clock.set(datetime(2024, 1, 2, 3, 0, tzinfo=timezone(timedelta(hours=3))))
    assert clock.now() == datetime(2024, 1, 2, 0, 0, tzinfo=UTC)
    assert clock.now().utcoffset() == timedelta(0)
    clock.set(T0)  # a test may rewind it, e.g. to replay a scenario
    assert clock.now() == T0
