"""`drl-trading trades`, `kill` and `resume`: the paper account's audit trail and kill switch.

How a request reaches a running session, or the stored account, is
`drl_trading.app.paper_account`'s.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from drl_trading.app.paper_account import AccountNotFoundError, control_account, store_path
from drl_trading.cli.context import console, err_console, fail, state
from drl_trading.cli.output import FormatOption, OutputFormat, table_cell, write_rows
from drl_trading.common.domain import parse_time
from drl_trading.execution.core.ports import ExecutionStore
from drl_trading.execution.core.records import ControlKind, RecordKind, TradeRecord

if TYPE_CHECKING:
    from drl_trading.app.live_account import LiveKillOutcome

Session = Annotated[str, typer.Option(help="Paper account name (as given to `paper`).")]

COLUMNS = ("at", "kind", "symbol", "side", "quantity", "price", "fee", "realised_pnl",
           "model_version", "risk_check", "reason", "client_order_id", "signal_id")  # fmt: skip
"""The columns of CSV and JSON; the table shows the first ten."""
TABLE_COLUMNS = COLUMNS[:10]


def trades(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="Records at or after this UTC time.")] = "1970-01-01",
    session: Session = "default",
    kind: Annotated[
        list[str] | None,
        typer.Option(
            help="Only this kind: order, fill, rejection, skip or cancel; repeat the option (or "
            "separate with commas) for several."
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option(help="Table rows shown, the newest (csv, json and --csv get all).")
    ] = 50,
    fmt: FormatOption = OutputFormat.TABLE,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write all rows as CSV.")] = None,
) -> None:
    """List the paper account's orders, fills, rejections and skips (newest last)."""
    from drl_trading.execution.adapter.sqlite_store import SQLiteExecutionStore

    settings = state(ctx).settings()
    try:
        start = parse_time(since)
        wanted = parse_kinds(kind or [])
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    path = store_path(settings, session)
    if not path.exists():
        raise fail(f"no paper account {session!r} ({path} does not exist); run `paper` first")
    try:
        store: ExecutionStore = SQLiteExecutionStore(path)
    except Exception as exc:  # e.g. a locked or corrupt file
        raise fail(f"cannot read {path} ({exc}); is a paper session running?") from None
    try:
        records = store.records_since(start)
        reconciled = store.last_reconciliation()
    finally:
        store.close()
    if wanted:
        records = [r for r in records if r.kind in wanted]
    if csv_out is not None:
        with csv_out.open("w", newline="") as fh:
            write_rows(
                OutputFormat.CSV, COLUMNS, _rows(records, COLUMNS), fh, lineterminator="\r\n"
            )
        # the note must not mix with rows on stdout
        notes = console if fmt is OutputFormat.TABLE else err_console
        notes.print(f"{len(records)} records written to {csv_out}")
    if fmt is not OutputFormat.TABLE:
        write_rows(fmt, COLUMNS, _rows(records, COLUMNS), sys.stdout)
        return
    table = Table(title=f"paper account {session}: {len(records)} records since {start}")
    for c in TABLE_COLUMNS:
        table.add_column(c)
    for row in _rows(records[-limit:], TABLE_COLUMNS):
        table.add_row(*[table_cell(v) for v in row])
    console.print(table)
    if reconciled is not None:  # a live account's; a paper one never reconciles
        console.print(
            reconciled.headline(), style=None if reconciled.ok else "bold red", markup=False
        )


def parse_kinds(values: list[str]) -> set[RecordKind]:
    """The record kinds named by repeated ``--kind`` options, each possibly a comma-separated
    list; empty for all. ValueError names an unknown kind and the valid ones."""
    wanted: set[RecordKind] = set()
    for value in values:
        for name in value.split(","):
            name = name.strip().lower()
            if not name:
                continue
            try:
                wanted.add(RecordKind(name))
            except ValueError:
                valid = ", ".join(k.value for k in RecordKind)
                raise ValueError(
                    f"unknown kind {name!r} for --kind; the kinds are {valid}"
                ) from None
    return wanted


def _rows(records: list[TradeRecord], columns: tuple[str, ...]) -> list[list[object]]:
    return [[getattr(r, c) for c in columns] for r in records]


