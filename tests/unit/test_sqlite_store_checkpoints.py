"""The SQLite execution store checkpoints its WAL itself, at a commit that need not be durable
(embedded: a bar's marks, committed after the acknowledgement), never inside SQLite's automatic
checkpoint of whichever commit crosses 1,000 pages (often a signal's)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from drl_trading.common.domain import Symbol, parse_time
from drl_trading.execution.adapter import sqlite_store
from drl_trading.execution.adapter.sqlite_store import SQLiteExecutionStore
from drl_trading.execution.core.records import (
    Checkpoint,
    Mark,
    PortfolioSnapshot,
    RecordKind,
    TradeRecord,
)
from drl_trading.execution.core.risk import initial_risk_state

S = Symbol("BTCUSDT")
T0 = parse_time("2024-01-01")
CHECKPOINT = "PRAGMA wal_checkpoint(PASSIVE)"


def _store(tmp_path: Path) -> tuple[SQLiteExecutionStore, list[str]]:
    store = SQLiteExecutionStore(tmp_path / "execution.sqlite")
    statements: list[str] = []
    store._con.set_trace_callback(statements.append)
    return store, statements


def _at(minute: int) -> Checkpoint:
    t = T0 + timedelta(minutes=minute)
    base = Checkpoint(PortfolioSnapshot(10_000.0), initial_risk_state(10_000.0, T0))
    return replace(base, marks={S: Mark(100.0 + minute, t)})


def _signal(minute: int) -> TradeRecord:
    t = T0 + timedelta(minutes=minute)
    return TradeRecord(f"skip:{minute}", RecordKind.SKIP, S, t, signal_id=f"s{minute}")


def test_automatic_checkpoints_are_off(tmp_path: Path) -> None:
    store, _ = _store(tmp_path)
    assert store._con.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    store.close()


def test_a_non_durable_commit_checkpoints_once_enough_commits_wait(tmp_path: Path) -> None:
    store, statements = _store(tmp_path)
    due = sqlite_store.CHECKPOINT_AFTER_COMMITS
    for minute in range(due - 1):  # signals: durable, never a checkpoint below the force bound
        store.commit(_at(minute), [_signal(minute)], processed_signal_id=f"s{minute}")
    assert CHECKPOINT not in statements
    store.commit(_at(due), durable=False)
    assert statements.count(CHECKPOINT) == 1
    store.commit(_at(due + 1), durable=False)  # the count starts again
    assert statements.count(CHECKPOINT) == 1
    store.close()


def test_durable_commits_alone_checkpoint_at_the_bound(tmp_path: Path) -> None:
    store, statements = _store(tmp_path)
    bound = sqlite_store.FORCE_CHECKPOINT_AFTER_COMMITS
    for minute in range(bound):
        store.commit(_at(minute))
    assert statements.count(CHECKPOINT) == 1
    assert store.load() == _at(bound - 1)
    store.close()
