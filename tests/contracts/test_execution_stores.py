"""Contract of the execution store, over the in-memory fake, the embedded SQLite store and
PostgreSQL.

``reopen`` stands for a process restart: a new SQLite store over the same file, or the same
in-memory object (which has no life beyond the process). ``another`` opens a second handle on
the same account, as another process (a `kill` command beside a running session) does.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from drl_trading.common.domain import Order, Side, Symbol, parse_time
from drl_trading.execution.adapter.memory_store import InMemoryExecutionStore
from drl_trading.execution.adapter.sqlite_store import SQLiteExecutionStore
from drl_trading.execution.core.ports import (
    AccountInUseError,
    ConcurrentCommitError,
    DuplicateOrderError,
    ExecutionStore,
)
from drl_trading.execution.core.reconciliation import ReconciliationRecord
from drl_trading.execution.core.records import (
    AppliedControl,
    Checkpoint,
    ControlKind,
    ControlRequest,
    Mark,
    PortfolioSnapshot,
    Position,
    RecordKind,
    RiskState,
    SessionBeat,
    SymbolState,
    TradeRecord,
    TradingState,
)
from tests.conftest import require_server

S = Symbol("BTCUSDT")
E = Symbol("ETHUSDT")
T0 = parse_time("2024-01-01T00:00")

Reopen = Callable[[], ExecutionStore]


PG_DSN = os.environ.get("DRL_TEST_PG", "postgresql://drl:drl@127.0.0.1:5432/drl")
ADAPTERS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.integration)]


@pytest.fixture(params=ADAPTERS)
def accounts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Reopen]]:
    """The adapter's name and an opener of a new handle on one account (the memory store: the
    same object, its only handle); every handle opened is closed at the end."""
    opened: list[ExecutionStore] = []
    if request.param == "postgres":
        import psycopg

        from drl_trading.execution.adapter.postgres_store import PostgresExecutionStore

        require_server("PostgreSQL", "127.0.0.1", 5432)
        schema = f"test_{uuid.uuid4().hex[:10]}"

        def open_pg() -> ExecutionStore:
            opened.append(PostgresExecutionStore(PG_DSN, schema=schema))
            return opened[-1]

        yield "postgres", open_pg
        for store in opened:
            store.close()
        with psycopg.connect(PG_DSN, autocommit=True) as con:
            con.execute(f"DROP SCHEMA {schema} CASCADE")
        return
    if request.param == "memory":
        memory = InMemoryExecutionStore()
        yield "memory", lambda: memory
        return
    path = tmp_path / "execution.sqlite"

    def open_sqlite() -> ExecutionStore:
        opened.append(SQLiteExecutionStore(path))
        return opened[-1]

    yield "sqlite", open_sqlite
    for store in opened:
        store.close()


@pytest.fixture
def stores(accounts: tuple[str, Reopen]) -> tuple[ExecutionStore, Reopen]:
    """A store and ``reopen``, which closes it and opens the account again (a restart)."""
    _, another = accounts
    current = [another()]

    def reopen() -> ExecutionStore:
        fresh = another()
        if fresh is not current[-1]:
            current[-1].close()
        current.append(fresh)
        return fresh

    return current[0], reopen


def order_record(coid: str, minute: int = 0, signal: str = "sig") -> TradeRecord:
    return TradeRecord(
        record_id=f"order:{coid}",
        kind=RecordKind.ORDER,
        symbol=S,
        at=T0 + timedelta(minutes=minute),
        client_order_id=coid,
        signal_id=signal,
        side=Side.BUY,
        quantity=1.5,
        price=100.0,
        model_version="7",
        risk_check="accepted",
        reason="max_order_notional: order clipped to 150.00",
        signal_time=T0 - timedelta(seconds=3),
    )


def fill_record(coid: str, minute: int) -> TradeRecord:
    return TradeRecord(
        record_id=f"fill:{coid}",
        kind=RecordKind.FILL,
        symbol=S,
        at=T0 + timedelta(minutes=minute),
        client_order_id=coid,
        side=Side.SELL,
        quantity=1.5,
        price=101.25,
        fee=0.0759,
        realised_pnl=-2.5,
    )


def rejection(signal: str, minute: int) -> TradeRecord:
    return TradeRecord(
        record_id=f"rejection:{signal}",
        kind=RecordKind.REJECTION,
        symbol=E,
        at=T0 + timedelta(minutes=minute),
        signal_id=signal,
        risk_check="signal_age",
        reason="signal is 300 s old",
    )


def checkpoint(cash: float = 9_000.0, last: TradeRecord | None = None) -> Checkpoint:
    return Checkpoint(
        portfolio=PortfolioSnapshot(
            cash=cash,
            positions={S: Position(1.5, 100.02, 3.25, 0.5), E: Position(0.0, 0.0, -1.0, 0.1)},
            open_orders=(
                Order("b", E, Side.SELL, 2.0),
                Order("a", S, Side.BUY, 0.5, limit_price=95.5),
            ),
        ),
        risk=RiskState(
            state=TradingState.REDUCING,
            reason="daily loss 6.00% beyond limit 5.00%",
            since=T0 + timedelta(hours=3),
            peak_equity=10_500.0,
            day_start_equity=10_000.0,
            last_equity=9_400.0,
            day=date(2024, 1, 1),
        ),
        marks={S: Mark(101.0, T0 + timedelta(minutes=5)), E: Mark(2_000.0, T0)},
        targets={S: 0.5, E: -0.25},
        last_signal=last,
    )


def test_a_fresh_store_is_empty(stores: tuple[ExecutionStore, Reopen]) -> None:
    store, _ = stores
    assert store.load() is None and store.last_reconciliation() is None
    assert not store.is_processed("x")
    assert not store.has_order("x") and store.order("x") is None
    assert store.records_since(T0) == []
    assert store.counts() == dict.fromkeys(RecordKind, 0)


def test_checkpoint_records_and_processed_ids_survive_a_restart(
    stores: tuple[ExecutionStore, Reopen],
) -> None:
    store, reopen = stores
    order = order_record("a")
    cp = checkpoint(last=order)
    store.commit(cp, [order], processed_signal_id="sig")
    store = reopen()
    assert store.load() == cp
    assert store.is_processed("sig") and not store.is_processed("other")
    assert store.has_order("a") and store.order("a") == order
    assert store.records_since(T0) == [order]


def test_any_text_and_number_is_stored_as_given(stores: tuple[ExecutionStore, Reopen]) -> None:
    """PostgreSQL binds a commit's values on the client (one query per commit): quotes,
    placeholders, backslashes, other scripts and extreme floats must come back unchanged."""
    store, reopen = stores
    odd = 'it\'s 100% \\ done?; DROP TABLE records; -- %s $1 \u00e9\u4e2d\U0001f600 "q"'
    order = replace(
        order_record("o'1?", signal="s%s'1"),
        reason=odd,
        quantity=5e-324,
        price=1.7976931348623157e308,
    )
    cp = replace(
        checkpoint(last=order),
        risk=replace(checkpoint().risk, reason=odd),
        marks={Symbol("A.B:C/D-E_F"): Mark(-0.0, T0)},
    )
    store.commit(cp, [order], processed_signal_id="s%s'1")
    store = reopen()
    assert store.load() == cp
    assert store.is_processed("s%s'1") and store.order("o'1?") == order


def test_a_new_checkpoint_replaces_the_old_one(stores: tuple[ExecutionStore, Reopen]) -> None:
    store, _ = stores
    store.commit(checkpoint())
    lighter = Checkpoint(
        portfolio=PortfolioSnapshot(cash=10_000.0),
        risk=checkpoint().risk,
    )
    store.commit(lighter)
    assert store.load() == lighter


def test_records_since_filters_by_time_in_commit_order(
    stores: tuple[ExecutionStore, Reopen],
) -> None:
    store, _ = stores
    first, second, third = order_record("a", 5), rejection("s2", 1), fill_record("a", 7)
    store.commit(checkpoint(), [first, second])
    store.commit(checkpoint(), [third])
    assert store.records_since(T0) == [first, second, third]
    assert store.records_since(T0 + timedelta(minutes=5)) == [first, third]
    assert store.records_since(T0 + timedelta(minutes=8)) == []
    got = store.records_since(T0)
    assert all(r.at.tzinfo is not None for r in got)
    counts = store.counts()
    assert (counts[RecordKind.ORDER], counts[RecordKind.FILL], counts[RecordKind.REJECTION]) == (
        1,
        1,
        1,
    )
    assert counts[RecordKind.SKIP] == 0


def test_a_duplicate_client_order_id_is_refused_and_nothing_is_written(
    stores: tuple[ExecutionStore, Reopen],
) -> None:
    store, reopen = stores
    cp = checkpoint()
    store.commit(cp, [order_record("a")], processed_signal_id="s1")
    changed = checkpoint(cash=1.0)
    with pytest.raises(DuplicateOrderError, match="'a'"):
        store.commit(changed, [rejection("s2", 1), order_record("a", 2)], processed_signal_id="s2")
    with pytest.raises(DuplicateOrderError):
        store.commit(changed, [order_record("b"), order_record("b", 1)])
    store = reopen()
    assert store.load() == cp
    assert not store.is_processed("s2")
    assert [r.record_id for r in store.records_since(T0)] == ["order:a"]
    # fills and cancellations of an order share its client order id
    store.commit(cp, [fill_record("a", 3)])
    assert store.order("a") == order_record("a")


def test_symbol_state_is_the_symbols_part_of_the_last_checkpoint(
    stores: tuple[ExecutionStore, Reopen],
) -> None:
    store, reopen = stores
    assert store.symbol_state(S) == SymbolState(None, 0.0, None, None)
    cp = replace(checkpoint(), entries={S: Mark(99.5, T0 + timedelta(minutes=2))})
    store.commit(cp)
    store = reopen()
    assert store.symbol_state(S) == SymbolState(
        cp.marks[S], 0.5, cp.entries[S], cp.portfolio.positions[S]
    )
    assert store.symbol_state(E) == SymbolState(cp.marks[E], -0.25, None, cp.portfolio.positions[E])
    assert store.symbol_state(Symbol("SOLUSDT")) == SymbolState(None, 0.0, None, None)


def test_commits_changing_one_part_at_a_time_load_back_exactly(
    stores: tuple[ExecutionStore, Reopen],
) -> None:
    """A store may write only what changed since its last commit (SQL stores do): every part
    changed alone, or back, must still load back as committed, also after a restart."""
    store, reopen = stores
    base = checkpoint()
    store.commit(base)
    later = T0 + timedelta(minutes=9)
    steps = [
        replace(base, marks={**base.marks, S: Mark(102.0, later)}),
        replace(base, targets={S: 0.0}),
        replace(base, entries={E: Mark(1_990.0, later)}),
        replace(base, portfolio=replace(base.portfolio, cash=123.0)),
        replace(base, portfolio=replace(base.portfolio, open_orders=())),
        replace(base, portfolio=replace(base.portfolio, positions={})),
        replace(base, risk=replace(base.risk, last_equity=9_300.0)),
        base,
        Checkpoint(portfolio=PortfolioSnapshot(cash=1.0), risk=base.risk),
        base,
    ]
    for step in steps:
        store.commit(step)
        assert store.load() == step
    store = reopen()
    assert store.load() == base
    store.commit(steps[0])
    assert store.load() == steps[0]


def test_what_is_stored_is_apart_from_the_callers_mappings(
    stores: tuple[ExecutionStore, Reopen],
) -> None:
    """Changing a dict after committing it, or one a `load` returned, changes nothing stored:
    the service builds its next checkpoint from the last one, so a shared dict would move the
    stored account (the SQL stores serialise; the memory store copies the mappings)."""
    store, reopen = stores
    committed = replace(checkpoint(), entries={S: Mark(99.5, T0)})
    expected = replace(
        committed,
        portfolio=replace(committed.portfolio, positions=dict(committed.portfolio.positions)),
        marks=dict(committed.marks),
        targets=dict(committed.targets),
        entries=dict(committed.entries),
    )
    store.commit(committed)
    for mapping in (
        committed.marks,
        committed.targets,
        committed.entries,
        committed.portfolio.positions,
    ):
        assert isinstance(mapping, dict)
        mapping.clear()
    loaded = store.load()
    assert loaded == expected
    assert loaded is not None
    for mapping in (loaded.marks, loaded.targets, loaded.entries, loaded.portfolio.positions):
        assert isinstance(mapping, dict)
        mapping.clear()
    assert store.load() == expected
    assert store.symbol_state(S).mark == expected.marks[S]
    assert reopen().load() == expected


def test_control_requests_are_pending_until_a_commit_applies_them(
    stores: tuple[ExecutionStore, Reopen],
) -> None:
    store, reopen = stores
    asked = T0 + timedelta(days=800)  # the operator's wall clock, far from the account's
    kill = store.request_control(ControlKind.KILL, asked, reason="stop now", flatten=True)
    resume = store.request_control(ControlKind.RESUME, asked + timedelta(seconds=1))
    assert kill == ControlRequest(kill.control_id, ControlKind.KILL, asked, "stop now", True)
    assert resume.control_id > kill.control_id and not resume.flatten
    assert store.pending_controls() == [kill, resume]
    assert store.control(kill.control_id) == kill and store.control(10_000) is None
    store.commit(checkpoint(), [order_record("a")])
    at = T0 + timedelta(minutes=3)  # the account's market time
    cancel = fill_record("a", 3)
    store.commit(
        checkpoint(),
        [cancel],
        applied_controls=[AppliedControl(kill.control_id, at, "session-1", "halted")],
    )
    store = reopen()
    assert store.pending_controls() == [resume]
    applied = store.control(kill.control_id)
    assert applied == replace(
        kill, applied_at=at, applied_by="session-1", outcome="halted", records_before=1
    )
    assert applied is not None and not applied.pending and applied.applied_at == at
    # the records after the control: this commit's first
    assert store.records_since(T0)[applied.records_before or 0 :] == [cancel]
    # an acknowledgement of a control already applied changes nothing
    store.commit(
        checkpoint(),
        applied_controls=[AppliedControl(kill.control_id, at + timedelta(hours=1), "late", "x")],
    )
    assert store.control(kill.control_id) == applied


def test_a_refused_commit_applies_no_control(stores: tuple[ExecutionStore, Reopen]) -> None:
    store, _ = stores
    store.commit(checkpoint(), [order_record("a")])
    kill = store.request_control(ControlKind.KILL, T0)
    with pytest.raises(DuplicateOrderError):
        store.commit(
            checkpoint(),
            [order_record("a", 1)],
            applied_controls=[AppliedControl(kill.control_id, T0, "s", "halted")],
        )
    assert store.pending_controls() == [kill]


def test_heartbeats_tell_the_live_session(stores: tuple[ExecutionStore, Reopen]) -> None:
    store, reopen = stores
    assert store.live_session(T0) is None
    store.beat("old", T0)
    store.beat("new", T0 + timedelta(seconds=5))
    store.beat("new", T0 + timedelta(seconds=9))
    store = reopen()
    assert store.live_session(T0) == SessionBeat("new", T0 + timedelta(seconds=9))
    assert store.live_session(T0 + timedelta(seconds=10)) is None
    store.end_session("new")
    assert store.live_session(T0) == SessionBeat("old", T0)
    store.end_session("never-beat")
    # heartbeats and requests are not commits: the checkpoint stays as committed
    store.commit(checkpoint())
    store.beat("new", T0)
    store.request_control(ControlKind.RESUME, T0)
    assert store.load() == checkpoint()


def test_a_commit_over_another_handles_commit_is_refused(accounts: tuple[str, Reopen]) -> None:
    """The session loaded the account, then another process (a `kill` applied to the stored
    account) committed: the session's next commit must not overwrite it."""
    name, another = accounts
    if name == "memory":
        pytest.skip("an in-memory store has one handle: no other process reaches it")
    session, operator = another(), another()
    base = checkpoint()
    session.commit(base)
    assert session.load() == base and operator.load() == base
    kill = session.request_control(ControlKind.KILL, T0)  # no commit: changes no generation
    session.beat("session-1", T0)
    halted = replace(base, risk=replace(base.risk, state=TradingState.HALTED, reason="kill"))
    operator.commit(
        halted,
        [fill_record("x", 1)],
        applied_controls=[AppliedControl(kill.control_id, T0, "operator", "halted")],
    )
    with pytest.raises(ConcurrentCommitError):
        session.commit(base, [order_record("a")], processed_signal_id="s1")
    # nothing of the refused commit was written, and the store still works
    assert session.load() == halted
    assert not session.is_processed("s1") and not session.has_order("a")
    assert session.pending_controls() == []
    session.commit(halted, [order_record("a")], processed_signal_id="s1")  # after the reload
    assert operator.load() == halted and operator.has_order("a")
    # a handle that never loaded commits on what it saw when it opened
    late = another()
    operator.commit(base)
    with pytest.raises(ConcurrentCommitError):
        late.commit(halted)