Wait = Annotated[
    float,
    typer.Option(
        "--wait",
        min=0,
        help="Seconds to wait for a running session's acknowledgement (exit 1 without one).",
    ),
]


def kill(
    ctx: typer.Context,
    session: Session = "default",
    reason: Annotated[str, typer.Option(help="Recorded with the state change.")] = "manual",
    flatten: Annotated[bool, typer.Option(help="Also close every position.")] = False,
    wait: Wait = 15.0,
) -> None:
    """Kill switch: HALTED (no orders at all) until `resume`; reaches a running session."""
    _switch(ctx, session, ControlKind.KILL, reason, flatten, wait)


def resume(ctx: typer.Context, session: Session = "default", wait: Wait = 15.0) -> None:
    """Leave HALTED: trading resumes (REDUCING if the day's loss is still over the limit)."""
    _switch(ctx, session, ControlKind.RESUME, "", False, wait)


def _switch(
    ctx: typer.Context, session: str, kind: ControlKind, reason: str, flatten: bool, wait: float
) -> None:
    from drl_trading.app.live_account import is_live_account, kill_live_account

    settings = state(ctx).settings()
    try:
        if kind is ControlKind.KILL and is_live_account(settings, session):
            killed = kill_live_account(
                settings, session, reason=reason, flatten=flatten, wait_s=wait
            )
            outcome = killed.control
            if outcome.applied_to_store:
                _report_live_kill(session, killed)
                return
        else:
            outcome = control_account(
                settings, session, kind, reason=reason, flatten=flatten, wait_s=wait
            )
    except AccountNotFoundError as exc:
        raise fail(str(exc)) from None
    c, live = outcome.request, outcome.session
    at = "" if c.applied_at is None else f"{c.applied_at:%Y-%m-%d %H:%M:%S} UTC"
    if outcome.acknowledged:
        console.print(
            f"{kind.value} acknowledged by the running session {c.applied_by} at {at} "
            f"(market time): {c.outcome}"
        )
    elif outcome.applied_to_store:
        console.print(
            f"no session is running on account {session!r}: {kind.value} applied to the stored "
            f"account at {at} (its market time): {c.outcome}"
        )
    else:
        who = "the running session" if live is None else f"the running session {live.session_id}"
        raise fail(
            f"{who} did not acknowledge {kind.value} request #{c.control_id} within {wait:g} s; "
            "it stays pending and is applied before the session's next signal or bar"
        )


def _report_live_kill(session: str, killed: LiveKillOutcome) -> None:
    """What a kill on an idle live account did on the exchange: cancels, closing orders sent,
    their fills, what still rests there, and the reconciliation that followed."""
    c = killed.control.request
    at = "" if c.applied_at is None else f"{c.applied_at:%Y-%m-%d %H:%M:%S} UTC"
    console.print(
        f"no session is running on live account {session!r}: kill applied on the exchange and "
        f"to the stored account at {at} (its market time): {c.outcome}",
        markup=False,
    )
    console.print(f"cancelled on the exchange: {len(killed.cancelled)} open order(s) of ours")
    for r in killed.cancelled:
        console.print(f"  {_order_line(r)}", markup=False)
    if c.flatten:
        if not killed.sent:
            console.print("flatten: nothing held to close")
        for r in killed.sent:
            verdict = "sent" if r.kind is RecordKind.ORDER else f"refused ({r.reason})"
            console.print(f"closing order {verdict}: {_order_line(r)}", markup=False)
        for r in killed.filled:
            console.print(
                f"filled: {_order_line(r)} at {r.price or 0.0:g}, fee {r.fee:g}", markup=False
            )
        for r in killed.unfilled:
            console.print(
                f"not filled yet, resting on the exchange: {_order_line(r)} (the next `live "
                f"--session {session}` records its fill)",
                style="yellow",
                markup=False,
            )
    if killed.reconciliation is not None:
        rec = killed.reconciliation
        console.print(rec.headline(), style=None if rec.ok else "bold red", markup=False)


def _order_line(r: TradeRecord) -> str:
    side = "" if r.side is None else r.side.value
    return f"{side} {r.quantity:g} {r.symbol} ({r.client_order_id or r.record_id})".strip()
