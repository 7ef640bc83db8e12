"""`drl-trading trades`, `kill` and `resume`: the paper account's audit trail and kill switch.

How a request reaches a running session, or the stored account, is
`drl_trading.app.paper_account`'s.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from drl_trading.app.paper_account import (
    KILL_FILE,
    RESUME_FILE,
    account_dir,
    apply_switch_now,
    store_path,
)
from drl_trading.cli.context import console, err_console, fail, state
from drl_trading.common.domain import parse_time
from drl_trading.execution.core.ports import ExecutionStore

Session = Annotated[str, typer.Option(help="Paper account name (as given to `paper`).")]


def trades(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="Records at or after this UTC time.")] = "1970-01-01",
    session: Session = "default",
    kind: Annotated[
        str | None, typer.Option(help="Only these kinds: order, fill, rejection, skip, cancel.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows shown (the CSV gets all).")] = 50,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write all rows as CSV.")] = None,
) -> None:
    """List the paper account's orders, fills, rejections and skips (newest last)."""
    from drl_trading.execution.adapter.sqlite_store import SQLiteExecutionStore

    settings = state(ctx).settings()
    path = store_path(settings, session)
    if not path.exists():
        raise fail(f"no paper account {session!r} ({path} does not exist); run `paper` first")
    try:
        start = parse_time(since)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    try:
        store: ExecutionStore = SQLiteExecutionStore(path)
    except Exception as exc:  # e.g. a locked or corrupt file
        raise fail(f"cannot read {path} ({exc}); is a paper session running?") from None
    try:
        records = store.records_since(start)
    finally:
        store.close()
    if kind:
        wanted = {k.strip() for k in kind.split(",")}
        records = [r for r in records if r.kind.value in wanted]
    columns = ("at", "kind", "symbol", "side", "quantity", "price", "fee", "realised_pnl",
               "model_version", "risk_check", "reason", "client_order_id", "signal_id")  # fmt: skip
    if csv_out is not None:
        with csv_out.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(columns)
            for r in records:
                w.writerow([_cell(getattr(r, c)) for c in columns])
        console.print(f"{len(records)} records written to {csv_out}")
    table = Table(title=f"paper account {session}: {len(records)} records since {start}")
    for c in columns[:10]:
        table.add_column(c)
    for r in records[-limit:]:
        table.add_row(*[_cell(getattr(r, c)) for c in columns[:10]])
    console.print(table)


def _cell(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(getattr(v, "value", v))


def kill(
    ctx: typer.Context,
    session: Session = "default",
    reason: Annotated[str, typer.Option(help="Recorded with the state change.")] = "manual",
    flatten: Annotated[bool, typer.Option(help="Also close every position.")] = False,
) -> None:
    """Kill switch: HALTED (no orders at all) until `resume`."""
    _switch(ctx, session, KILL_FILE, f"{reason}\n{int(flatten)}")


def resume(ctx: typer.Context, session: Session = "default") -> None:
    """Leave HALTED: trading resumes (REDUCING if the day's loss is still over the limit)."""
    _switch(ctx, session, RESUME_FILE, "")


def _switch(ctx: typer.Context, session: str, name: str, body: str) -> None:
    settings = state(ctx).settings()
    folder = account_dir(settings, session)
    if not store_path(settings, session).exists():
        raise fail(f"no paper account {session!r}; run `paper` first")
    try:
        applied = apply_switch_now(settings, session, name, body)
    except RuntimeError:
        applied = None
    if applied is None:
        (folder / name).write_text(body)
        err_console.print(
            f"[yellow]a paper session holds the account; it will apply {name.lower()} within a "
            "few bars[/yellow]"
        )
        return
    console.print(applied)
