"""A paper account: its folder under home, its execution store, and its kill/resume requests.

A running session owns its account's store, so `kill` and `resume` leave a request file in the
account folder that the session applies within a few bars (`poll_switches`); with no session
running they apply to the stored state directly (`apply_switch_now`).
"""

from __future__ import annotations

from pathlib import Path

from drl_trading.app.settings import AppSettings
from drl_trading.execution.core.service import ExecutionService

KILL_FILE = "KILL"
RESUME_FILE = "RESUME"


def account_dir(settings: AppSettings, session: str) -> Path:
    return settings.home / "paper" / session


def store_path(settings: AppSettings, session: str) -> Path:
    return settings.execution.store_path or (
        account_dir(settings, session) / f"execution.{settings.execution.store}"
    )


def apply_switch_now(settings: AppSettings, session: str, name: str, body: str) -> str:
    """Apply to the stored account (no process running); RuntimeError if the file is busy."""
    from drl_trading.app.execution import bootstrap_execution
    from drl_trading.app.infrastructure import build_strategy
    from drl_trading.common.adapter.system_clock import SystemClock

    path = store_path(settings, session)
    # kill/resume/flatten size nothing: the account's capital split does not matter here
    exec_settings = settings.execution.model_copy(
        update={"store_path": path, "store": "sqlite", "capital": "shared"}
    )
    parts = bootstrap_execution(
        exec_settings, build_strategy(settings).risk_parameters(), SystemClock(), settings.home
    )
    try:
        return apply_switch(parts.service, name, body)
    finally:
        parts.close()


def apply_switch(service: ExecutionService, name: str, body: str) -> str:
    """``name`` is `KILL_FILE` (body: reason, newline, 1 to flatten) or `RESUME_FILE`."""
    if name == KILL_FILE:
        reason, _, flat = body.partition("\n")
        service.kill(reason or "manual", flatten=flat.strip() == "1")
    else:
        service.resume()
    st = service.status()
    return f"trading state: {st.state.value} ({st.reason})"


def poll_switches(folder: Path, service: ExecutionService) -> str | None:
    """Called by a running session: apply and remove a pending kill/resume request."""
    for name in (KILL_FILE, RESUME_FILE):
        path = folder / name
        if path.exists():
            body = path.read_text()
            path.unlink()
            return apply_switch(service, name, body)
    return None
