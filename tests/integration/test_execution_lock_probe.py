"""The PostgreSQL account lock (`hold_account`) and its round trips: it reads whether the signal
being handled was processed in the same round trip as the lock (the answer must be the store's,
before and after the block's own commit, and a redelivered signal must still be dropped by the
service), and the block's commit releases it in the commit's own query (a second commit in the
block holds the account again, a commit that fails leaves it held until the block's end)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from drl_trading.execution.adapter.bus_handlers import ExecutionHandlers
from drl_trading.execution.adapter.postgres_store import PostgresExecutionStore
from drl_trading.execution.core.ports import ConcurrentCommitError, DuplicateOrderError
from tests.conftest import require_server
from tests.contracts.test_execution_stores import PG_DSN, checkpoint, order_record
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


def test_the_order_id_read_with_the_lock_is_the_stores(store: PostgresExecutionStore) -> None:
    store.commit(checkpoint(), [order_record("sig-taken")])
    with store.hold_account("s1", "sig-taken"):
        assert store.has_order("sig-taken")
        assert not store.has_order("sig-other")  # not probed: read
        with pytest.raises(DuplicateOrderError):  # the commit's check answered by the probe
            store.commit(checkpoint(), [order_record("sig-taken", 1, "s1")])
    with store.hold_account("s2", "sig-new"):
        assert not store.has_order("sig-new")
        store.commit(checkpoint(), [order_record("sig-new", 2, "s2")], processed_signal_id="s2")
        assert store.has_order("sig-new")  # after the block's own commit: read again
    with store.hold_account("s3", "sig-new"):
        assert store.has_order("sig-new")
    order = store.order("sig-new")
    assert order is not None and order.signal_id == "s2"


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


def _holders(store: PostgresExecutionStore) -> int:
    """Sessions holding the account's advisory lock, as the server's lock table shows them (a
    64-bit advisory key is split into classid, the high half, and objid)."""
    with psycopg.connect(PG_DSN, autocommit=True) as con:
        row = con.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) "
            "= hashtextextended(%s, 0)",
            (f"drl_execution_account.{store.schema}",),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_the_blocks_commit_releases_the_lock_with_it(store: PostgresExecutionStore) -> None:
    assert _holders(store) == 0
    with store.hold_account():
        assert _holders(store) == 1
        store.commit(checkpoint())
        assert _holders(store) == 0  # released by the commit's query, inside the block
    assert _holders(store) == 0
    with store.hold_account():  # a block without a commit releases it at its end
        assert _holders(store) == 1
    assert _holders(store) == 0


def test_a_second_commit_in_the_block_holds_the_account_again(
    store: PostgresExecutionStore,
) -> None:
    with store.hold_account():
        store.commit(checkpoint(9_000.0))
        assert _holders(store) == 0
        store.commit(checkpoint(8_000.0))
        assert _holders(store) == 0  # taken again for it, and released with it
    loaded = store.load()
    assert loaded is not None and loaded.portfolio.cash == 8_000.0


def test_a_commit_between_two_of_a_block_is_refused_and_the_lock_released_at_the_end(
    store: PostgresExecutionStore,
) -> None:
    other = PostgresExecutionStore(PG_DSN, schema=store.schema, migrate=False)
    try:
        with store.hold_account():
            store.commit(checkpoint(9_000.0))
            with other.hold_account() as behind:  # the account is free again: another takes it
                assert behind  # it last saw the account before this commit
                other.load()
                other.commit(checkpoint(7_000.0))
            with pytest.raises(ConcurrentCommitError):
                store.commit(checkpoint(8_000.0))  # decided on the account before other's
            assert _holders(store) == 1  # the refused commit released nothing
        assert _holders(store) == 0
        loaded = store.load()
        assert loaded is not None and loaded.portfolio.cash == 7_000.0
    finally:
        other.close()