def test_a_request_from_another_handle_is_seen_as_pending(accounts: tuple[str, Reopen]) -> None:
    """PostgreSQL reads the pending requests only when one was announced: a request made after
    the session started looking must still reach it."""
    _, another = accounts
    session, operator = another(), another()
    session.commit(checkpoint())
    assert session.load() == checkpoint()  # a read leaves no transaction open behind it:
    session.beat("session", T0)  # the heartbeat is seen at once
    assert operator.live_session(T0) == SessionBeat("session", T0)
    assert session.pending_controls() == []
    assert session.pending_controls() == []
    kill = operator.request_control(ControlKind.KILL, T0, reason="x")
    # another process's request is seen once its notification arrived (PostgreSQL; at once on
    # SQLite, which reads at every call)
    deadline = time.monotonic() + 10.0
    while session.pending_controls() != [kill]:
        assert time.monotonic() < deadline, "the request never reached the session"
        time.sleep(0.01)
    assert session.pending_controls() == [kill]  # still pending: seen again
    session.commit(
        checkpoint(), applied_controls=[AppliedControl(kill.control_id, T0, "session", "halted")]
    )
    assert session.pending_controls() == []
    assert operator.pending_controls() == []


def report(minute: int, ok: bool = True) -> ReconciliationRecord:
    """A report with every JSON value kind: nested lists and dicts, floats, null, booleans."""
    return ReconciliationRecord(
        T0 + timedelta(minutes=minute, microseconds=7),
        ok,
        f"reconciliation {'ok' if ok else 'HALT: x'} (adopted 1 fill(s), ...)",
        {
            "adopted_fills": ["fill:sig-1:1704067200000007"],
            "already_recorded": 2,
            "differences": [
                {"symbol": "BTCUSDT", "local": 0.1 + 0.2, "venue": 0.3, "within": ok},
                {"symbol": None, "local": 9_999.123456789, "venue": "nan", "within": False},
            ],
            "halt_reasons": [] if ok else ["BTCUSDT position: local 0.3, venue 0.3 (ünits)"],
        },
    )


