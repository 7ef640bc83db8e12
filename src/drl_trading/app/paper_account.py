"""A paper account: its folder under home, its execution store, and the kill/resume requests
that reach the session running on it.

A kill or resume is a `ControlRequest` written to the account's execution store, the one
durable place that both a running session and the `kill` command reach, in the embedded mode
(a SQLite file in the account folder) and in the distributed one (PostgreSQL). A session on the
account beats a heartbeat into the same store (`SessionHeartbeat`) and applies pending requests
before its next signal or bar (`ExecutionService.apply_controls`); `control_account` then waits
for that acknowledgement. With no live session the request is applied to the stored account at
once, at the account's market time (its last bar's close: a replayed 2024 account stays in 2024).
The same heartbeat keeps ``paper --fresh`` (`start_account_over`) from deleting the state of an
account a session runs on.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from drl_trading.app.session_range import SessionStartError
from drl_trading.app.settings import AppSettings
from drl_trading.common.errors import OperatorError
from drl_trading.execution.core.ports import AccountInUseError as StoreAccountInUseError
from drl_trading.execution.core.ports import ConcurrentCommitError, ExecutionStore
from drl_trading.execution.core.records import ControlKind, ControlRequest, SessionBeat
from drl_trading.execution.core.service import ExecutionService

log = structlog.get_logger(__name__)

HEARTBEAT_EVERY_S = 1.0
"""How often a running session beats (wall seconds)."""
HEARTBEAT_STALE_AFTER = timedelta(seconds=10)
"""A session whose last beat is older is taken for gone (crashed or stopped uncleanly)."""
STORED_ACCOUNT = "the stored account"
"""``applied_by`` of a request applied by `control_account` itself (no session was running)."""


LIVE_MARKER = "live.json"
"""In an account folder: the account trades on an exchange (`drl-trading live`), not on paper."""


class LiveAccountIdleError(OperatorError):
    """``kill --flatten`` on a live account no session runs: closing orders need the session's
    exchange broker, so nothing is asked (a paper flatten would book fills that never were)."""


class AccountNotFoundError(LookupError):
    """No paper account of that name, or none another process can reach (an in-memory store):
    nothing to kill or resume."""


def account_dir(settings: AppSettings, session: str) -> Path:
    return settings.home / "paper" / session


def store_path(settings: AppSettings, session: str) -> Path:
    return settings.execution.store_path or (
        account_dir(settings, session) / f"execution.{settings.execution.store}"
    )


def account_market_time(settings: AppSettings, account: str) -> datetime | None:
    """The close (UTC) of the last bar ``account`` processed, any symbol: where a new session
    on it continues (`app.session_range`). None for an account never run, or an in-memory
    store (each session's account lives in its own process only)."""
    ex = settings.execution
    store: ExecutionStore
    if ex.store == "memory":
        return None
    if ex.store == "postgres":
        from drl_trading.execution.adapter.postgres_store import PostgresExecutionStore

        pg = settings.postgres
        store = PostgresExecutionStore(pg.dsn(), schema=pg.schema_name)
    else:
        from drl_trading.execution.adapter.sqlite_store import SQLiteExecutionStore

        path = store_path(settings, account)
        if not path.exists():
            return None
        store = SQLiteExecutionStore(path)
    try:
        checkpoint = store.load()
    finally:
        store.close()
    if checkpoint is None:
        return None
    return max((m.as_of for m in checkpoint.marks.values()), default=None)


def account_location(settings: AppSettings, account: str) -> str:
    """Where ``account``'s state is kept, for messages: the SQLite file, or the PostgreSQL
    server and schema (which holds one account: every ``--session`` on it shares it)."""
    ex = settings.execution
    if ex.store == "postgres":
        pg = settings.postgres
        return f"PostgreSQL {pg.host}:{pg.port}, schema {pg.schema_name!r}"
    if ex.store == "memory":
        return "the session's memory"
    return str(store_path(settings, account))


def start_account_over(service: ExecutionService, settings: AppSettings, account: str) -> None:
    """``paper --fresh``: delete ``account``'s portfolio, trading state, records and control
    requests in whichever store holds it, through the session's own execution service, which
    then runs on the empty account. The session calls it once every start check passed
    (stored bars, the model), so a refused session keeps its account. Raises
    `AccountInUseError` (a `SessionStartError`; nothing deleted) while another session beats on
    the account: its state is never deleted under a running session."""
    try:
        service.start_over(datetime.now(UTC) - HEARTBEAT_STALE_AFTER)
    except StoreAccountInUseError as exc:
        age = max((datetime.now(UTC) - exc.session.at).total_seconds(), 0.0)
        raise AccountInUseError(
            f"paper account {account!r} ({account_location(settings, account)}) is in use: "
            f"session {exc.session.session_id} runs on it (last heartbeat {age:.0f} s ago); "
            "--fresh deletes nothing under a running session: stop it first (Ctrl-C or "
            "SIGTERM where it runs; one that died counts as gone "
            f"{HEARTBEAT_STALE_AFTER.total_seconds():.0f} s after its last heartbeat), or "
            "start another account with --session NAME"
        ) from exc


class AccountInUseError(SessionStartError):
    """``--fresh`` on an account a session runs on: refused, the account left as it is."""


def process_session_id(service: str) -> str:
    """A session id for a service process: ``execution@host:pid``."""
    return f"{service}@{socket.gethostname()}:{os.getpid()}"


class SessionHeartbeat:
    """Beats ``session_id`` into the account's store from a daemon thread every
    `HEARTBEAT_EVERY_S`, so that `kill` knows a session runs, and waits for its
    acknowledgement, even while the session is busy (catch-up) or waits for the next live bar.
    A beat the store refuses (a database restarting) is logged and the next one tried. Use as a
    context manager: leaving it stops the thread and removes the session's heartbeat.
    """

    def __init__(
        self, store: ExecutionStore, session_id: str, every_s: float = HEARTBEAT_EVERY_S
    ) -> None:
        self.store = store
        self.session_id = session_id
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="session-heartbeat", daemon=True)

    def start(self) -> SessionHeartbeat:
        self._beat()  # alive before the first interval passes
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        try:
            self.store.end_session(self.session_id)
        except Exception as exc:  # the store is going away too: the beat just goes stale
            log.warning("session heartbeat not removed", error=repr(exc))

    def __enter__(self) -> SessionHeartbeat:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._beat()

    def _beat(self) -> None:
        try:
            self.store.beat(self.session_id, datetime.now(UTC))
        except Exception as exc:
            log.warning("session heartbeat failed", session=self.session_id, error=repr(exc))


