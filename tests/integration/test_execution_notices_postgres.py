"""Symbol states on the PostgreSQL execution store's commit notifications, on the real server:
a listening handle (inference's) knows each symbol's state as the store holds it, without a
read, and knows nothing it could have missed (an account reset, a reconnect)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import psycopg
import pytest

from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.domain import Symbol, Timeframe
from drl_trading.common.errors import DatabaseConnectionError
from drl_trading.execution.adapter.postgres_store import PostgresExecutionStore
from drl_trading.execution.adapter.store_positions import StorePositions
from drl_trading.execution.core.records import Checkpoint, Mark, Position, SymbolState
from tests.conftest import require_server
from tests.contracts.test_execution_stores import PG_DSN, T0, E, S, checkpoint

pytestmark = pytest.mark.integration
OTHER = Symbol("SOLUSDT")


@pytest.fixture
def handles() -> Iterator[tuple[PostgresExecutionStore, PostgresExecutionStore]]:
    """Execution's handle and a listening one (inference's) on a fresh account."""
    require_server("PostgreSQL", "127.0.0.1", 5432)
    schema = f"test_{uuid.uuid4().hex[:10]}"
    execution = PostgresExecutionStore(PG_DSN, schema=schema)
    listener = PostgresExecutionStore(PG_DSN, schema=schema)
    assert listener.wait_for_commit(0.0)  # starts listening
    yield execution, listener
    execution.close()
    listener.close()
    with psycopg.connect(PG_DSN, autocommit=True) as con:
        con.execute(f"DROP SCHEMA {schema} CASCADE")


def wait_until_lost(listener: PostgresExecutionStore) -> None:
    for _ in range(50):
        listener.wait_for_commit(0.1)


def heard(listener: PostgresExecutionStore) -> None:
    assert listener.wait_for_commit(5.0), "no notification within 5 s of a commit"


def test_each_commit_tells_the_listener_the_states_it_changed(
    handles: tuple[PostgresExecutionStore, PostgresExecutionStore],
) -> None:
    execution, listener = handles
    base = checkpoint()
    later = T0 + timedelta(minutes=9)
    steps: list[Checkpoint] = [
        base,
        replace(base, marks={**base.marks, S: Mark(102.0, later)}),
        replace(base, targets={S: 0.0}),
        replace(base, entries={E: Mark(1_990.0, later)}),
        replace(base, portfolio=replace(base.portfolio, positions={OTHER: Position(3.0, 20.0)})),
        replace(base, risk=replace(base.risk, last_equity=9_300.0)),
        base,
    ]
    for step in steps:
        execution.commit(step, durable=False)
        heard(listener)
        for symbol in (S, E, OTHER):
            got = listener.listened_state(symbol)
            assert got is None or got == listener.symbol_state(symbol), symbol
        assert listener.listened_state(S) is not None  # carried by the first commit
    assert listener.listened_state(OTHER) == SymbolState(None, 0.0, None, None)  # held, then not
    # a new handle (a restarted execution) has no diff: its first commit tells every symbol
    restarted = PostgresExecutionStore(PG_DSN, schema=execution.schema)
    try:
        restarted.load()
        restarted.commit(replace(base, marks={**base.marks, E: Mark(2_001.0, later)}))
        heard(listener)
        for symbol in (S, E):
            assert listener.listened_state(symbol) == listener.symbol_state(symbol)
    finally:
        restarted.close()


def test_a_reset_account_or_a_lost_listener_forgets_what_was_heard(
    handles: tuple[PostgresExecutionStore, PostgresExecutionStore],
) -> None:
    execution, listener = handles
    execution.commit(checkpoint())
    heard(listener)
    assert listener.listened_state(S) is not None
    execution.reset_account(T0)
    heard(listener)
    assert listener.listened_state(S) is None
    assert listener.symbol_state(S) == SymbolState(None, 0.0, None, None)
    execution.commit(checkpoint())
    heard(listener)
    assert listener.listened_state(S) is not None
    # the listening connection is gone (a server restart): nothing heard before counts
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE 'LISTEN%%' AND pid <> pg_backend_pid() AND query LIKE %s",
            (f"%{listener.channel}%",),
        )
    with pytest.raises(DatabaseConnectionError):
        wait_until_lost(listener)
    assert listener.listened_state(S) is None
    assert listener.wait_for_commit(0.0)  # listens again
    execution.commit(replace(checkpoint(), marks={S: Mark(99.0, T0)}))
    heard(listener)
    assert listener.listened_state(S) == listener.symbol_state(S)


def test_inference_reads_no_state_the_notifications_carried(
    handles: tuple[PostgresExecutionStore, PostgresExecutionStore],
) -> None:
    execution, listener = handles
    clock = ManualClock(T0 + timedelta(minutes=5))  # `checkpoint()` marks S at this close
    reads = 0
    real_read = listener.symbol_state

    def counted(symbol: Symbol) -> SymbolState:
        nonlocal reads
        reads += 1
        return real_read(symbol)

    listener.symbol_state = counted  # type: ignore[method-assign]
    positions = StorePositions(
        listener,
        Timeframe.M1,
        clock,
        changed=listener.wait_for_commit,
        listened=listener.listened_state,
    )
    execution.commit(checkpoint())
    heard(listener)
    assert positions.price(S) == 101.0
    assert positions.agent_position(S).target_position == 0.5
    assert (reads, positions.listened, positions.waits) == (0, 1, 0)
    # a bar not marked yet: read, wait for execution's mark, and take it from the notification
    clock.set(T0 + timedelta(minutes=6))
    execution_mark = replace(
        checkpoint(), marks={**checkpoint().marks, S: Mark(103.0, clock.now())}
    )
    timer = threading.Timer(0.05, lambda: execution.commit(execution_mark, durable=False))
    timer.start()
    try:
        assert positions.price(S) == 103.0
    finally:
        timer.join()
    assert positions.waits == 1 and positions.late == 0 and positions.listened == 2


def test_commits_queued_while_nobody_looked_are_all_taken_at_the_next_look(
    handles: tuple[PostgresExecutionStore, PostgresExecutionStore],
) -> None:
    """Inference looks once per decision, after several bars' commits: it must take them all,
    not one per look (psycopg's zero-timeout poll returns one batch)."""
    execution, listener = handles
    for minute in range(1, 9):
        execution.commit(
            replace(checkpoint(), marks={S: Mark(100.0 + minute, T0 + timedelta(minutes=minute))}),
            durable=False,
        )
    time.sleep(0.5)  # all eight notifications are on the listener's socket by now
    state = listener.listened_state(S)  # one look
    assert state is not None and state.mark == Mark(108.0, T0 + timedelta(minutes=8))
    assert state == listener.symbol_state(S)