def test_the_last_reconciliation_report_is_kept_across_a_restart(
    stores: tuple[ExecutionStore, Reopen],
) -> None:
    store, reopen = stores
    assert store.last_reconciliation() is None
    store.save_reconciliation(report(1))
    assert store.last_reconciliation() == report(1)
    store.save_reconciliation(report(2, ok=False))  # the latest replaces the one before
    assert store.last_reconciliation() == report(2, ok=False)
    assert store.load() is None  # a report is no checkpoint
    store = reopen()
    assert store.last_reconciliation() == report(2, ok=False)
    # JSON cannot hold NaN: refused, and the last report is kept
    with pytest.raises(ValueError, match="not JSON compliant"):
        store.save_reconciliation(replace(report(3), details={"x": float("nan")}))
    assert store.last_reconciliation() == report(2, ok=False)


def test_a_report_never_conflicts_with_commits(accounts: tuple[str, Reopen]) -> None:
    """Written apart from ``commit`` (an observation, not state): another handle saving one
    does not make this handle's next commit stale, and each handle sees the other's."""
    _, another = accounts
    session, operator = another(), another()
    session.commit(checkpoint())
    operator.save_reconciliation(report(1))
    session.commit(checkpoint(cash=1.0))
    session.save_reconciliation(report(2))
    assert operator.last_reconciliation() == report(2)
    assert operator.load() == checkpoint(cash=1.0)