@dataclass(frozen=True, slots=True)
class ControlOutcome:
    """What became of a kill or resume: ``request`` as it stands now, and the live session
    found when it was made (None: no session ran, so it was applied to the stored account)."""

    request: ControlRequest
    session: SessionBeat | None

    @property
    def acknowledged(self) -> bool:
        """Applied by the running session (its state is HALTED/ACTIVE now, durably)."""
        return not self.request.pending and self.request.applied_by != STORED_ACCOUNT

    @property
    def applied_to_store(self) -> bool:
        return self.request.applied_by == STORED_ACCOUNT


def control_account(
    settings: AppSettings,
    account: str,
    kind: ControlKind,
    *,
    reason: str = "",
    flatten: bool = False,
    wait_s: float = 15.0,
    poll_s: float = 0.1,
) -> ControlOutcome:
    """Ask ``account`` for a kill or resume; returns once a running session acknowledged it,
    ``wait_s`` wall seconds passed without (the request stays pending: the session applies it
    before its next event), or, with no live session, once it is applied to the stored account.
    Raises `AccountNotFoundError` for an account that was never run."""
    from drl_trading.app.execution import bootstrap_execution
    from drl_trading.app.infrastructure import build_strategy

    ex = settings.execution
    if ex.store == "memory":
        raise AccountNotFoundError(
            "execution.store is 'memory': a session's account lives in its own process only, "
            "no other process can reach it"
        )
    postgres = None
    if ex.store == "postgres":
        postgres = (settings.postgres.dsn(), settings.postgres.schema_name)
    elif not store_path(settings, account).exists():
        raise AccountNotFoundError(
            f"no paper account {account!r} ({store_path(settings, account)} does not exist); "
            "run `paper` first"
        )
    clock = AccountClock()
    # kill/resume/flatten size nothing: the account's capital split does not matter here
    exec_settings = ex.model_copy(
        update={"store_path": store_path(settings, account), "capital": "shared"}
    )
    risk = build_strategy(settings).risk_parameters()
    parts = bootstrap_execution(exec_settings, risk, clock, settings.home, postgres=postgres)
    clock.service = parts.service
    store = parts.store
    try:
        asked = datetime.now(UTC)
        is_live = (account_dir(settings, account) / LIVE_MARKER).exists()
        if flatten and is_live and store.live_session(asked - HEARTBEAT_STALE_AFTER) is None:
            raise LiveAccountIdleError(
                f"no session runs on live account {account!r}: a flatten sends its closing "
                "orders through the session's exchange broker, so nothing was asked; `kill` "
                "without --flatten halts the stored account, then start `drl-trading live "
                f"--session {account}` (it stays halted) and `kill --flatten` it there"
            )
        request = store.request_control(kind, asked, reason=reason, flatten=flatten)
        live = store.live_session(asked - HEARTBEAT_STALE_AFTER)
        if live is None:
            parts.service.attach(STORED_ACCOUNT)
            for _ in range(5):  # a session starting meanwhile may commit first: reload, redo
                try:
                    parts.service.apply_controls()
                    break
                except ConcurrentCommitError:
                    continue
        else:
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                now = store.control(request.control_id)
                if now is not None and not now.pending:
                    break
                time.sleep(poll_s)
        return ControlOutcome(store.control(request.control_id) or request, live)
    finally:
        parts.close()


class AccountClock:
    """The clock of an account no session runs: the close of the last bar its service holds
    (reloaded state included), so that a kill's flatten orders carry the account's market time,
    not the operator's wall clock; the wall clock before the account saw any bar."""

    def __init__(self) -> None:
        self.service: ExecutionService | None = None

    def now(self) -> datetime:
        seen = None if self.service is None else self.service.market_time()
        return seen if seen is not None else datetime.now(UTC)
