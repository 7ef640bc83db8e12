"""`kill` reaches the distributed execution service: the `serve execution` process's composition
over the real PostgreSQL, driven turn by turn, acknowledges a kill asked by another caller with
no signal or bar arriving; once it stopped, a resume goes to the stored account."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from drl_trading.app.paper_account import ControlOutcome, control_account
from drl_trading.app.services import build_service
from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.execution.adapter.postgres_store import PostgresExecutionStore
from drl_trading.execution.core.records import ControlKind, TradingState
from tests.conftest import require_server

pytestmark = pytest.mark.integration

DSN = "postgresql://drl:drl@127.0.0.1:5432/drl"


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[AppSettings]:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    schema = f"test_{uuid.uuid4().hex[:10]}"
    yield load_settings(
        home=tmp_path / "home",
        bus={"kind": "memory"},
        execution={"store": "postgres"},
        postgres={"schema_name": schema},
    )
    with psycopg.connect(DSN, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_the_execution_process_acknowledges_a_kill_between_events(settings: AppSettings) -> None:
    process = build_service("execution", settings)
    assert process.tick is not None
    outcome: list[ControlOutcome] = []
    operator = threading.Thread(
        target=lambda: outcome.append(
            control_account(settings, "any", ControlKind.KILL, reason="stop now", wait_s=60)
        )
    )
    try:
        operator.start()
        while operator.is_alive():  # the process's loop: no event comes, only its turns
            process.tick()
            time.sleep(0.05)
    finally:
        operator.join()
        for close in process.on_close:
            close()
    (done,) = outcome
    assert done.acknowledged and done.session is not None
    assert done.request.applied_by == done.session.session_id
    assert done.request.applied_by.startswith("execution@")
    assert done.request.outcome == "trading state: halted (kill switch: stop now)"
    pg = settings.postgres
    store = PostgresExecutionStore(pg.dsn(), schema=pg.schema_name)
    try:
        checkpoint = store.load()
        assert checkpoint is not None and checkpoint.risk.state is TradingState.HALTED
        assert store.live_session(done.request.requested_at) is None  # stopped: beat removed
    finally:
        store.close()
    resumed = control_account(settings, "any", ControlKind.RESUME, wait_s=60)
    assert resumed.applied_to_store and resumed.session is None
    assert "active" in resumed.request.outcome
