"""Two execution instances on one account in PostgreSQL, the symbols split between them as a
consumer group splits partitions: each event handled holding the account's lock, on the state
the other instance committed. The account ends exactly as one instance handling the same events
in the same order leaves it: no cash spent twice, the exposure limit kept across instances."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.domain import Action, Symbol, parse_time
from drl_trading.common.events import (
    PredictionCompleted,
    PreprocessDataRequested,
    ProcessingMode,
    ResampledBar,
)
from drl_trading.execution.adapter.bus_handlers import ExecutionHandlers
from drl_trading.execution.adapter.paper_broker import PaperBroker
from drl_trading.execution.adapter.postgres_store import PostgresExecutionStore
from drl_trading.execution.core.ports import ConcurrentCommitError
from drl_trading.execution.core.risk import ExecutionLimits
from drl_trading.execution.core.service import ExecutionService
from drl_trading.strategy.api import BaseStrategy
from tests.conftest import require_server

pytestmark = pytest.mark.integration

DSN = "postgresql://drl:drl@127.0.0.1:5432/drl"
SYMBOLS = [Symbol(s) for s in ("AAAUSDT", "BBBUSDT", "CCCUSDT", "DDDUSDT")]
T0 = parse_time("2024-01-01T00:00")
LIMITS = ExecutionLimits(max_signal_age=timedelta(minutes=5), max_total_exposure=1.0)


@pytest.fixture
def schemas() -> Iterator[list[str]]:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    made = [f"test_shared_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    yield made
    with psycopg.connect(DSN, autocommit=True) as con:
        for schema in made:
            con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


class Instance:
    """One execution process: its own store handle, paper broker, clock and handlers."""

    def __init__(self, schema: str, *, locked: bool = True) -> None:
        self.store = PostgresExecutionStore(DSN, schema=schema)
        self.clock = ManualClock(T0)
        broker = PaperBroker(fee_bps=5, slippage_bps=2, initial_cash=10_000)
        self.service = ExecutionService(broker, self.store, LIMITS, self.clock)
        self.handlers = ExecutionHandlers(
            self.service, BaseStrategy(), account=self.store if locked else None
        )


def _bar_event(symbol: Symbol, i: int) -> PreprocessDataRequested:
    open_time = T0 + timedelta(minutes=i)
    price = 100.0 + 3 * SYMBOLS.index(symbol) + (i % 7) - 0.5 * (i % 3)
    bar = ResampledBar(
        open_time=open_time, open=price, high=price + 1, low=price - 1, close=price, volume=1.0
    )
    return PreprocessDataRequested(
        mode=ProcessingMode.ONLINE,
        symbols=[symbol],
        start=open_time,
        end=open_time + timedelta(minutes=1),
        bar_close_time=open_time + timedelta(minutes=1),
        bars=[bar],
    )


def _signal(symbol: Symbol, i: int, target: float) -> PredictionCompleted:
    close = T0 + timedelta(minutes=i + 1)
    return PredictionCompleted(
        event_id=f"{symbol}-{i}",
        symbol=symbol,
        action=Action.LONG if target > 0 else Action.FLAT,
        target_position=target,
        confidence=0.9,
        model_name="ppo",
        model_version="1",
        feature_time=close,
        bar_close_time=close,
    )


def _events() -> list[tuple[Symbol, PreprocessDataRequested | PredictionCompleted]]:
    """Bars of four symbols and, every few bars, a long target for each: together they ask for
    more exposure (4 x 0.4) than the account may carry (1.0)."""
    out: list[tuple[Symbol, PreprocessDataRequested | PredictionCompleted]] = []
    for i in range(24):
        for k, symbol in enumerate(SYMBOLS):
            out.append((symbol, _bar_event(symbol, i)))
            if i % 6 == k:
                target = 0.4 if (i // 6) % 2 == 0 else 0.1
                out.append((symbol, _signal(symbol, i, target)))
    return out


def _handle(instance: Instance, event: PreprocessDataRequested | PredictionCompleted) -> None:
    when = event.bar_close_time
    assert when is not None
    instance.clock.set(when + timedelta(seconds=1))
    if isinstance(event, PredictionCompleted):
        instance.handlers.on_prediction(event)
    else:
        instance.handlers.on_bar_request(event)


def test_two_instances_share_one_account_as_one_instance_would(schemas: list[str]) -> None:
    one = Instance(schemas[0])
    a, b = Instance(schemas[1]), Instance(schemas[1])
    try:
        for symbol, event in _events():
            _handle(one, event)
            _handle(a if SYMBOLS.index(symbol) < 2 else b, event)  # the partitions' owners
        want, got = one.store.load(), b.store.load()
        assert want is not None and got is not None
        assert got.portfolio.cash == pytest.approx(want.portfolio.cash, rel=1e-12)
        assert got.portfolio.positions.keys() == want.portfolio.positions.keys()
        for symbol, position in want.portfolio.positions.items():
            assert got.portfolio.positions[symbol].quantity == pytest.approx(
                position.quantity, rel=1e-12
            )
        # the exposure limit binds across the instances: some targets were cut or refused
        records = b.store.records_since(T0 - timedelta(days=1))
        assert [r.risk_check for r in records] == [
            r.risk_check for r in one.store.records_since(T0 - timedelta(days=1))
        ]
        assert {s for s in SYMBOLS if got.portfolio.positions.get(s)} == set(SYMBOLS)
        # B's last symbol found the cash spent, A's symbols included: nothing left to order
        assert any(r.symbol == SYMBOLS[3] and r.risk_check == "min_notional" for r in records)
    finally:
        for instance in (one, a, b):
            instance.store.close()


def test_without_the_lock_a_second_instance_cannot_commit_on_a_stale_account(
    schemas: list[str],
) -> None:
    """What the lock prevents: an instance deciding on the account as it last saw it. The store's
    generation guard refuses that commit, so nothing is spent twice even then, but the event
    fails (and is retried); with the lock it is decided on the current account at once."""
    a, b = Instance(schemas[0], locked=False), Instance(schemas[0], locked=False)
    try:
        _handle(a, _bar_event(SYMBOLS[0], 0))
        with pytest.raises(ConcurrentCommitError):
            _handle(b, _bar_event(SYMBOLS[2], 0))
    finally:
        a.store.close()
        b.store.close()
