"""A second execution instance on an account that cannot be shared stops with a message saying
why and what to do, before it handles anything; the first instance goes on."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from drl_trading.app.services import _share_account
from drl_trading.app.settings import AppSettings
from drl_trading.common.adapter.kafka_bus import Rebalance
from drl_trading.common.errors import UsageError


class FakeGroupBus:
    """The two calls `_share_account` makes on the Kafka bus: a rebalance listener and the
    group coordinator's member count."""

    def __init__(self, members: int) -> None:
        self.members = members
        self.listeners: list[Any] = []

    def on_rebalance(self, group: str, listener: Any) -> None:
        assert group == "execution"
        self.listeners.append(listener)

    def group_members(self, group: str) -> int:
        return self.members


def _gained(n: int) -> Rebalance:
    parts = frozenset(("completed.predict", p) for p in range(n))
    return Rebalance("execution", parts, frozenset(), frozenset(), frozenset())


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_an_account_held_in_one_process_refuses_a_second_instance(store: str) -> None:
    settings = AppSettings(execution={"store": store})  # type: ignore[arg-type]
    bus = FakeGroupBus(members=1)
    parts = SimpleNamespace(store=object(), handlers=SimpleNamespace(account=None))
    wiring = SimpleNamespace(settings=settings, bus=SimpleNamespace(inner=bus))
    _share_account(wiring, parts)  # type: ignore[arg-type]
    (listener,) = bus.listeners
    listener(_gained(4))  # alone in the group: goes on
    bus.members = 2
    with pytest.raises(UsageError, match=rf"execution.store '{store}' keeps the account") as err:
        listener(_gained(2))
    assert "set execution.store: postgres" in str(err.value)
    listener(Rebalance("execution", frozenset(), frozenset({("x", 0)}), frozenset(), frozenset()))
    assert parts.handlers.account is None  # no lock: the account is this process's alone