def test_reset_account_deletes_the_whole_account_unless_a_session_runs(
    stores: tuple[ExecutionStore, Reopen],
) -> None:
    """``paper --fresh``: checkpoint, records, processed ids, requests and heartbeats go; a
    session beating since ``live_since`` keeps the account as it is."""
    store, reopen = stores
    order = order_record("a")
    cp = checkpoint(last=order)
    store.commit(cp, [order, fill_record("a", 1)], processed_signal_id="sig")
    store.save_reconciliation(report(1))
    kill = store.request_control(ControlKind.KILL, T0, reason="stop")
    running = SessionBeat("running", T0 + timedelta(seconds=30))
    store.beat(running.session_id, running.at)
    with pytest.raises(AccountInUseError, match="running") as refused:
        store.reset_account(T0 + timedelta(seconds=20))
    assert refused.value.session == running
    assert store.load() == cp and store.pending_controls() == [kill]  # nothing deleted
    assert store.records_since(T0) == [order, fill_record("a", 1)]

    store.reset_account(T0 + timedelta(seconds=31))  # its heartbeat is stale by then
    for restarted in (False, True):
        if restarted:
            store = reopen()
        assert store.load() is None
        assert store.records_since(T0) == [] and store.counts() == dict.fromkeys(RecordKind, 0)
        assert not store.is_processed("sig") and not store.has_order("a")
        assert store.pending_controls() == [] and store.control(kill.control_id) is None
        assert store.live_session(T0) is None and store.last_reconciliation() is None
        assert store.symbol_state(S) == SymbolState(None, 0.0, None, None)
    # an account like new: the same client order id again, request ids still increasing
    store.commit(checkpoint(), [order])
    assert store.load() == checkpoint() and store.order("a") == order
    assert store.request_control(ControlKind.RESUME, T0).control_id > kill.control_id


