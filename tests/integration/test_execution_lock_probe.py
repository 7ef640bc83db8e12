"""The PostgreSQL account lock reads whether the signal being handled was processed in the same
round trip (`hold_account(signal_id)`): the answer must be the store's, before and after the
block's own commit, and a redelivered signal must still be dropped by the service."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from drl_trading.execution.adapter.bus_handlers import ExecutionHandlers
from drl_trading.execution.adapter.postgres_store import PostgresExecutionStore
from tests.conftest import require_server
from tests.contracts.test_execution_stores import PG_DSN, checkpoint
from tests.unit.test_execution_service import STRATEGY, Harness

pytestmark = pytest.mark.integration


@pytest.fixture
def store() -> Iterator[PostgresExecutionStore]:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    schema = f"test_{uuid.uuid4().hex[:10]}"
    handle = PostgresExecutionStore(PG_DSN, schema=schema)
    yield handle
    handle.close()
    with psycopg.connect(PG_DSN, autocommit=True) as con:
        con.execute(f"DROP SCHEMA {schema} CASCADE")


def test_the_processed_mark_read_with_the_lock_is_the_stores(
    store: PostgresExecutionStore,
) -> None:
    store.commit(checkpoint(), processed_signal_id="done")
    with store.hold_account("done"):
        assert store.is_processed("done")
        assert not store.is_processed("other")  # not probed: read
    with store.hold_account("new"):
        assert not store.is_processed("new")
        store.commit(checkpoint(), processed_signal_id="new")
        assert store.is_processed("new")  # after the block's own commit: read again
    with store.hold_account():
        assert store.is_processed("new") and store.is_processed("done")
    assert store.is_processed("new") and not store.is_processed("never")


def test_a_redelivered_signal_is_dropped_under_the_lock(store: PostgresExecutionStore) -> None:
    h = Harness(store)
    handlers = ExecutionHandlers(h.service, STRATEGY, account=store)
    h.bar(0, 100)
    signal = h.signal(0, 0.5)
    handlers.on_prediction(signal)
    kinds = h.kinds()
    handlers.on_prediction(signal)  # redelivered
    assert h.kinds() == kinds
    assert store.is_processed(signal.event_id)