def test_reset_account_sees_other_handles(accounts: tuple[str, Reopen]) -> None:
    """Another process's session refuses the reset; a handle that loaded the old account
    cannot commit over the reset one (it reloads the empty account first)."""
    name, another = accounts
    if name == "memory":
        pytest.skip("an in-memory store has one handle: no other process reaches it")
    fresh, session = another(), another()
    session.commit(checkpoint())
    session.beat("session-1", T0 + timedelta(seconds=5))
    with pytest.raises(AccountInUseError):
        fresh.reset_account(T0)
    session.end_session("session-1")
    assert session.load() == checkpoint()
    fresh.reset_account(T0)
    with pytest.raises(ConcurrentCommitError):
        session.commit(checkpoint(cash=1.0), [order_record("b")])
    assert session.load() is None and not session.has_order("b")
    session.commit(checkpoint(cash=1.0))
    assert fresh.load() == checkpoint(cash=1.0)


def test_a_commit_that_need_not_be_durable_is_atomic_and_seen_at_once(
    accounts: tuple[str, Reopen],
) -> None:
    """``durable=False`` (a bar that only moved the marks) changes when the commit reaches the
    disk, never what it writes or who sees it: another handle reads it at once, the generation
    guard still orders the handles, and with records it is an ordinary commit."""
    name, another = accounts
    writer, reader = another(), another()
    base = checkpoint()
    writer.commit(base)
    moved = replace(base, marks={**base.marks, S: Mark(102.5, T0 + timedelta(minutes=6))})
    writer.commit(moved, durable=False)
    assert reader.load() == moved
    assert reader.symbol_state(S).mark == Mark(102.5, T0 + timedelta(minutes=6))
    order = order_record("a")
    writer.commit(moved, [order], processed_signal_id="sig", durable=False)
    assert reader.is_processed("sig") and reader.order("a") == order
    if name == "postgres":  # SET LOCAL: the next transactions of the handle wait for the WAL
        from drl_trading.execution.adapter.postgres_store import PostgresExecutionStore

        assert isinstance(writer, PostgresExecutionStore)
        assert writer._raw.execute("SHOW synchronous_commit").fetchone() == ("on",)
    if name == "memory":
        return
    reader.load()
    reader.commit(base)
    with pytest.raises(ConcurrentCommitError):
        writer.commit(moved, durable=False)
    assert writer.load() == base
